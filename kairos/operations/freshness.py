"""Is a task running on time? A pure rule on its schedule and its latest run records.

``kairos status`` applies it now; each task's freshness alarm (planned in :mod:`kairos.plan`) derives
its window from the same rule with :func:`alive_window` (nothing here reads AWS or the clock).

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
from zoneinfo import ZoneInfo

from kairos.schedule import AtSchedule, RateSchedule, Schedule, next_fire_times
from kairos_runtime.metrics import ALIVE_OUTCOMES

LAMBDA_RETRY_WAITS = (timedelta(minutes=1), timedelta(minutes=2))
"""Lambda's waits before its first and second asynchronous retry."""
ALIVE = frozenset(status.value for status in ALIVE_OUTCOMES)
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


METRIC_DELAY = timedelta(minutes=5)
"""How late a run's counter may reach CloudWatch after the run ends (EMF lines are extracted from
the log stream): a freshness alarm's window allows it on top of the rule's."""
WINDOW_START = datetime(2026, 1, 5, tzinfo=UTC)
"""A fixed start keeps a derived window (and so the template) the same at every synth."""
WINDOW_HORIZON = timedelta(days=366)
"""A year of fires: every weekday, month length and both DST transitions of the task's zone."""


SCAN_FIRES = 4096
"""Fires of a cron read in the horizon at most: a schedule firing more often is cut short there (a
few days of an every-minute cron, months of a trading-hours one), which sees its weekly rhythm."""
DST_MARGIN = timedelta(hours=1)
"""Added to a span cut short in a zone with daylight saving time: the most a transition the scan did
not reach can lengthen a gap."""


def longest_two_gaps(
    schedule: Schedule, *, timezone: str, start: datetime = WINDOW_START, horizon: timedelta = WINDOW_HORIZON
) -> timedelta | None:
    """The longest span of two consecutive gaps between fires (slot to the slot after the next).

    ``None`` for a schedule that fires fewer than three times in the horizon (an ``at`` schedule, a
    cron limited to a few years): there is no steady rhythm to miss.
    """
    if isinstance(schedule, RateSchedule):
        return 2 * schedule.interval
    if isinstance(schedule, AtSchedule):
        return None
    end = start + horizon
    longest: timedelta | None = None
    last_two: list[datetime] = []
    after, read = start, 0
    while read < SCAN_FIRES:
        batch = next_fire_times(schedule, timezone=timezone, after=after, count=_BATCH)
        for moment in batch:
            if moment > end:
                return longest
            if len(last_two) == 2:
                span = moment - last_two[0]
                longest = span if longest is None or span > longest else longest
            last_two = [*last_two[-1:], moment]
        if len(batch) < _BATCH:
            return longest
        after, read = batch[-1], read + len(batch)
    if longest is not None and observes_dst(timezone, start, end):
        longest += DST_MARGIN
    return longest


def observes_dst(timezone: str, start: datetime, end: datetime) -> bool:
    """Whether ``timezone``'s UTC offset changes between ``start`` and ``end`` (sampled weekly)."""
    zone = ZoneInfo(timezone)
    weeks = int((end - start) / timedelta(weeks=1)) + 1
    return len({(start + timedelta(weeks=week)).astimezone(zone).utcoffset() for week in range(weeks)}) > 1


def alive_window(schedule: Schedule, *, timezone: str, allowed: timedelta) -> timedelta | None:
    """How long a task that :func:`judge` keeps OK may go without a success or skip: the longest two
    gaps between its slots, its :func:`allowance` and the metric's delay. ``None``: no steady rhythm.

    Under the rule, a success or skip for slot *s0* keeps the task OK until the slot two after it
    (*s2*) should have finished: ``s2 - s0 + allowed`` after *s0*, and its counter is published no
    earlier than *s0*. An alarm on "no success or skip within this window" therefore never fires
    while ``kairos status`` says OK, and fires soon after it says LATE.
    """
    span = longest_two_gaps(schedule, timezone=timezone)
    return None if span is None else span + allowed + METRIC_DELAY
