"""EventBridge Scheduler schedule expressions: parse, validate, describe, and compute fire times.

This module is the single source of truth for ``rate(...)``, ``cron(...)`` and ``at(...)``
expressions. The ``tasks.yaml`` models and ``kairos validate`` use :func:`parse_schedule` and
:func:`validate_timezone`; ``kairos list`` and ``kairos schedule next`` use
:func:`next_fire_times` and :func:`describe_schedule`.

The rules follow the AWS EventBridge Scheduler User Guide, "Schedule types on EventBridge
Scheduler" (sections "Rate-based schedules", "Cron-based schedules", "One-time schedules" and
"Daylight savings time on EventBridge Scheduler"). The cron table there matches the EventBridge
User Guide's "Cron expressions reference":

=============  ===============  ==================
Field          Values           Wildcards
=============  ===============  ==================
Minutes        0-59             , - * /
Hours          0-23             , - * /
Day-of-month   1-31             , - * ? / L W
Month          1-12 or JAN-DEC  , - * /
Day-of-week    1-7 or SUN-SAT   , - * ? L #
Year           1970-2199        , - * /
=============  ===============  ==================

That reference also says: "You can't specify the Day-of-month and Day-of-week fields in the same
cron expression. If you specify a value or a * (asterisk) in one of the fields, you must use a ?
(question mark) in the other." and, about ``#``: "you can define only one expression in the
day-of-week field. For example, "3#1,6#3" is not valid".

Where the docs say nothing, this module rejects the form, so Kairos never accepts an expression
Scheduler might refuse at deploy time. Those choices:

* ``/`` in day-of-week: the table above doesn't list it, so ``1/2`` in day-of-week is an error.
* Reversed ranges wrap past the end of their field, as in Quartz (``22-2`` is hours 22, 23, 0, 1
  and 2; ``FRI-MON`` is FRI, SAT, SUN, MON): the docs list ``cron(0/30 20-2 ? * MON-FRI *)`` as
  an example. Years don't wrap. See docs/adr/0006-cron-ranges-wrap.md, which also lists the
  strict rules below that were checked and kept.
* A step must be 1 to ``max - min`` of its field: ``/0`` is meaningless and a larger step can only
  ever hit the start value.
* ``L``, ``nW``, ``nL`` and ``n#k`` must each be the whole field; ``LW``, ``L-3``, ``L`` or ``W``
  inside a list, and names before ``L`` or ``#`` (``FRIL``, ``MON#1``) are Quartz extensions the
  docs don't show. ``L`` alone in day-of-week is "the last day of the week", i.e. Saturday (7).
* ``#k`` takes k = 1-5: no month has a sixth of any weekday.
* Month and weekday names must be uppercase, as every AWS example writes them.
* Exactly one space between fields and nothing else: the docs say "separated by white space"
  but only ever show single spaces.

Why our own grammar and not aws-croniter: docs/adr/0001-own-cron-grammar.md (aws-croniter is a
test-only oracle).

Iteration walks the fields as a tree (year, month, matching days, hour, minute) and uses bisect to
skip straight to the first candidate, never minute by minute. It yields local wall-clock times in
order, and each one is mapped to an instant in the schedule's zone (see "DST" below). The scan
ends at the last allowed year, 2199.

DST, per "Daylight savings time on EventBridge Scheduler" (User Guide) and the AWS re:Post
Knowledge Center article "How can I adjust my Amazon EventBridge schedule for daylight saving?":
"When the time shifts forward in Spring, your schedule invocation gets skipped if the cron
expression falls on a non-existent date and time. When the time shifts back in the Fall, your
schedule runs only once and doesn't repeat its invocation." That gives two cron rules:

* A wall time in the spring-forward gap is skipped.
* A wall time that occurs twice in the fall-back overlap fires once. The docs don't say which of
  the two; this module uses the first (the earlier UTC instant, PEP 495 ``fold=0``). That is when
  the local clock first shows the time, and it is the occurrence that zoneinfo and java.time both
  pick by default for an ambiguous local time.

For rate schedules the same article says: "days represents a 24-hour duration on the clock ...
the EventBridge Scheduler evaluates the rate expression 24 hours after the schedule's last
invocation". Rates are therefore fixed ``timedelta`` steps, independent of the zone.
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor, Options

from kairos.suggestions import did_you_mean

__all__ = [
    "DEFAULT_TIMEZONE",
    "AtSchedule",
    "CronSchedule",
    "RateSchedule",
    "Schedule",
    "ScheduleError",
    "describe_schedule",
    "next_fire_times",
    "parse_schedule",
    "validate_timezone",
]

DEFAULT_TIMEZONE = "UTC"

RateUnit: TypeAlias = Literal["minute", "hour", "day"]

_RATE_STEP: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
# Unit spelling -> (unit, is plural). Scheduler requires the singular for 1 and the plural otherwise.
_RATE_UNITS: dict[str, tuple[RateUnit, bool]] = {
    "minute": ("minute", False),
    "minutes": ("minute", True),
    "hour": ("hour", False),
    "hours": ("hour", True),
    "day": ("day", False),
    "days": ("day", True),
}
# Far beyond any timedelta, and short enough that int() never meets Python's digit limit.
_MAX_RATE_DIGITS = 20
_DIGITS = re.compile(r"[0-9]+")
_AT_FORMAT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})")
_SHAPES = "rate(value unit), cron(minutes hours day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)"
_LAST_YEAR = 2199
# A day's margin either side of 1970-2199 covers every UTC offset.
_SCAN_FLOOR = datetime(1969, 12, 30, tzinfo=UTC)
_SCAN_CEILING = datetime(_LAST_YEAR + 1, 1, 2, tzinfo=UTC)


class ScheduleError(ValueError):
    """A schedule expression or time zone that EventBridge Scheduler would not accept."""


# --------------------------------------------------------------------------------------------
# The three schedule types


@dataclass(frozen=True, slots=True)
class RateSchedule:
    """``rate(value unit)``: fires every ``interval`` from the schedule's start."""

    value: int
    unit: RateUnit

    def __post_init__(self) -> None:
        # Checked here as well as in the parser so a hand-built schedule can't be invalid either.
        if isinstance(self.value, bool) or self.value < 1:
            raise ScheduleError(f"rate: value must be a positive integer, got {self.value!r}")
        if self.unit not in _RATE_STEP:
            raise ScheduleError(f"rate: unit must be one of minute, hour, day; got {self.unit!r}")
        try:
            _ = self.interval
        except OverflowError:
            raise ScheduleError(f"rate: value {self.value} is too large") from None

    @property
    def expression(self) -> str:
        unit = self.unit if self.value == 1 else f"{self.unit}s"
        return f"rate({self.value} {unit})"

    @property
    def interval(self) -> timedelta:
        return _RATE_STEP[self.unit] * self.value


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """``cron(minutes hours day-of-month month day-of-week year)``, evaluated in a time zone."""

    minutes: str
    hours: str
    day_of_month: str
    month: str
    day_of_week: str
    year: str

    def __post_init__(self) -> None:
        _compile_cron(self.fields)

    @property
    def fields(self) -> tuple[str, str, str, str, str, str]:
        return (self.minutes, self.hours, self.day_of_month, self.month, self.day_of_week, self.year)

    @property
    def expression(self) -> str:
        return f"cron({' '.join(self.fields)})"


@dataclass(frozen=True, slots=True)
class AtSchedule:
    """``at(yyyy-mm-ddThh:mm:ss)``: one run at a naive wall-clock time in the schedule's zone."""

    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is not None:
            raise ScheduleError("at: the time must be naive wall-clock time; the zone is set separately")
        if self.at.microsecond:
            raise ScheduleError("at: the time has whole-second precision; drop the microseconds")

    @property
    def expression(self) -> str:
        return f"at({self.at:%Y-%m-%dT%H:%M:%S})"


Schedule: TypeAlias = RateSchedule | CronSchedule | AtSchedule


# --------------------------------------------------------------------------------------------
# Parsing


def parse_schedule(expression: str) -> Schedule:
    """Parse a Scheduler schedule expression; raise :class:`ScheduleError` saying what is wrong."""
    if expression != expression.strip():
        raise ScheduleError(f"schedule expression {expression!r} has leading or trailing whitespace")
    for prefix, parse in (("rate(", _parse_rate), ("cron(", _parse_cron), ("at(", _parse_at)):
        if expression.startswith(prefix):
            if not expression.endswith(")"):
                raise ScheduleError(f"{prefix[:-1]}: missing closing ')' in {expression!r}")
            return parse(expression[len(prefix) : -1])
    raise ScheduleError(f"unrecognised schedule expression {expression!r}; expected {_SHAPES}")


def _parse_rate(inner: str) -> RateSchedule:
    parts = inner.split(" ")
    if len(parts) != 2 or not all(parts):
        raise ScheduleError(f"rate: expected 'rate(value unit)' with one space, got 'rate({inner})'")
    value_text, unit_text = parts
    # Leading zeros are refused: the docs ask for "a positive integer" and every example is plain.
    if not _DIGITS.fullmatch(value_text) or value_text.startswith("0"):
        raise ScheduleError(f"rate: value must be a positive integer, got {value_text!r}")
    if len(value_text) > _MAX_RATE_DIGITS:
        raise ScheduleError(f"rate: value with {len(value_text)} digits is too large")
    value = int(value_text)
    if unit_text not in _RATE_UNITS:
        raise ScheduleError(f"rate: unit must be one of {', '.join(_RATE_UNITS)}; got {unit_text!r}")
    unit, plural = _RATE_UNITS[unit_text]
    if value == 1 and plural:
        raise ScheduleError(f"rate: use '{unit}' (singular) for a value of 1")
    if value != 1 and not plural:
        raise ScheduleError(f"rate: use '{unit}s' (plural) for a value of {value}")
    return RateSchedule(value=value, unit=unit)


def _parse_cron(inner: str) -> CronSchedule:
    fields = inner.split(" ") if inner else []
    if any(not part for part in fields) or any(ch.isspace() for ch in inner.replace(" ", "")):
        raise ScheduleError(f"cron: fields must be separated by single spaces, got 'cron({inner})'")
    if len(fields) != 6:
        raise ScheduleError(
            f"cron: expected 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}"
        )
    minutes, hours, day_of_month, month, day_of_week, year = fields
    return CronSchedule(minutes, hours, day_of_month, month, day_of_week, year)


def _parse_at(inner: str) -> AtSchedule:
    match = _AT_FORMAT.fullmatch(inner)
    if match is None:
        raise ScheduleError(f"at: expected 'at(yyyy-mm-ddThh:mm:ss)' with no offset or fraction, got 'at({inner})'")
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError as error:
        raise ScheduleError(f"at: {inner} is not a valid date and time ({error})") from None
    return AtSchedule(at=moment)


# --------------------------------------------------------------------------------------------
# Cron fields


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    steps: bool = True
    wraps: bool = True

    def fail(self, problem: str) -> ScheduleError:
        return ScheduleError(f"cron: {self.name}: {problem}")

    @property
    def expected(self) -> str:
        named = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{named}"

    @property
    def size(self) -> int:
        return self.high - self.low + 1


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
# Spelled out rather than taken from calendar.month_abbr, which follows the process locale.
_MONTH = _Field(
    "month",
    1,
    12,
    names=("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, names=("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), steps=False)
# Years run on without end, so a reversed year range has no "past the end" to wrap into.
_YEAR = _Field("year", 1970, _LAST_YEAR, wraps=False)
_MAX_FIELD_DIGITS = 6


def _parse_value(spec: _Field, token: str) -> int:
    if _DIGITS.fullmatch(token):
        # The length check keeps int() away from absurdly long digit strings.
        if len(token) > _MAX_FIELD_DIGITS or not spec.low <= int(token) <= spec.high:
            raise spec.fail(f"{token} is out of range {spec.expected}")
        return int(token)
    if token in spec.names:
        return spec.names.index(token) + spec.low
    if token.upper() in spec.names:
        raise spec.fail(f"names must be uppercase: write {token.upper()!r}, not {token!r}")
    if not token:
        raise spec.fail("a value is missing (empty list item or range end)")
    raise spec.fail(f"{token!r} is not a valid value; expected {spec.expected}")


def _parse_step(spec: _Field, text: str) -> int:
    largest = spec.high - spec.low
    if not _DIGITS.fullmatch(text) or len(text) > _MAX_FIELD_DIGITS or not 1 <= int(text) <= largest:
        raise spec.fail(f"the step after '/' must be an integer from 1 to {largest}, got {text!r}")
    return int(text)


def _parse_item(spec: _Field, item: str) -> tuple[int, ...]:
    base, slash, step_text = item.partition("/")
    if slash and not spec.steps:
        raise spec.fail(f"'/' is not allowed in {spec.name} (its wildcards are , - * ? L #)")
    step = _parse_step(spec, step_text) if slash else 1
    if base == "*":
        return tuple(range(spec.low, spec.high + 1, step))
    first, dash, last = base.partition("-")
    start = _parse_value(spec, first)
    if dash:
        end = _parse_value(spec, last)
        if end < start:
            if not spec.wraps:
                raise spec.fail(f"range {base!r} is reversed; years don't wrap, so write the earlier year first")
            # A reversed range runs past the field's end and on from its start, and a step keeps
            # counting across that boundary: hours 22-2/2 are 22, 0, 2 (docs/adr/0006-cron-ranges-wrap.md).
            end += spec.size
    else:
        # 'n/step' means n, n+step, ... up to the field's maximum.
        end = spec.high if slash else start
    return tuple(spec.low + (value - spec.low) % spec.size for value in range(start, end + 1, step))


def _parse_list(spec: _Field, text: str) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(spec, item))
    return tuple(sorted(values))


def _parse_plain(spec: _Field, text: str) -> tuple[int, ...]:
    """A field that takes only , - * / (minutes, hours, month, year)."""
    if "?" in text:
        raise ScheduleError(f"cron: '?' is only allowed in day-of-month and day-of-week, not in {spec.name}")
    if "#" in text:
        raise ScheduleError(f"cron: '#' is only allowed in day-of-week, not in {spec.name}")
    return _parse_list(spec, text)


_DayKind: TypeAlias = Literal["days", "last_day", "nearest_weekday", "weekdays", "last_weekday", "nth_weekday"]


@dataclass(frozen=True, slots=True)
class _DayRule:
    """Which days of a month match, from whichever day field isn't '?'."""

    kind: _DayKind
    values: tuple[int, ...] = ()  # sorted days of month, or AWS weekdays 1-7
    target: int = 0  # the day for 'nW', the AWS weekday for 'nL' and 'n#k'
    nth: int = 0

    def days(self, year: int, month: int) -> tuple[int, ...]:
        first_weekday, length = calendar.monthrange(year, month)
        if self.kind == "days":
            return tuple(day for day in self.values if day <= length)
        if self.kind == "last_day":
            return (length,)
        if self.kind == "nearest_weekday":
            return _nearest_weekday(self.target, first_weekday, length)
        weekday_of_first = _aws_weekday(first_weekday)
        if self.kind == "weekdays":
            return tuple(day for day in range(1, length + 1) if (weekday_of_first + day - 2) % 7 + 1 in self.values)
        if self.kind == "last_weekday":
            weekday_of_last = (weekday_of_first + length - 2) % 7 + 1
            return (length - (weekday_of_last - self.target) % 7,)
        day = 1 + (self.target - weekday_of_first) % 7 + 7 * (self.nth - 1)
        return (day,) if day <= length else ()


def _aws_weekday(python_weekday: int) -> int:
    """Python counts Monday=0..Sunday=6; AWS counts SUN=1..SAT=7."""
    return (python_weekday + 1) % 7 + 1


def _nearest_weekday(target: int, first_weekday: int, length: int) -> tuple[int, ...]:
    # The docs say only that '3W' is "the weekday closest to the third day of the month". The
    # nearest weekday stays inside the month (1W on a Saturday is Monday the 3rd, not the last
    # Friday of the month before), as in the Quartz syntax AWS borrows. A target past the end of a
    # short month (31W in April) matches nothing that month, just as a plain '31' doesn't.
    if target > length:
        return ()
    weekday = (first_weekday + target - 1) % 7
    if weekday == calendar.SATURDAY:
        return (target - 1,) if target > 1 else (target + 2,)
    if weekday == calendar.SUNDAY:
        return (target + 1,) if target < length else (target - 2,)
    return (target,)


_NTH_WEEKDAY = re.compile(r"([0-9]+)#([0-9]+)")
_LAST_WEEKDAY = re.compile(r"([0-9]+)L")
_NEAREST_WEEKDAY = re.compile(r"([0-9]+)W")


def _parse_day_of_month(text: str) -> _DayRule:
    if text == "L":
        return _DayRule("last_day")
    if match := _NEAREST_WEEKDAY.fullmatch(text):
        return _DayRule("nearest_weekday", target=_parse_value(_DAY_OF_MONTH, match[1]))
    if "L" in text or "W" in text:
        raise _DAY_OF_MONTH.fail(f"{text!r} is not supported; 'L' and 'nW' must be the whole field (e.g. 'L', '15W')")
    if "?" in text:
        raise _DAY_OF_MONTH.fail("'?' must be the whole field")
    if "#" in text:
        raise ScheduleError("cron: '#' is only allowed in day-of-week, not in day-of-month")
    return _DayRule("days", values=_parse_list(_DAY_OF_MONTH, text))


def _parse_day_of_week(text: str) -> _DayRule:
    if text == "L":
        # "the last day of the ... week": Saturday, since AWS weeks run SUN (1) to SAT (7).
        return _DayRule("weekdays", values=(7,))
    if "#" in text:
        if "," in text:
            raise _DAY_OF_WEEK.fail(
                f"only one expression is allowed with '#' (e.g. '3#1,6#3' is invalid), got {text!r}"
            )
        match = _NTH_WEEKDAY.fullmatch(text)
        if match is None:
            raise _DAY_OF_WEEK.fail(f"'#' takes the form 'd#n' with d 1-7 and n 1-5 (e.g. '3#2'), got {text!r}")
        weekday = _parse_value(_DAY_OF_WEEK, match[1])
        nth = match[2]
        if len(nth) > _MAX_FIELD_DIGITS or not 1 <= int(nth) <= 5:
            raise _DAY_OF_WEEK.fail(f"the occurrence after '#' must be 1-5, got {nth}")
        return _DayRule("nth_weekday", target=weekday, nth=int(nth))
    if match := _LAST_WEEKDAY.fullmatch(text):
        return _DayRule("last_weekday", target=_parse_value(_DAY_OF_WEEK, match[1]))
    if "L" in text:
        raise _DAY_OF_WEEK.fail(f"'L' must be the whole field or follow one day number (e.g. 'L', '6L'), got {text!r}")
    if "?" in text:
        raise _DAY_OF_WEEK.fail("'?' must be the whole field")
    return _DayRule("weekdays", values=_parse_list(_DAY_OF_WEEK, text))


@dataclass(frozen=True, slots=True)
class _CompiledCron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: _DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]


@lru_cache(maxsize=1024)
def _compile_cron(fields: tuple[str, str, str, str, str, str]) -> _CompiledCron:
    minutes, hours, day_of_month, month, day_of_week, year = fields
    # The day pair is checked first: it is the most common mistake and the clearest message.
    if day_of_month == "?" and day_of_week == "?":
        raise ScheduleError("cron: day-of-month and day-of-week cannot both be '?'; set one of them")
    if day_of_month != "?" and day_of_week != "?":
        raise ScheduleError("cron: day-of-month and day-of-week cannot both be set; one must be '?'")
    compiled_minutes = _parse_plain(_MINUTES, minutes)
    compiled_hours = _parse_plain(_HOURS, hours)
    days = _parse_day_of_week(day_of_week) if day_of_month == "?" else _parse_day_of_month(day_of_month)
    return _CompiledCron(
        minutes=compiled_minutes,
        hours=compiled_hours,
        days=days,
        months=_parse_plain(_MONTH, month),
        years=_parse_plain(_YEAR, year),
    )


# --------------------------------------------------------------------------------------------
# Time zones


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # 'localtime' and 'Factory' are files in the system zone directory, not IANA zones that
    # Scheduler's ScheduleExpressionTimezone accepts.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is a known IANA time zone, else raise :class:`ScheduleError`."""
    known = _known_zones()
    # An empty set means no tz database was found to list; ZoneInfo below still decides.
    if known and name not in known:
        raise ScheduleError(f"unknown timezone {name!r}{did_you_mean(name, sorted(known))}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown timezone {name!r}") from None
    return name


# --------------------------------------------------------------------------------------------
# Fire times


def next_fire_times(schedule: Schedule, *, timezone: str, after: datetime, count: int) -> list[datetime]:
    """Up to ``count`` fire times strictly after ``after``, ascending, as aware UTC datetimes.

    * rate: a rate schedule fires every interval from its start (Scheduler's StartDate, or the
      time it was created); the expression doesn't say when that was, so ``after`` is taken as the
      start. The CLI passes its ``--after`` as that start. Results are ``after + k * interval``.
    * at: the one time, if it is strictly after ``after``; otherwise nothing.
    * cron: evaluated in ``timezone``'s wall time, skipping DST gaps and firing once in DST
      overlaps (see the module docstring), and never past the year 2199.
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("after must be a timezone-aware datetime")
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    zone = ZoneInfo(validate_timezone(timezone))
    if count == 0:
        return []
    if isinstance(schedule, RateSchedule):
        return _rate_times(schedule, after, count)
    if isinstance(schedule, AtSchedule):
        # The docs cover only cron in the DST gap. For a one-time schedule, skipping would
        # mean it never runs, so a time in the gap is shifted forward by the gap's length
        # (02:30 on spring-forward day in New York runs at 03:30 EDT). That is PEP 495's fold=0
        # reading and java.time's default. A time in the fall-back overlap runs at its first
        # occurrence, like cron.
        try:
            instant = schedule.at.replace(tzinfo=zone).astimezone(UTC)
        except OverflowError:
            # Only a time within a day of datetime's limits (years 1 and 9999) gets here.
            return []
        return [instant] if instant > after else []
    return _cron_times(_compile_cron(schedule.fields), zone, after, count)


def _rate_times(schedule: RateSchedule, after: datetime, count: int) -> list[datetime]:
    times: list[datetime] = []
    try:
        start = after.astimezone(UTC)
        for k in range(1, count + 1):
            times.append(start + k * schedule.interval)
    except OverflowError:
        # The run after this one would lie past datetime's year 9999.
        pass
    return times


def _cron_times(cron: _CompiledCron, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    # Cron years run 1970-2199, so clamping the scan's start into that span changes nothing, and it
    # keeps astimezone() clear of datetime's year 1 and year 9999 limits.
    if after >= _SCAN_CEILING:
        return []
    scan_from = max(after, _SCAN_FLOOR)
    # Start at that moment's local minute. Wall times before it map to instants at or before
    # `after` (the wall-to-instant mapping is increasing). The few at or after it that are still
    # not later than `after` (inside a fall-back overlap) are dropped by the check below.
    local_start = scan_from.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0, fold=0)
    times: list[datetime] = []
    for wall in _wall_times(cron, local_start):
        instant = _to_instant(wall, zone)
        if instant is not None and instant > after:
            times.append(instant)
            if len(times) == count:
                break
    return times


def _to_instant(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall time; None if DST skips it.

    fold=0 gives the earlier instant of a repeated wall time, so a cron time in a fall-back overlap
    fires once, at its first occurrence. A wall time in a spring-forward gap doesn't survive the
    round trip, and Scheduler skips that invocation.
    """
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


def _at_least(values: tuple[int, ...], floor: int) -> tuple[int, ...]:
    return values[bisect_left(values, floor) :]


def _wall_times(cron: _CompiledCron, start: datetime) -> Iterator[datetime]:
    """Every matching naive wall time at or after ``start``, ascending.

    Each level narrows to values at or above the start only while every level above it still
    equals the start's value. Below that, the whole field applies.
    """
    for year in _at_least(cron.years, start.year):
        months = _at_least(cron.months, start.month) if year == start.year else cron.months
        for month in months:
            on_start_month = year == start.year and month == start.month
            days = cron.days.days(year, month)
            for day in _at_least(days, start.day) if on_start_month else days:
                on_start_day = on_start_month and day == start.day
                for hour in _at_least(cron.hours, start.hour) if on_start_day else cron.hours:
                    on_start_hour = on_start_day and hour == start.hour
                    for minute in _at_least(cron.minutes, start.minute) if on_start_hour else cron.minutes:
                        yield datetime(year, month, day, hour, minute)


# --------------------------------------------------------------------------------------------
# Descriptions


_DESCRIBE_OPTIONS = Options(day_of_week_start_index_zero=False, use_24hour_time_format=True, locale_code="en_US")


def describe_schedule(schedule: Schedule) -> str:
    """Plain words for ``kairos list``: "every 5 minutes", "at 18:00, Monday through Friday"."""
    if isinstance(schedule, RateSchedule):
        return f"every {schedule.unit}" if schedule.value == 1 else f"every {schedule.value} {schedule.unit}s"
    if isinstance(schedule, AtSchedule):
        return f"once at {schedule.at:%Y-%m-%d %H:%M:%S}"
    # cron_descriptor counts weekdays 1-7 from Sunday when day_of_week_start_index_zero=False,
    # as AWS does. It can't read a bare 'L' in day-of-week, which here means Saturday.
    day_of_week = "7" if schedule.day_of_week == "L" else schedule.day_of_week
    five = f"{schedule.minutes} {schedule.hours} {schedule.day_of_month} {schedule.month} {day_of_week}"
    # Its seven-field (Quartz) form is seconds + five fields + year, and it describes the year too.
    text = five if schedule.year == "*" else f"0 {five} {schedule.year}"
    try:
        description: str = ExpressionDescriptor(text, _DESCRIBE_OPTIONS).get_description()
    except Exception:
        # A description is a convenience for a listing; the expression itself is always valid.
        return schedule.expression
    return description[:1].lower() + description[1:]
