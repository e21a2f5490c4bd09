"""Fan-out task types: a planner lists a slot's work, batch workers do it, a summary records it.

A task type declared with ``fan_out=FanOut(...)`` (``@registry.task(..., fan_out=...)``) runs as a
Step Functions state machine instead of one function (``kairos_stack/fan_out_task.py``):

1. **plan** (:meth:`FanOutRunner.plan`): records the slot's run as STARTED, calls the declaration's
   ``planner`` once for the slot's work (the symbol universe, say), splits it into batches of
   ``batch_size`` and chooses the Map (:func:`choose_map`): inline while the state stays within the
   payload budget (:data:`INLINE_MAP_PAYLOAD_BUDGET`) and the execution history within its limit
   (:data:`MAX_INLINE_BATCHES`), otherwise distributed, its batches written to S3
   (:mod:`kairos_runtime.fan_out_objects`);
2. **map**: a ``batch`` function per batch (:meth:`FanOutRunner.batch`), at most ``max_concurrency``
   at once, each pacing its requests at ``requests_per_second / max_concurrency``
   (:mod:`kairos_runtime.rate_limit`); a Distributed Map runs each batch as a child execution;
3. **summarize** (:meth:`FanOutRunner.summarize`): adds the batches' reports up and writes the run's
   final record: SUCCEEDED, or FAILED with ``PartialFailure`` when a batch or a symbol failed.

``kairos run`` drives the same three methods in-process with a thread pool (``kairos/local/fan_out.py``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from msgspec import Meta

from kairos_runtime.errors import PermanentTaskError, TransientTaskError

if TYPE_CHECKING:
    from kairos_runtime.context import TaskContext
    from kairos_runtime.registry import TaskParams

INLINE_MAP_PAYLOAD_BUDGET = 240 * 1024
"""Bytes of state an inline Map execution may carry here: Step Functions caps a state's input and
output at 256 KiB (262,144 bytes); the rest is headroom for the event and the machine's own keys.
Beyond it a Distributed Map (items in S3) is needed: see docs/adr/0160-fan-out-on-step-functions.md."""
ITEM_BYTES = 9
"""A six-digit symbol as a JSON list member: the quotes and the comma."""
BATCH_OVERHEAD_BYTES = 40
"""A batch item's keys and index, as JSON."""
REPORT_OVERHEAD_BYTES = 600
"""A batch report's counts and keys, as JSON, beside the symbols it lists."""
REASONS_LISTED = 5
"""Distinct failure reasons a batch report carries (with their counts); each symbol is listed once."""
REASON_BYTES = 90
"""A reason (cut to 80 characters) and its count, as JSON."""
FAILED_SYMBOLS_LISTED = 100
"""Failed symbols the final record names (the count is always exact)."""
MAX_BATCH_SIZE = 500
MAX_CONCURRENCY = 40
HISTORY_EVENT_LIMIT = 25_000
"""Events a Standard execution's history holds; an execution that would pass it fails."""
HISTORY_RESERVE_EVENTS = 1_000
"""The events of the plan, the choice, the Map's own and the summary's, with room to spare."""
BATCH_RETRY_ATTEMPTS = 3
"""Attempts after a batch's first (the machine's Retry ``MaxAttempts``; ``kairos.plan.BATCH_RETRY``)."""
EVENTS_PER_ATTEMPT = 3
"""A Lambda task attempt's events: scheduled, started, and succeeded or failed."""
EVENTS_PER_INLINE_BATCH = 6
"""An inline iteration's events beside its attempts: iteration started and succeeded, the task state
entered and exited, the Catch's Pass state entered and exited."""
MAX_INLINE_BATCHES = (HISTORY_EVENT_LIMIT - HISTORY_RESERVE_EVENTS) // (
    EVENTS_PER_INLINE_BATCH + EVENTS_PER_ATTEMPT * (1 + BATCH_RETRY_ATTEMPTS)
)
"""The most batches an inline Map runs in one execution's history, each at its worst (every attempt
failed, then caught): 1,333. Past it, or past the payload budget, the Map is distributed: each batch
is a child execution with its own history."""


FAN_OUT_FIELDS = ("batch_size", "max_concurrency", "requests_per_second")
"""Fields every fan-out params model has: the plan builds the state machine from them."""
BatchSize = Annotated[int, Meta(ge=1, le=MAX_BATCH_SIZE, description="symbols per batch worker invocation")]
Concurrency = Annotated[
    int, Meta(ge=1, le=MAX_CONCURRENCY, description="batch workers running at once (the Map's MaxConcurrency)")
]
RequestsPerSecond = Annotated[
    float,
    Meta(gt=0, le=1000, description="requests per second to the source, for the whole task (shared by its batches)"),
]


class PayloadTooLargeError(PermanentTaskError):
    """The plan's batches and their reports would not fit in the state an inline Map carries."""


class BatchTransientError(TransientTaskError):
    """A batch could not finish for a reason another attempt may not have: Step Functions retries it."""


class BatchFailedError(PermanentTaskError):
    """A batch failed in a way another attempt would repeat: the machine's Catch records it and goes on."""


@dataclass(frozen=True, slots=True)
class WorkList:
    """What a planner returns: the slot's items (symbols), what every batch needs to know, and notes
    for the run record."""

    items: tuple[str, ...]
    shared: Mapping[str, Any] = field(default_factory=dict)
    """Handed to every batch as ``Batch.shared`` (the trading date, the fetch range): JSON values."""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Batch:
    index: int
    items: tuple[str, ...]
    shared: Mapping[str, Any]
    rate_per_second: float
    """This batch's share of the task's request rate."""


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one batch did, per item: done (data stored), up to date (nothing to fetch), without data
    from the source, or failed (with the reason)."""

    index: int
    planned: int
    done: int = 0
    up_to_date: int = 0
    without_data: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    items_written: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    requests: int = 0
    slowdowns: int = 0
    retries: int = 0
    write_requests: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "planned": self.planned,
            "done": self.done,
            "up_to_date": self.up_to_date,
            "without_data": list(self.without_data),
            # The report travels in the machine's state: each failed item once, the reasons counted.
            "failed": sorted(self.failed),
            "failure_reasons": dict(
                Counter(reason[:80] for reason in self.failed.values()).most_common(REASONS_LISTED)
            ),
            "items_written": self.items_written,
            "rejected": dict(self.rejected),
            "requests": self.requests,
            "slowdowns": self.slowdowns,
            "retries": self.retries,
            "write_requests": self.write_requests,
        }


def report_bound(batch_size: int) -> int:
    """The most bytes a batch report of ``batch_size`` items takes as JSON (every item listed as
    failed or without data, the most reasons at their longest): what the payload check assumes."""
    return REPORT_OVERHEAD_BYTES + REASONS_LISTED * REASON_BYTES + batch_size * ITEM_BYTES


def payload_bound(items: int, batch_size: int, *, fixed_bytes: int) -> int:
    """The largest state the machine carries for ``items`` in batches of ``batch_size``: the batches
    (the Map's items), every batch's report at its largest and ``fixed_bytes`` (the event, the plan's
    notes)."""
    batches = math.ceil(items / batch_size) if items else 0
    return fixed_bytes + items * ITEM_BYTES + batches * (BATCH_OVERHEAD_BYTES + report_bound(batch_size))


def max_inline_items(batch_size: int, *, fixed_bytes: int) -> int:
    """How many items an inline Map carries at this batch size: the switch point to a Distributed Map."""
    low, high = 0, INLINE_MAP_PAYLOAD_BUDGET
    while low < high:
        middle = (low + high + 1) // 2
        if payload_bound(middle, batch_size, fixed_bytes=fixed_bytes) <= INLINE_MAP_PAYLOAD_BUDGET:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass(frozen=True, slots=True)
class MapChoice:
    """Which Map runs a slot's batches, and why (:func:`choose_map`)."""

    distributed: bool
    batches: int
    state_bytes_bound: int
    """The largest state an inline Map of these batches would carry."""
    reason: str
    """Why, in a phrase, for the run record."""


def choose_map(items: int, batch_size: int, *, fixed_bytes: int) -> MapChoice:
    """Inline while both hold: the state at its largest within :data:`INLINE_MAP_PAYLOAD_BUDGET`,
    and the batches within :data:`MAX_INLINE_BATCHES`; otherwise a Distributed Map."""
    batches = math.ceil(items / batch_size) if items else 0
    bound = payload_bound(items, batch_size, fixed_bytes=fixed_bytes)
    if bound > INLINE_MAP_PAYLOAD_BUDGET:
        reason = f"state bound {bound:,} bytes > {INLINE_MAP_PAYLOAD_BUDGET:,}"
    elif batches > MAX_INLINE_BATCHES:
        reason = f"{batches} batches > {MAX_INLINE_BATCHES} in one history"
    else:
        return MapChoice(False, batches, bound, f"{batches} batches, state bound {bound:,} bytes")
    return MapChoice(True, batches, bound, reason)


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def split(items: Sequence[str], batch_size: int) -> list[tuple[str, ...]]:
    return [tuple(items[start : start + batch_size]) for start in range(0, len(items), batch_size)]


ParamsT = TypeVar("ParamsT", bound="TaskParams")

Planner = Callable[[Any, "TaskContext"], WorkList]
Worker = Callable[[Any, "TaskContext", Batch], BatchReport]
Summarizer = Callable[[Any, "TaskContext", Mapping[str, Any], Sequence[str]], Mapping[str, Any]]
"""Extra notes for the final record (coverage, say), given the plan's shared values and the universe."""


@dataclass(frozen=True, slots=True)
class FanOut(Generic[ParamsT]):
    """The declaration of a fan-out task type: its planner, its batch worker and the source's pace.

    The params model must have ``batch_size``, ``max_concurrency`` and ``requests_per_second``
    (``None``: ``default_requests_per_second``); the plan reads them to build the state machine.
    """

    planner: Planner
    worker: Worker
    default_requests_per_second: float
    """Gentle to the source: the total over every batch, whatever the concurrency."""
    summarizer: Summarizer | None = None
    worker_memory: int = 1024
    """MB of each batch worker (akshare and pandas load in every one)."""
    worker_timeout: int = 900
    planner_memory: int = 1024
    planner_timeout: int = 300
    summarize_memory: int = 512
    summarize_timeout: int = 300

    def settings(self, params: Any) -> FanOutSettings:
        rate = params.requests_per_second
        return FanOutSettings(
            batch_size=int(params.batch_size),
            max_concurrency=int(params.max_concurrency),
            requests_per_second=float(rate if rate is not None else self.default_requests_per_second),
        )


@dataclass(frozen=True, slots=True)
class FanOutSettings:
    batch_size: int
    max_concurrency: int
    requests_per_second: float

    @property
    def rate_per_batch(self) -> float:
        from kairos_runtime.rate_limit import per_batch_rate

        return per_batch_rate(self.requests_per_second, self.max_concurrency)


@dataclass(frozen=True, slots=True)
class SlotTotals:
    """The batches' reports added up, for the final record."""

    planned: int
    done: int
    up_to_date: int
    without_data: tuple[str, ...]
    failed: tuple[str, ...]
    failure_reasons: Mapping[str, int]
    failed_batches: tuple[int, ...]
    items_written: int
    rejected: Mapping[str, int]
    requests: int
    slowdowns: int
    retries: int
    write_requests: int

    @property
    def items_rejected(self) -> int:
        return sum(self.rejected.values())

    def detail(self) -> dict[str, Any]:
        failed = sorted(self.failed)
        return {
            "symbols_planned": self.planned,
            "symbols_done": self.done,
            "symbols_up_to_date": self.up_to_date,
            "symbols_without_data_count": len(self.without_data),
            "symbols_without_data": sorted(self.without_data)[:FAILED_SYMBOLS_LISTED],
            "symbols_failed_count": len(failed),
            "symbols_failed": failed[:FAILED_SYMBOLS_LISTED],
            "failure_reasons": dict(self.failure_reasons),
            "batches_failed": list(self.failed_batches),
            "bars_written": self.items_written,
            "rejected": dict(self.rejected),
            "requests": self.requests,
            "slowdowns": self.slowdowns,
            "retries": self.retries,
            "write_requests": self.write_requests,
        }


def add_up(batches: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]]) -> SlotTotals:
    """The reports of ``results`` (a batch's report, or ``{"index", "error"}`` for a batch the machine
    caught) against the planned ``batches``: a caught batch's symbols all count as failed."""
    by_index = {int(batch["index"]): tuple(batch["items"]) for batch in batches}
    done = up_to_date = written = requests = slowdowns = retries = write_requests = 0
    without: list[str] = []
    failed: set[str] = set()
    reasons: Counter[str] = Counter()
    failed_batches: list[int] = []
    rejected: Counter[str] = Counter()
    reported: set[int] = set()
    for result in results:
        index = int(result["index"])
        reported.add(index)
        if "error" in result:
            failed_batches.append(index)
            items = by_index.get(index, ())
            failed.update(items)
            reasons[f"batch failed: {result['error']}"] += len(items)
            continue
        done += int(result["done"])
        up_to_date += int(result["up_to_date"])
        without.extend(result["without_data"])
        failed.update(result["failed"])
        reasons.update({str(reason): int(count) for reason, count in result.get("failure_reasons", {}).items()})
        written += int(result["items_written"])
        rejected.update({str(reason): int(count) for reason, count in result["rejected"].items()})
        requests += int(result["requests"])
        slowdowns += int(result["slowdowns"])
        retries += int(result["retries"])
        write_requests += int(result["write_requests"])
    for index in sorted(set(by_index) - reported):  # a report that never came back is a failed batch
        failed_batches.append(index)
        failed.update(by_index[index])
        reasons["batch failed: no report"] += len(by_index[index])
    return SlotTotals(
        planned=sum(len(items) for items in by_index.values()),
        done=done,
        up_to_date=up_to_date,
        without_data=tuple(without),
        failed=tuple(sorted(failed)),
        failure_reasons=dict(reasons.most_common(10)),
        failed_batches=tuple(sorted(failed_batches)),
        items_written=written,
        rejected=dict(rejected),
        requests=requests,
        slowdowns=slowdowns,
        retries=retries,
        write_requests=write_requests,
    )
