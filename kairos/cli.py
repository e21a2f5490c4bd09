"""The ``kairos`` command line: list, validate, enable/disable, show, schedule next, run, runs.

Commands stay thin: they load the file through :mod:`kairos.loading`, plan through
:mod:`kairos.plan` and print. Everything they reach for comes from :data:`services`, which tests swap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kairos.catalog import TaskCatalog, load_catalog
from kairos.config import TasksFile
from kairos.editing import EditError, set_enabled
from kairos.loading import ConfigError, load_tasks_file
from kairos.local.dynamodb import DynamoEndpoint, EmbeddedDynamoError, dynamodb_endpoint
from kairos.local.tables import TableDesignChangedError
from kairos.plan import PlanError, StagePlan, TaskPlan, plan_stage
from kairos.schedule import (
    ScheduleError,
    describe_schedule,
    next_fire_times,
    parse_schedule,
    validate_timezone,
)
from kairos_runtime.events import iso_seconds, parse_instant
from kairos_runtime.tasks.market import CALENDAR_TASK_TYPES
from kairos_runtime.tasks.market.model import trading_date_of
from kairos_runtime.tasks.market.trading_calendar import calendar_warning, default_calendar

DEFAULT_FILE = Path("tasks.yaml")
DEFAULT_STAGE = "dev"


def _console(*, stderr: bool) -> Console:
    # Piped output (make run, CI logs) is not squeezed into 80 columns.
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 200
    return console


@dataclass
class Services:
    """What commands depend on; tests replace fields (the clock, the DynamoDB endpoint, the consoles)."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    catalog_factory: Callable[[], TaskCatalog] = load_catalog
    endpoint: Callable[[], Any] = dynamodb_endpoint
    console: Console = field(default_factory=lambda: _console(stderr=False))
    errors: Console = field(default_factory=lambda: _console(stderr=True))
    _catalog: TaskCatalog | None = None

    @property
    def catalog(self) -> TaskCatalog:
        if self._catalog is None:
            self._catalog = self.catalog_factory()
        return self._catalog


services = Services()

app = typer.Typer(
    name="kairos",
    help="Scheduled jobs on AWS from one typed registry file (tasks.yaml).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schedule_app = typer.Typer(help="Work with schedule expressions.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")

FileOption = Annotated[Path, typer.Option("--file", "-f", help="The task registry to read.")]
StageOption = Annotated[str, typer.Option("--stage", "-s", help="The stage whose settings apply.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    services.errors.print(f"[red]error:[/red] {message}", markup=True)
    return typer.Exit(code)


def _load(path: Path) -> TasksFile:
    try:
        return load_tasks_file(path, services.catalog)
    except ConfigError as invalid:
        for problem in invalid.problems:
            services.errors.print(problem, markup=False)
        raise typer.Exit(1) from None


def _plan(path: Path, stage: str) -> StagePlan:
    try:
        return plan_stage(_load(path), services.catalog, stage)
    except PlanError as error:
        raise _fail(str(error)) from None


def _task(plan: StagePlan, name: str) -> TaskPlan:
    try:
        return plan.task(name)
    except KeyError:
        known = ", ".join(task.name for task in plan.tasks)
        raise _fail(f"no task named {name!r} (tasks: {known})") from None


def _instant(text: str) -> datetime:
    """An ISO 8601 instant from the command line, in the forms an event's ``scheduled_time`` takes."""
    try:
        return parse_instant(text)
    except ValueError as error:
        raise _fail(str(error), code=2) from None


def _next_fire(task: TaskPlan, after: datetime) -> str:
    if not task.enabled:
        return "-"
    times = next_fire_times(parse_schedule(task.schedule_expression), timezone=task.timezone, after=after, count=1)
    return iso_seconds(times[0]) if times else "never"


@app.command("list")
def list_tasks(file: FileOption = DEFAULT_FILE, stage: StageOption = DEFAULT_STAGE) -> None:
    """Every task of the stage with its schedule and next fire time."""
    plan = _plan(file, stage)
    now = services.clock()
    table = Table(title=f"Kairos tasks, stage {stage} ({file})", title_justify="left")
    for column in ("", "name", "schedule", "timezone", "runtime", "task_type", "next fire (UTC)", "in words"):
        table.add_column(column, no_wrap=column in ("name", "schedule", "next fire (UTC)"))
    for task in plan.tasks:
        table.add_row(
            "[green]●[/green]" if task.enabled else "[dim]○[/dim]",
            task.name,
            task.schedule_expression,
            task.timezone,
            task.runtime,
            task.task_type,
            _next_fire(task, now),
            describe_schedule(parse_schedule(task.schedule_expression)),
        )
    services.console.print(table)
    enabled = len(plan.enabled_tasks)
    services.console.print(f"{len(plan.tasks)} tasks, {enabled} enabled, {len(plan.tasks) - enabled} disabled")


@app.command()
def validate(file: FileOption = DEFAULT_FILE) -> None:
    """Check the task registry: fields, schedules, timezones, task types and params, in every stage."""
    tasks_file = _load(file)
    for stage in tasks_file.stages:
        try:
            plan_stage(tasks_file, services.catalog, stage)
        except PlanError as error:
            raise _fail(str(error)) from None
    services.console.print(
        f"{file}: {len(tasks_file.tasks)} tasks, {len(tasks_file.stages)} stages "
        f"({', '.join(tasks_file.stages)}): valid"
    )


def _toggle(name: str, enabled: bool, file: Path, stage: str | None) -> None:
    try:
        change = set_enabled(file, name, enabled, stage=stage, catalog=services.catalog)
    except EditError as error:
        raise _fail(str(error)) from None
    except ConfigError as invalid:
        for problem in invalid.problems:
            services.errors.print(problem, markup=False)
        raise _fail(f"{file} left unchanged: the edit would not validate") from None
    services.console.print(f"{file}: {change}")


StageEditOption = Annotated[
    str | None, typer.Option("--stage", "-s", help="Change only this stage (its enabled list or override).")
]


@app.command()
def enable(name: str, file: FileOption = DEFAULT_FILE, stage: StageEditOption = None) -> None:
    """Enable a task, editing tasks.yaml in place (comments and formatting are kept)."""
    _toggle(name, True, file, stage)


@app.command()
def disable(name: str, file: FileOption = DEFAULT_FILE, stage: StageEditOption = None) -> None:
    """Disable a task, editing tasks.yaml in place (comments and formatting are kept)."""
    _toggle(name, False, file, stage)


@app.command()
def show(name: str, file: FileOption = DEFAULT_FILE, stage: StageOption = DEFAULT_STAGE) -> None:
    """Everything about one task in a stage: settings, params, grants and the next fire times."""
    task = _task(_plan(file, stage), name)
    schedule = parse_schedule(task.schedule_expression)
    rows = {
        "name": task.name,
        "description": task.description,
        "stage": stage,
        "enabled": "yes" if task.enabled else "no",
        "task_type": task.task_type,
        "runtime": f"{task.runtime} ({task.architecture}, {task.group.value} dependencies)",
        "memory / timeout": f"{task.memory} MB / {task.timeout} s",
        "schedule": f"{task.schedule_expression} in {task.timezone}: {describe_schedule(schedule)}",
        "retries": (
            f"Scheduler {task.scheduler_retry_attempts}, max event age {task.max_event_age_seconds} s; "
            f"Lambda async {task.async_retry_attempts}"
        ),
        "tables": ", ".join(f"{table.value} ({access.value})" for table, access in task.tables.items())
        or "its own run records only",
        "params": json.dumps(task.input_template["params"], ensure_ascii=False),
    }
    if task.task_type in CALENDAR_TASK_TYPES:
        rows |= _calendar_rows()
    for label, value in rows.items():
        services.console.print(f"[bold]{label:>17}[/bold]  {value}", markup=True)
    upcoming = next_fire_times(schedule, timezone=task.timezone, after=services.clock(), count=5)
    services.console.print(
        f"[bold]{'next fire (UTC)':>17}[/bold]  " + ", ".join(map(iso_seconds, upcoming)), markup=True
    )


def _calendar_rows() -> dict[str, str]:
    """The trading calendar's known end as this machine knows it: akshare's bundled file (a deployed
    task reads the MarketData calendar the trading_calendar task keeps, which may reach further)."""
    calendar = default_calendar()
    check = calendar.check(trading_date_of(services.clock()))
    rows = {
        "trading calendar": (
            f"ends {calendar.last.isoformat()}, {check.days_left} day(s) from today in Shanghai "
            "(akshare's bundled file, as known locally; deployed tasks read the MarketData calendar)"
        )
    }
    if check.ends_soon:
        rows["warning"] = calendar_warning(calendar.last, check.days_left)
    return rows


@schedule_app.command("next")
def schedule_next(
    expression: Annotated[str, typer.Argument(help="rate(...), cron(...) or at(...)")],
    tz: Annotated[str, typer.Option("--tz", help="IANA zone the expression is evaluated in.")] = "UTC",
    after: Annotated[
        str | None, typer.Option("--after", help="ISO 8601 instant (default: now); a zone-less one is UTC.")
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=1000)] = 5,
) -> None:
    """Print the next COUNT fire times strictly after --after, one per line, in UTC."""
    try:
        schedule = parse_schedule(expression)
        validate_timezone(tz)
    except ScheduleError as error:
        raise _fail(str(error), code=2) from None
    start = _instant(after) if after else services.clock()
    for moment in next_fire_times(schedule, timezone=tz, after=start, count=count):
        services.console.print(iso_seconds(moment), markup=False)


@contextmanager
def _local_dynamodb() -> Iterator[DynamoEndpoint]:
    try:
        with services.endpoint() as endpoint:
            yield endpoint
    except (EmbeddedDynamoError, TableDesignChangedError) as error:
        raise _fail(str(error)) from None


@app.command()
def run(
    name: str,
    file: FileOption = DEFAULT_FILE,
    stage: StageOption = DEFAULT_STAGE,
    scheduled_time: Annotated[
        str | None, typer.Option(help="The slot to run, ISO 8601 (default: now, to the minute).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print the handler's log output.")] = False,
) -> None:
    """Run one task locally through its real handler, against the DynamoDB in AWS_ENDPOINT_URL_DYNAMODB
    or the embedded one. Exits 1 when the run is recorded as FAILED."""
    from kairos.local.session import LocalStage

    task = _task(_plan(file, stage), name)
    slot = _instant(scheduled_time) if scheduled_time else None
    with _local_dynamodb() as endpoint:
        local = LocalStage(stage=stage, endpoint=endpoint)
        local.prepare_tables()
        result = local.run(task, scheduled_time=slot or services.clock())
    if not task.enabled:
        services.errors.print(f"note: {name} is disabled in stage {stage}; it ran because you asked", markup=False)
    if verbose:
        services.console.print(result.invocation.output, markup=False, end="")
    _print_runs([result.record] if result.record else [], title=f"{name}: local run ({endpoint.url})")
    if result.record is None:
        raise _fail(f"no run record was written: {result.invocation.error}")
    status = result.record.get("status")
    if status == "FAILED":
        raise typer.Exit(1)
    if status == "STARTED" or not result.invocation.ok:
        raise _fail(f"the handler did not finish: {result.invocation.error}")


@app.command("run-stage", hidden=True)
def run_stage(
    file: FileOption = DEFAULT_FILE,
    stage: StageOption = DEFAULT_STAGE,
    template: Annotated[Path | None, typer.Option(help="Create the tables this synthesized template declares.")] = None,
) -> None:
    """Run every enabled task of the stage once (what `make run` does)."""
    from kairos.local.session import LocalStage

    plan = _plan(file, stage)
    with _local_dynamodb() as endpoint:
        local = LocalStage(stage=stage, endpoint=endpoint)
        created = local.prepare_tables(template=json.loads(template.read_text()) if template else None)
        if created:
            services.console.print(f"created tables on {endpoint.url}: {', '.join(created)}")
        results = [local.run(task, scheduled_time=services.clock()) for task in plan.enabled_tasks]
    records = [result.record for result in results if result.record]
    _print_runs(records, title=f"stage {stage}: every enabled task, run once")
    missing = [result.invocation.task for result in results if result.record is None]
    if missing:
        raise _fail(f"no run record for: {', '.join(missing)}")


@app.command()
def runs(
    name: Annotated[str | None, typer.Argument(help="Only this task's runs.")] = None,
    stage: StageOption = DEFAULT_STAGE,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
) -> None:
    """Run history, newest first."""
    from kairos.local.session import LocalStage

    with _local_dynamodb() as endpoint:
        local = LocalStage(stage=stage, endpoint=endpoint)
        local.prepare_tables()
        records = local.history(task=name, limit=limit, now=services.clock())
    _print_runs(records, title=f"runs of {name or 'every task'}, stage {stage}, newest first")


STATUS_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "SKIPPED": "yellow", "STARTED": "blue"}


def _print_runs(records: list[dict[str, Any]], *, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in (
        "task",
        "status",
        "scheduled (UTC)",
        "started",
        "ms",
        "items",
        "rejected",
        "error / detail",
    ):
        table.add_column(column, no_wrap=column != "error / detail")
    for record in records:
        status = str(record.get("status", "?"))
        error = record.get("error_message")
        note = f"{record.get('error_type')}: {error}" if error else json.dumps(record.get("detail", {}), default=str)
        table.add_row(
            str(record.get("task")),
            f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
            str(record.get("scheduled_time", "")),
            str(record.get("started_at", "")),
            str(record.get("duration_ms", "")),
            str(record.get("items_written", "")),
            str(record.get("items_rejected", "")),
            note[:160],
        )
    services.console.print(table)
    if not records:
        services.console.print("no runs recorded")


@app.command(hidden=True)
def stages(file: FileOption = DEFAULT_FILE) -> None:
    """Print the stage names, one per line (for the Makefile)."""
    for stage in _load(file).stages:
        services.console.print(stage, markup=False)


@app.command(hidden=True)
def schema(
    output: Annotated[Path, typer.Option(help="Where to write the JSON Schema.")] = Path("schemas/tasks.schema.json"),
) -> None:
    """Write the JSON Schema of tasks.yaml (for editors, through the yaml-language-server line)."""
    from kairos.json_schema import tasks_file_schema

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(tasks_file_schema(), indent=2) + "\n", encoding="utf-8")
    services.console.print(f"wrote {output}")


def main() -> None:
    app()
