"""``kairos local``: a stage's enabled schedules fired at their real times, on a virtual clock
(docs/adr/0201-kairos-local-runs-the-cloud-assembly.md).

Each schedule's next fire time comes from :func:`kairos.schedule.next_fire_times` (its timezone,
DST included). At that time the schedule's input, with Scheduler's context attributes substituted,
goes to its function's handler in a child process (:func:`kairos.local.invoke.call_function`), with
the function's environment from the template; a schedule that starts a fan-out's state machine runs
the local fan-out driver instead (plan, the batches on a pool of the Map's MaxConcurrency, summary),
with the machine's timeout bounding the whole run. Runs of one task never overlap: a fire while the
task's previous run is still in flight is recorded SKIPPED (never queued: a queue behind a run that
is always longer than its interval grows without end, and its late runs would carry old slots). A run
past the function's timeout is killed and recorded FAILED (``Timeout``). ``stop()`` (Ctrl-C) fires
nothing more and waits for the runs in flight: every fire ends with a final record.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kairos.local.assembly import LocalSchedule
from kairos.local.invoke import (
    TIMED_OUT,
    FanOutCall,
    FunctionCall,
    LocalInvocation,
    call_function,
    fan_out_driver_arguments,
    lambda_environment,
)
from kairos.operations.invoke import run_record
from kairos.schedule import next_fire_times, parse_schedule
from kairos_runtime.events import ScheduledEvent, iso_seconds
from kairos_runtime.runs import ErrorKind, RunError, RunRecorder, RunStatus
from kairos_runtime.settings import RUN_RECORD_TTL_DAYS_ENV
from kairos_runtime.tables import TASK_RUNS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

DEFAULT_TTL_DAYS = 90


class VirtualClock:
    """Wall time that runs ``speed`` times as fast as real time, from ``start``."""

    def __init__(self, start: datetime, *, speed: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start = start
        self.speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self._monotonic() - self._origin) * self.speed)

    def real_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds() / self.speed)


@dataclass(frozen=True, slots=True)
class Fire:
    """One fire of a schedule, as printed and as ``--json`` writes it."""

    task: str
    scheduled_time: datetime
    execution_id: str
    status: str
    duration_ms: int
    error: str | None
    started_at: float
    """Real time (``time.time()``) the run started; with ``finished_at``, shows runs never overlap."""
    finished_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "scheduled_time": iso_seconds(self.scheduled_time),
            "execution_id": self.execution_id,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class LocalRuns:
    """The local TaskRuns table, written the way the runtime writes it (:class:`RunRecorder`) where a
    run cannot write its own record: a killed run, a skipped fire."""

    def __init__(self, table: Table, *, ttl_days: int = DEFAULT_TTL_DAYS) -> None:
        self._table = table
        self._ttl_days = ttl_days
        # Runs finish on their own threads; a boto3 resource is not safe to share between threads.
        self._lock = threading.RLock()

    def record_of(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            return self._record_of(event)

    def _record_of(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        # The fire's own record or, when the handler declined a slot already done, the slot's run.
        return run_record(self._table, dict(event))

    def record_final(
        self,
        event: Mapping[str, Any],
        *,
        runtime: str,
        status: RunStatus,
        started: datetime,
        error: RunError | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """A record the handler did not finish: a STARTED one is closed, a missing one is written."""
        with self._lock:
            return self._record_final(
                event, runtime=runtime, status=status, started=started, error=error, detail=detail
            )

    def _record_final(
        self,
        event: Mapping[str, Any],
        *,
        runtime: str,
        status: RunStatus,
        started: datetime,
        error: RunError | None,
        detail: Mapping[str, Any] | None,
    ) -> dict[str, Any] | None:
        finished = datetime.now(UTC)
        duration_ms = int((finished - started).total_seconds() * 1000)
        existing = self._record_of(event)
        if existing is not None and existing.get("status") == RunStatus.STARTED.value:
            values: dict[str, Any] = {
                "status": status.value,
                "finished_at": _iso_ms(finished),
                "duration_ms": duration_ms,
            }
            if error is not None:
                values |= {
                    "error_type": error.error_type,
                    "error_message": error.message,
                    "error_kind": error.kind.value,
                }
            self._table.update_item(
                Key={key: existing[key] for key in (TASK_RUNS.partition_key, TASK_RUNS.sort_key)},
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
                ConditionExpression="#status = :started",
                ExpressionAttributeNames={f"#{name}": name for name in values},
                ExpressionAttributeValues={
                    **{f":{name}": value for name, value in values.items()},
                    ":started": RunStatus.STARTED.value,
                },
            )
        elif existing is None:
            recorder = RunRecorder(self._table, ttl_days=self._ttl_days)
            parsed = ScheduledEvent.parse(dict(event))
            key = recorder.start(parsed, runtime=runtime, request_id=f"local-{uuid.uuid4()}", started_at=started)
            recorder.finish(
                key, status=status, finished_at=finished, duration_ms=duration_ms, detail=detail, error=error
            )
        return self._record_of(event)


def _iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Pending:
    schedule: LocalSchedule
    next_fire: datetime


class LocalScheduler:
    """Fires ``schedules`` (enabled ones, with a function or a fan-out) from ``clock.start`` until ``until``
    (virtual time; None: until :meth:`stop`)."""

    def __init__(
        self,
        schedules: Sequence[LocalSchedule],
        *,
        clock: VirtualClock,
        until: datetime | None,
        runs: LocalRuns,
        endpoint_url: str,
        report: Callable[[Fire], None],
        call: Callable[[FunctionCall | FanOutCall, Mapping[str, Any]], LocalInvocation] = call_function,
    ) -> None:
        self._schedules = schedules
        self._clock = clock
        self._until = until
        self._runs = runs
        self._endpoint_url = endpoint_url
        self._report = report
        self._call = call
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[str, threading.Thread] = {}
        self._threads: list[threading.Thread] = []
        self.fires: list[Fire] = []

    def stop(self) -> None:
        self._stop.set()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def planned(self, after: datetime, until: datetime) -> dict[str, list[datetime]]:
        """Every fire time of every schedule in (after, until], as the evaluator gives them."""
        planned: dict[str, list[datetime]] = {}
        for schedule in self._schedules:
            times, moment = [], after
            while True:
                following = self._next(schedule, moment)
                if following is None or following > until:
                    break
                times.append(following)
                moment = following
            planned[schedule.name] = times
        return planned

    @staticmethod
    def _next(schedule: LocalSchedule, after: datetime) -> datetime | None:
        times = next_fire_times(parse_schedule(schedule.expression), timezone=schedule.timezone, after=after, count=1)
        return times[0] if times else None

    def run(self) -> list[Fire]:
        """Fire until ``until`` or :meth:`stop`, then wait for the runs in flight."""
        queue: list[tuple[datetime, int, LocalSchedule]] = []
        for index, schedule in enumerate(self._schedules):
            first = self._next(schedule, self._clock.start)
            if first is not None:
                heapq.heappush(queue, (first, index, schedule))
        while queue and not self._stop.is_set():
            moment, index, schedule = queue[0]
            if self._until is not None and moment > self._until:
                break
            if self._stop.wait(self._clock.real_seconds_until(moment)):
                break
            heapq.heappop(queue)
            self._fire(schedule, moment)
            following = self._next(schedule, moment)
            if following is not None:
                heapq.heappush(queue, (following, index, schedule))
        if not self._stop.is_set() and self._until is not None:
            self._stop.wait(self._clock.real_seconds_until(self._until))
        for thread in list(self._threads):
            thread.join()
        return self.fires

    def _fire(self, schedule: LocalSchedule, moment: datetime) -> None:
        execution_id = f"local-{uuid.uuid4()}"
        event = schedule.event(scheduled_time=moment, execution_id=execution_id)
        with self._lock:
            running = self._in_flight.get(schedule.name)
            if running is None:
                thread = threading.Thread(target=self._execute, args=(schedule, event, moment), daemon=True)
                self._in_flight[schedule.name] = thread
                self._threads.append(thread)
                thread.start()
                return
        try:
            record = self._runs.record_final(
                event,
                runtime=schedule.runtime,
                status=RunStatus.SKIPPED,
                started=datetime.now(UTC),
                detail={
                    "skipped": "the previous run of this task was still in flight (kairos local never overlaps runs)"
                },
            )
        except Exception as failure:  # the skip is still printed, with why it is not recorded
            record = {"status": "SKIPPED", "error_type": "NotRecorded", "error_message": f"{type(failure).__name__}"}
        now = time.time()
        self._finish(
            Fire(
                schedule.name,
                moment,
                execution_id,
                str((record or {}).get("status", "SKIPPED")),
                0,
                "previous run still in flight",
                now,
                now,
            )
        )

    def _call_of(self, schedule: LocalSchedule) -> FunctionCall | FanOutCall:
        """How the schedule's target runs here: its function, or its fan-out's local driver."""
        fan_out = schedule.fan_out
        if fan_out is not None:
            return FanOutCall(
                name=f"{fan_out.stack}-{fan_out.logical_id}"[:80],
                task=schedule.name,
                timeout=fan_out.timeout,
                environment=lambda_environment(
                    fan_out.environment, function_name=schedule.name, endpoint_url=self._endpoint_url
                ),
                arguments=fan_out_driver_arguments(
                    {
                        step: (function.handler, function.memory, function.timeout)
                        for step, function in fan_out.functions.items()
                    },
                    max_concurrency=fan_out.max_concurrency,
                    batch_retry=fan_out.batch_retry,
                ),
            )
        function = schedule.function
        assert function is not None  # schedules without a target to run are left out before running
        return FunctionCall(
            name=f"{function.stack}-{function.logical_id}"[:64],
            family=function.family,
            handler=function.handler,
            code_dir=function.code_dir,
            memory=function.memory,
            timeout=function.timeout,
            environment=lambda_environment(
                function.environment, function_name=schedule.name, endpoint_url=self._endpoint_url
            ),
        )

    def _execute(self, schedule: LocalSchedule, event: dict[str, Any], moment: datetime) -> None:
        runtime = schedule.runtime
        started, started_at = datetime.now(UTC), time.time()
        record: dict[str, Any] | None = None
        try:
            call = self._call_of(schedule)
            invocation = self._call(call, event)
            record = self._runs.record_of(event)
            if invocation.error is not None and invocation.error.startswith(TIMED_OUT):
                record = self._runs.record_final(
                    event,
                    runtime=runtime,
                    status=RunStatus.FAILED,
                    started=started,
                    error=RunError(TIMED_OUT, invocation.error.removeprefix(f"{TIMED_OUT}: "), ErrorKind.TRANSIENT),
                )
            elif record is None or record.get("status") == RunStatus.STARTED.value:
                # The handler died without finishing its record (a crash, an invalid event).
                record = self._runs.record_final(
                    event,
                    runtime=runtime,
                    status=RunStatus.FAILED,
                    started=started,
                    error=RunError("HandlerCrashed", invocation.error or "no final record", ErrorKind.PERMANENT),
                )
            status = str((record or {}).get("status", "FAILED"))
            error = _error_of(record) if record else invocation.error
        except Exception as failure:  # a broken local table must not lose the fire silently
            status, error = "FAILED", f"kairos local: {type(failure).__name__}: {failure}"
        finished_at = time.time()
        with self._lock:
            del self._in_flight[schedule.name]
        duration = _duration_ms(record, started_at, finished_at)
        self._finish(
            Fire(schedule.name, moment, event["execution_id"], status, duration, error, started_at, finished_at)
        )

    def _finish(self, fire: Fire) -> None:
        with self._lock:
            self.fires.append(fire)
            self._report(fire)


def _error_of(record: Mapping[str, Any]) -> str | None:
    if record.get("error_type"):
        return f"{record['error_type']}: {record.get('error_message', '')}"
    return None


def _duration_ms(record: Mapping[str, Any] | None, started_at: float, finished_at: float) -> int:
    value = (record or {}).get("duration_ms")
    if isinstance(value, int | Decimal):
        return int(value)
    return int((finished_at - started_at) * 1000)


def ttl_days(environment: Mapping[str, str]) -> int:
    value = environment.get(RUN_RECORD_TTL_DAYS_ENV, "")
    return int(value) if value.isdigit() else DEFAULT_TTL_DAYS
