"""``kairos local``: the stage's synthesized schedules fired on this machine at their real times;
``kairos local stop`` / ``kairos local server``: the shared embedded DynamoDB.

The stage is read from its cloud assembly (``cdk.out/<stage>``, what ``make synth`` writes), not
from tasks.yaml: what runs is what would deploy. See :mod:`kairos.local.scheduler`.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from kairos.cli import (
    DEFAULT_STAGE,
    JsonOption,
    KairosGroup,
    KairosTyper,
    _fail,
    _flag,
    _instant,
    _local_dynamodb,
    services,
)
from kairos.excerpts import excerpt, shorten
from kairos.local.assembly import AssemblyError, LocalAssembly, LocalSchedule, read_assembly
from kairos.local.dynamodb import default_data_dir
from kairos.local.scheduler import Fire, LocalRuns, LocalScheduler, VirtualClock, ttl_days
from kairos.local.server import SharedServerError, running_server, stop_server
from kairos.local.tables import TableDesignChangedError, ensure_tables, tables_from_template
from kairos.suggestions import did_you_mean
from kairos_runtime.events import iso_seconds

CDK_OUT = Path("cdk.out")
"""Where ``make synth`` writes each stage's cloud assembly (``cdk.out/<stage>``)."""

local_app = KairosTyper(
    help=(
        "Fire every ENABLED schedule of the synthesized stage (make synth) at its real fire times, "
        "through the real handlers, recording runs in the local TaskRuns table (kairos runs and "
        "status --local show them); Ctrl-C stops after the runs in flight. Subcommands manage the "
        "shared embedded DynamoDB."
    ),
    cls=KairosGroup,
    invoke_without_command=True,
)


def _assembly(stage: str, directory: Path | None) -> LocalAssembly:
    try:
        return read_assembly(directory or CDK_OUT / stage, stage=stage)
    except (AssemblyError, ValueError) as error:
        raise _fail(str(error)) from None


def _chosen(assembly: LocalAssembly, only: list[str]) -> list[LocalSchedule]:
    """The enabled schedules (of ``--only``'s tasks when given) that invoke a function or start a
    fan-out's state machine."""
    names = [schedule.name for schedule in assembly.schedules]
    wanted = [name.strip() for value in only for name in value.split(",") if name.strip()]
    for name in wanted:
        if name not in names:
            raise _fail(f"unknown task {excerpt(name)}{did_you_mean(name, names) or ''} in {assembly.directory}", 2)
        if not assembly.schedule(name).enabled:
            raise _fail(
                f"{name}'s schedule is DISABLED in {assembly.directory}; enable it (kairos enable), "
                "then make synth: kairos local fires what would deploy",
                2,
            )
    chosen = []
    for schedule in assembly.schedules:
        if not schedule.enabled or (wanted and schedule.name not in wanted):
            continue
        if not schedule.runnable:
            services.errors.print(
                f"note: {schedule.name} targets a {schedule.target_type}, which kairos local does not run",
                markup=False,
            )
            continue
        for note in schedule.fan_out.notes if schedule.fan_out else ():
            services.errors.print(f"note: {schedule.name}'s state machine: {note}", markup=False)
        chosen.append(schedule)
    return chosen


def _fire_line(fire: Fire, width: int) -> str:
    line = f"{iso_seconds(fire.scheduled_time)}  {fire.task}  {fire.status}  {fire.duration_ms} ms"
    if fire.error:
        line += f"  {fire.error}"
    return shorten(line, max(40, width))


@local_app.callback()
def local(
    ctx: typer.Context,
    stage: Annotated[str, typer.Option("--stage", "-s", help="The stage whose assembly runs.")] = DEFAULT_STAGE,
    for_: Annotated[
        str | None,
        typer.Option(
            "--for", help="Stop after this long on the clock: 90s, 30m, 24h, 7d (default: Ctrl-C).", metavar="DURATION"
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start", help="Start the clock at this ISO 8601 instant (default: now), e.g. a DST day.", metavar="ISO"
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option("--speed", help="How many times faster than real time.", min=0.001, metavar="N")
    ] = 1.0,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Only this task (repeat, or comma-separated).", metavar="NAME")
    ] = None,
    assembly_dir: Annotated[
        Path | None, typer.Option("--assembly", help="The cloud assembly (default: cdk.out/STAGE).", metavar="DIR")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fire every ENABLED schedule of the synthesized stage at its real fire times, through the real
    handlers, recording runs in the local TaskRuns table (kairos runs / status --local show them)."""
    if ctx.invoked_subcommand is not None:
        return
    from kairos.operations.history import parse_duration

    try:
        duration = parse_duration(for_) if for_ else None
    except ValueError as error:
        raise _fail(str(error), code=2) from None
    begin = _instant(start) if start else None
    assembly = _assembly(stage, assembly_dir)
    schedules = _chosen(assembly, only or [])
    if not schedules:
        raise _fail(f"no enabled schedule to run in {assembly.directory}")
    with _local_dynamodb() as endpoint:
        from kairos.local.session import LocalStage

        local_stage = LocalStage(stage=stage, endpoint=endpoint)
        try:
            client = local_stage.runs_table().meta.client
            for template in assembly.templates.values():
                ensure_tables(client, tables_from_template(stage, template))
        except (TableDesignChangedError, ValueError) as error:
            raise _fail(str(error)) from None
        runs = LocalRuns(
            local_stage.runs_table(),
            ttl_days=ttl_days(schedules[0].environment),
        )
        clock = VirtualClock((begin or services.clock()).replace(microsecond=0), speed=speed)
        until = clock.start + duration if duration else None
        if not as_json:
            services.console.print(_header(stage, schedules, clock, until, endpoint.url), markup=False)

        def report(fire: Fire) -> None:
            if as_json:
                services.console.out(json.dumps(fire.as_json()), highlight=False)
            else:
                services.console.print(_fire_line(fire, services.console.width), markup=False)

        scheduler = LocalScheduler(
            schedules, clock=clock, until=until, runs=runs, endpoint_url=endpoint.url, report=report
        )
        with _stop_on_interrupt(scheduler):
            fires = scheduler.run()
    if not as_json:
        failed = sum(1 for fire in fires if fire.status == "FAILED")
        skipped = sum(1 for fire in fires if fire.status == "SKIPPED")
        services.console.print(f"{len(fires)} fires: {failed} failed, {skipped} skipped", markup=False)


def _header(stage: str, schedules: list[LocalSchedule], clock: VirtualClock, until: datetime | None, url: str) -> str:
    names = shorten(", ".join(schedule.name for schedule in schedules), 40)
    end = f"until {iso_seconds(until)}" if until else "until Ctrl-C"
    return (
        f"kairos local: stage {stage}, {len(schedules)} schedule(s): {names}\n"
        f"clock from {iso_seconds(clock.start)} at {clock.speed:g}x, {end}\n"
        f"runs recorded in the DynamoDB on {url}"
    )


class _stop_on_interrupt:  # noqa: N801 - used as a context manager
    """Ctrl-C stops firing and waits for the runs in flight (their processes ignore the terminal's
    Ctrl-C); a second Ctrl-C only says what is still running."""

    def __init__(self, scheduler: LocalScheduler) -> None:
        self._scheduler = scheduler
        self._previous: object = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._scheduler.stop()
        services.errors.print(
            f"stopping: waiting for {self._scheduler.in_flight} run(s) in flight to finish", markup=False
        )

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="The embedded DynamoDB's data directory.", hidden=True)
]


@local_app.command("stop")
def stop(
    data_dir: DataDirOption = None,
    force: Annotated[bool, _flag("--force", help_text="Stop it even while a command uses it.")] = False,
) -> None:
    """Stop the shared embedded DynamoDB (its data stays; the next command starts it again)."""
    try:
        state = stop_server(data_dir or default_data_dir(), force=force)
    except SharedServerError as error:
        raise _fail(str(error)) from None
    if state is None:
        services.console.print("the embedded DynamoDB is not running", markup=False)
    else:
        services.console.print(f"stopped the embedded DynamoDB on {state.url} (pid {state.keeper_pid})", markup=False)


@local_app.command("server")
def server(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Whether the shared embedded DynamoDB runs: its endpoint, processes and data directory."""
    state = running_server(data_dir or default_data_dir())
    if as_json:
        services.console.out(
            json.dumps(
                {"running": state is not None}
                | (
                    {"url": state.url, "pid": state.keeper_pid, "data_dir": state.data_dir, "idle_s": state.idle_s}
                    if state
                    else {}
                )
            ),
            highlight=False,
        )
        return
    if state is None:
        services.console.print("the embedded DynamoDB is not running (the next command starts it)", markup=False)
        return
    idle = timedelta(seconds=state.idle_s)
    services.console.print(
        f"embedded DynamoDB on {state.url}, pid {state.keeper_pid}\ndata in {state.data_dir}\n"
        f"stops after {idle} unused, or with kairos local stop",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")
