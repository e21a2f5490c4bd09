"""Slot enumeration for `kairos backfill`: the schedule evaluator over a range of days in the task's
timezone, DST included."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kairos.catalog import load_catalog
from kairos.config import TasksFile
from kairos.operations.slots import TooManySlotsError, range_bounds, slots_between
from kairos.plan import TaskPlan, plan_stage
from kairos_runtime.events import iso_seconds

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def task(schedule: str, timezone: str = "UTC") -> TaskPlan:
    tasks_file = TasksFile.model_validate(
        {
            "stages": {"dev": {}},
            "tasks": [{"name": "t", "task_type": "simple_task_2", "schedule": schedule, "timezone": timezone}],
        }
    )
    return plan_stage(tasks_file, load_catalog(), "dev").task("t")


def slots(plan: TaskPlan, first: str, last: str, *, now: datetime = FAR_FUTURE) -> list[str]:
    found = slots_between(plan, date.fromisoformat(first), date.fromisoformat(last), now=now)
    return [iso_seconds(slot) for slot in found]


def test_a_daily_cron_gives_one_slot_a_day_both_ends_included() -> None:
    assert slots(task("cron(0 18 * * ? *)"), "2026-03-01", "2026-03-03") == [
        "2026-03-01T18:00:00Z",
        "2026-03-02T18:00:00Z",
        "2026-03-03T18:00:00Z",
    ]


def test_weekday_crons_have_no_weekend_slots() -> None:
    found = slots(task("cron(30 15 ? * MON-FRI *)", "Asia/Shanghai"), "2026-09-25", "2026-09-28")

    assert found == ["2026-09-25T07:30:00Z", "2026-09-28T07:30:00Z"]


def test_the_days_are_the_tasks_own_timezone() -> None:
    """00:30 in Shanghai on 1 March is still 28 February in UTC: it belongs to 1 March."""
    found = slots(task("cron(30 0 * * ? *)", "Asia/Shanghai"), "2026-03-01", "2026-03-01")

    assert found == ["2026-02-28T16:30:00Z"]


def test_spring_forward_skips_the_missing_wall_time_and_the_day_is_23_hours() -> None:
    """New York springs forward on 8 March 2026: 02:30 does not exist that day, as Scheduler skips it."""
    plan = task("cron(30 2 * * ? *)", "America/New_York")

    assert slots(plan, "2026-03-07", "2026-03-09") == ["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z"]
    start, end = range_bounds(plan, date(2026, 3, 8), date(2026, 3, 8))
    assert (end - start).total_seconds() == 23 * 3600


def test_fall_back_fires_once_in_the_repeated_hour() -> None:
    """1 November 2026: 01:30 happens twice in New York; the slot is the first one."""
    found = slots(task("cron(30 1 * * ? *)", "America/New_York"), "2026-11-01", "2026-11-01")

    assert found == ["2026-11-01T05:30:00Z"]


def test_an_hourly_rate_over_the_fall_back_day_counts_25_slots() -> None:
    """A rate counts elapsed time from the range's start: the 25-hour day holds 25 hourly slots."""
    assert len(slots(task("rate(1 hour)", "America/New_York"), "2026-11-01", "2026-11-01")) == 25


def test_no_slot_after_now() -> None:
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)

    assert slots(task("cron(0 18 * * ? *)"), "2026-03-01", "2026-03-05", now=now) == ["2026-03-01T18:00:00Z"]


def test_more_than_the_limit_stops_counting_early() -> None:
    with pytest.raises(TooManySlotsError) as many:
        slots_between(task("rate(1 minute)"), date(2026, 1, 1), date(2036, 1, 1), now=FAR_FUTURE, limit=500)

    assert (many.value.at_least, many.value.limit) == (501, 500)


def test_a_one_time_schedule_is_a_slot_only_inside_the_range() -> None:
    plan = task("at(2026-05-01T09:00:00)", "Europe/Paris")

    assert slots(plan, "2026-05-01", "2026-05-01") == ["2026-05-01T07:00:00Z"]
    assert slots(plan, "2026-05-02", "2026-05-03") == []


def test_a_rate_keeps_the_phase_of_a_slot_it_fired() -> None:
    """Scheduler counts a rate from the schedule's start: a recorded slot at 00:03 puts every slot at :03."""
    plan = task("rate(10 minutes)")
    phase = datetime(2026, 11, 20, 7, 3, tzinfo=UTC)

    found = slots_between(plan, date(2026, 3, 1), date(2026, 3, 1), now=FAR_FUTURE, phase=phase)

    assert [iso_seconds(slot) for slot in found[:2]] == ["2026-03-01T00:03:00Z", "2026-03-01T00:13:00Z"]
    assert len(found) == 144
    later = slots_between(
        plan, date(2026, 3, 1), date(2026, 3, 1), now=FAR_FUTURE, phase=datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    )
    assert iso_seconds(later[0]) == "2026-03-01T00:00:00Z", "a phase on the range's start is its first slot"
