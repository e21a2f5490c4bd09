"""A task's slots between two dates, in its own timezone, from the schedule evaluator.

``--from 2026-03-27 --to 2026-03-30`` means from 00:00 on the first date to the end of the last
one, both wall times in the task's timezone (so a DST change in the range shortens or lengthens a
day, as it does for the schedule itself). A rate schedule has no wall-clock anchor (Scheduler counts
from the schedule's start): its slots keep the phase of a slot it is known to have fired (the task's
latest recorded one, as ``kairos status`` reads it), else they count from 00:00 on the first date.
Only slots up to ``now`` are returned: a backfill never runs a slot that has not come yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kairos.plan import TaskPlan
from kairos.schedule import RateSchedule, next_fire_times, parse_schedule

BATCH = 512
"""Fire times asked of the evaluator at a time."""
DEFAULT_MAX_SLOTS = 500
"""More slots than this in one backfill need ``--yes`` (``--max-slots`` changes the number)."""


class TooManySlotsError(ValueError):
    """The range holds more than the allowed number of slots; ``at_least`` is how many were counted."""

    def __init__(self, at_least: int, limit: int) -> None:
        super().__init__(f"more than {limit} slots")
        self.at_least = at_least
        self.limit = limit


def parse_day(text: str) -> date:
    """``YYYY-MM-DD``; else ``ValueError`` saying the form."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def range_bounds(task: TaskPlan, first: date, last: date) -> tuple[datetime, datetime]:
    """The range's start (00:00 of ``first``) and end (00:00 after ``last``) as UTC instants."""
    if last < first:
        raise ValueError(f"--to {last.isoformat()} is before --from {first.isoformat()}")
    zone = ZoneInfo(task.timezone)
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def _fire_times(task: TaskPlan, start: datetime, phase: datetime | None) -> Iterator[datetime]:
    """Every fire time at or after ``start``, ascending (a rate's in step with ``phase``, when given)."""
    schedule = parse_schedule(task.schedule_expression)
    if isinstance(schedule, RateSchedule):
        # The first instant at or after start that is a whole number of intervals from the phase.
        moment = start if phase is None else phase - ((phase - start) // schedule.interval) * schedule.interval
        while True:
            yield moment
            moment += schedule.interval
    after = start - timedelta(microseconds=1)
    while True:
        batch = next_fire_times(schedule, timezone=task.timezone, after=after, count=BATCH)
        yield from batch
        if len(batch) < BATCH:
            return
        after = batch[-1]


def slots_between(
    task: TaskPlan,
    first: date,
    last: date,
    *,
    now: datetime,
    limit: int | None = None,
    phase: datetime | None = None,
) -> list[datetime]:
    """The task's slots from ``first`` to ``last`` (both included, its timezone), none after ``now``;
    a rate schedule's in step with ``phase`` (a slot it fired), else from 00:00 on ``first``.

    Raises :class:`TooManySlotsError` as soon as there are more than ``limit``.
    """
    start, end = range_bounds(task, first, last)
    end = min(end, now + timedelta(microseconds=1))
    slots: list[datetime] = []
    for moment in _fire_times(task, start, phase):
        if moment >= end:
            break
        slots.append(moment)
        if limit is not None and len(slots) > limit:
            raise TooManySlotsError(len(slots), limit)
    return slots
