"""Tests for kairos.schedule: parsing, validation, fire times (with DST) and descriptions.

Expected fire times were worked out by hand from the calendar: 2026-01-01 is a Thursday; in
America/New_York DST starts 2026-03-08 at 02:00 EST (clocks jump to 03:00 EDT) and ends
2026-11-01 at 02:00 EDT (clocks go back to 01:00 EST).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aws_croniter import AwsCroniter

from kairos.schedule import (
    DEFAULT_TIMEZONE,
    AtSchedule,
    CronSchedule,
    RateSchedule,
    Schedule,
    ScheduleError,
    describe_schedule,
    next_fire_times,
    parse_schedule,
    validate_timezone,
)

NEW_YORK = "America/New_York"
NEW_YORK_ZONE = ZoneInfo(NEW_YORK)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def fire(expression: str, after: datetime, count: int = 3, timezone: str = "UTC") -> list[datetime]:
    return next_fire_times(parse_schedule(expression), timezone=timezone, after=after, count=count)


# --------------------------------------------------------------------------------------------
# Valid expressions


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("rate(1 minute)", RateSchedule(1, "minute"), id="rate-1-minute"),
        pytest.param("rate(5 minutes)", RateSchedule(5, "minute"), id="rate-5-minutes"),
        pytest.param("rate(1 hour)", RateSchedule(1, "hour"), id="rate-1-hour"),
        pytest.param("rate(12 hours)", RateSchedule(12, "hour"), id="rate-12-hours"),
        pytest.param("rate(1 day)", RateSchedule(1, "day"), id="rate-1-day"),
        pytest.param("rate(7 days)", RateSchedule(7, "day"), id="rate-7-days"),
        pytest.param("cron(0 10 * * ? *)", CronSchedule("0", "10", "*", "*", "?", "*"), id="cron-daily-10"),
        pytest.param("at(2026-12-01T09:30:00)", AtSchedule(datetime(2026, 12, 1, 9, 30)), id="at-date-time"),
    ],
)
def test_parse_returns_the_schedule(expression: str, expected: Schedule) -> None:
    assert parse_schedule(expression) == expected


# The first ten are examples from the AWS docs; the rest use each
# documented wildcard in the fields where the table allows it.
VALID_EXPRESSIONS = [
    "cron(0 10 * * ? *)",
    "cron(15 12 * * ? *)",
    "cron(0 18 ? * MON-FRI *)",
    "cron(0 8 1 * ? *)",
    "cron(0/10 * ? * MON-FRI *)",
    "cron(0/5 8-17 ? * MON-FRI *)",
    "cron(0 9 ? * 2#1 *)",
    "cron(0 0 L * ? *)",
    "cron(0 0 ? * 6L *)",
    "cron(0 0 15W * ? *)",
    "cron(15 10 ? * 6L 2002-2005)",
    "cron(0,15,30,45 * * * ? *)",
    "cron(1/10 * * * ? *)",
    "cron(0 0-23/6 * * ? *)",
    "cron(0 12 1-15 * ? *)",
    "cron(0 12 1-31/2 * ? *)",
    "cron(0 0 1 JAN,APR,JUL,OCT ? *)",
    "cron(0 0 1 JAN-MAR ? 2026-2030)",
    "cron(0 0 1 */3 ? *)",
    "cron(0 0 1 1 ? */2)",
    "cron(0 0 1 1 ? 2026,2028)",
    "cron(0 0 ? * SUN-SAT *)",
    "cron(0 0 ? * 1,7 *)",
    "cron(0 0 ? * L *)",
    "cron(0 0 ? * 7#5 *)",
    "cron(0 0 1W * ? *)",
    "cron(59 23 31 12 ? 2199)",
    "cron(0 0 1 1 ? 1970)",
    # reversed ranges wrap past the end of their field (docs/adr/0006-cron-ranges-wrap.md)
    "cron(0/30 20-2 ? * MON-FRI *)",
    "cron(58-2 * * * ? *)",
    "cron(0 22-2/2 * * ? *)",
    "cron(0 0 28-3 * ? *)",
    "cron(0 0 1 NOV-FEB ? *)",
    "cron(0 0 1 12-1/2 ? *)",
    "cron(0 0 ? * FRI-MON *)",
    "cron(0 0 ? * 7-1 *)",
    "cron(0 5-5 * * ? *)",
    "rate(1 minute)",
    "rate(10 minutes)",
    "rate(1 hour)",
    "rate(2 hours)",
    "rate(1 day)",
    "rate(30 days)",
    "at(2026-12-01T09:30:00)",
    "at(2028-02-29T23:59:59)",
]


@pytest.mark.parametrize("expression", VALID_EXPRESSIONS, ids=VALID_EXPRESSIONS)
def test_valid_expressions_round_trip(expression: str) -> None:
    assert parse_schedule(expression).expression == expression


# --------------------------------------------------------------------------------------------
# Rejections: one case per rule, each matched on its message


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        # shape
        pytest.param("", "unrecognised schedule expression", id="empty"),
        pytest.param("every 5 minutes", "unrecognised schedule expression", id="prose"),
        pytest.param("RATE(5 minutes)", "unrecognised schedule expression", id="uppercase-keyword"),
        pytest.param(" rate(5 minutes)", "leading or trailing whitespace", id="leading-space"),
        pytest.param("rate(5 minutes) ", "leading or trailing whitespace", id="trailing-space"),
        pytest.param("rate(5 minutes", r"missing closing '\)'", id="unclosed"),
        # rate
        pytest.param("rate(0 minutes)", "value must be a positive integer", id="rate-zero"),
        pytest.param("rate(-1 minutes)", "value must be a positive integer", id="rate-negative"),
        pytest.param("rate(1.5 hours)", "value must be a positive integer", id="rate-fraction"),
        pytest.param("rate(05 minutes)", "value must be a positive integer", id="rate-leading-zero"),
        pytest.param("rate(five minutes)", "value must be a positive integer", id="rate-word"),
        pytest.param("rate(1 minutes)", r"use 'minute' \(singular\) for a value of 1", id="rate-1-plural"),
        pytest.param("rate(1 days)", r"use 'day' \(singular\) for a value of 1", id="rate-1-days"),
        pytest.param("rate(5 minute)", r"use 'minutes' \(plural\) for a value of 5", id="rate-5-singular"),
        pytest.param("rate(2 hour)", r"use 'hours' \(plural\) for a value of 2", id="rate-2-hour"),
        pytest.param("rate(5 seconds)", "unit must be one of", id="rate-seconds"),
        pytest.param("rate(1 week)", "unit must be one of", id="rate-week"),
        pytest.param("rate(5 Minutes)", "unit must be one of", id="rate-capitalised-unit"),
        pytest.param("rate(5 minutess)", "unit must be one of", id="rate-double-s"),
        pytest.param("rate(5  minutes)", "with one space", id="rate-two-spaces"),
        pytest.param("rate( 5 minutes)", "with one space", id="rate-inner-leading-space"),
        pytest.param("rate(5minutes)", "with one space", id="rate-no-space"),
        pytest.param("rate(5 minutes extra)", "with one space", id="rate-three-parts"),
        # cron shape
        pytest.param("cron(0 10 * * ?)", "expected 6 fields", id="cron-5-fields"),
        pytest.param("cron(0 0 10 * * ? *)", "expected 6 fields", id="cron-7-fields"),
        pytest.param("cron(0  10 * * ? *)", "single spaces", id="cron-double-space"),
        pytest.param("cron(0\t10 * * ? *)", "single spaces", id="cron-tab"),
        pytest.param("cron( 0 10 * * ? *)", "single spaces", id="cron-inner-leading-space"),
        pytest.param("cron()", "expected 6 fields .* got 0", id="cron-empty"),
        # day-of-month / day-of-week pairing
        pytest.param(
            "cron(0 0 * * * *)",
            "day-of-month and day-of-week cannot both be set; one must be '\\?'",
            id="both-days-star",
        ),
        pytest.param("cron(0 0 1 * MON *)", "cannot both be set", id="both-days-values"),
        pytest.param("cron(0 0 ? * ? *)", "cannot both be '\\?'", id="both-days-question"),
        # '?' and '#' outside their fields
        pytest.param("cron(? 0 * * ? *)", "'\\?' is only allowed in day-of-month and day-of-week", id="q-minutes"),
        pytest.param("cron(0 ? * * ? *)", "not in hours", id="q-hours"),
        pytest.param("cron(0 0 1 ? ? *)", "not in month", id="q-month"),
        pytest.param("cron(0 0 1 ? * ?)", "cannot both be set", id="q-year-shifts-days"),
        pytest.param("cron(0 0 1 * ? ?)", "not in year", id="q-year"),
        pytest.param("cron(0 0 1,? * ? *)", "'\\?' must be the whole field", id="q-in-dom-list"),
        pytest.param("cron(0 0 ? * MON,? *)", "'\\?' must be the whole field", id="q-in-dow-list"),
        pytest.param("cron(1#2 0 * * ? *)", "'#' is only allowed in day-of-week", id="hash-minutes"),
        pytest.param("cron(0 0 1#2 * ? *)", "'#' is only allowed in day-of-week", id="hash-dom"),
        # ranges of values
        pytest.param("cron(60 0 * * ? *)", "minutes: 60 is out of range 0-59", id="minute-60"),
        pytest.param("cron(0 24 * * ? *)", "hours: 24 is out of range 0-23", id="hour-24"),
        pytest.param("cron(0 0 0 * ? *)", "day-of-month: 0 is out of range 1-31", id="dom-0"),
        pytest.param("cron(0 0 32 * ? *)", "day-of-month: 32 is out of range 1-31", id="dom-32"),
        pytest.param("cron(0 0 1 0 ? *)", "month: 0 is out of range 1-12", id="month-0"),
        pytest.param("cron(0 0 1 13 ? *)", "month: 13 is out of range 1-12", id="month-13"),
        pytest.param("cron(0 0 ? * 0 *)", "day-of-week: 0 is out of range 1-7", id="dow-0"),
        pytest.param("cron(0 0 ? * 8 *)", "day-of-week: 8 is out of range 1-7", id="dow-8"),
        pytest.param("cron(0 0 1 1 ? 1969)", "year: 1969 is out of range 1970-2199", id="year-1969"),
        pytest.param("cron(0 0 1 1 ? 2200)", "year: 2200 is out of range 1970-2199", id="year-2200"),
        pytest.param("cron(0 0 1 1 ? 2026-2200)", "year: 2200 is out of range", id="year-range-end"),
        pytest.param("cron(-1 0 * * ? *)", "a value is missing", id="minute-negative"),
        # names
        pytest.param("cron(0 0 ? * mon *)", "names must be uppercase: write 'MON'", id="dow-lowercase"),
        pytest.param("cron(0 0 1 jan ? *)", "names must be uppercase: write 'JAN'", id="month-lowercase"),
        pytest.param("cron(0 0 ? * MONDAY *)", "'MONDAY' is not a valid value", id="dow-long-name"),
        pytest.param("cron(0 0 ? * JAN *)", "'JAN' is not a valid value; expected 1-7 or SUN-SAT", id="dow-month-name"),
        pytest.param(
            "cron(0 0 1 MON ? *)", "'MON' is not a valid value; expected 1-12 or JAN-DEC", id="month-dow-name"
        ),
        pytest.param("cron(JAN 0 * * ? *)", "minutes: 'JAN' is not a valid value", id="minute-name"),
        # list and range syntax
        pytest.param(
            "cron(0 0 1 1 ? 2030-2026)",
            "year: range '2030-2026' is reversed; years don't wrap, so write the earlier year first",
            id="reversed-year",
        ),
        pytest.param("cron(0 0 1 1 ? 2030-2026/2)", "years don't wrap", id="reversed-year-step"),
        pytest.param("cron(0 0 1 1 ? 2026,2199-1970)", "years don't wrap", id="reversed-year-in-list"),
        pytest.param("cron(0 20-24 * * ? *)", "hours: 24 is out of range 0-23", id="wrap-end-out-of-range"),
        pytest.param("cron(0 22-2/24 * * ? *)", "from 1 to 23, got '24'", id="wrap-step-too-large"),
        pytest.param("cron(0 0 ? * FRI-MON/2 *)", "'/' is not allowed in day-of-week", id="wrap-step-dow"),
        pytest.param("cron(*-5 0 * * ? *)", "'\\*' is not a valid value", id="star-range"),
        pytest.param("cron(5- 0 * * ? *)", "minutes: a value is missing", id="open-range"),
        pytest.param("cron(1-2-3 0 * * ? *)", "'2-3' is not a valid value", id="double-range"),
        pytest.param("cron(1,,2 0 * * ? *)", "a value is missing", id="empty-list-item"),
        pytest.param("cron(0, 0 * * ? *)", "minutes: a value is missing", id="trailing-comma"),
        pytest.param("cron(0 ,1 * * ? *)", "hours: a value is missing", id="leading-comma"),
        # steps
        pytest.param("cron(0/0 * * * ? *)", "step after '/' must be an integer from 1 to 59, got '0'", id="step-0"),
        pytest.param("cron(*/60 * * * ? *)", "from 1 to 59, got '60'", id="step-60-minutes"),
        pytest.param("cron(0 */24 * * ? *)", "from 1 to 23, got '24'", id="step-24-hours"),
        pytest.param("cron(0 0 1 */12 ? *)", "from 1 to 11, got '12'", id="step-12-months"),
        pytest.param("cron(*/ * * * ? *)", "step after '/'", id="step-missing"),
        pytest.param("cron(*/x * * * ? *)", "step after '/'", id="step-word"),
        pytest.param("cron(0/5/2 * * * ? *)", "step after '/'", id="step-twice"),
        pytest.param("cron(0 0 ? * 1/2 *)", "'/' is not allowed in day-of-week", id="step-dow"),
        pytest.param("cron(0 0 ? * */2 *)", "'/' is not allowed in day-of-week", id="star-step-dow"),
        # L
        pytest.param("cron(L 0 * * ? *)", "minutes: 'L' is not a valid value", id="L-minutes"),
        pytest.param("cron(0 0 1 L ? *)", "month: 'L' is not a valid value", id="L-month"),
        pytest.param("cron(0 0 LW * ? *)", "'LW' is not supported", id="LW"),
        pytest.param("cron(0 0 L-3 * ? *)", "'L-3' is not supported", id="L-offset-dom"),
        pytest.param("cron(0 0 5L * ? *)", "'5L' is not supported", id="nL-in-dom"),
        pytest.param("cron(0 0 L,15 * ? *)", "'L,15' is not supported", id="L-in-dom-list"),
        pytest.param("cron(0 0 ? * L-2 *)", "'L' must be the whole field or follow one day number", id="L-offset-dow"),
        pytest.param("cron(0 0 ? * 6L,2 *)", "'L' must be the whole field", id="nL-in-dow-list"),
        pytest.param("cron(0 0 ? * FRIL *)", "'L' must be the whole field", id="named-L"),
        pytest.param("cron(0 0 ? * 8L *)", "day-of-week: 8 is out of range 1-7", id="8L"),
        pytest.param("cron(0 0 ? * 0L *)", "day-of-week: 0 is out of range 1-7", id="0L"),
        # W
        pytest.param("cron(0 W * * ? *)", "hours: 'W' is not a valid value", id="W-hours"),
        pytest.param("cron(0 0 0W * ? *)", "day-of-month: 0 is out of range 1-31", id="0W"),
        pytest.param("cron(0 0 32W * ? *)", "day-of-month: 32 is out of range 1-31", id="32W"),
        pytest.param("cron(0 0 1W,15W * ? *)", "'1W,15W' is not supported", id="W-list"),
        pytest.param("cron(0 0 W * ? *)", "'W' is not supported", id="bare-W"),
        pytest.param("cron(0 0 ? * 2W *)", "'2W' is not a valid value", id="W-in-dow"),
        # #
        pytest.param("cron(0 0 ? * 2#6 *)", "occurrence after '#' must be 1-5, got 6", id="hash-6"),
        pytest.param("cron(0 0 ? * 2#0 *)", "occurrence after '#' must be 1-5, got 0", id="hash-0"),
        pytest.param("cron(0 0 ? * 8#1 *)", "day-of-week: 8 is out of range 1-7", id="hash-day-8"),
        pytest.param("cron(0 0 ? * 3#1,6#3 *)", "only one expression is allowed with '#'", id="hash-list"),
        pytest.param("cron(0 0 ? * MON#1 *)", "'#' takes the form 'd#n'", id="hash-name"),
        pytest.param("cron(0 0 ? * 2# *)", "'#' takes the form 'd#n'", id="hash-missing-n"),
        pytest.param("cron(0 0 ? * 1-3#1 *)", "'#' takes the form 'd#n'", id="hash-range"),
        # at
        pytest.param("at(2026-12-01 09:30:00)", "expected 'at\\(yyyy-mm-ddThh:mm:ss\\)'", id="at-space"),
        pytest.param("at(2026-12-01T09:30)", "expected 'at\\(yyyy-mm-ddThh:mm:ss\\)'", id="at-no-seconds"),
        pytest.param("at(2026-12-01T09:30:00Z)", "with no offset", id="at-zulu"),
        pytest.param("at(2026-12-01T09:30:00+01:00)", "with no offset", id="at-offset"),
        pytest.param("at(2026-12-01T09:30:00.5)", "with no offset or fraction", id="at-fraction"),
        pytest.param("at(2026-12-01)", "expected 'at\\(", id="at-date-only"),
        pytest.param("at(26-12-01T09:30:00)", "expected 'at\\(", id="at-short-year"),
        pytest.param("at(2026-02-30T00:00:00)", "is not a valid date and time", id="at-feb-30"),
        pytest.param("at(2026-13-01T00:00:00)", "is not a valid date and time", id="at-month-13"),
        pytest.param("at(2026-12-01T24:00:00)", "is not a valid date and time", id="at-hour-24"),
        pytest.param("at(2027-02-29T00:00:00)", "is not a valid date and time", id="at-not-leap"),
        # absurdly long numbers get a message, not int()'s digit-limit error
        pytest.param(f"rate({'9' * 5000} days)", "too large", id="rate-huge"),
        pytest.param(f"cron({'9' * 5000} 0 * * ? *)", "minutes: 9+ is out of range 0-59", id="minute-huge"),
        pytest.param(f"cron(*/{'9' * 5000} 0 * * ? *)", "step after '/'", id="step-huge"),
        pytest.param(f"cron(0 0 ? * 2#{'9' * 5000} *)", "must be 1-5", id="hash-huge"),
    ],
)
def test_invalid_expressions_are_rejected(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression)


def test_schedule_error_is_a_value_error() -> None:
    # Pydantic validators turn ValueError into a validation error, so this keeps config simple.
    assert issubclass(ScheduleError, ValueError)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: RateSchedule(0, "minute"), "positive integer", id="rate-zero"),
        pytest.param(lambda: RateSchedule(True, "minute"), "positive integer", id="rate-bool"),
        pytest.param(lambda: RateSchedule(5, "week"), "unit must be one of", id="rate-unit"),  # type: ignore[arg-type]
        pytest.param(lambda: RateSchedule(10**12, "day"), "too large", id="rate-overflow"),
        pytest.param(lambda: CronSchedule("60", "0", "*", "*", "?", "*"), "out of range", id="cron-field"),
        pytest.param(lambda: CronSchedule("0", "0", "*", "*", "*", "*"), "cannot both be set", id="cron-days"),
        pytest.param(lambda: AtSchedule(datetime(2026, 1, 1, tzinfo=UTC)), "must be naive", id="at-aware"),
        pytest.param(lambda: AtSchedule(datetime(2026, 1, 1, 0, 0, 0, 5)), "microseconds", id="at-micro"),
    ],
)
def test_direct_construction_is_validated(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        build()


@pytest.mark.parametrize(
    ("schedule", "expression", "interval"),
    [
        pytest.param(RateSchedule(1, "minute"), "rate(1 minute)", timedelta(minutes=1), id="1-minute"),
        pytest.param(RateSchedule(15, "minute"), "rate(15 minutes)", timedelta(minutes=15), id="15-minutes"),
        pytest.param(RateSchedule(1, "hour"), "rate(1 hour)", timedelta(hours=1), id="1-hour"),
        pytest.param(RateSchedule(3, "day"), "rate(3 days)", timedelta(days=3), id="3-days"),
    ],
)
def test_rate_expression_and_interval(schedule: RateSchedule, expression: str, interval: timedelta) -> None:
    assert schedule.expression == expression
    assert schedule.interval == interval


# --------------------------------------------------------------------------------------------
# Time zones


@pytest.mark.parametrize("name", ["UTC", "America/New_York", "Asia/Shanghai", "Europe/London", "Etc/GMT+5"])
def test_known_timezones_are_returned(name: str) -> None:
    assert validate_timezone(name) == name


@pytest.mark.parametrize(
    "name",
    ["Mars/Base", "", "america/new_york", "localtime", "../etc/passwd", "UTC ", "+05:00"],
    ids=["mars", "empty", "lowercase", "localtime", "path", "trailing-space", "offset"],
)
def test_unknown_timezones_are_rejected(name: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(f"unknown timezone {name!r}")):
        validate_timezone(name)


def test_default_timezone_is_utc() -> None:
    assert validate_timezone(DEFAULT_TIMEZONE) == "UTC"


# --------------------------------------------------------------------------------------------
# Fire times


@pytest.mark.parametrize(
    ("expression", "timezone", "after", "expected"),
    [
        pytest.param(
            "cron(0 18 ? * MON-FRI *)",
            "UTC",
            utc(2026, 1, 9, 18, 0),  # Friday 18:00 exactly: strictly after, so not included
            [utc(2026, 1, 12, 18, 0), utc(2026, 1, 13, 18, 0), utc(2026, 1, 14, 18, 0)],
            id="weekdays-skip-weekend",
        ),
        pytest.param(
            "cron(0/10 * ? * MON-FRI *)",
            "UTC",
            utc(2026, 1, 9, 23, 45),
            [utc(2026, 1, 9, 23, 50), utc(2026, 1, 12, 0, 0), utc(2026, 1, 12, 0, 10)],
            id="every-10-minutes-weekdays-across-weekend",
        ),
        pytest.param(
            "cron(0/5 8-17 ? * MON-FRI *)",
            "UTC",
            utc(2026, 1, 9, 17, 52),
            [utc(2026, 1, 9, 17, 55), utc(2026, 1, 12, 8, 0), utc(2026, 1, 12, 8, 5)],
            id="business-hours-across-weekend",
        ),
        pytest.param(
            "cron(15 12 * * ? *)",
            "UTC",
            utc(2026, 1, 1, 12, 15, 0, 1),  # a microsecond past the slot
            [utc(2026, 1, 2, 12, 15), utc(2026, 1, 3, 12, 15), utc(2026, 1, 4, 12, 15)],
            id="strictly-after-sub-second",
        ),
        pytest.param(
            "cron(0 8 1 * ? *)",
            "UTC",
            utc(2026, 11, 15),
            [utc(2026, 12, 1, 8), utc(2027, 1, 1, 8), utc(2027, 2, 1, 8)],
            id="monthly-across-year-end",
        ),
        pytest.param(
            "cron(0 18 * * ? *)",
            "Asia/Shanghai",
            utc(2026, 1, 1),
            [utc(2026, 1, 1, 10), utc(2026, 1, 2, 10), utc(2026, 1, 3, 10)],
            id="shanghai-18-is-10z",
        ),
        pytest.param(
            "cron(0 9 * * ? *)",
            "Europe/London",
            utc(2026, 3, 28),
            [utc(2026, 3, 28, 9), utc(2026, 3, 29, 8), utc(2026, 3, 30, 8)],
            id="london-bst-starts",
        ),
        pytest.param(
            "cron(30 2 * * ? *)",
            NEW_YORK,
            utc(2026, 3, 6, 12),
            # 03-07 02:30 EST = 07:30Z; 03-08 02:30 doesn't exist: skipped; then 02:30 EDT = 06:30Z
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)],
            id="spring-forward-skips",
        ),
        pytest.param(
            "cron(0/30 * * * ? *)",
            NEW_YORK,
            utc(2026, 3, 8, 6, 0),  # 01:00 EST
            # 01:30 EST, then 02:00 and 02:30 don't exist, then 03:00 EDT
            [utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 7, 30)],
            id="spring-forward-half-hourly",
        ),
        pytest.param(
            "cron(30 1 * * ? *)",
            NEW_YORK,
            utc(2026, 10, 31),
            # 10-31 01:30 EDT; 11-01 01:30 once, at its first occurrence (EDT, 05:30Z); 11-02 EST
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
            id="fall-back-runs-once-first",
        ),
        pytest.param(
            "cron(30 1 * * ? *)",
            NEW_YORK,
            utc(2026, 11, 1, 6, 0),  # 01:00 EST, inside the repeated hour
            # The repeated 01:30 EST (06:30Z) doesn't run again
            [utc(2026, 11, 2, 6, 30), utc(2026, 11, 3, 6, 30)],
            id="fall-back-repeat-not-run",
        ),
        pytest.param(
            "cron(0/30 * * * ? *)",
            NEW_YORK,
            utc(2026, 11, 1, 5, 0),  # 01:00 EDT
            # 01:30 EDT; the repeated 01:00 and 01:30 EST (06:00Z, 06:30Z) don't run; 02:00 EST
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 7, 0), utc(2026, 11, 1, 7, 30)],
            id="fall-back-half-hourly",
        ),
        pytest.param(
            "cron(0 0 15W * ? *)",
            "UTC",
            utc(2026, 8, 1),
            # 2026-08-15 is a Saturday: Friday the 14th; 09-15 is a Tuesday; 11-15 is a Sunday: Monday 16th
            [utc(2026, 8, 14), utc(2026, 9, 15), utc(2026, 10, 15), utc(2026, 11, 16)],
            id="15W",
        ),
        pytest.param(
            "cron(0 0 1W * ? *)",
            "UTC",
            utc(2026, 7, 15),
            # 2026-08-01 is a Saturday: Monday the 3rd (not Friday 31 July); 11-01 is a Sunday: Monday 2nd
            [utc(2026, 8, 3), utc(2026, 9, 1), utc(2026, 10, 1), utc(2026, 11, 2)],
            id="1W",
        ),
        pytest.param(
            "cron(0 0 31W * ? *)",
            "UTC",
            utc(2026, 5, 1),
            # 05-31 is a Sunday: Friday 29th; June has no 31st; 07-31 is a Friday
            [utc(2026, 5, 29), utc(2026, 7, 31)],
            id="31W",
        ),
        pytest.param(
            "cron(0 0 L * ? *)",
            "UTC",
            utc(2026, 1, 31),  # the slot itself is excluded
            [utc(2026, 2, 28), utc(2026, 3, 31), utc(2026, 4, 30)],
            id="L-last-day",
        ),
        pytest.param(
            "cron(0 0 L 2 ? *)",
            "UTC",
            utc(2027, 3, 1),
            [utc(2028, 2, 29), utc(2029, 2, 28)],
            id="L-leap-february",
        ),
        pytest.param(
            "cron(0 0 ? * 6L *)",
            "UTC",
            utc(2026, 1, 1),
            [utc(2026, 1, 30), utc(2026, 2, 27), utc(2026, 3, 27)],
            id="6L-last-friday",
        ),
        pytest.param(
            "cron(0 0 ? * L *)",
            "UTC",
            utc(2026, 1, 1),
            [utc(2026, 1, 3), utc(2026, 1, 10), utc(2026, 1, 17)],
            id="L-alone-is-saturday",
        ),
        pytest.param(
            "cron(0 9 ? * 2#1 *)",
            "UTC",
            utc(2026, 1, 1),
            [utc(2026, 1, 5, 9), utc(2026, 2, 2, 9), utc(2026, 3, 2, 9)],
            id="2#1-first-monday",
        ),
        pytest.param(
            "cron(0 0 ? * 2#5 *)",
            "UTC",
            utc(2026, 1, 1),
            # only months with five Mondays
            [utc(2026, 3, 30), utc(2026, 6, 29), utc(2026, 8, 31)],
            id="2#5-fifth-monday",
        ),
        pytest.param(
            "cron(0 0 ? * 1 *)",
            "UTC",
            utc(2026, 1, 1),
            [utc(2026, 1, 4), utc(2026, 1, 11), utc(2026, 1, 18)],
            id="1-is-sunday",
        ),
        pytest.param(
            "cron(0 0 1 1 ? */50)",
            "UTC",
            utc(2026, 1, 1),
            [utc(2070, 1, 1), utc(2120, 1, 1), utc(2170, 1, 1)],
            id="year-step-from-1970",
        ),
        pytest.param(
            "cron(0 0 29 2 ? *)",
            "UTC",
            utc(2097, 3, 1),
            # 2100 isn't a leap year; aws-croniter gives up before reaching 2104
            [utc(2104, 2, 29), utc(2108, 2, 29)],
            id="sparse-feb-29",
        ),
        pytest.param(
            "cron(0 0 1 1 ? *)",
            "UTC",
            datetime(1960, 6, 1, tzinfo=UTC),
            [utc(1970, 1, 1), utc(1971, 1, 1)],
            id="before-1970",
        ),
    ],
)
def test_cron_fire_times(expression: str, timezone: str, after: datetime, expected: list[datetime]) -> None:
    assert fire(expression, after, count=len(expected), timezone=timezone) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        pytest.param("cron(0 0 1 1 ? 2027)", utc(2026, 1, 1), [utc(2027, 1, 1)], id="single-year"),
        pytest.param(
            "cron(0 0 1 JAN,JUL ? 2026-2027)",
            utc(2026, 3, 1),
            [utc(2026, 7, 1), utc(2027, 1, 1), utc(2027, 7, 1)],
            id="year-range",
        ),
        pytest.param("cron(0 0 * * ? *)", utc(2199, 12, 30, 12), [utc(2199, 12, 31)], id="ends-at-2199"),
        pytest.param("cron(0 0 * * ? *)", utc(2200, 1, 1), [], id="after-2199"),
        pytest.param("cron(0 0 1 1 ? 2025)", utc(2026, 1, 1), [], id="year-passed"),
        pytest.param("cron(0 0 30 2 ? *)", utc(2026, 1, 1), [], id="never-fires"),
    ],
)
def test_year_field_bounds_the_search(expression: str, after: datetime, expected: list[datetime]) -> None:
    assert fire(expression, after, count=5) == expected


# The EventBridge and Scheduler user guides list cron(0/30 20-2 ? * MON-FRI *) as "every 30 minutes
# Monday through Friday between 10:00 pm on the starting day to 2:00 am on the following day".
# Under the Quartz rules AWS follows, the hours are 20-23 and 0-2 and each fire time's own day must
# be Monday to Friday: 20:00 to 02:30, so Friday night runs until 23:30, Saturday's small hours
# don't run and Monday's do. These tests hold the expression to that meaning, not to the wording.
DOCUMENTED_WRAP = "cron(0/30 20-2 ? * MON-FRI *)"


def half_hours(year: int, month: int, day: int, hours: tuple[int, ...]) -> list[datetime]:
    return [utc(year, month, day, hour, minute) for hour in hours for minute in (0, 30)]


@pytest.mark.parametrize(
    ("expression", "timezone", "after", "expected"),
    [
        pytest.param(
            DOCUMENTED_WRAP,
            "UTC",
            utc(2026, 1, 9, 19, 59),  # a Friday
            # Friday evening; nothing on Saturday 00:00-02:30; Monday's small hours, then its evening
            [
                *half_hours(2026, 1, 9, (20, 21, 22, 23)),
                *half_hours(2026, 1, 12, (0, 1, 2)),
                utc(2026, 1, 12, 20),
            ],
            id="documented-friday-to-monday",
        ),
        pytest.param(
            DOCUMENTED_WRAP,
            "UTC",
            utc(2026, 1, 8, 23, 45),  # a Thursday
            # across midnight into Friday: 00:00 to 02:30, the last run at 02:30 (hour 2 is in range)
            [*half_hours(2026, 1, 9, (0, 1, 2)), utc(2026, 1, 9, 20)],
            id="documented-across-midnight",
        ),
        pytest.param(
            DOCUMENTED_WRAP,
            "Asia/Shanghai",
            utc(2026, 1, 9, 11, 59),  # Friday 19:59 in Shanghai
            # Friday 20:00-23:30 CST is 12:00Z-15:30Z; Saturday 00:00 CST (still Friday in UTC) does
            # not run, since the day of week is the local one; Monday 00:00 CST is Sunday 16:00Z
            [*half_hours(2026, 1, 9, (12, 13, 14, 15)), utc(2026, 1, 11, 16)],
            id="documented-weekday-is-local",
        ),
        pytest.param(
            "cron(58-2 23 * * ? *)",
            "UTC",
            utc(2026, 12, 31, 23, 30),
            # minutes 58-59 and 0-2 of hour 23: a wrapped field doesn't carry into the next one
            [
                utc(2026, 12, 31, 23, 58),
                utc(2026, 12, 31, 23, 59),
                utc(2027, 1, 1, 23, 0),
                utc(2027, 1, 1, 23, 1),
                utc(2027, 1, 1, 23, 2),
                utc(2027, 1, 1, 23, 58),
            ],
            id="minutes-58-2",
        ),
        pytest.param(
            "cron(0 22-2/2 * * ? *)",
            "UTC",
            utc(2026, 12, 31, 21),
            # the step counts on across midnight: 22, 24 = 0, 26 = 2
            [utc(2026, 12, 31, 22), utc(2027, 1, 1, 0), utc(2027, 1, 1, 2), utc(2027, 1, 1, 22)],
            id="hours-22-2-step-2-across-year",
        ),
        pytest.param(
            "cron(0 20-2/3 * * ? *)",
            "UTC",
            utc(2026, 1, 1, 19),
            # 20, 23, 26 = 2: hour 1 is skipped, as it is the step that wraps, not a restart at 0
            [utc(2026, 1, 1, 20), utc(2026, 1, 1, 23), utc(2026, 1, 2, 2), utc(2026, 1, 2, 20)],
            id="hours-20-2-step-3",
        ),
        pytest.param(
            "cron(0 12 28-3 * ? *)",
            "UTC",
            utc(2026, 4, 27),
            # April has 30 days: 28-30, then 1-3 of May; May has its 31st
            [
                *(utc(2026, 4, day, 12) for day in (28, 29, 30)),
                *(utc(2026, 5, day, 12) for day in (1, 2, 3, 28, 29, 30, 31)),
                utc(2026, 6, 1, 12),
            ],
            id="dom-28-3-in-a-30-day-month",
        ),
        pytest.param(
            "cron(0 12 28-3 * ? *)",
            "UTC",
            utc(2026, 2, 27),
            # February 2026 ends on the 28th; 29-31 simply don't exist that month
            [utc(2026, 2, 28, 12), *(utc(2026, 3, day, 12) for day in (1, 2, 3, 28))],
            id="dom-28-3-in-february",
        ),
        pytest.param(
            "cron(0 12 28-3/2 * ? *)",
            "UTC",
            utc(2026, 4, 1),
            # 28, 30, 32 = 1, 34 = 3, counted on a 31-day field whatever the month's length
            [utc(2026, month, day, 12) for month in (4, 5) for day in (1, 3, 28, 30)],
            id="dom-28-3-step-2",
        ),
        pytest.param(
            "cron(0 9 1 NOV-FEB ? *)",
            "Asia/Tokyo",
            utc(2026, 10, 15),
            # 09:00 JST is 00:00Z; across the year end, then nothing until November
            [utc(2026, 11, 1), utc(2026, 12, 1), utc(2027, 1, 1), utc(2027, 2, 1), utc(2027, 11, 1)],
            id="months-NOV-FEB-in-a-zone",
        ),
        pytest.param(
            "cron(0 0 1 NOV-FEB/2 ? *)",
            "UTC",
            utc(2026, 10, 15),
            [utc(2026, 11, 1), utc(2027, 1, 1), utc(2027, 11, 1)],
            id="months-NOV-FEB-step-2",
        ),
        pytest.param(
            "cron(0 1 ? * FRI-MON *)",
            "UTC",
            utc(2026, 1, 8),  # a Thursday
            [utc(2026, 1, day, 1) for day in (9, 10, 11, 12, 16)],
            id="dow-FRI-MON",
        ),
        pytest.param(
            "cron(0 1 ? * 7-1 *)",
            "UTC",
            utc(2026, 1, 8),
            [utc(2026, 1, day, 1) for day in (10, 11, 17)],
            id="dow-7-1-is-the-weekend",
        ),
        pytest.param(
            "cron(0 5-5 * * ? *)",
            "UTC",
            utc(2026, 1, 1),
            # equal ends are one value, not a wrap all the way round
            [utc(2026, 1, day, 5) for day in (1, 2, 3)],
            id="equal-ends",
        ),
        pytest.param(
            "cron(30 22-2 * * ? *)",
            NEW_YORK,
            utc(2026, 3, 8, 2),  # 03-07 21:00 EST
            # 22:30 and 23:30 EST, 00:30 and 01:30 EST; 02:30 on 03-08 doesn't exist; 22:30 EDT
            [*(utc(2026, 3, 8, hour, 30) for hour in (3, 4, 5, 6)), utc(2026, 3, 9, 2, 30)],
            id="wrapped-hours-spring-forward",
        ),
        pytest.param(
            "cron(30 22-2 * * ? *)",
            NEW_YORK,
            utc(2026, 11, 1, 2),  # 10-31 22:00 EDT
            # 22:30, 23:30, 00:30, 01:30 EDT; 01:30 isn't repeated in EST; 02:30 EST; 22:30 EST
            [*(utc(2026, 11, 1, hour, 30) for hour in (2, 3, 4, 5)), utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 3, 30)],
            id="wrapped-hours-fall-back",
        ),
    ],
)
def test_wrapped_ranges_fire_times(expression: str, timezone: str, after: datetime, expected: list[datetime]) -> None:
    assert fire(expression, after, count=len(expected), timezone=timezone) == expected


@pytest.mark.parametrize(
    ("wrapped", "listed"),
    [
        pytest.param("cron(58-2 * * * ? *)", "cron(0,1,2,58,59 * * * ? *)", id="minutes"),
        pytest.param("cron(0 22-2/2 * * ? *)", "cron(0 0,2,22 * * ? *)", id="hours-step"),
        pytest.param("cron(0 0 30-1 * ? *)", "cron(0 0 1,30,31 * ? *)", id="day-of-month"),
        pytest.param("cron(0 0 1 DEC-JAN ? *)", "cron(0 0 1 JAN,DEC ? *)", id="month-names"),
        pytest.param("cron(0 0 1 10-3/3 ? *)", "cron(0 0 1 1,10 ? *)", id="month-step"),
        pytest.param("cron(0 0 ? * SAT-MON *)", "cron(0 0 ? * 1,2,7 *)", id="day-of-week"),
    ],
)
def test_a_wrapped_range_fires_as_its_listed_values(wrapped: str, listed: str) -> None:
    after = utc(2026, 1, 1)
    assert fire(wrapped, after, count=40) == fire(listed, after, count=40)


def test_results_are_utc_whatever_the_zone_of_after() -> None:
    after = datetime(2026, 1, 1, 8, 0, tzinfo=NEW_YORK_ZONE)  # 13:00Z
    times = fire("cron(0 18 * * ? *)", after, count=2, timezone="Asia/Shanghai")
    assert times == [utc(2026, 1, 2, 10), utc(2026, 1, 3, 10)]
    assert all(moment.tzinfo is UTC for moment in times)


def test_after_in_second_pass_of_repeated_hour_moves_on() -> None:
    # 01:45 EST on fall-back day is 06:45Z. Wall times 01:46-01:59 already ran during the first
    # (EDT) pass of that hour, so the next run is 02:00 EST.
    after = datetime(2026, 11, 1, 1, 45, fold=1, tzinfo=NEW_YORK_ZONE)
    assert after.astimezone(UTC) == utc(2026, 11, 1, 6, 45)
    assert fire("cron(* * * * ? *)", after, count=2, timezone=NEW_YORK) == [
        utc(2026, 11, 1, 7, 0),
        utc(2026, 11, 1, 7, 1),
    ]


@pytest.mark.parametrize(
    ("expression", "timezone", "after", "expected"),
    [
        pytest.param(
            "rate(5 minutes)",
            "UTC",
            utc(2026, 1, 1, 0, 0, 30),
            [utc(2026, 1, 1, 0, 5, 30), utc(2026, 1, 1, 0, 10, 30), utc(2026, 1, 1, 0, 15, 30)],
            id="anchored-at-after",
        ),
        pytest.param(
            "rate(1 day)",
            NEW_YORK,
            utc(2026, 3, 7, 12),
            # 24-hour steps: the local time moves from 07:00 EST to 08:00 EDT
            [utc(2026, 3, 8, 12), utc(2026, 3, 9, 12), utc(2026, 3, 10, 12)],
            id="days-are-24-hours-across-dst",
        ),
        pytest.param(
            "rate(2 hours)",
            "Asia/Shanghai",
            utc(2026, 1, 1, 23),
            [utc(2026, 1, 2, 1), utc(2026, 1, 2, 3), utc(2026, 1, 2, 5)],
            id="zone-independent",
        ),
        pytest.param(
            "at(2026-12-01T09:30:00)",
            NEW_YORK,
            utc(2026, 1, 1),
            [utc(2026, 12, 1, 14, 30)],
            id="at-future-est",
        ),
        pytest.param(
            "at(2026-12-01T09:30:00)",
            "UTC",
            utc(2026, 12, 1, 9, 30),
            [],
            id="at-equal-is-past",
        ),
        pytest.param(
            "at(2026-12-01T09:30:00)",
            "UTC",
            utc(2027, 1, 1),
            [],
            id="at-past",
        ),
        pytest.param(
            "at(2026-03-08T02:30:00)",
            NEW_YORK,
            utc(2026, 1, 1),
            # in the gap: shifted forward by the gap, to 03:30 EDT
            [utc(2026, 3, 8, 7, 30)],
            id="at-in-gap-shifts-forward",
        ),
        pytest.param(
            "at(2026-11-01T01:30:00)",
            NEW_YORK,
            utc(2026, 1, 1),
            [utc(2026, 11, 1, 5, 30)],
            id="at-in-overlap-first",
        ),
    ],
)
def test_rate_and_at_fire_times(expression: str, timezone: str, after: datetime, expected: list[datetime]) -> None:
    assert fire(expression, after, count=3, timezone=timezone) == expected


@pytest.mark.parametrize(
    ("expression", "count"),
    [
        pytest.param("cron(* * * * ? *)", 7, id="cron"),
        pytest.param("rate(1 minute)", 7, id="rate"),
        pytest.param("cron(* * * * ? *)", 0, id="cron-zero"),
        pytest.param("rate(1 minute)", 0, id="rate-zero"),
        pytest.param("at(2030-01-01T00:00:00)", 0, id="at-zero"),
    ],
)
def test_count_is_honoured(expression: str, count: int) -> None:
    times = fire(expression, utc(2026, 1, 1), count=count)
    assert len(times) == count
    assert times == sorted(times)
    assert len(set(times)) == count


def test_naive_after_raises() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times(parse_schedule("rate(5 minutes)"), timezone="UTC", after=datetime(2026, 1, 1), count=1)


def test_negative_count_raises() -> None:
    with pytest.raises(ValueError, match="count must not be negative"):
        next_fire_times(parse_schedule("rate(5 minutes)"), timezone="UTC", after=utc(2026, 1, 1), count=-1)


def test_unknown_timezone_raises_schedule_error() -> None:
    with pytest.raises(ScheduleError, match="unknown timezone 'Mars/Base'"):
        next_fire_times(parse_schedule("cron(0 0 * * ? *)"), timezone="Mars/Base", after=utc(2026, 1, 1), count=1)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        pytest.param("cron(0 0 1 1 ? *)", datetime.min.replace(tzinfo=UTC), [utc(1970, 1, 1)], id="cron-min"),
        pytest.param("cron(0 0 1 1 ? *)", datetime.max.replace(tzinfo=UTC), [], id="cron-max"),
        pytest.param("rate(1 day)", datetime.max.replace(tzinfo=UTC), [], id="rate-max"),
        pytest.param("at(9999-12-31T23:00:00)", utc(2026, 1, 1), [datetime(9999, 12, 31, 23, tzinfo=UTC)], id="at-max"),
    ],
)
def test_datetime_limits_do_not_overflow(expression: str, after: datetime, expected: list[datetime]) -> None:
    assert fire(expression, after, count=1) == expected


def test_rate_stops_before_datetime_overflows() -> None:
    step = timedelta(days=1_000_000)  # about 2738 years: the third step passes the year 9999
    times = next_fire_times(RateSchedule(1_000_000, "day"), timezone="UTC", after=utc(2026, 1, 1), count=5)
    assert times == [utc(2026, 1, 1) + step, utc(2026, 1, 1) + 2 * step]


@pytest.mark.parametrize("expression", ["cron(0 0 30 2 ? *)", "cron(0 0 31W 2 ? *)"])
def test_schedules_that_never_fire_yield_nothing(expression: str) -> None:
    # The search ends at the year field's bound (2199) instead of looping forever.
    assert next_fire_times(parse_schedule(expression), timezone=NEW_YORK, after=utc(2026, 1, 1), count=10) == []


# aws-croniter evaluates in UTC only; on these it agrees with the docs, so it serves as an oracle.
ORACLE_EXPRESSIONS = [
    "0 10 * * ? *",
    "15 12 * * ? *",
    "0 18 ? * MON-FRI *",
    "0 8 1 * ? *",
    "0/10 * ? * MON-FRI *",
    "0/5 8-17 ? * MON-FRI *",
    "0 9 ? * 2#1 *",
    "0 0 L * ? *",
    "0 0 ? * 6L *",
    "0 0 15W * ? *",
    "0 0 1W * ? *",
    "0 0 ? * 2#5 *",
    "0 12 1-31/2 JAN-JUN ? 2026-2028",
    "7,37 */5 ? * SUN,WED,SAT *",
    "0/30 20-2 ? * MON-FRI *",
    "58-2 22-1/3 28-3/2 NOV-FEB ? *",
    "0 12 ? * FRI-MON *",
]


@pytest.mark.parametrize("fields", ORACLE_EXPRESSIONS, ids=ORACLE_EXPRESSIONS)
@pytest.mark.parametrize("after", [utc(2026, 1, 1), utc(2026, 2, 27, 23, 59), utc(2027, 12, 31, 12, 1)], ids=str)
def test_utc_fire_times_match_aws_croniter(fields: str, after: datetime) -> None:
    expected = [moment for moment in AwsCroniter(fields).get_next(after, 25) if moment is not None]
    assert fire(f"cron({fields})", after, count=25) == expected


# --------------------------------------------------------------------------------------------
# Descriptions


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("rate(1 minute)", "every minute", id="rate-1-minute"),
        pytest.param("rate(5 minutes)", "every 5 minutes", id="rate-5-minutes"),
        pytest.param("rate(1 hour)", "every hour", id="rate-1-hour"),
        pytest.param("rate(2 days)", "every 2 days", id="rate-2-days"),
        pytest.param("at(2026-12-01T09:30:00)", "once at 2026-12-01 09:30:00", id="at"),
        pytest.param("cron(0 10 * * ? *)", "at 10:00", id="cron-daily"),
        pytest.param("cron(0 18 ? * MON-FRI *)", "at 18:00, Monday through Friday", id="cron-weekdays"),
        pytest.param("cron(0 0 ? * 1 *)", "at 00:00, only on Sunday", id="cron-1-is-sunday"),
        pytest.param("cron(0 0 ? * 2-6 *)", "at 00:00, Monday through Friday", id="cron-2-6"),
        pytest.param("cron(0 0 ? * L *)", "at 00:00, only on Saturday", id="cron-L-saturday"),
        pytest.param("cron(0 0 ? * 6L *)", "at 00:00, on the last Friday of the month", id="cron-6L"),
        pytest.param("cron(0 9 ? * 2#1 *)", "at 09:00, on the first Monday of the month", id="cron-2#1"),
        pytest.param(
            "cron(0/30 20-2 ? * MON-FRI *)",
            "every 30 minutes, between 20:00 and 02:59, Monday through Friday",
            id="cron-wrapped-hours",
        ),
        pytest.param("cron(0 1 ? * FRI-MON *)", "at 01:00, Friday through Monday", id="cron-wrapped-weekdays"),
        pytest.param(
            "cron(0 0 1 1 ? 2027)",
            "at 00:00, on day 1 of the month, only in January, only in 2027",
            id="cron-year",
        ),
    ],
)
def test_describe_schedule(expression: str, expected: str) -> None:
    assert describe_schedule(parse_schedule(expression)) == expected
