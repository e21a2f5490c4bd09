"""Is a task running on time? A pure rule on its schedule and its latest run records.

``kairos status`` applies it now; a freshness alarm can later derive its window from the same
:func:`allowance` and :func:`judge` (nothing here reads AWS or the clock).

The rule (issue 11): a task is LATE when no run SUCCEEDED or was SKIPPED for a slot at or after the
*slot before the last one that should have finished*. A slot should have finished once its run had
time for every attempt: the function's timeout for each of Lambda's attempts, plus Lambda's waits
between them (one minute before the first retry, two before the second: "Asynchronous invocation",
AWS Lambda Developer Guide). Judging against the slot before that one leaves one slot of slack, so a
run that is merely slow, or one lost delivery, is not yet LATE. A SKIPPED run (a holiday, outside
trading hours) counts as alive; days a cron does not fire (a weekend) are no slots at all.

The other verdicts: PAUSED (the schedule is not enabled), NEVER RAN (no run recorded at all), and
FAILING (the latest final outcome, SUCCEEDED / SKIPPED / FAILED, is FAILED), which wins over LATE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from kairos.schedule import AtSchedule, RateSchedule, Schedule, next_fire_times

LAMBDA_RETRY_WAITS = (timedelta(minutes=1), timedelta(minutes=2))
"""Lambda's waits before its first and second asynchronous retry."""
ALIVE = frozenset({"SUCCEEDED", "SKIPPED"})
FINAL = frozenset({"SUCCEEDED", "SKIPPED", "FAILED"})
FIRST_LOOKBACK = timedelta(hours=1)
MAX_LOOKBACK = timedelta(days=800)
"""Far enough for a yearly cron to have had two slots."""
_BATCH = 256
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Freshness(StrEnum):
    OK = "OK"
    LATE = "LATE"
    FAILING = "FAILING"
    PAUSED = "PAUSED"
    NEVER_RAN = "NEVER RAN"

    @property
    def fails_check(self) -> bool:
        """Whether ``kairos status`` exits 1 for it."""
        return self in (Freshness.LATE, Freshness.FAILING)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What the rule needs of a run record."""

    status: str
    scheduled_time: datetime


@dataclass(frozen=True, slots=True)
class Verdict:
    freshness: Freshness
    due_since: datetime | None
    """The slot a success or skip was due for (the slot before the last that should have finished)."""
    reason: str


def allowance(*, timeout_s: int, async_retry_attempts: int) -> timedelta:
    """How long after its slot a run may still finish: every attempt's timeout and the waits between."""
    waits = sum(LAMBDA_RETRY_WAITS[:async_retry_attempts], timedelta())
    return timedelta(seconds=timeout_s) * (1 + async_retry_attempts) + waits


def due_slot(schedule: Schedule, *, timezone: str, finished_by: datetime, anchor: datetime | None) -> datetime | None:
    """The slot before the last one at or before ``finished_by``; ``None`` when there are not two.

    A rate schedule fires every interval from when it was created, which the expression does not
    say: ``anchor`` (a slot it is known to have fired, the latest recorded one) gives its phase.
    """
    if isinstance(schedule, RateSchedule):
        if anchor is None:
            return None
        steps = (finished_by - anchor) // schedule.interval
        return anchor + (steps - 1) * schedule.interval
    if isinstance(schedule, AtSchedule):
        return None
    lookback = FIRST_LOOKBACK
    while lookback <= MAX_LOOKBACK:
        last_two = _last_two(schedule, timezone, finished_by - lookback, finished_by)
        if len(last_two) == 2:
            return last_two[0]
        lookback *= 4
    return None


def _last_two(schedule: Schedule, timezone: str, start: datetime, end: datetime) -> list[datetime]:
    found: list[datetime] = []
    after = start
    while True:
        batch = next_fire_times(schedule, timezone=timezone, after=after, count=_BATCH)
        within = [moment for moment in batch if moment <= end]
        found = (found + within)[-2:]
        if len(within) < _BATCH:
            return found
        after = within[-1]


def judge(
    schedule: Schedule,
    *,
    timezone: str,
    enabled: bool,
    allowed: timedelta,
    runs: list[RunOutcome],
    now: datetime,
) -> Verdict:
    """The task's freshness from its latest runs (any order) at ``now``."""
    if not enabled:
        return Verdict(Freshness.PAUSED, None, "its schedule is disabled")
    if not runs:
        return Verdict(Freshness.NEVER_RAN, None, "no run recorded")
    newest_first = sorted(runs, key=lambda run: run.scheduled_time, reverse=True)
    final = next((run for run in newest_first if run.status in FINAL), None)
    if final is not None and final.status == "FAILED":
        return Verdict(Freshness.FAILING, None, "its latest finished run FAILED")
    if isinstance(schedule, AtSchedule):
        (slot,) = next_fire_times(schedule, timezone=timezone, after=EPOCH, count=1) or (None,)
        if final is None and slot is not None and slot + allowed <= now:
            return Verdict(Freshness.LATE, slot, "its one run did not finish")
        return Verdict(Freshness.OK, slot, "")
    due = due_slot(schedule, timezone=timezone, finished_by=now - allowed, anchor=newest_first[0].scheduled_time)
    if due is None:
        return Verdict(Freshness.OK, None, "no slot is due yet")
    alive = next((run for run in newest_first if run.status in ALIVE), None)
    if alive is None or alive.scheduled_time < due:
        since = f"since {alive.scheduled_time:%Y-%m-%dT%H:%MZ}" if alive else "ever"
        return Verdict(Freshness.LATE, due, f"no success or skip for the slot of {due:%Y-%m-%dT%H:%MZ} ({since})")
    return Verdict(Freshness.OK, due, "")
