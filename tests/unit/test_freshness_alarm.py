"""A freshness alarm's window: derived from the same rule `kairos status` applies, within what a
CloudWatch alarm can look back, and named and described so on-call knows what to run."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from kairos.limits import (
    ALARM_DESCRIPTION_MAX_LENGTH,
    ALARM_NAME_MAX_LENGTH,
    ALARM_RANGE_MAX_SECONDS,
    ALARM_SHORT_PERIOD_RANGE_MAX_SECONDS,
)
from kairos.operations.freshness import (
    DST_MARGIN,
    METRIC_DELAY,
    Freshness,
    RunOutcome,
    alive_window,
    allowance,
    judge,
    longest_two_gaps,
)
from kairos.plan import (
    GAUGE_ALARMS,
    FreshnessPlan,
    dead_letter_alarm,
    failure_alarm,
    freshness_periods,
    freshness_plan,
)
from kairos.schedule import next_fire_times, parse_schedule
from kairos_runtime import metrics

TRADING_HOURS = "cron(0/15 9-11,13-14 ? * MON-FRI *)"
LONGEST_STAGE = "s" * 16
LONGEST_TASK = "t" + "-x" * 23 + "y"


def span(expression: str, timezone: str = "UTC") -> timedelta | None:
    return longest_two_gaps(parse_schedule(expression), timezone=timezone)


def plan_for(expression: str, timezone: str = "UTC", *, enabled: bool = True, timeout_s: int = 60) -> FreshnessPlan:
    return freshness_plan(
        "dev",
        "job",
        schedule=parse_schedule(expression),
        timezone=timezone,
        enabled=enabled,
        timeout_s=timeout_s,
        async_retries=2,
    )


@pytest.mark.parametrize(
    ("expression", "timezone", "expected"),
    [
        ("rate(5 minutes)", "UTC", timedelta(minutes=10)),
        ("rate(1 day)", "Asia/Shanghai", timedelta(days=2)),
        ("cron(0 2 * * ? *)", "UTC", timedelta(hours=48)),
        # Europe/London falls back in October: that night's gap is 25 hours.
        ("cron(0 9 * * ? *)", "Europe/London", timedelta(hours=49)),
        # Friday 14:45 to Monday 09:00, then 15 minutes: a weekend is one long gap, not a miss.
        (TRADING_HOURS, "Asia/Shanghai", timedelta(hours=66, minutes=30)),
        ("cron(0 18 ? * MON-FRI *)", "UTC", timedelta(hours=96)),
        ("cron(0 6 ? * MON *)", "UTC", timedelta(days=14)),
        ("at(2026-06-01T00:00:00)", "UTC", None),
        ("cron(0 12 1 1 ? 2026)", "UTC", None),
    ],
)
def test_the_longest_two_gaps(expression: str, timezone: str, expected: timedelta | None) -> None:
    assert span(expression, timezone) == expected


def test_a_scan_cut_short_in_a_zone_with_dst_allows_the_transition_it_did_not_reach() -> None:
    assert span("cron(* * * * ? *)", "UTC") == timedelta(minutes=2)
    assert span("cron(* * * * ? *)", "Europe/London") == timedelta(minutes=2) + DST_MARGIN
    # Shanghai has no daylight saving time: nothing to allow.
    assert span("cron(0/5 * * * ? *)", "Asia/Shanghai") == timedelta(minutes=10)


def test_the_window_adds_every_attempt_and_the_metrics_delay() -> None:
    allowed = allowance(timeout_s=300, async_retry_attempts=2)
    assert allowed == timedelta(minutes=18)
    window = alive_window(parse_schedule(TRADING_HOURS), timezone="Asia/Shanghai", allowed=allowed)
    assert window == timedelta(hours=66, minutes=30) + allowed + METRIC_DELAY


@pytest.mark.parametrize(
    ("expression", "timezone", "slot"),
    [
        # The last Friday slot of a trading week, and a daily slot the night London falls back.
        (TRADING_HOURS, "Asia/Shanghai", datetime(2026, 3, 6, 6, 45, tzinfo=UTC)),
        ("cron(0 9 * * ? *)", "Europe/London", datetime(2026, 10, 24, 8, 0, tzinfo=UTC)),
        ("rate(10 minutes)", "UTC", datetime(2026, 3, 6, 6, 40, tzinfo=UTC)),
    ],
)
def test_the_alarm_never_fires_while_status_says_ok(expression: str, timezone: str, slot: datetime) -> None:
    """A success at ``slot`` keeps `kairos status` OK for exactly the window minus the metric's delay."""
    schedule = parse_schedule(expression)
    allowed = allowance(timeout_s=300, async_retry_attempts=2)
    window = alive_window(schedule, timezone=timezone, allowed=allowed)
    assert window is not None
    runs = [RunOutcome("SUCCEEDED", slot)]

    def verdict(now: datetime) -> Freshness:
        return judge(schedule, timezone=timezone, enabled=True, allowed=allowed, runs=runs, now=now).freshness

    quiet_until = slot + window - METRIC_DELAY
    assert verdict(quiet_until - timedelta(minutes=1)) is Freshness.OK
    assert verdict(quiet_until) is Freshness.LATE
    if not expression.startswith("rate"):  # a rate's phase is its anchor (the run's own slot)
        assert next_fire_times(schedule, timezone=timezone, after=slot - timedelta(seconds=1), count=1) == [slot]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (timedelta(minutes=21), (60, 22)),
        (timedelta(minutes=33), (60, 34)),
        (timedelta(hours=2), (300, 25)),
        (timedelta(hours=23), (3600, 24)),
        (timedelta(hours=49, minutes=23), (3600, 51)),
        (timedelta(hours=167), (3600, 168)),
        (timedelta(hours=167, seconds=1), None),
        (timedelta(days=14), None),
    ],
)
def test_periods_within_cloudwatchs_limits(window: timedelta, expected: tuple[int, int] | None) -> None:
    assert freshness_periods(window) == expected


def test_every_window_is_covered_by_all_but_the_newest_period() -> None:
    """``(N - 1) x period >= window`` (the newest period may have just begun), within the range limits."""
    for minutes in range(1, 167 * 60, 7):
        window = timedelta(minutes=minutes)
        periods = freshness_periods(window)
        assert periods is not None, minutes
        period, count = periods
        assert (count - 1) * period >= window.total_seconds()
        assert count * period <= (ALARM_SHORT_PERIOD_RANGE_MAX_SECONDS if period < 3600 else ALARM_RANGE_MAX_SECONDS)
        # Detected at most two periods after the window.
        assert count * period <= window.total_seconds() + 2 * period


def test_a_rate_tasks_alarm() -> None:
    freshness = plan_for("rate(5 minutes)")
    alarm = freshness.alarm
    assert alarm is not None
    # 2 x 5 min + 3 attempts of 60 s + 1 and 2 min of retry waits + 5 min of metric delay.
    assert freshness.window_seconds == 21 * 60
    assert (alarm.period_seconds, alarm.evaluation_periods, alarm.datapoints_to_alarm) == (60, 22, 22)
    assert (alarm.threshold, alarm.comparison, alarm.treat_missing_data) == (1, "LessThanThreshold", "breaching")
    [watched] = alarm.metrics.values()
    assert (watched.namespace, watched.metric_name, watched.statistic) == (metrics.NAMESPACE, metrics.RUNS_ALIVE, "Sum")
    assert dict(watched.dimensions) == {
        metrics.SERVICE_DIMENSION: metrics.SERVICE,
        metrics.STAGE_DIMENSION: "dev",
        metrics.TASK_DIMENSION: "job",
    }
    assert alarm.alarm_name == "kairos-dev-job-late"
    assert freshness.note == "kairos-dev-job-late: no success or skip for 21 min (22 periods of 1 min)"


def test_a_trading_hours_tasks_alarm_sleeps_through_the_weekend() -> None:
    freshness = plan_for(TRADING_HOURS, "Asia/Shanghai", timeout_s=300)
    assert freshness.alarm is not None
    assert freshness.window_seconds == (66 * 60 + 30 + 18 + 5) * 60
    assert (freshness.alarm.period_seconds, freshness.alarm.evaluation_periods) == (3600, 68)


def test_no_alarm_where_cloudwatch_cannot_look_back_far_enough() -> None:
    freshness = plan_for("cron(0 6 ? * MON *)")
    assert freshness.alarm is None
    assert freshness.window_seconds is not None
    assert freshness.window_seconds > ALARM_RANGE_MAX_SECONDS
    assert "longer than a CloudWatch alarm looks back" in freshness.note
    assert "kairos status --stage dev" in freshness.note


def test_no_alarm_for_a_one_time_schedule_or_a_disabled_task() -> None:
    once = plan_for("at(2026-06-01T00:00:00)")
    assert (once.alarm, once.window_seconds) == (None, None)
    assert "no steady rhythm" in once.note
    assert "kairos status --stage dev" in once.note
    disabled = plan_for("rate(5 minutes)", enabled=False)
    assert disabled.alarm is None
    assert disabled.note == "none: the task is disabled in stage dev"


def test_names_and_descriptions_fit_and_say_what_to_run_for_the_longest_names() -> None:
    freshness = freshness_plan(
        LONGEST_STAGE,
        LONGEST_TASK,
        schedule=parse_schedule(TRADING_HOURS),
        timezone="Asia/Shanghai",
        enabled=True,
        timeout_s=900,
        async_retries=2,
    ).alarm
    assert freshness is not None
    task_alarms = [
        failure_alarm(LONGEST_STAGE, LONGEST_TASK),
        freshness,
        *(alarm_for(LONGEST_STAGE, LONGEST_TASK) for alarm_for in GAUGE_ALARMS.values()),
    ]
    for alarm in task_alarms:
        assert len(alarm.alarm_name) <= ALARM_NAME_MAX_LENGTH
        assert len(alarm.description) <= ALARM_DESCRIPTION_MAX_LENGTH
        assert alarm.alarm_name.startswith(f"kairos-{LONGEST_STAGE}-{LONGEST_TASK}-")
        assert alarm.description.startswith(f"Kairos stage {LONGEST_STAGE}, task {LONGEST_TASK}: ")
        assert f"kairos status --stage {LONGEST_STAGE}" in alarm.description
        assert f"kairos logs {LONGEST_TASK} --stage {LONGEST_STAGE}" in alarm.description
    stage_alarm = dead_letter_alarm(LONGEST_STAGE)
    assert stage_alarm.alarm_name == f"kairos-{LONGEST_STAGE}-dead-letters"
    assert f"kairos status --stage {LONGEST_STAGE}" in stage_alarm.description
    assert len({alarm.alarm_name for alarm in task_alarms}) == len(task_alarms)


def test_the_windows_are_whole_minutes() -> None:
    for expression in ("rate(7 minutes)", "cron(0 9 * * ? *)", TRADING_HOURS):
        freshness = plan_for(expression, "Europe/London")
        assert freshness.window_seconds is not None
        assert freshness.window_seconds % 60 == 0
        assert math.isfinite(freshness.window_seconds)
