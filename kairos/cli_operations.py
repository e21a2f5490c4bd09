"""The commands that operate a stage: ``status``, ``logs``, ``invoke``, ``pause`` and ``resume``
(``runs`` lives in :mod:`kairos.cli` and reads a deployed stage through the helpers here).

Which stage is read: an explicit ``--stage S`` reads the deployed stage ``S`` (its stack
``kairos-S``, :mod:`kairos.operations.deployed`); no ``--stage``, or ``--local``, reads the embedded
DynamoDB (stage dev unless ``--stage`` names another). ``logs``, ``invoke``, ``pause`` and ``resume``
only make sense deployed and require ``--stage``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.text import Text

from kairos import cli
from kairos.cli import (
    DEFAULT_FILE,
    STATUS_STYLE,
    FileOption,
    JsonOption,
    _fail,
    _flag,
    _instant,
    _local_dynamodb,
    _plan,
    _print_json,
    _print_runs,
    _print_table,
    services,
)
from kairos.cli_tables import Cell, Column
from kairos.excerpts import excerpt, shorten
from kairos.loading import did_you_mean
from kairos.operations.deployed import AwsAccess, DeployedStage, DeployedStageError, aws_error, resolve_stage
from kairos.operations.freshness import Freshness
from kairos.operations.history import parse_duration
from kairos.operations.invoke import declined, invoke_deployed, past_slot_refusal
from kairos.operations.logs import follow, log_events, log_json, readable, request_filter, task_filter
from kairos.operations.schedules import mark_alive, schedule_states, set_freshness_actions, set_schedule_state
from kairos.operations.status import TaskStatus, failing, stage_status
from kairos.plan import StagePlan, TaskPlan
from kairos_runtime.events import parse_instant

ProfileOption = Annotated[str | None, typer.Option("--profile", help="The AWS profile to use (default: the chain).")]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="The AWS region (default: the stage's, else the chain's).")
]
LocalOption = Annotated[bool, _flag("--local", help_text="Read the embedded DynamoDB, not the deployed stage.")]
ReadStageOption = Annotated[
    str | None,
    typer.Option("--stage", "-s", help="Read this deployed stage (without it: the embedded DynamoDB, stage dev)."),
]
DeployedStageOption = Annotated[str, typer.Option("--stage", "-s", help="The deployed stage.")]
FRESHNESS_STYLE = {
    Freshness.OK: "green",
    Freshness.LATE: "red",
    Freshness.FAILING: "red",
    Freshness.PAUSED: "yellow",
    Freshness.NEVER_RAN: "dim",
}
LOCAL_STAGE = "dev"
RUN_LOG_MARGIN = timedelta(minutes=1)


@contextmanager
def aws_errors() -> Iterator[None]:
    """An AWS failure during a command is one line and exit 1, never a traceback."""
    try:
        yield
    except DeployedStageError as error:
        raise _fail(str(error)) from None
    except Exception as error:
        message = aws_error(error)
        if message is None:
            raise
        raise _fail(message) from None


def deployed_stage(plan: StagePlan, profile: str | None, region: str | None) -> DeployedStage:
    with aws_errors():
        return resolve_stage(plan, AwsAccess(profile=profile, region=region))


def known_task(plan: StagePlan, name: str) -> TaskPlan:
    names = [task.name for task in plan.tasks]
    if name not in names:
        raise _fail(f"unknown task {excerpt(name)}{did_you_mean(name, names) or ' (kairos list shows every task)'}")
    return plan.task(name)


def _since(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise _fail(str(error), code=2) from None


STATUS_COLUMNS = (
    Column(""),
    Column("name"),
    Column("freshness"),
    Column("last run"),
    Column("schedule", movable=True),
    Column("last slot (UTC)", movable=True),
    Column("last success", movable=True),
    Column("next fire (UTC)", movable=True),
    Column("ms", movable=True),
    Column("why", folds=True),
)


def _status_rows(statuses: list[TaskStatus]) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for status in statuses:
        row = status.as_json()
        freshness = status.verdict.freshness
        state = row["schedule_state"] or ("ENABLED" if status.task.enabled else "DISABLED")
        last = row["last_run"] or {}
        notes = [status.verdict.reason] if status.verdict.reason else []
        if status.drift:
            notes.append(f"deployed {state}, tasks.yaml says {'on' if status.task.enabled else 'off'}")
        last_status = str(last.get("status") or "-")
        rows.append(
            [
                cli._marker(state == "ENABLED"),
                status.task.name,
                Text(freshness.value, style=FRESHNESS_STYLE[freshness]),
                Text(last_status, style=STATUS_STYLE.get(last_status, "white")),
                state.lower() + (" (drift)" if status.drift else ""),
                str(last.get("scheduled_time") or ""),
                row["last_success"] or "",
                row["next_fire"] or "",
                "" if last.get("duration_ms") is None else str(last["duration_ms"]),
                "; ".join(notes),
            ]
        )
    return rows


def status(
    file: FileOption = DEFAULT_FILE,
    stage: ReadStageOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """A row per task: schedule state (and drift), last run, last success, next fire, freshness.
    Exits 1 when any enabled task is LATE or FAILING."""
    plan = _plan(file, stage or LOCAL_STAGE)
    now = services.clock()
    if stage is None or local:
        from kairos.local.session import LocalStage

        with _local_dynamodb() as endpoint:
            local_stage = LocalStage(stage=plan.stage, endpoint=endpoint)
            local_stage.prepare_tables()
            statuses = stage_status(plan, local_stage.runs_table(), deployed_states=None, now=now)
        where = f"stage {plan.stage}, local ({endpoint.url})"
    else:
        deployed = deployed_stage(plan, profile, region)
        with aws_errors():
            statuses = stage_status(plan, deployed.runs_table(), deployed_states=schedule_states(deployed), now=now)
        where = f"stage {plan.stage}, deployed ({deployed.stack_name})"
    bad = failing(statuses)
    if as_json:
        _print_json(
            {
                "stage": plan.stage,
                "deployed": not (stage is None or local),
                "tasks": [s.as_json() for s in statuses],
            }
        )
    else:
        _print_table(
            title=f"Kairos status, {where}",
            columns=STATUS_COLUMNS,
            rows=_status_rows(statuses),
            collect_into="why",
        )
        counts: dict[str, int] = {}
        for each in statuses:
            counts[each.verdict.freshness.value] = counts.get(each.verdict.freshness.value, 0) + 1
        services.console.print(", ".join(f"{count} {name}" for name, count in counts.items()))
    if bad:
        raise typer.Exit(1)


def logs(
    name: str,
    stage: DeployedStageOption,
    file: FileOption = DEFAULT_FILE,
    since: Annotated[str, typer.Option("--since", help="How far back: 90s, 30m, 1h, 7d.")] = "1h",
    keep_following: Annotated[bool, _flag("--follow", help_text="Keep printing new lines until Ctrl-C.")] = False,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only this run's lines (its execution id or request id).")
    ] = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: Annotated[
        bool, _flag("--json", help_text="Print each line as a JSON object, one a line (with --follow too).")
    ] = False,
) -> None:
    """The task's log lines from its log group, Powertools JSON made readable."""
    plan = _plan(file, stage)
    task = known_task(plan, name)
    start = services.clock() - _since(since)
    deployed = deployed_stage(plan, profile, region)
    pattern = None
    with aws_errors():
        if run_id is not None:
            pattern, start = _one_run(deployed, task, run_id, stage, start)
        log_group = deployed.task(task.name).log_group_name
        if pattern is None and deployed.task(task.name).shared:
            pattern = task_filter(task.name)  # a shared log group: this task's lines only
        start_ms = int(start.timestamp() * 1000)
        logs_client = deployed.client("logs")

        def emit(event: dict[str, Any]) -> None:
            if as_json:
                services.console.out(json.dumps(log_json(event), ensure_ascii=False, default=str), highlight=False)
            else:
                services.console.out(readable(event).text(), highlight=False)

        if not keep_following:
            count = 0
            for event in log_events(logs_client, log_group, start_ms=start_ms, pattern=pattern):
                emit(event)
                count += 1
            if count == 0:
                services.errors.print(f"no log lines in {log_group} in the last {since}", markup=False)
            return
        try:
            follow(
                logs_client,
                log_group,
                start_ms=start_ms,
                pattern=pattern,
                emit=emit,
                keep_going=lambda: True,
                sleep=services.sleep,
            )
        except KeyboardInterrupt:
            services.errors.print("stopped following", markup=False)


def _one_run(deployed: DeployedStage, task: TaskPlan, run_id: str, stage: str, start: datetime) -> tuple[str, datetime]:
    """The filter pattern of one run's lines, and where to start reading: a run older than --since
    still shows, since its lines start when it did."""
    from kairos.operations.history import find_run

    record = find_run(deployed.runs_table(), task.name, run_id)
    if record is None or not record.get("request_id"):
        raise _fail(f"no run {run_id!r} of {task.name} is recorded (kairos runs {task.name} --stage {stage})")
    if record.get("started_at"):
        start = min(start, parse_instant(str(record["started_at"])) - RUN_LOG_MARGIN)
    return request_filter(str(record["request_id"])), start


def invoke(
    name: str,
    stage: DeployedStageOption,
    file: FileOption = DEFAULT_FILE,
    scheduled_time: Annotated[
        str | None, typer.Option(help="The slot to run, ISO 8601 (default: now, to the minute).")
    ] = None,
    rerun: cli.RerunOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Invoke the deployed function with the event its schedule sends (a fan-out task: start its
    state machine with it), wait, and print the run record it wrote. A slot that already SUCCEEDED
    is not run again unless --rerun (the slot's run is printed). Exits 1 when the run FAILED, the
    slot is in progress or no record was written."""
    plan = _plan(file, stage)
    task = known_task(plan, name)
    now = services.clock()
    slot = (_instant(scheduled_time) if scheduled_time else now).replace(second=0, microsecond=0)
    refusal = past_slot_refusal(task, slot, now=now)
    if refusal is not None:
        raise _fail(refusal, code=2)
    deployed = deployed_stage(plan, profile, region)
    with aws_errors():
        result = invoke_deployed(deployed, task, scheduled_time=slot, rerun=rerun)
    if as_json:
        _print_json(
            json.loads(
                json.dumps(
                    {
                        "task": task.name,
                        "stage": stage,
                        "event": result.event,
                        "function_error": result.function_error,
                        "response": result.response,
                        "record": result.record,
                    },
                    default=cli._json_number,
                )
            )
        )
    else:
        _print_runs([result.record] if result.record else [], title=f"{name}: invoked in stage {stage}")
    if result.function_error:
        raise _fail(f"the function failed ({result.function_error}): {shorten(str(result.response))}")
    if result.record is None:
        raise _fail(
            f"the function answered but wrote no run record for {result.event['scheduled_time']} "
            f"(execution id {result.event['execution_id']}): see kairos logs {name} --stage {stage}"
        )
    if not as_json:
        cli.declined_slot(result.response, name=name, slot=str(result.event["scheduled_time"]))
    elif declined(result.response) == "in_progress":
        raise typer.Exit(1)
    if result.record.get("status") == "FAILED":
        raise typer.Exit(1)


def toggle(
    name: str, stage: str, file: Any, profile: str | None, region: str | None, *, enabled: bool, as_json: bool
) -> None:
    plan = _plan(file, stage)
    task = known_task(plan, name)
    deployed = deployed_stage(plan, profile, region)
    with aws_errors():
        change = set_schedule_state(deployed, task.name, enabled=enabled)
        muted = set_freshness_actions(deployed, task, enabled=enabled)
    if as_json:
        _print_json(
            {
                "task": name,
                "stage": stage,
                "schedule": change.schedule,
                "before": change.before,
                "after": change.after,
                "changed": change.before != change.after,
                # actions_enabled: null where the stage has no such alarm deployed
                "freshness_alarm": None
                if muted is None
                else {
                    "name": muted.alarm,
                    "deployed": muted.found,
                    "actions_enabled": enabled if muted.found else None,
                },
                "enabled_in_tasks_yaml": task.enabled,
            }
        )
        return
    verb = "resumed" if enabled else "paused"
    already = change.before == change.after
    services.console.print(
        f"{name} ({change.schedule} in stage {stage}): "
        + (f"already {change.after}" if already else f"{verb}, {change.before} -> {change.after}"),
        markup=False,
    )
    if muted is not None:
        services.console.print(
            f"freshness alarm {muted.alarm}: "
            + (
                ("notifies again; its window starts now" if enabled else "notifies no one until resume")
                if muted.found
                else "not deployed in this stage"
            ),
            markup=False,
        )
    services.console.print(
        f"the next deploy applies tasks.yaml again ({name} is {'on' if task.enabled else 'off'} there)",
        markup=False,
    )


def pause(
    name: str,
    stage: DeployedStageOption,
    file: FileOption = DEFAULT_FILE,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Disable the task's deployed schedule without a redeploy (the other schedule fields are kept)."""
    toggle(name, stage, file, profile, region, enabled=False, as_json=as_json)


def resume(
    name: str,
    stage: DeployedStageOption,
    file: FileOption = DEFAULT_FILE,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enable the task's deployed schedule again without a redeploy."""
    toggle(name, stage, file, profile, region, enabled=True, as_json=as_json)


def alive(
    stage: DeployedStageOption,
    names: Annotated[
        list[str] | None, typer.Argument(help="The tasks to mark (default: every task enabled in the stage).")
    ] = None,
    file: FileOption = DEFAULT_FILE,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start the tasks' freshness windows now, as a run would: after a first deploy or an upgrade, so a
    freshness alarm does not page before the task's first slot. A paused task is left alone."""
    plan = _plan(file, stage)
    tasks = [known_task(plan, name) for name in names] if names else list(plan.enabled_tasks)
    deployed = deployed_stage(plan, profile, region)
    with aws_errors():
        marks = mark_alive(deployed, tasks)
    if as_json:
        _print_json(
            {
                "stage": stage,
                "tasks": [
                    {"task": mark.task, "outcome": mark.outcome, "alarm": mark.alarm, "reason": mark.reason or None}
                    for mark in marks
                ],
            }
        )
    said = {
        "marked": "alive now; its freshness window starts again",
        "paused": "left alone: its schedule is paused",
        "missing": "not marked: the stage has no schedule for it (deploy first)",
        "not deployed": "its freshness alarm is not deployed in this stage",
        "outdated": f"not marked: its freshness alarm is older than tasks.yaml ({{reason}}); deploy {stage} first",
        "no alarm": "no freshness alarm ({reason})",
    }
    for mark in [] if as_json else marks:
        services.console.print(f"{mark.task}: {said[mark.outcome].format(reason=mark.reason)}", markup=False)
    if not marks and not as_json:
        services.console.print(f"no task is enabled in stage {stage}", markup=False)
    if any(mark.outcome in ("missing", "outdated") for mark in marks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the operation commands to the ``kairos`` app."""
    for command in (status, logs, invoke, pause, resume, alive):
        app.command(command.__name__)(command)
