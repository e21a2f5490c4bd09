"""The freshness rule of ``kairos status``, on real schedules through the schedule evaluator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kairos.operations.freshness import Freshness, RunOutcome, Verdict, allowance, due_slot, judge
from kairos.schedule import parse_schedule

FIVE_MINUTES_SLACK = timedelta(minutes=5)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def verdict(
    expression: str, runs: list[tuple[str, str]], now: str, *, tz: str = "UTC", enabled: bool = True
) -> Verdict:
    return judge(
        parse_schedule(expression),
        timezone=tz,
        enabled=enabled,
        allowed=FIVE_MINUTES_SLACK,
        runs=[RunOutcome(status, at(slot)) for status, slot in runs],
        now=at(now),
    )


def test_the_allowance_covers_every_lambda_attempt_and_the_waits_between() -> None:
    assert allowance(timeout_s=60, async_retry_attempts=2) == timedelta(minutes=3 + 1 + 2)
    assert allowance(timeout_s=60, async_retry_attempts=0) == timedelta(minutes=1)


def test_a_rate_task_is_ok_until_two_of_its_slots_passed_without_a_success() -> None:
    runs = [("SUCCEEDED", "2026-11-27T07:00:00")]
    # Slots at 07:05 and 07:10 (the phase comes from the recorded run); each may take 5 minutes.
    assert verdict("rate(5 minutes)", runs, "2026-11-27T07:14:59").freshness is Freshness.OK
    late = verdict("rate(5 minutes)", runs, "2026-11-27T07:15:00")
    assert late.freshness is Freshness.LATE
    assert late.due_since == at("2026-11-27T07:05:00")
    assert "2026-11-27T07:00Z" in late.reason


def test_a_rate_tasks_phase_comes_from_its_latest_record() -> None:
    runs = [("SUCCEEDED", "2026-11-27T07:02:00"), ("STARTED", "2026-11-27T07:07:00")]

    result = verdict("rate(5 minutes)", runs, "2026-11-27T07:16:00")

    # Finished by 07:11: the last slot then is 07:07, the one before 07:02, which succeeded.
    assert result.freshness is Freshness.OK
    assert result.due_since == at("2026-11-27T07:02:00")


def test_a_daily_cron_task_is_late_once_yesterdays_slot_has_no_success_and_todays_has_passed() -> None:
    runs = [("SUCCEEDED", "2026-11-25T18:00:00")]

    # On the 27th after 18:05 the last finished slot is the 27th's; the one before, the 26th's.
    assert verdict("cron(0 18 * * ? *)", runs, "2026-11-27T18:04:00").freshness is Freshness.OK
    late = verdict("cron(0 18 * * ? *)", runs, "2026-11-27T18:05:00")
    assert late.freshness is Freshness.LATE
    assert late.due_since == at("2026-11-26T18:00:00")


def test_a_weekend_is_no_slot_for_a_weekday_task() -> None:
    weekdays = "cron(15 7 ? * MON-FRI *)"
    runs = [("SUCCEEDED", "2026-11-26T07:15:00"), ("SUCCEEDED", "2026-11-27T07:15:00")]  # Thursday, Friday

    assert verdict(weekdays, runs, "2026-11-30T07:00:00").freshness is Freshness.OK  # Monday, before the run
    # Wednesday's success only: Thursday's slot, the one before Friday's, had none.
    wednesday = [("SUCCEEDED", "2026-11-25T07:15:00")]
    assert verdict(weekdays, wednesday, "2026-11-30T07:00:00").freshness is Freshness.LATE


def test_skipped_runs_of_a_trading_calendar_task_on_a_holiday_count_as_alive() -> None:
    # A Shanghai close-of-day task during the National Day week: the runs were recorded SKIPPED.
    daily_bars = "cron(30 15 ? * MON-FRI *)"
    runs = [("SKIPPED", "2026-10-05T07:30:00"), ("SKIPPED", "2026-10-06T07:30:00")]

    result = verdict(daily_bars, runs, "2026-10-06T12:00:00", tz="Asia/Shanghai")

    assert result.freshness is Freshness.OK
    assert result.due_since == at("2026-10-05T07:30:00")


def test_slots_follow_the_timezone_across_a_dst_change() -> None:
    # 09:00 in Berlin is 07:00 UTC in summer and 08:00 UTC after the change on 2026-10-25.
    schedule = parse_schedule("cron(0 9 * * ? *)")

    before = due_slot(schedule, timezone="Europe/Berlin", finished_by=at("2026-10-25T09:00:00"), anchor=None)
    after = due_slot(schedule, timezone="Europe/Berlin", finished_by=at("2026-10-26T09:00:00"), anchor=None)

    assert before == at("2026-10-24T07:00:00")
    assert after == at("2026-10-25T08:00:00")
    runs = [("SUCCEEDED", "2026-10-24T07:00:00")]
    assert verdict("cron(0 9 * * ? *)", runs, "2026-10-26T09:00:00", tz="Europe/Berlin").freshness is Freshness.LATE


def test_a_slot_dst_skips_is_not_one_that_should_have_run() -> None:
    # 02:30 does not exist in New York on 2026-03-08: the slots are the 7th's and the 9th's.
    schedule = parse_schedule("cron(30 2 * * ? *)")

    due = due_slot(schedule, timezone="America/New_York", finished_by=at("2026-03-09T08:00:00"), anchor=None)

    assert due == at("2026-03-07T07:30:00")


def test_a_failed_final_outcome_is_failing_even_when_a_retry_is_still_running() -> None:
    runs = [("FAILED", "2026-11-27T07:00:00"), ("STARTED", "2026-11-27T07:05:00"), ("SUCCEEDED", "2026-11-27T06:55:00")]

    assert verdict("rate(5 minutes)", runs, "2026-11-27T07:06:00").freshness is Freshness.FAILING


def test_a_later_success_clears_failing() -> None:
    runs = [("FAILED", "2026-11-27T07:00:00"), ("SUCCEEDED", "2026-11-27T07:05:00")]

    assert verdict("rate(5 minutes)", runs, "2026-11-27T07:06:00").freshness is Freshness.OK


@pytest.mark.parametrize(
    ("enabled", "runs", "expected"),
    [(False, [("FAILED", "2026-11-27T07:00:00")], Freshness.PAUSED), (True, [], Freshness.NEVER_RAN)],
)
def test_paused_and_never_ran(enabled: bool, runs: list[tuple[str, str]], expected: Freshness) -> None:
    assert verdict("rate(5 minutes)", runs, "2026-12-27T07:06:00", enabled=enabled).freshness is expected


def test_only_late_and_failing_fail_the_check() -> None:
    assert {state for state in Freshness if state.fails_check} == {Freshness.LATE, Freshness.FAILING}


def test_a_one_time_task_is_late_only_once_its_time_and_allowance_passed() -> None:
    runs = [("STARTED", "2026-11-27T07:00:00")]

    assert verdict("at(2026-11-27T07:00:00)", runs, "2026-11-27T07:04:00").freshness is Freshness.OK
    assert verdict("at(2026-11-27T07:00:00)", runs, "2026-11-27T07:06:00").freshness is Freshness.LATE


def test_an_every_minute_cron_is_judged_from_a_short_window() -> None:
    runs = [("SUCCEEDED", "2026-11-27T07:00:00")]

    result = verdict("cron(* * * * ? *)", runs, "2026-11-27T07:10:00")

    assert result.freshness is Freshness.LATE
    assert result.due_since == at("2026-11-27T07:04:00")
