"""The three steps of a fan-out task (:mod:`kairos_runtime.fan_out`) on top of the task runner.

The planner owns the slot's run record as an ordinary run does (STARTED, a redelivery counted), and
claims the slot first (:mod:`kairos_runtime.slots`): a duplicate delivery of a slot that is done, or
whose execution is still running, starts no second fan-out. The batches claim nothing and write no
record; the summary finishes the record the planner started and settles the slot's claim, both of
which travel in the machine's state (:meth:`RunRecorder.adopt`; docs/adr/0162-fan-out-in-shards.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from kairos_runtime.errors import error_kind
from kairos_runtime.events import ScheduledEvent
from kairos_runtime.fan_out import (
    INLINE_MAP_PAYLOAD_BUDGET,
    Batch,
    BatchFailedError,
    BatchTransientError,
    FanOut,
    PayloadTooLargeError,
    add_up,
    choose_map,
    json_size,
    split,
)
from kairos_runtime.fan_out_objects import FanOutObjectError, batches_key, checked_key, read_map_results
from kairos_runtime.registry import TaskSkipped, TaskType
from kairos_runtime.runner import InvocationContext, TaskRunner
from kairos_runtime.runs import ErrorKind, RunError, RunRecorder, RunStatus, run_key
from kairos_runtime.slots import Claimed, Declined, SlotLedger, slot_key
from kairos_runtime.tables import TableId

PLAN_NOTES_BYTES = 4096
"""What the payload bound sets aside for the plan's own notes and the run's claim."""


class FanOutRunner(TaskRunner):
    """``plan``, ``batch`` and ``summarize``: each the body of one Lambda function of the machine."""

    def _recorder(self) -> RunRecorder:
        return RunRecorder(self._clients.table(TableId.TASK_RUNS), ttl_days=self._settings.run_record_ttl_days)

    def _ledger(self) -> SlotLedger:
        return SlotLedger(self._clients.table(TableId.TASK_RUNS), ttl_days=self._settings.run_record_ttl_days)

    def _lease(self, invocation: InvocationContext) -> timedelta:
        """How long the planner's claim holds: the whole execution, not the planner's own invocation.

        A state machine is stopped at its execution timeout (the schedule's maximum event age), which
        is within the late-delivery limit; the claim lasts that long, so a duplicate delivery while
        batches run is declined rather than started again.
        """
        own = timedelta(milliseconds=invocation.get_remaining_time_in_millis())
        limit = self._settings.late_delivery_limit_seconds
        return max(own, timedelta(seconds=limit)) if limit is not None else own

    # -- plan ---------------------------------------------------------------------------------
    def plan(self, raw_event: object, invocation: InvocationContext) -> dict[str, Any]:
        """Record the slot's run as STARTED, list its work and split it into batches.

        Returns ``{"planned": true, "run", "shared", "rate_per_batch", "batches", "detail"}`` for the
        Map, or ``{"planned": false, "response"}`` when the run already ended (skipped, or failed
        before any batch: its record is final).
        """
        started_at = self._clock()
        event, event_error = self._parse_event(raw_event, invocation, started_at)
        recorder = self._recorder()
        ledger = self._ledger()
        claimed: Claimed | None = None
        if event_error is None:
            claim = ledger.claim(
                event,
                run_id=run_key(event).sk,
                request_id=invocation.aws_request_id,
                execution_id=event.execution_id,
                now=started_at,
                lease=self._lease(invocation),
            )
            if isinstance(claim, Declined):
                # Done, or its execution still running: this delivery starts no second fan-out.
                return {"planned": False, "response": self._declined(event, claim)}
            claimed = claim
        key = self._start_record(event, invocation, started_at, recorder, ledger, claimed)
        self._observer.run_started(event)
        start = time.perf_counter()
        outcome = self._plan(event, event_error, invocation, recorder, key)
        if outcome.get("planned"):
            if claimed is not None:
                outcome["run"]["slot"] = {
                    "claimed_at": claimed.claimed_at,
                    "rerun": claimed.rerun,
                    "replaced": dict(claimed.replaced) if claimed.replaced is not None else None,
                }
            return outcome
        duration_ms = round((time.perf_counter() - start) * 1000)
        response = self._conclude(event, recorder, key, outcome, duration_ms, ledger=ledger, claimed=claimed)
        return {"planned": False, "response": response}

    def _plan(
        self,
        event: ScheduledEvent,
        event_error: RunError | None,
        invocation: InvocationContext,
        recorder: RunRecorder,
        key_of_run: Any,
    ) -> dict[str, Any]:
        prepared = self._prepare(event, event_error, invocation)
        if isinstance(prepared, dict):
            return prepared
        task_type, params, context = prepared
        fan_out = task_type.fan_out
        if fan_out is None:
            message = f"task_type {task_type.name!r} is not a fan-out task type: its schedule invokes its function"
            return {"status": RunStatus.FAILED, "error": RunError("InvalidEvent", message, ErrorKind.PERMANENT)}
        settings = fan_out.settings(params)
        try:
            work = fan_out.planner(params, context)
            if not work.items:
                raise BatchFailedError("the planner found no work for the slot (an empty universe)")
            fixed = json_size(event.as_json()) + json_size(dict(work.shared)) + PLAN_NOTES_BYTES
            choice = choose_map(len(work.items), settings.batch_size, fixed_bytes=fixed)
            store = self._clients.objects() if choice.distributed else None
            if choice.distributed and (store is None or fixed > INLINE_MAP_PAYLOAD_BUDGET):
                raise PayloadTooLargeError(
                    f"{len(work.items)} items in batches of {settings.batch_size} need a Distributed Map "
                    f"({choice.reason}), "
                    + (
                        "but no fan-out bucket is configured (KAIROS_FAN_OUT_BUCKET)"
                        if store is None
                        else f"but the event and shared values alone take {fixed:,} bytes of state"
                    )
                )
        except TaskSkipped as skipped:
            return {"status": RunStatus.SKIPPED, "detail": {**skipped.detail, "reason": skipped.reason}}
        except Exception as failure:
            self._logger.exception("planning failed")
            detail = getattr(failure, "detail", None)
            error = RunError(type(failure).__name__, str(failure) or type(failure).__name__, error_kind(failure))
            return {"status": RunStatus.FAILED, "error": error, "detail": detail if isinstance(detail, dict) else None}
        batches = [
            {"index": index, "items": list(items)} for index, items in enumerate(split(work.items, settings.batch_size))
        ]
        detail = dict(work.detail) | {
            "fan_out": {
                "symbols_planned": len(work.items),
                "batches": len(batches),
                "batch_size": settings.batch_size,
                "max_concurrency": settings.max_concurrency,
                "requests_per_second": settings.requests_per_second,
                "requests_per_second_per_batch": round(settings.rate_per_batch, 4),
                "state_bytes_bound": choice.state_bytes_bound,
                "map": "distributed" if choice.distributed else "inline",
                "map_reason": choice.reason,
            }
        }
        answer: dict[str, Any] = {
            "planned": True,
            "shared": dict(work.shared),
            "rate_per_batch": settings.rate_per_batch,
        }
        if store is not None:
            # Past an inline Map's limits: the batches go to S3 and the Distributed Map reads them there.
            key = batches_key(event.task, invocation.aws_request_id)
            store.put_json(key, batches)
            answer["items"] = {"bucket": store.bucket, "key": key}
            answer["batch_count"] = len(batches)
        else:
            answer["batches"] = batches
        recorder.note(key_of_run, detail)
        request_id, started = recorder.claim_of(key_of_run)
        return answer | {"run": {"request_id": request_id, "started_at": started}, "detail": detail}

    # -- batch --------------------------------------------------------------------------------
    def batch(self, raw: object, invocation: InvocationContext) -> dict[str, Any]:
        """Run the worker on one batch; its report, or an error Step Functions retries
        (:class:`BatchTransientError`) or catches (:class:`BatchFailedError`)."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("batch"), Mapping):
            raise BatchFailedError(
                "a batch invocation needs {'event', 'batch': {'index', 'items'}, 'shared', 'rate_per_batch'}"
            )
        event, event_error = self._parse_event(raw.get("event"), invocation, self._clock())
        prepared = self._prepare(event, event_error, invocation)
        if isinstance(prepared, dict):
            error = prepared["error"]
            raise BatchFailedError(f"{error.error_type}: {error.message}")
        task_type, params, context = prepared
        fan_out = self._fan_out_of(task_type)
        spec = raw["batch"]
        items = spec.get("items")
        if (
            not isinstance(spec.get("index"), int)
            or not isinstance(items, list)
            or not all(isinstance(each, str) for each in items)
        ):
            raise BatchFailedError("a batch needs an integer 'index' and a list of 'items' (strings)")
        rate = raw.get("rate_per_batch")
        shared = raw.get("shared") or {}
        if not isinstance(shared, Mapping):
            raise BatchFailedError("a batch's 'shared' must be an object (the plan's shared values)")
        batch = Batch(
            index=spec["index"],
            items=tuple(items),
            shared=dict(shared),
            rate_per_second=float(rate)
            if isinstance(rate, int | float) and rate > 0
            else fan_out.settings(params).rate_per_batch,
        )
        try:
            report = fan_out.worker(params, context, batch)
        except Exception as failure:
            self._logger.exception("batch failed", extra={"batch": batch.index})
            message = f"batch {batch.index}: {type(failure).__name__}: {failure}"[:1000]
            if error_kind(failure) is ErrorKind.TRANSIENT:
                raise BatchTransientError(message) from None
            raise BatchFailedError(message) from None
        return report.as_json()

    # -- summarize ----------------------------------------------------------------------------
    def summarize(self, raw: object, invocation: InvocationContext) -> dict[str, Any]:
        """Add the batches' reports up and finish the run record the planner started."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("plan"), Mapping):
            raise BatchFailedError("a summary invocation needs {'event', 'plan', 'results'}")
        event, event_error = self._parse_event(raw.get("event"), invocation, self._clock())
        plan = raw["plan"]
        claim, started_at = _run_claim(plan.get("run"))
        recorder = self._recorder()
        key = run_key(event)
        recorder.adopt(key, request_id=str(claim["request_id"]), started_at=str(claim["started_at"]))
        duration_ms = max(0, round((self._clock() - started_at).total_seconds() * 1000))
        self._observer.run_started(event)
        fields = self._summary(event, event_error, invocation, plan, raw.get("results"))
        slot = claim.get("slot")
        claimed = (
            Claimed(
                key=slot_key(event),
                request_id=str(claim["request_id"]),
                claimed_at=str(slot["claimed_at"]),
                rerun=bool(slot.get("rerun")),
                replaced=slot.get("replaced"),
            )
            if isinstance(slot, Mapping) and event_error is None
            else None
        )
        return self._conclude(event, recorder, key, fields, duration_ms, ledger=self._ledger(), claimed=claimed)

    def _summary(
        self,
        event: ScheduledEvent,
        event_error: RunError | None,
        invocation: InvocationContext,
        plan: Mapping[str, Any],
        raw_results: object,
    ) -> dict[str, Any]:
        prepared = self._prepare(event, event_error, invocation)
        if isinstance(prepared, dict):
            return prepared
        task_type, params, context = prepared
        fan_out = self._fan_out_of(task_type)
        batches, results = self._batches_and_results(event, plan, raw_results)
        totals = add_up(batches, results)
        detail: dict[str, Any] = dict(plan.get("detail") or {}) | totals.detail()
        if fan_out.summarizer is not None:
            universe = [item for batch in batches for item in batch["items"]]
            try:
                detail |= dict(fan_out.summarizer(params, context, plan.get("shared") or {}, universe))
            except Exception as failure:  # the counts above are still worth a record
                self._logger.exception("summary notes failed")
                detail["summary_error"] = f"{type(failure).__name__}: {failure}"[:300]
        fields: dict[str, Any] = {
            "items_written": totals.items_written,
            "items_rejected": totals.items_rejected,
            "detail": detail,
        }
        if totals.failed:
            message = (
                f"{len(totals.failed)} of {totals.planned} symbol(s) failed"
                + (
                    f", {len(totals.failed_batches)} batch(es) of {len(batches)} caught"
                    if totals.failed_batches
                    else ""
                )
                + f"; {totals.done} done, {totals.up_to_date} up to date, {len(totals.without_data)} without data"
            )
            return fields | {
                "status": RunStatus.FAILED,
                "error": RunError("PartialFailure", message, ErrorKind.PERMANENT),
            }
        if totals.done + totals.up_to_date == 0:
            message = f"none of the {totals.planned} symbol(s) had data at the source"
            return fields | {"status": RunStatus.FAILED, "error": RunError("NoValidRows", message, ErrorKind.PERMANENT)}
        return fields | {"status": RunStatus.SUCCEEDED}

    def _batches_and_results(
        self, event: ScheduledEvent, plan: Mapping[str, Any], raw_results: object
    ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
        """The plan's batches and the Map's results: inline in the state, or (a Distributed Map's) the
        batches object the planner wrote and the ResultWriter's manifest and result files."""
        if "items" not in plan:
            return list(plan["batches"]), (list(raw_results) if isinstance(raw_results, list) else [])
        store = self._clients.objects()
        if store is None:
            raise FanOutObjectError("a distributed plan's summary needs the fan-out bucket (KAIROS_FAN_OUT_BUCKET)")
        batches = store.get_json(checked_key(store, plan["items"], event.task))
        if not isinstance(batches, list):
            raise FanOutObjectError(f"{plan['items']['key']} is not a JSON array of batches")
        details = raw_results.get("ResultWriterDetails") if isinstance(raw_results, Mapping) else None
        # No ResultWriter details (the Map failed before writing): every batch counts as unreported.
        results = read_map_results(store, details, event.task) if isinstance(details, Mapping) else []
        return batches, list(results)

    @staticmethod
    def _fan_out_of(task_type: TaskType[Any]) -> FanOut[Any]:
        if task_type.fan_out is None:
            raise BatchFailedError(f"task_type {task_type.name!r} is not a fan-out task type")
        return task_type.fan_out


def _run_claim(claim: object) -> tuple[Mapping[str, Any], datetime]:
    """The planner's claim on the run record (``plan.run``) and when it started, or a clear error:
    without it the summary cannot tell which record to finish."""
    if not isinstance(claim, Mapping) or not isinstance(claim.get("request_id"), str):
        raise BatchFailedError("a summary needs the planner's 'plan.run' with its 'request_id' and 'started_at'")
    try:
        started_at = datetime.fromisoformat(str(claim.get("started_at")).replace("Z", "+00:00"))
    except ValueError:
        raise BatchFailedError(f"the plan's 'run.started_at' is not a timestamp: {claim.get('started_at')!r}") from None
    if started_at.tzinfo is None:
        raise BatchFailedError(f"the plan's 'run.started_at' has no time zone: {claim.get('started_at')!r}")
    return claim, started_at
