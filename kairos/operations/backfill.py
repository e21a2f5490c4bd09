"""``kairos backfill``: run a task for each of its slots in a range, once.

Flow: the slots come from :mod:`.slots` (the schedule evaluator, the task's timezone); the slots
already done come from one Query of the task's records over the range's sort keys
(:func:`done_slots`); each remaining slot is run with the event its schedule would have sent
(:func:`backfill_event`, the one place a backfill builds an event) by a :data:`SlotRunner` (the
local handler against the embedded DynamoDB, or the deployed function, invoked and waited for), at
most ``concurrency`` at a time. A slot is done when a record of it is SUCCEEDED, or SKIPPED (the task
decided the slot has nothing to do, a holiday, say: running it again would decide the same); a
FAILED or STARTED one is run again. ``rerun`` runs done slots too. See docs/adr/0131-backfill-and-redrive-semantics.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from kairos.operations.invoke import scheduled_event
from kairos.plan import TaskPlan
from kairos_runtime.events import iso_seconds
from kairos_runtime.runs import RunStatus
from kairos_runtime.tables import TASK_RUNS

EXECUTION_ID_PREFIX = "kairos-backfill-"
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32
DONE_STATUSES = frozenset({RunStatus.SUCCEEDED.value, RunStatus.SKIPPED.value})


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"
    ALREADY_DONE = "already_done"
    WOULD_RUN = "would_run"
    """A dry run's slot that a real one would run."""


@dataclass(frozen=True, slots=True)
class SlotRun:
    """What running one slot gave: the record it wrote (the source of truth), or why there is none."""

    record: dict[str, Any] | None
    problem: str | None = None
    """The invocation's own failure (the function raised, the handler crashed, no record)."""


SlotRunner = Callable[[dict[str, Any]], SlotRun]
"""Runs one slot's event and returns what it recorded."""


@dataclass(frozen=True, slots=True)
class SlotResult:
    slot: datetime
    outcome: Outcome
    status: str | None = None
    """The run record's status (the earlier record's, for a slot already done)."""
    error: str | None = None
    execution_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "scheduled_time": iso_seconds(self.slot),
            "outcome": self.outcome.value,
            "status": self.status,
            "error": self.error,
            "execution_id": self.execution_id,
        }


@dataclass(frozen=True, slots=True)
class BackfillReport:
    task: str
    results: tuple[SlotResult, ...]
    dry_run: bool

    @property
    def failed(self) -> list[SlotResult]:
        return [result for result in self.results if result.outcome is Outcome.FAILED]

    def summary(self) -> dict[str, int]:
        """Slots in the range, slots run, and how many of each outcome (every key always present)."""
        counts = {outcome.value: 0 for outcome in Outcome}
        for result in self.results:
            counts[result.outcome.value] += 1
        run = counts["succeeded"] + counts["skipped"] + counts["failed"]
        return {"slots": len(self.results), "run": run, **counts}


def backfill_event(task: TaskPlan, slot: datetime, *, rerun: bool = False) -> dict[str, Any]:
    """The event the task's schedule sends for ``slot``: the one call of the builder a backfill makes
    (``kairos invoke`` and ``kairos run`` render the same template). ``rerun`` asks the handler to run
    a slot it has already done (docs/adr/0140), which it would otherwise decline."""
    return scheduled_event(task, scheduled_time=slot, execution_id=f"{EXECUTION_ID_PREFIX}{uuid.uuid4()}", rerun=rerun)


def done_slots(table: Any, task: str, slots: Iterable[datetime]) -> dict[str, str]:
    """Scheduled time (``2026-11-27T07:15:00Z``) to a done status, for the slots among ``slots`` that
    have a SUCCEEDED (else SKIPPED) record: one Query of the range's sort keys (a page per 1 MB)."""
    wanted = sorted({iso_seconds(slot) for slot in slots})
    if not wanted:
        return {}
    request: dict[str, Any] = {
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :first AND :last",
        "ProjectionExpression": "#scheduled_time, #status",
        "ExpressionAttributeNames": {
            "#pk": TASK_RUNS.partition_key,
            "#sk": TASK_RUNS.sort_key,
            "#scheduled_time": "scheduled_time",
            "#status": "status",
        },
        "ExpressionAttributeValues": {
            ":pk": f"TASK#{task}",
            ":first": f"RUN#{wanted[0]}#",
            # '~' sorts after every character an execution id may hold (printable ASCII).
            ":last": f"RUN#{wanted[-1]}#~",
        },
    }
    statuses: dict[str, set[str]] = {}
    while True:
        response = table.query(**request)
        for item in response.get("Items", []):
            statuses.setdefault(str(item.get("scheduled_time")), set()).add(str(item.get("status")))
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    done = {}
    for slot in wanted:
        found = statuses.get(slot, set()) & DONE_STATUSES
        if found:
            done[slot] = RunStatus.SUCCEEDED.value if RunStatus.SUCCEEDED.value in found else RunStatus.SKIPPED.value
    return done


def _result_of(slot: datetime, event: dict[str, Any], run: SlotRun) -> SlotResult:
    record = run.record
    execution_id = str(event["execution_id"])
    if record is None:
        return SlotResult(slot, Outcome.FAILED, None, run.problem or "no run record was written", execution_id)
    status = str(record.get("status"))
    error = f"{record['error_type']}: {record.get('error_message', '')}" if record.get("error_type") else None
    if status == RunStatus.SUCCEEDED.value and run.problem is None:
        return SlotResult(slot, Outcome.SUCCEEDED, status, None, execution_id)
    if status == RunStatus.SKIPPED.value and run.problem is None:
        reason = error or str((record.get("detail") or {}).get("reason") or "") or None
        return SlotResult(slot, Outcome.SKIPPED, status, reason, execution_id)
    return SlotResult(slot, Outcome.FAILED, status, error or run.problem or f"the run ended {status}", execution_id)


def backfill(
    task: TaskPlan,
    slots: list[datetime],
    *,
    done: dict[str, str],
    run: SlotRunner | None,
    concurrency: int,
    rerun: bool,
    progress: Callable[[SlotResult], None] = lambda result: None,
) -> BackfillReport:
    """Run each slot not done yet (every slot with ``rerun``), ``concurrency`` at a time.

    ``run`` None is a dry run: nothing is invoked, and each slot a real run would run is WOULD_RUN.
    """
    results: dict[datetime, SlotResult] = {}
    pending = []
    for slot in slots:
        earlier = done.get(iso_seconds(slot))
        if earlier is not None and not rerun:
            results[slot] = SlotResult(slot, Outcome.ALREADY_DONE, earlier)
            progress(results[slot])
        elif run is None:
            results[slot] = SlotResult(slot, Outcome.WOULD_RUN, earlier)
            progress(results[slot])
        else:
            pending.append(slot)
    if run is not None and pending:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, MAX_CONCURRENCY))) as pool:
            # Only a slot already done needs the handler told: any other it runs anyway.
            events = {slot: backfill_event(task, slot, rerun=rerun and iso_seconds(slot) in done) for slot in pending}
            futures = {pool.submit(_run_one, run, events[slot]): slot for slot in pending}
            for future in as_completed(futures):
                slot = futures[future]
                results[slot] = _result_of(slot, events[slot], future.result())
                progress(results[slot])
    return BackfillReport(task.name, tuple(results[slot] for slot in slots), dry_run=run is None)


def _run_one(run: SlotRunner, event: dict[str, Any]) -> SlotRun:
    """One slot; an exception (AWS refused the invoke, say) is that slot's failure, not the backfill's."""
    try:
        return run(event)
    except Exception as error:  # reported per slot: the other slots go on
        return SlotRun(None, f"{type(error).__name__}: {error}")
