"""``kairos backfill`` (a task's past slots, run once each) and ``kairos redrive`` (the stage's
dead-letter queue, run again). The work is in :mod:`kairos.operations.backfill` and
:mod:`kairos.operations.redrive`; these commands parse, pick local or deployed, and print.

Which stage: ``backfill`` without ``--stage`` (or with ``--local``) runs locally against the
embedded DynamoDB, as ``kairos run`` does; ``--stage S`` invokes stage S's deployed functions.
``redrive`` only makes sense deployed and requires ``--stage``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from kairos.cli import (
    DEFAULT_FILE,
    STATUS_STYLE,
    FileOption,
    JsonOption,
    _fail,
    _flag,
    _local_dynamodb,
    _plan,
    _print_json,
    _print_table,
    services,
)
from kairos.cli_operations import (
    LOCAL_STAGE,
    DeployedStageOption,
    LocalOption,
    ProfileOption,
    RegionOption,
    aws_errors,
    deployed_stage,
    known_task,
)
from kairos.cli_tables import Cell, Column
from kairos.operations.backfill import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    BackfillReport,
    Outcome,
    SlotResult,
    SlotRun,
    SlotRunner,
    backfill,
    done_slots,
)
from kairos.operations.history import latest_runs
from kairos.operations.invoke import invoke_deployed
from kairos.operations.redrive import (
    Action,
    Redriven,
    parse_message,
    receive_all,
    redrive_letter,
    visibility_for,
)
from kairos.operations.slots import DEFAULT_MAX_SLOTS, TooManySlotsError, parse_day, range_bounds, slots_between
from kairos.plan import TaskPlan
from kairos.schedule import RateSchedule, parse_schedule
from kairos_runtime.events import iso_seconds, parse_instant

OUTCOME_STYLE = {
    Outcome.SUCCEEDED: "green",
    Outcome.SKIPPED: "yellow",
    Outcome.FAILED: "red",
    Outcome.ALREADY_DONE: "dim",
    Outcome.WOULD_RUN: "cyan",
}
SUMMARY_COLUMNS = (
    *(Column(header) for header in ("slots", "run", "succeeded", "skipped", "failed")),
    Column("already done", folds=True),
)
SLOT_COLUMNS = (Column("slot (UTC)"), Column("outcome"), Column("status", movable=True), Column("error", folds=True))
SLOTS_LISTED = 50
"""Slots a table lists one by one (a dry run's, or the failed ones); --json lists every slot."""
BackfillStageOption = Annotated[
    str | None,
    typer.Option("--stage", "-s", help="Invoke this deployed stage's function (without it: locally, stage dev)."),
]


def _day(text: str, option: str) -> Any:
    try:
        return parse_day(text)
    except ValueError as error:
        raise _fail(f"{option}: {error}", code=2) from None


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[SlotResult], None]]:
    """A progress bar on a terminal (never in --json or piped output); the callback advances it."""
    if not enabled or total == 0 or not services.console.is_terminal:
        yield lambda result: None
        return
    with Progress(
        TextColumn("backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=services.console,
        transient=True,
    ) as bar:
        task_id = bar.add_task("slots", total=total)
        yield lambda result: bar.advance(task_id)


def _rate_phase(table: Any, task: TaskPlan) -> datetime | None:
    """A rate schedule's phase: the task's latest recorded slot (one Query), as ``kairos status`` reads it."""
    if not isinstance(parse_schedule(task.schedule_expression), RateSchedule):
        return None
    latest = latest_runs(table, task.name, limit=1)
    return parse_instant(str(latest[0]["scheduled_time"])) if latest and latest[0].get("scheduled_time") else None


def _local_runner(local: Any, task: TaskPlan) -> SlotRunner:
    def run(event: dict[str, Any]) -> SlotRun:
        result = local.run(task, scheduled_time=parse_instant(str(event["scheduled_time"])), event=event)
        problem = None if result.invocation.ok or result.record else result.invocation.error
        if result.record is not None and result.record.get("status") == "STARTED":
            problem = f"the handler did not finish: {result.invocation.error}"
        return SlotRun(result.record, problem)

    return run


def _deployed_runner(deployed: Any, task: TaskPlan, profile: str | None) -> SlotRunner:
    import dataclasses
    import threading

    import boto3

    # boto3 sessions are not thread-safe: each worker thread invokes through a session of its own.
    own = threading.local()

    def stage_of_this_thread() -> Any:
        if not hasattr(own, "stage"):
            session = boto3.Session(profile_name=profile, region_name=deployed.session.region_name)
            own.stage = dataclasses.replace(deployed, session=session)
        return own.stage

    def run(event: dict[str, Any]) -> SlotRun:
        result = invoke_deployed(stage_of_this_thread(), task, event=event)
        problem = f"the function failed ({result.function_error})" if result.function_error else None
        return SlotRun(result.record, problem)

    return run


def _print_report(report: BackfillReport, *, title: str) -> None:
    summary = report.summary()
    _print_table(
        title=title,
        columns=SUMMARY_COLUMNS,
        rows=[
            [
                str(summary["slots"]),
                str(summary["would_run"]) + " (dry run)" if report.dry_run else str(summary["run"]),
                Text(str(summary["succeeded"]), style="green"),
                Text(str(summary["skipped"]), style="yellow"),
                Text(str(summary["failed"]), style="red" if summary["failed"] else ""),
                str(summary["already_done"]),
            ]
        ],
        collect_into="already done",
    )
    listed = list(report.results) if report.dry_run else report.failed
    rows: list[list[Cell]] = [
        [
            iso_seconds(result.slot),
            Text(result.outcome.value.replace("_", " "), style=OUTCOME_STYLE[result.outcome]),
            Text(result.status or "", style=STATUS_STYLE.get(result.status or "", "white")),
            result.error or "",
        ]
        for result in listed[:SLOTS_LISTED]
    ]
    if rows:
        _print_table(
            title="slots" if report.dry_run else "failed slots",
            columns=SLOT_COLUMNS,
            rows=rows,
            collect_into="error",
        )
    if len(listed) > SLOTS_LISTED:
        services.console.print(f"… and {len(listed) - SLOTS_LISTED} more (--json lists every slot)", markup=False)


def backfill_command(
    name: str,
    from_date: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD, in the task's timezone.")],
    to_date: Annotated[str, typer.Option("--to", help="Last day (included), YYYY-MM-DD, in the task's timezone.")],
    file: FileOption = DEFAULT_FILE,
    stage: BackfillStageOption = None,
    local: LocalOption = False,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, max=MAX_CONCURRENCY, help="Slots run at the same time (1 to 32)."),
    ] = DEFAULT_CONCURRENCY,
    dry_run: Annotated[bool, _flag("--dry-run", help_text="List the slots and what would run; run nothing.")] = False,
    rerun: Annotated[bool, _flag("--rerun", help_text="Run slots that already succeeded (or skipped) too.")] = False,
    yes: Annotated[bool, _flag("--yes", "-y", help_text="Run even more slots than --max-slots.")] = False,
    max_slots: Annotated[
        int, typer.Option("--max-slots", min=1, help="More slots than this need --yes.")
    ] = DEFAULT_MAX_SLOTS,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the task once for each of its slots from --from to --to (its timezone) that has not
    succeeded yet, with the event its schedule sends. Exits 1 when a slot fails."""
    is_local = stage is None or local
    plan = _plan(file, stage or LOCAL_STAGE)
    task = known_task(plan, name)
    if not task.backfill:
        raise _fail(
            f"{name} cannot be backfilled: task_type {task.task_type} only sees the present (a past slot would "
            "store today's data under that slot's key); its handler refuses such a slot (PastSlotRefused)",
            code=2,
        )
    first, last = _day(from_date, "--from"), _day(to_date, "--to")
    try:
        range_bounds(task, first, last)
    except ValueError as error:
        raise _fail(str(error), code=2) from None
    now = services.clock()

    def slots_of(table: Any) -> list[datetime]:
        try:
            return slots_between(
                task, first, last, now=now, limit=None if yes else max_slots, phase=_rate_phase(table, task)
            )
        except TooManySlotsError as many:
            raise _fail(
                f"{first.isoformat()}..{last.isoformat()} holds more than {many.limit} slots of {name} "
                f"({task.schedule_expression}): pass --yes to run them all, or narrow the range / raise --max-slots",
                code=2,
            ) from None

    where: str
    if is_local:
        from kairos.local.session import LocalStage

        with _local_dynamodb() as endpoint:
            local_stage = LocalStage(stage=plan.stage, endpoint=endpoint)
            local_stage.prepare_tables()
            slots = slots_of(local_stage.runs_table())
            done = done_slots(local_stage.runs_table(), task.name, slots)
            with _progress(len(slots), enabled=not as_json) as advance:
                report = backfill(
                    task,
                    slots,
                    done=done,
                    run=None if dry_run else _local_runner(local_stage, task),
                    concurrency=concurrency,
                    rerun=rerun,
                    progress=advance,
                )
        where = f"local ({endpoint.url})"
    else:
        deployed = deployed_stage(plan, profile, region)
        with aws_errors():
            slots = slots_of(deployed.runs_table())
            done = done_slots(deployed.runs_table(), task.name, slots)
            with _progress(len(slots), enabled=not as_json) as advance:
                report = backfill(
                    task,
                    slots,
                    done=done,
                    run=None if dry_run else _deployed_runner(deployed, task, profile),
                    concurrency=concurrency,
                    rerun=rerun,
                    progress=advance,
                )
        where = f"deployed ({deployed.stack_name})"
    if as_json:
        _print_json(
            {
                "task": task.name,
                "stage": plan.stage,
                "deployed": not is_local,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "timezone": task.timezone,
                "schedule": task.schedule_expression,
                "dry_run": dry_run,
                "rerun": rerun,
                "summary": report.summary(),
                "slots": [result.as_json() for result in report.results],
            }
        )
    else:
        _print_report(
            report,
            title=f"backfill {name}, {first.isoformat()}..{last.isoformat()} ({task.timezone}), stage {plan.stage}, "
            f"{where}",
        )
    if report.failed:
        raise typer.Exit(1)


REDRIVE_COLUMNS = (
    Column("task"),
    Column("slot (UTC)"),
    Column("action"),
    Column("source", movable=True),
    Column("why / detail", folds=True),
)
ACTION_STYLE = {Action.REDRIVEN: "green", Action.KEPT: "red", Action.WOULD_REDRIVE: "cyan"}


def redrive(
    stage: DeployedStageOption,
    file: FileOption = DEFAULT_FILE,
    dry_run: Annotated[bool, _flag("--dry-run", help_text="List the messages; run and delete nothing.")] = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the stage's dead-letter queue (task, slot, why), run each event again, and delete each
    message once its slot's run is recorded SUCCEEDED or SKIPPED. Exits 1 when a message stays."""
    plan = _plan(file, stage)
    deployed = deployed_stage(plan, profile, region)
    if not deployed.dead_letter_queue_url:
        raise _fail(f"stage {stage} has no dead-letter queue in stack {deployed.stack_name}: deploy again")
    results: list[Redriven] = []
    with aws_errors():
        sqs = deployed.client("sqs")
        queue = deployed.dead_letter_queue_url
        messages = list(receive_all(sqs, queue, visibility_s=visibility_for(plan)))
        for message in messages:
            letter = parse_message(message, plan)
            invoke = None
            if not dry_run and letter.task is not None and letter.event is not None:
                task = plan.task(letter.task)

                def invoke(event: dict[str, Any], task: TaskPlan = task) -> Any:
                    return invoke_deployed(deployed, task, event=event)

            action, detail = redrive_letter(letter, invoke=invoke)
            if action is Action.REDRIVEN:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=letter.receipt_handle)
            else:
                # Back in the queue at once, for the next redrive (or a person) to see.
                sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0)
            results.append(Redriven(letter, action, detail))
    kept = [result for result in results if result.action is Action.KEPT]
    if as_json:
        _print_json(
            {
                "stage": stage,
                "queue_url": deployed.dead_letter_queue_url,
                "dry_run": dry_run,
                "messages": [result.as_json() for result in results],
                "summary": {action.value: sum(r.action is action for r in results) for action in Action},
            }
        )
    elif not results:
        services.console.print(f"the dead-letter queue of stage {stage} is empty", markup=False)
    else:
        rows: list[list[Cell]] = [
            [
                result.letter.task or "?",
                result.letter.slot or "?",
                Text(result.action.value.replace("_", " "), style=ACTION_STYLE[result.action]),
                result.letter.source.value,
                "; ".join(part for part in (result.letter.why, result.detail) if part),
            ]
            for result in results
        ]
        _print_table(
            title=f"dead-letter queue of stage {stage}{' (dry run)' if dry_run else ''}",
            columns=REDRIVE_COLUMNS,
            rows=rows,
            collect_into="why / detail",
        )
        redriven = sum(result.action is Action.REDRIVEN for result in results)
        services.console.print(
            f"{len(results)} messages: {redriven} redriven and deleted, {len(kept)} kept in the queue", markup=False
        )
    if kept:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``backfill`` and ``redrive`` to the ``kairos`` app."""
    app.command("backfill")(backfill_command)
    app.command("redrive")(redrive)
