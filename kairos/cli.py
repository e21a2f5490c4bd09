"""The ``kairos`` command line: list, validate, enable/disable, show, schedule next, run, runs.

Commands stay thin: they load the file through :mod:`kairos.loading`, plan through
:mod:`kairos.plan` and print. Everything they reach for comes from :data:`services`, which tests swap.
Tables fit the console (:mod:`kairos.cli_tables`); ``list``, ``show``, ``enable`` and ``disable``
also print JSON (``--json``) with the field names the README documents.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from kairos.catalog import TaskCatalog, load_catalog
from kairos.cli_tables import Cell, Column, fitted_table
from kairos.config import EnabledState, TasksFile
from kairos.editing import EditError, set_enabled
from kairos.excerpts import excerpt, shorten
from kairos.loading import Checked, ConfigError, check_tasks_file, load_tasks_file
from kairos.local.dynamodb import DynamoEndpoint, EmbeddedDynamoError, dynamodb_endpoint
from kairos.local.tables import TableDesignChangedError
from kairos.plan import MAX_STACK_RESOURCES, PlanError, StagePlan, TaskPlan, plan_stage
from kairos.schedule import (
    ScheduleError,
    describe_schedule,
    next_fire_times,
    parse_schedule,
    validate_timezone,
)
from kairos.suggestions import did_you_mean
from kairos_runtime.events import iso_seconds, parse_instant
from kairos_runtime.runs import RunStatus
from kairos_runtime.tables import TableId
from kairos_runtime.tasks.market import CALENDAR_TASK_TYPES
from kairos_runtime.tasks.market.model import trading_date_of
from kairos_runtime.tasks.market.trading_calendar import calendar_warning, default_calendar

DEFAULT_FILE = Path("tasks.yaml")
DEFAULT_STAGE = "dev"

if TYPE_CHECKING:
    from kairos.operations.history import SlotDeliveries


PIPED_WIDTH = 200
"""Piped output (make run, CI logs) is not squeezed into 80 columns, unless COLUMNS says so."""


def _explicit_columns() -> int | None:
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = _explicit_columns() or PIPED_WIDTH
    return console


@dataclass
class Services:
    """What commands depend on; tests replace fields (the clock, the DynamoDB endpoint, the consoles)."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep
    """How ``kairos logs --follow`` waits between polls (tests stop the loop through it)."""
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


def _without_type(option: TyperOption | None) -> TyperOption | None:
    # Typer shows every flag's type as `<bool>` in help, its own --help included; a flag takes no value.
    if option is not None:
        option.metavar = ""
    return option


class KairosCommand(TyperCommand):
    def get_help_option(self, ctx: Any) -> TyperOption | None:
        return _without_type(super().get_help_option(ctx))


class KairosGroup(TyperGroup):
    def get_help_option(self, ctx: Any) -> TyperOption | None:
        return _without_type(super().get_help_option(ctx))


class KairosTyper(typer.Typer):
    """A Typer whose commands are :class:`KairosCommand` unless told otherwise."""

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = KairosCommand, **settings: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls, **settings)


def _flag(*names: str, help_text: str) -> Any:
    """A boolean option shown in help without a type."""
    return typer.Option(*names, help=help_text, metavar="")


RerunOption = Annotated[
    bool,
    _flag("--rerun", help_text="Run the slot even if it already SUCCEEDED or was SKIPPED (the record says so)."),
]


def declined_slot(response: object, *, name: str, slot: str) -> None:
    """Says why the function did not run the event (``kairos_runtime.slots``): a note when the slot is
    done, an error (exit 1) when it is in progress."""
    from kairos.operations.invoke import declined

    reason = declined(response)
    status = response.get("status") if isinstance(response, dict) else None
    if reason == "done":
        services.errors.print(
            f"note: {name}'s slot {slot} already {status}: not run again (--rerun runs it anyway)", markup=False
        )
    elif reason == "in_progress":
        raise _fail(f"{name}'s slot {slot} is in progress: not started twice; try again once it has finished")


app = KairosTyper(
    name="kairos",
    help="Scheduled jobs on AWS from one typed registry file (tasks.yaml).",
    cls=KairosGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schedule_app = KairosTyper(help="Work with schedule expressions.", cls=KairosGroup, no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")

FileOption = Annotated[Path, typer.Option("--file", "-f", help="The task registry to read.")]
StageOption = Annotated[str, typer.Option("--stage", "-s", help="The stage whose settings apply.")]
JsonOption = Annotated[bool, _flag("--json", help_text="Print JSON (field names in the README) instead of a table.")]


def _print_version(wanted: bool) -> None:
    if wanted:
        services.console.out(f"kairos {package_version('kairos')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _every_command(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", metavar="", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    # COLUMNS given to this invocation wins, also over a pipe (the consoles are made at import).
    columns = _explicit_columns()
    if columns is not None:
        services.console.width = services.errors.width = columns


def _fail(message: str, code: int = 1) -> typer.Exit:
    services.errors.print(Text.assemble(("error:", "red"), " ", message))
    return typer.Exit(code)


def _print_json(document: Any) -> None:
    services.console.out(json.dumps(document, indent=2, ensure_ascii=False), highlight=False)


def _print_table(*, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], collect_into: str) -> None:
    """Every command's table, fitted to the console's width (:func:`.cli_tables.fitted_table`)."""
    services.console.print(
        fitted_table(title=title, columns=columns, rows=rows, width=services.console.width, collect_into=collect_into)
    )


INTERNAL_ERROR = "internal error"
"""Marks the last-resort message: every known kind of bad input has its own message, so this one is a bug."""


def _load(path: Path) -> TasksFile:
    checked = _check(path)
    if checked.tasks_file is None:
        for problem in checked.problems:
            services.errors.print(problem, markup=False)
        raise typer.Exit(1)
    return checked.tasks_file


def _check(path: Path, *, now: datetime | None = None) -> Checked:
    """Every problem of the file; one that cannot be read at all is its one problem and exit 1."""
    try:
        return check_tasks_file(path, services.catalog, now=now)
    except ConfigError as invalid:
        for problem in invalid.problems:
            services.errors.print(problem, markup=False)
        raise typer.Exit(1) from None
    except Exception as error:  # the last resort: one line naming the file, never a traceback
        services.errors.print(
            f"{path}: {INTERNAL_ERROR} while reading it ({type(error).__name__}: {shorten(str(error))}); "
            "please report it with the file",
            markup=False,
        )
        raise typer.Exit(1) from None


def _known_stage(tasks_file: TasksFile, stage: str) -> str:
    if stage not in tasks_file.stages:
        hint = did_you_mean(stage, tasks_file.stages) or f" (stages: {', '.join(tasks_file.stages)})"
        raise _fail(f"unknown stage {excerpt(stage)}{hint}")
    return stage


def _known_task(tasks_file: TasksFile, name: str) -> str:
    names = [entry.name for entry in tasks_file.tasks]
    if name not in names:
        raise _fail(f"unknown task {excerpt(name)}{did_you_mean(name, names) or ' (kairos list shows every task)'}")
    return name


def _plan(path: Path, stage: str) -> StagePlan:
    tasks_file = _load(path)
    try:
        return plan_stage(tasks_file, services.catalog, _known_stage(tasks_file, stage))
    except PlanError as error:
        raise _fail(str(error)) from None


def _task(path: Path, stage: str, name: str) -> tuple[TasksFile, TaskPlan]:
    """The task's plan in ``stage``, after checking both names (with a "did you mean")."""
    tasks_file = _load(path)
    _known_task(tasks_file, name)
    try:
        plan = plan_stage(tasks_file, services.catalog, _known_stage(tasks_file, stage))
    except PlanError as error:
        raise _fail(str(error)) from None
    return tasks_file, plan.task(name)


def _instant(text: str) -> datetime:
    """An ISO 8601 instant from the command line, in the forms an event's ``scheduled_time`` takes."""
    try:
        return parse_instant(text)
    except ValueError as error:
        raise _fail(str(error), code=2) from None


def _next_fire(task: TaskPlan, after: datetime) -> str | None:
    """The next fire time, ``None`` when the task is disabled or its schedule never fires again."""
    if not task.enabled:
        return None
    times = next_fire_times(parse_schedule(task.schedule_expression), timezone=task.timezone, after=after, count=1)
    return iso_seconds(times[0]) if times else None


def _marker(enabled: bool) -> Text:
    return Text("●", style="green") if enabled else Text("○", style="dim")


def _state(state: EnabledState) -> Text:
    return Text.assemble(_marker(state.enabled), " on" if state.enabled else " off")


def _stage_states(tasks_file: TasksFile, name: str) -> dict[str, EnabledState]:
    return {stage: tasks_file.enabled_state(name, stage) for stage in tasks_file.stages}


def _states_json(states: dict[str, EnabledState]) -> dict[str, Any]:
    return {stage: {"enabled": state.enabled, "decided_by": state.decided_by.value} for stage, state in states.items()}


LIST_COLUMNS = (
    Column(""),
    Column("name"),
    Column("schedule", folds=True),
    Column("timezone", movable=True),
    Column("runtime", movable=True),
    Column("task_type", movable=True),
    Column("next fire (UTC)"),
    Column("in words", folds=True),
)


def _list_json(tasks_file: TasksFile, file: Path, plans: list[StagePlan], now: datetime) -> dict[str, Any]:
    tasks = []
    for entry in tasks_file.tasks:
        first = plans[0].task(entry.name)
        stages = {}
        for plan in plans:
            task = plan.task(entry.name)
            state = tasks_file.enabled_state(entry.name, plan.stage)
            stages[plan.stage] = {
                "enabled": state.enabled,
                "decided_by": state.decided_by.value,
                "schedule": task.schedule_expression,
                "timezone": task.timezone,
                "schedule_in_words": describe_schedule(parse_schedule(task.schedule_expression)),
                "next_fire": _next_fire(task, now),
            }
        tasks.append(
            {
                "name": entry.name,
                "description": first.description,
                "task_type": first.task_type,
                "runtime": first.runtime,
                "stages": stages,
            }
        )
    return {"file": str(file), "stages": [plan.stage for plan in plans], "tasks": tasks}


def _list_one_stage(plan: StagePlan, file: Path, now: datetime) -> None:
    rows: list[list[Cell]] = [
        [
            _marker(task.enabled),
            task.name,
            task.schedule_expression,
            task.timezone,
            task.runtime,
            task.task_type,
            _next_fire(task, now) or "-",
            describe_schedule(parse_schedule(task.schedule_expression)),
        ]
        for task in plan.tasks
    ]
    _print_table(
        title=f"Kairos tasks, stage {plan.stage} ({file})",
        columns=LIST_COLUMNS,
        rows=rows,
        collect_into="in words",
    )
    enabled = len(plan.enabled_tasks)
    services.console.print(f"{len(plan.tasks)} tasks, {enabled} enabled, {len(plan.tasks) - enabled} disabled")


def _list_every_stage(tasks_file: TasksFile, plans: list[StagePlan], file: Path) -> None:
    columns = [Column("name"), *(Column(plan.stage) for plan in plans), Column("schedule", folds=True)]
    columns.append(Column("task_type", movable=True))
    rows: list[list[Cell]] = []
    for entry in tasks_file.tasks:
        tasks = {plan.stage: plan.task(entry.name) for plan in plans}
        schedules = {stage: f"{task.schedule_expression} ({task.timezone})" for stage, task in tasks.items()}
        # A stage override may change the schedule: then each stage's is shown.
        schedule = (
            next(iter(schedules.values()))
            if len(set(schedules.values())) == 1
            else "\n".join(f"{stage}: {text}" for stage, text in schedules.items())
        )
        states = [_state(tasks_file.enabled_state(entry.name, plan.stage)) for plan in plans]
        rows.append([entry.name, *states, schedule, tasks[plans[0].stage].task_type])
    _print_table(
        title=f"Kairos tasks in every stage ({file})",
        columns=columns,
        rows=rows,
        collect_into="schedule",
    )
    counts = ", ".join(f"{len(plan.enabled_tasks)} enabled in {plan.stage}" for plan in plans)
    services.console.print(f"{len(tasks_file.tasks)} tasks: {counts}")


@app.command("list")
def list_tasks(
    file: FileOption = DEFAULT_FILE,
    stage: Annotated[
        str | None, typer.Option("--stage", "-s", help=f"The stage whose settings apply [default: {DEFAULT_STAGE}].")
    ] = None,
    all_stages: Annotated[bool, _flag("--all-stages", help_text="A column per stage with the task's state.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Every task of the stage with its schedule and next fire time (or its state in every stage)."""
    if all_stages and stage is not None:
        raise _fail("give --stage or --all-stages, not both", code=2)
    tasks_file = _load(file)
    stages = list(tasks_file.stages) if all_stages else [_known_stage(tasks_file, stage or DEFAULT_STAGE)]
    try:
        plans = [plan_stage(tasks_file, services.catalog, name) for name in stages]
    except PlanError as error:
        raise _fail(str(error)) from None
    now = services.clock()
    if as_json:
        _print_json(_list_json(tasks_file, file, plans, now))
    elif all_stages:
        _list_every_stage(tasks_file, plans, file)
    else:
        _list_one_stage(plans[0], file, now)


@app.command()
def validate(file: FileOption = DEFAULT_FILE, as_json: JsonOption = False) -> None:
    """Check the task registry: fields, schedules, timezones, task types and params, in every stage."""
    # Only here is a one-time schedule checked against the clock: a file must not stop loading (for
    # kairos disable, or a synth) because time passed (docs/adr/0100-validation-in-one-pass.md).
    checked = _check(file, now=services.clock())
    problems = list(checked.problems)
    warnings = list(checked.warnings)
    tasks_file = checked.tasks_file
    plans = []
    if tasks_file is not None:
        for stage in tasks_file.stages:
            try:
                plan = plan_stage(tasks_file, services.catalog, stage)
            except PlanError as error:
                problems.append(f"{file}: {error}")
                continue
            plans.append(plan)
            warnings += [f"{file}: warning: {warning}"] if (warning := plan.alarm_warning()) else []
    valid = not problems and tasks_file is not None
    if as_json:
        _print_json(
            {
                "file": str(file),
                "valid": valid,
                "tasks": len(tasks_file.tasks) if tasks_file else None,
                "stages": list(tasks_file.stages) if tasks_file else None,
                "problems": problems,
                "warnings": warnings,
                "functions": {
                    plan.stage: {"total": plan.function_count, "shared": len(plan.shared_functions)} for plan in plans
                },
            }
        )
        if not valid:
            raise typer.Exit(1)
        return
    for problem in problems:
        services.errors.print(problem, markup=False)
    for warning in warnings:
        # A warning is not a problem: the file is valid and the exit code stays 0.
        services.errors.print(warning, markup=False)
    if problems or tasks_file is None:
        raise typer.Exit(1)
    for plan in plans:
        services.console.print(_stacks_line(plan), markup=False)
        services.console.print(_functions_line(plan), markup=False)
    services.console.print(
        f"{file}: {len(tasks_file.tasks)} tasks, {len(tasks_file.stages)} stages "
        f"({', '.join(tasks_file.stages)}): valid"
    )


def _functions_line(plan: StagePlan) -> str:
    """How many Lambda functions the stage deploys, and how many of them its tasks share (docs/adr/0183)."""
    line = f"  {plan.stage}: {plan.function_count:,} functions for {len(plan.tasks):,} tasks"
    if plan.shared_functions:
        sharing = sum(len(function.tasks) for function in plan.shared_functions)
        line += f" ({len(plan.shared_functions):,} shared by {sharing:,} tasks)"
    return line


def _stacks_line(plan: StagePlan) -> str:
    """A stage's stacks as the plan makes them: the core's resources, then each shard's (docs/adr/0180)."""
    counts = [shard.resource_count for shard in plan.shards]
    largest = max(shard.template_bytes for shard in plan.shards) // 1000
    return (
        f"  {plan.stage}: core + {plan.shard_count} shards; resources: core {plan.shared_resource_count}, "
        f"shards {min(counts)}-{max(counts)} of {MAX_STACK_RESOURCES}; <= {largest} KB"
    )


def _toggle(name: str, enabled: bool, file: Path, stage: str | None, as_json: bool) -> None:
    before = _load(file)
    _known_task(before, name)
    if stage is not None:
        _known_stage(before, stage)
    try:
        change = set_enabled(file, name, enabled, stage=stage, catalog=services.catalog)
    except EditError as error:
        raise _fail(str(error)) from None
    except ConfigError as invalid:
        for problem in invalid.problems:
            services.errors.print(problem, markup=False)
        raise _fail(f"{file} left unchanged: the edit would not validate") from None
    # The edit was validated before it replaced the file, so it loads.
    states = _stage_states(load_tasks_file(file), name)
    if as_json:
        _print_json({"file": str(file), "task": name, "change": change, "stages": _states_json(states)})
        return
    services.console.print(f"{file}: {change}", markup=False)
    _print_table(
        title=f"{name}, in every stage",
        columns=(Column("stage"), Column("state"), Column("why", folds=True)),
        rows=[[stage_name, _state(state), state.decided_by.value] for stage_name, state in states.items()],
        collect_into="why",
    )


StageEditOption = Annotated[
    str | None, typer.Option("--stage", "-s", help="Change only this stage (its enabled list or override).")
]


@app.command()
def enable(
    name: str, file: FileOption = DEFAULT_FILE, stage: StageEditOption = None, as_json: JsonOption = False
) -> None:
    """Enable a task in tasks.yaml (comments and formatting are kept); prints its state in every stage."""
    _toggle(name, True, file, stage, as_json)


@app.command()
def disable(
    name: str, file: FileOption = DEFAULT_FILE, stage: StageEditOption = None, as_json: JsonOption = False
) -> None:
    """Disable a task in tasks.yaml (comments and formatting are kept); prints its state in every stage."""
    _toggle(name, False, file, stage, as_json)


def _function_text(task: TaskPlan) -> str:
    """The function the task runs on: its own, or the one it shares (docs/adr/0183)."""
    if task.shared_function is None:
        return f"{task.function_name} (its own)"
    return f"{task.shared_function} (shared: shared_function)"


def _show_json(tasks_file: TasksFile, task: TaskPlan, stage: str, upcoming: list[datetime]) -> dict[str, Any]:
    state = tasks_file.enabled_state(task.name, stage)
    return {
        "name": task.name,
        "description": task.description,
        "stage": stage,
        "enabled": state.enabled,
        "decided_by": state.decided_by.value,
        "task_type": task.task_type,
        "runtime": task.runtime,
        "architecture": task.architecture,
        "dependencies": task.group.value,
        "memory_mb": task.memory,
        "timeout_s": task.timeout,
        "function": task.function_name,
        "shared_function": task.shared_function is not None,
        "schedule": task.schedule_expression,
        "timezone": task.timezone,
        "schedule_in_words": describe_schedule(parse_schedule(task.schedule_expression)),
        "retries": {
            "scheduler_attempts": task.scheduler_retry_attempts,
            "max_event_age_s": task.max_event_age_seconds,
            "lambda_async_attempts": task.async_retry_attempts,
        },
        "backfill": {"allowed": task.backfill, "late_delivery_limit_s": task.late_delivery_limit_seconds},
        "tables": {table.value: access.value for table, access in task.tables.items()},
        "ssm_parameters": list(task.ssm_parameters),
        "params": task.input_template["params"],
        "next_fire": [iso_seconds(moment) for moment in upcoming],
        "stages": _states_json(_stage_states(tasks_file, task.name)),
        "alarms": [alarm.alarm_name for alarm in task.alarms],
        "freshness_alarm": _freshness_json(task),
    }


def _freshness_json(task: TaskPlan) -> dict[str, Any]:
    alarm = task.freshness.alarm
    return {
        "name": alarm.alarm_name if alarm else None,
        "window_s": task.freshness.window_seconds,
        "period_s": alarm.period_seconds if alarm else None,
        "evaluation_periods": alarm.evaluation_periods if alarm else None,
        "note": task.freshness.note,
    }


@app.command()
def show(
    name: str, file: FileOption = DEFAULT_FILE, stage: StageOption = DEFAULT_STAGE, as_json: JsonOption = False
) -> None:
    """Everything about one task in a stage: settings, grants, state in every stage, next fire times."""
    tasks_file, task = _task(file, stage, name)
    schedule = parse_schedule(task.schedule_expression)
    upcoming = next_fire_times(schedule, timezone=task.timezone, after=services.clock(), count=5)
    if as_json:
        _print_json(_show_json(tasks_file, task, stage, upcoming))
        return
    state = tasks_file.enabled_state(name, stage)
    rows = {
        "name": task.name,
        "description": task.description,
        "stage": stage,
        "enabled": f"{'yes' if state.enabled else 'no'} ({state.decided_by.value})",
        "in every stage": "; ".join(
            f"{stage_name} {'on' if each.enabled else 'off'} ({each.decided_by.value})"
            for stage_name, each in _stage_states(tasks_file, name).items()
        ),
        "task_type": task.task_type,
        "runtime": f"{task.runtime} ({task.architecture}, {task.group.value} dependencies)",
        "memory / timeout": f"{task.memory} MB / {task.timeout} s",
        "function": _function_text(task),
        "schedule": f"{task.schedule_expression} in {task.timezone}: {describe_schedule(schedule)}",
        "retries": (
            f"Scheduler {task.scheduler_retry_attempts}, max event age {task.max_event_age_seconds} s; "
            f"Lambda async {task.async_retry_attempts}"
        ),
        "backfill": (
            "yes: kairos backfill runs past slots"
            if task.backfill
            else f"no: its source serves only the present; the handler skips a slot over "
            f"{task.late_delivery_limit_seconds} s late (PastSlotRefused)"
        ),
        "tables": ", ".join(_table_grant(task, table) for table in task.tables) or "its own run records only",
        "params": json.dumps(task.input_template["params"], ensure_ascii=False),
        "next fire (UTC)": ", ".join(map(iso_seconds, upcoming)),
        "freshness alarm": task.freshness.note,
        "alarms": ", ".join(alarm.alarm_name for alarm in task.alarms),
    }
    # Label and value side by side; a long value folds under itself, within the console's width.
    grid = Table.grid(padding=(0, 2))
    grid.add_column(justify="right", no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    if task.task_type in CALENDAR_TASK_TYPES:
        rows |= _calendar_rows()
    for label, value in rows.items():
        grid.add_row(label, Text(value))
    services.console.print(grid)


def _table_grant(task: TaskPlan, table: TableId) -> str:
    """``market_data (write: write CRYPTO#)``: the access and, where declared, the partitions it is limited to."""
    access, scope = task.tables[table].value, task.partitions.get(table)
    if scope is None:
        return f"{table.value} ({access}, whole table)"
    limits = [
        f"{kind} {', '.join(prefixes)}" for kind, prefixes in (("read", scope.read), ("write", scope.write)) if prefixes
    ]
    if scope.query_indexes:
        limits.append("query its indexes")
    return f"{table.value} ({access}: {'; '.join(limits)})"


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
    as_json: JsonOption = False,
) -> None:
    """Print the next COUNT fire times strictly after --after, one per line, in UTC."""
    try:
        schedule = parse_schedule(expression)
        validate_timezone(tz)
    except ScheduleError as error:
        raise _fail(str(error), code=2) from None
    start = _instant(after) if after else services.clock()
    fires = [iso_seconds(moment) for moment in next_fire_times(schedule, timezone=tz, after=start, count=count)]
    if as_json:
        _print_json({"expression": expression, "timezone": tz, "after": iso_seconds(start), "fires": fires})
        return
    for fire in fires:
        services.console.print(fire, markup=False)


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
    verbose: Annotated[bool, _flag("--verbose", "-v", help_text="Print the handler's log output.")] = False,
    rerun: RerunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Run one task locally through its real handler, against the DynamoDB in AWS_ENDPOINT_URL_DYNAMODB
    or the embedded one. A slot that already SUCCEEDED is not run again unless --rerun. Exits 1 when
    the run is recorded as FAILED or the slot is in progress."""
    from kairos.local.session import LocalStage

    _, task = _task(file, stage, name)
    slot = _instant(scheduled_time) if scheduled_time else None
    with _local_dynamodb() as endpoint:
        local = LocalStage(stage=stage, endpoint=endpoint)
        local.prepare_tables()
        result = local.run(task, scheduled_time=slot or services.clock(), rerun=rerun)
    if not task.enabled:
        services.errors.print(f"note: {name} is disabled in stage {stage}; it ran because you asked", markup=False)
    if as_json:
        document = {
            "task": name,
            "stage": stage,
            "endpoint": endpoint.url,
            "event": result.invocation.event,
            "response": result.invocation.response,
            "record": result.record,
            **({"output": result.invocation.output} if verbose else {}),
        }
        _print_json(json.loads(json.dumps(document, default=_json_number)))
        if result.record is None:
            raise _fail(f"no run record was written: {result.invocation.error}")
        # Its note or error goes to stderr, so the JSON on stdout stays whole.
        declined_slot(result.invocation.response, name=name, slot=str(result.invocation.event["scheduled_time"]))
    else:
        if verbose:
            services.console.print(result.invocation.output, markup=False, end="")
        _print_runs([result.record] if result.record else [], title=f"{name}: local run ({endpoint.url})")
        if result.record is None:
            raise _fail(f"no run record was written: {result.invocation.error}")
        declined_slot(result.invocation.response, name=name, slot=str(result.invocation.event["scheduled_time"]))
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
    if endpoint.embedded:
        services.console.print(
            f"the embedded DynamoDB on {endpoint.url} stays up for the next command;\n"
            "it stops when unused for a while, or with kairos local stop",
            markup=False,
        )
    missing = [result.invocation.task for result in results if result.record is None]
    if missing:
        _fail(f"no run record for: {', '.join(missing)}")
    # The last line, for a person scanning `make run` or a script grepping it.
    services.console.print(run_summary(stage, [str(record.get("status")) for record in records], len(missing)))
    if missing:
        raise typer.Exit(1)


def run_summary(stage: str, statuses: list[str], missing: int = 0) -> str:
    """``stage dev: 4 tasks run: 3 SUCCEEDED, 1 FAILED, 0 SKIPPED``: every final status, always in this order."""
    counts = Counter(statuses)
    known = [RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.SKIPPED.value]
    parts = [f"{counts.pop(status, 0)} {status}" for status in known]
    parts += [f"{count} {status}" for status, count in sorted(counts.items())]
    if missing:
        parts.append(f"{missing} without a run record")
    total = len(statuses) + missing
    return f"stage {stage}: {total} task{'s' if total != 1 else ''} run: {', '.join(parts)}"


@app.command()
def runs(
    name: Annotated[str | None, typer.Argument(help="Only this task's runs.")] = None,
    file: FileOption = DEFAULT_FILE,
    stage: Annotated[
        str | None,
        typer.Option("--stage", "-s", help="Read this deployed stage (without it: the embedded DynamoDB, stage dev)."),
    ] = None,
    local: Annotated[bool, _flag("--local", help_text="Read the embedded DynamoDB, not the deployed stage.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Only slots this recent: 90s, 30m, 24h, 7d (every task: 7d).")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs with this status (FAILED, ...).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    profile: Annotated[
        str | None, typer.Option("--profile", help="The AWS profile to use (default: the chain).")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="The AWS region (default: the stage's, else the chain's).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run history, newest first: of the deployed stage given with --stage, else of the embedded DynamoDB."""
    from kairos.cli_operations import aws_errors, deployed_stage
    from kairos.local.session import LocalStage
    from kairos.operations.history import parse_duration, slot_deliveries, stage_runs, task_runs
    from kairos_runtime.runs import RunStatus

    # The names are checked against tasks.yaml first: a typo would otherwise print an empty history
    # (or create the tables of a stage that does not exist).
    tasks_file = _load(file)
    _known_stage(tasks_file, stage or DEFAULT_STAGE)
    if name is not None:
        _known_task(tasks_file, name)
    wanted = None
    if status is not None:
        statuses = [each.value for each in RunStatus]
        if status.upper() not in statuses:
            raise _fail(
                f"unknown status {excerpt(status)}{did_you_mean(status.upper(), statuses) or ''} "
                f"(one of {', '.join(statuses)})",
                code=2,
            )
        wanted = RunStatus(status.upper())
    try:
        window = parse_duration(since) if since else None
    except ValueError as error:
        raise _fail(str(error), code=2) from None
    now = services.clock()

    slots: dict[str, SlotDeliveries] = {}

    def read(table: Any) -> list[dict[str, Any]]:
        if name is None:
            return stage_runs(table, since=now - (window or timedelta(days=7)), now=now, status=wanted, limit=limit)
        found = task_runs(table, name, since=now - window if window else None, status=wanted, limit=limit)
        # A declined delivery writes no run record: its slot's claim item counts it.
        slots.update(slot_deliveries(table, name, (str(record.get("scheduled_time", "")) for record in found)))
        return found

    if stage is None or local:
        with _local_dynamodb() as endpoint:
            local_stage = LocalStage(stage=stage or DEFAULT_STAGE, endpoint=endpoint)
            local_stage.prepare_tables()
            records = read(local_stage.runs_table())
        where = f"stage {stage or DEFAULT_STAGE}, local"
    else:
        deployed = deployed_stage(_plan(file, stage), profile, region)
        with aws_errors():
            records = read(deployed.runs_table())
        where = f"stage {stage}, deployed"
    if as_json:
        # A task's runs carry their slot's claim counts (``slot``: deliveries, declined).
        runs_json = [
            {**record, "slot": slots[str(record.get("scheduled_time"))].as_json()}
            if str(record.get("scheduled_time")) in slots
            else record
            for record in records
        ]
        _print_json(json.loads(json.dumps({"stage": stage or DEFAULT_STAGE, "runs": runs_json}, default=_json_number)))
        return
    _print_runs(records, title=f"runs of {name or 'every task'}, {where}, newest first", slots=slots)


def _json_number(value: object) -> object:
    """DynamoDB's numbers (Decimal) as JSON numbers; anything else as text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


STATUS_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "SKIPPED": "yellow", "STARTED": "blue"}
NOTE_LIMIT = 500
"""Characters of a run's error or detail shown in a table (a detail may be 32 KB); a cut ends in …."""
RUNS_COLUMNS = (
    Column("task"),
    Column("status"),
    Column("scheduled (UTC)"),
    Column("started", movable=True),
    Column("ms", movable=True),
    Column("items", movable=True),
    Column("rejected", movable=True),
    Column("error / detail", folds=True),
)


def _note(record: dict[str, Any]) -> str:
    error = record.get("error_message")
    note = f"{record.get('error_type')}: {error}" if error else json.dumps(record.get("detail", {}), default=str)
    return note if len(note) <= NOTE_LIMIT else note[: NOTE_LIMIT - 1] + "…"


def _declined_note(slot: SlotDeliveries) -> str:
    """``2 more deliveries declined (done 2)``: the slot's declined deliveries, which wrote no record."""
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(slot.declined_reasons.items()))
    more = "+" if slot.declined_at_least else ""
    return f"{slot.declined}{more} more deliveries declined ({reasons})"


def _print_runs(
    records: list[dict[str, Any]], *, title: str, slots: Mapping[str, SlotDeliveries] | None = None
) -> None:
    """The runs as a table; with ``slots`` (a task's runs), the newest run of a slot notes the slot's
    declined deliveries."""
    rows: list[list[Cell]] = []
    noted: set[str] = set()
    for record in records:
        status = str(record.get("status", "?"))
        note = _note(record)
        slot_time = str(record.get("scheduled_time", ""))
        slot = (slots or {}).get(slot_time)
        if slot is not None and slot.declined and slot_time not in noted:
            noted.add(slot_time)
            note = f"{_declined_note(slot)}\n{note}"
        rows.append(
            [
                str(record.get("task")),
                Text(status, style=STATUS_STYLE.get(status, "white")),
                str(record.get("scheduled_time", "")),
                str(record.get("started_at", "")),
                str(record.get("duration_ms", "")),
                str(record.get("items_written", "")),
                str(record.get("items_rejected", "")),
                note,
            ]
        )
    _print_table(title=title, columns=RUNS_COLUMNS, rows=rows, collect_into="error / detail")
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


def _register_operations() -> None:
    # Below every helper they use: kairos.cli_operations imports them from this module.
    from kairos import cli_backfill, cli_cost, cli_operations

    cli_operations.register(app)
    cli_backfill.register(app)
    cli_cost.register(app)
    from kairos.cli_diff import register as register_diff

    register_diff(app)


def _register_data() -> None:
    from kairos.cli_data import register

    register(app)
    from kairos.cli_local import register as register_local

    register_local(app)


_register_operations()
_register_data()


def main() -> None:
    app()
