"""Runs one scheduled event: resolve the task type, validate params, run, and record the outcome.

Every delivery leaves a run record, including ones that cannot run at all (a malformed event, an
unknown task_type, params that no longer fit the model). Transient failures are re-raised after
recording so Lambda's asynchronous retry delivers the event again; permanent ones are not, since
another delivery would fail the same way.

A valid event first claims its slot (:mod:`kairos_runtime.slots`): a slot that already SUCCEEDED
(or was SKIPPED) is not run again, and one whose run is in progress is not started twice; such a
delivery is counted on the slot and answers with the earlier result (or the run in progress).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kairos_runtime.context import Clients, TaskContext
from kairos_runtime.errors import TransientTaskError, error_kind
from kairos_runtime.events import KEY_FIELDS, ScheduledEvent, iso_seconds, key_field
from kairos_runtime.metrics import ALIVE_OUTCOMES, RUN_OUTCOMES, RUNS_ALIVE, RUNS_RETRIED, RUNS_SUPERSEDED
from kairos_runtime.registry import (
    TaskOutcome,
    TaskParams,
    TaskRegistry,
    TaskSkipped,
    TaskType,
    UnknownTaskTypeError,
)
from kairos_runtime.runs import ErrorKind, RunError, RunKey, RunRecorder, RunStatus, run_key
from kairos_runtime.settings import PAST_SLOT_REFUSED, RuntimeSettings
from kairos_runtime.slots import Claimed, Decline, Declined, SlotInProgressError, SlotLedger
from kairos_runtime.tables import TableId
from kairos_runtime.validation import InvalidInputError


class InvocationContext(Protocol):
    """The parts of Lambda's context object the runner uses (``kairos run`` supplies its own)."""

    @property
    def aws_request_id(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


class RunObserver(Protocol):
    """Hooks for metrics and tracing, so the runner does not depend on Powertools."""

    def run_started(self, event: ScheduledEvent) -> None: ...

    def run_finished(self, event: ScheduledEvent, result: RunResult) -> None: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    task: str
    status: RunStatus
    run_id: str
    duration_ms: int
    items_written: int = 0
    items_rejected: int = 0
    error: RunError | None = None
    detail: Mapping[str, Any] | None = None
    retried: bool = False
    """A transient failure that Lambda delivers again: counted as RunsRetried, not RunsFailed."""
    superseded: bool = False
    """A later delivery of the event took the record over while this one ran: its outcome decides,
    this one is kept in ``previous_outcomes`` (counted as RunsSuperseded, never retried)."""

    @property
    def metric_name(self) -> str:
        """The per-run counter this result adds to; the failure alarm watches RunsFailed."""
        if self.superseded:
            return RUNS_SUPERSEDED
        return RUNS_RETRIED if self.retried else RUN_OUTCOMES[self.status]

    @property
    def counters(self) -> tuple[str, ...]:
        """Every counter this result adds one to: its outcome's, and RunsAlive for a success or skip."""
        alive = (RUNS_ALIVE,) if self.status in ALIVE_OUTCOMES and not self.retried else ()
        return (self.metric_name, *alive)

    def as_response(self) -> dict[str, Any]:
        response: dict[str, Any] = {
            "task": self.task,
            "status": self.status.value,
            "run_id": self.run_id,
            "duration_ms": self.duration_ms,
            "items_written": self.items_written,
            "items_rejected": self.items_rejected,
        }
        if self.error is not None:
            response["error"] = {"type": self.error.error_type, "message": self.error.message}
        if self.retried:
            response["retried"] = True
        if self.superseded:
            response["superseded"] = True
        return response


class TaskRunFailed(Exception):  # noqa: N818 - it carries a recorded failure, it is not the failure
    """Raised after a transient failure was recorded, so the delivery is retried."""

    def __init__(self, result: RunResult) -> None:
        error = result.error
        super().__init__(f"{result.task}: {error.error_type}: {error.message}" if error else result.task)
        self.result = result


class _NoObserver:
    def run_started(self, event: ScheduledEvent) -> None:
        return None

    def run_finished(self, event: ScheduledEvent, result: RunResult) -> None:
        return None


class TaskRunner:
    def __init__(
        self,
        *,
        registry: TaskRegistry,
        settings: RuntimeSettings,
        clients: Clients,
        logger: Any,
        observer: RunObserver | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._clients = clients
        self._logger = logger
        self._observer = observer or _NoObserver()
        self._clock = clock

    def dispatch(self, raw_event: object, invocation: InvocationContext) -> dict[str, Any]:
        started_at = self._clock()
        event, event_error = self._parse_event(raw_event, invocation, started_at)
        table = self._clients.table(TableId.TASK_RUNS)
        recorder = RunRecorder(table, ttl_days=self._settings.run_record_ttl_days)
        ledger = SlotLedger(table, ttl_days=self._settings.run_record_ttl_days)
        claimed: Claimed | None = None
        if event_error is None:
            # An invalid event runs nothing, so it claims no slot (its slot may not even be one).
            claim = ledger.claim(
                event,
                run_id=run_key(event).sk,
                request_id=invocation.aws_request_id,
                execution_id=event.execution_id,
                now=started_at,
                lease=timedelta(milliseconds=invocation.get_remaining_time_in_millis()),
            )
            if isinstance(claim, Declined):
                return self._declined(event, claim)
            claimed = claim
        key = self._start_record(event, invocation, started_at, recorder, ledger, claimed)
        self._observer.run_started(event)
        start = time.perf_counter()
        result_fields = self._run(event, event_error, invocation)
        duration_ms = round((time.perf_counter() - start) * 1000)
        return self._conclude(event, recorder, key, result_fields, duration_ms, ledger=ledger, claimed=claimed)

    def _conclude(
        self,
        event: ScheduledEvent,
        recorder: RunRecorder,
        key: RunKey,
        result_fields: dict[str, Any],
        duration_ms: int,
        *,
        ledger: SlotLedger,
        claimed: Claimed | None,
    ) -> dict[str, Any]:
        """Write the run's final record from ``result_fields``, settle the slot's claim and report it
        (metrics, log); raise :class:`TaskRunFailed` on a transient failure so the delivery is retried."""
        finished_at = self._clock()
        error = result_fields.get("error")
        retried = (
            isinstance(error, RunError)
            and error.kind is ErrorKind.TRANSIENT
            and self._settings.lambda_retries(
                attempt=recorder.lambda_attempt(key),
                event_age_seconds=(finished_at - event.scheduled_time).total_seconds(),
            )
        )
        result = RunResult(task=event.task, run_id=key.sk, duration_ms=duration_ms, retried=retried, **result_fields)
        finished = recorder.finish(
            key,
            status=result.status,
            finished_at=finished_at,
            duration_ms=duration_ms,
            items_written=result.items_written,
            items_rejected=result.items_rejected,
            detail=result.detail,
            error=result.error,
        )
        if finished.fallback is not None:
            # What the record says is what the run counts as: a failure no retry would store better.
            result = replace(
                result,
                status=RunStatus.FAILED,
                error=finished.fallback,
                items_written=0,
                items_rejected=0,
                detail=None,
                retried=False,
            )
        if not finished.owned:
            result = replace(result, superseded=True, retried=False)
        if claimed is not None:
            self._settle(ledger, claimed, result, finished_at=finished_at)
        self._observer.run_finished(event, result)
        self._log_result(result)
        if result.error is not None and result.error.kind is ErrorKind.TRANSIENT and not result.superseded:
            raise TaskRunFailed(result)
        return result.as_response()

    def _start_record(
        self,
        event: ScheduledEvent,
        invocation: InvocationContext,
        started_at: datetime,
        recorder: RunRecorder,
        ledger: SlotLedger,
        claimed: Claimed | None,
    ) -> RunKey:
        """Write the run's STARTED record and return its key; when that write fails, free the slot
        for Lambda's retry of this invocation instead of holding it to the lease, and raise."""
        try:
            return recorder.start(
                event,
                runtime=self._settings.runtime,
                request_id=invocation.aws_request_id,
                started_at=started_at,
                claim_fields=claimed.run_fields() if claimed else None,
            )
        except Exception as failure:
            if claimed is not None:
                unrecorded = RunError(type(failure).__name__, str(failure), ErrorKind.TRANSIENT)
                self._settle(
                    ledger, claimed, RunResult(event.task, RunStatus.FAILED, run_key(event).sk, 0, error=unrecorded)
                )
            raise

    def _declined(self, event: ScheduledEvent, declined: Declined) -> dict[str, Any]:
        """A delivery that does not run: counted on the slot (by :meth:`SlotLedger.claim`), answered
        with the earlier result. A slot in progress under this very invocation's claim (Lambda
        retried it while the lease holds) fails, so Lambda comes back once the lease has passed."""
        response = declined.response(event.task)
        self._logger.info(
            "delivery declined", extra={"run": response, "scheduled_time": event.as_json()["scheduled_time"]}
        )
        if declined.reason is Decline.IN_PROGRESS and declined.own_invocation:
            raise SlotInProgressError(
                f"{event.task}: slot {response['run_id']} is still claimed by this invocation's earlier attempt; "
                f"retry after its lease ({declined.slot.get('lease_expires_at')})"
            )
        return response

    def _settle(
        self, ledger: SlotLedger, claimed: Claimed, result: RunResult, *, finished_at: datetime | None = None
    ) -> None:
        """Records the outcome on the slot. A failure here is logged, not raised: the run record is
        final, and failing the delivery would have Lambda retry a run that happened."""
        try:
            ledger.settle(
                claimed, status=result.status, result=result.as_response(), finished_at=finished_at or self._clock()
            )
        except Exception:
            self._logger.exception("the slot's outcome could not be recorded; it is recovered after its lease")

    def _parse_event(
        self, raw_event: object, invocation: InvocationContext, now: datetime
    ) -> tuple[ScheduledEvent, RunError | None]:
        own_task = self._settings.recording_task
        try:
            event = ScheduledEvent.parse(raw_event)
        except InvalidInputError as invalid:
            # Still record the delivery: under the function's own task (the only records IAM lets it
            # write), else under whatever identity the event carried.
            # Only fields fit for a key are kept; the request id is Lambda's (a UUID) or a new one.
            request_id = invocation.aws_request_id
            fallback = ScheduledEvent(
                task=own_task or key_field(raw_event, "task") or "unknown-task",
                task_type=key_field(raw_event, "task_type") or "unknown",
                scheduled_time=now,
                execution_id=key_field(raw_event, "execution_id")
                or (request_id if KEY_FIELDS["execution_id"][0].match(request_id or "") else str(uuid.uuid4())),
            )
            return fallback, RunError("InvalidEvent", _describe(invalid, whole="event"), ErrorKind.PERMANENT)
        refusal = self._settings.refusal(event.task)
        if refusal is not None:
            return event.for_task(own_task or event.task), RunError("InvalidEvent", refusal, ErrorKind.PERMANENT)
        own_type = self._settings.task_type
        if own_type is not None and event.task_type != own_type:
            message = f"this function runs task_type {own_type!r}; the event names {event.task_type!r}"
            return event, RunError("InvalidEvent", message, ErrorKind.PERMANENT)
        return event, None

    def _prepare(
        self, event: ScheduledEvent, event_error: RunError | None, invocation: InvocationContext
    ) -> tuple[TaskType[Any], TaskParams, TaskContext] | dict[str, Any]:
        """The task type, its params and the context to run it in; or the failed result's fields when
        the event, its task type or its params do not allow a run."""
        if event_error is not None:
            return {"status": RunStatus.FAILED, "error": event_error}
        try:
            task_type = self._registry.get(event.task_type)
            params = task_type.parse_params(event.params)
        except UnknownTaskTypeError as unknown:
            return {
                "status": RunStatus.FAILED,
                "error": RunError("UnknownTaskType", str(unknown), ErrorKind.PERMANENT),
            }
        except InvalidInputError as invalid:
            message = f"params do not fit task_type {event.task_type!r}: {_describe(invalid, whole='params')}"
            return {
                "status": RunStatus.FAILED,
                "error": RunError("InvalidParams", message, ErrorKind.PERMANENT),
            }
        refusal = self._past_slot_refusal(task_type, event)
        if refusal is not None:
            return {"status": RunStatus.SKIPPED, "error": refusal, "detail": {"reason": refusal.message}}
        unpinned = self._unpinned_parameters(task_type, params)
        if unpinned:
            message = (
                f"params name SSM parameter(s) this function may not read: {', '.join(unpinned)}; "
                f"it may read: {', '.join(sorted(self._settings.ssm_parameters or ())) or 'none'}"
            )
            return {"status": RunStatus.FAILED, "error": RunError("InvalidEvent", message, ErrorKind.PERMANENT)}
        context = TaskContext(
            event=event,
            settings=self._settings,
            clients=self._clients.scoped(task_type.tables, task_type.partitions),
            logger=self._logger,
            remaining_time_ms=invocation.get_remaining_time_in_millis,
        )
        return task_type, params, context

    def _run(
        self, event: ScheduledEvent, event_error: RunError | None, invocation: InvocationContext
    ) -> dict[str, Any]:
        prepared = self._prepare(event, event_error, invocation)
        if isinstance(prepared, dict):
            return prepared
        task_type, params, context = prepared
        try:
            outcome = task_type.function(params, context) or TaskOutcome()
        except TaskSkipped as skipped:
            return {"status": RunStatus.SKIPPED, "detail": {**skipped.detail, "reason": skipped.reason}}
        except Exception as failure:
            self._logger.exception("task failed")
            detail = getattr(failure, "detail", None)
            error = RunError(type(failure).__name__, str(failure) or type(failure).__name__, error_kind(failure))
            return {
                "status": RunStatus.FAILED,
                "error": error,
                "detail": detail if isinstance(detail, dict) else None,
            }
        return {
            "status": RunStatus.SUCCEEDED,
            "items_written": outcome.items_written,
            "items_rejected": outcome.items_rejected,
            "detail": outcome.detail,
        }

    def _past_slot_refusal(self, task_type: TaskType[Any], event: ScheduledEvent) -> RunError | None:
        """A SKIPPED outcome's error when the slot is past and the task type cannot be backfilled
        (its source serves only the present: running it would file today's data under the slot)."""
        lateness = (self._clock() - event.scheduled_time).total_seconds()
        if not self._settings.refuses_past_slot(backfill=task_type.backfill, lateness_seconds=lateness):
            return None
        message = (
            f"task_type {task_type.name!r} cannot run for a past slot: {iso_seconds(event.scheduled_time)} "
            f"is {round(lateness)} s ago, over the late-delivery limit of "
            f"{self._settings.late_delivery_limit_seconds} s"
        )
        return RunError(PAST_SLOT_REFUSED, message, ErrorKind.PERMANENT)

    def _unpinned_parameters(self, task_type: TaskType[Any], params: TaskParams) -> list[str]:
        """The SSM parameters these params would have the task read beyond the ones pinned in the
        function's environment (which the stack granted). Every task type names what it reads through
        ``parameters=``, so the check holds for each of them before any of its code runs."""
        pinned = self._settings.ssm_parameters
        if pinned is None or task_type.parameters is None:
            return []
        return sorted(set(task_type.parameters(params)) - pinned)

    def _log_result(self, result: RunResult) -> None:
        fields = result.as_response()
        if result.status is RunStatus.FAILED:
            self._logger.error("run finished", extra={"run": fields})
        else:
            self._logger.info("run finished", extra={"run": fields})


def _describe(invalid: InvalidInputError, *, whole: str) -> str:
    return f"{invalid.location or whole}: {invalid.message}"


__all__ = ["RunResult", "TaskRunFailed", "TaskRunner", "TransientTaskError"]
