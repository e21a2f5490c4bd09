"""The event every schedule sends to its function, and the template it is built from.

EventBridge Scheduler substitutes its context attributes (``<aws.scheduler.*>``) into the
schedule's input as strings; :meth:`ScheduledEvent.parse` turns them back into typed fields. A
hand-written event (a console test event, ``aws lambda invoke``) may write them as people do: the
forms accepted are the Node runtime's too (``lambdas/node/src/events.mjs``), and
``tests/contract/scheduled_events.json`` holds both runtimes to them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, cast

import msgspec

from kairos_runtime.validation import InvalidInputError, parse, to_builtins

SCHEDULED_TIME_ATTRIBUTE = "<aws.scheduler.scheduled-time>"
EXECUTION_ID_ATTRIBUTE = "<aws.scheduler.execution-id>"
ATTEMPT_NUMBER_ATTRIBUTE = "<aws.scheduler.attempt-number>"


def iso_seconds(moment: datetime) -> str:
    """``2026-11-27T07:15:00Z``: the UTC, whole-second form Scheduler uses for scheduled times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer JavaScript (the Node runtime, jsii) holds exactly."""
# A date, then optionally a time with optional seconds, fraction and offset; no offset means UTC.
_ISO_DATE_TIME = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(?:[Zz]|([+-])([0-9]{2}):?([0-9]{2}))?)?\Z"
)
_DECIMAL = re.compile(r"^\s*\+?[0-9]+\s*\Z")


class ScheduledEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What a function receives from its schedule (or from ``kairos run``). Fields it does not know
    are ignored: an event from a newer schedule still runs."""

    task: _NonEmpty
    task_type: _NonEmpty
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    scheduled_time: datetime
    """Always in UTC (a naive time is taken as UTC)."""
    execution_id: _NonEmpty
    attempt: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER)] = 1

    def __post_init__(self) -> None:
        moment = self.scheduled_time
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        # Frozen: normalising the value the event was built with is this method's one write.
        msgspec.structs.force_setattr(self, "scheduled_time", utc)

    @classmethod
    def parse(cls, raw: object) -> ScheduledEvent:
        """The event as delivered; :class:`~kairos_runtime.validation.InvalidInputError` when it does not fit."""
        if isinstance(raw, Mapping):
            raw = {**raw}
            if isinstance(raw.get("scheduled_time"), str):
                try:
                    raw["scheduled_time"] = parse_instant(raw["scheduled_time"])
                except ValueError:
                    raise InvalidInputError(("scheduled_time",), "must be an ISO 8601 date-time string") from None
            raw["attempt"] = _whole_number(raw.get("attempt", 1))
        return parse(raw, cls)

    def for_task(self, task: str) -> ScheduledEvent:
        return msgspec.structs.replace(self, task=task)

    def as_json(self) -> dict[str, Any]:
        """The event as JSON-ready values (``scheduled_time`` as ``2026-11-27T07:15:00Z``), as the
        Node runtime's ``eventAsJson`` writes it."""
        return cast("dict[str, Any]", to_builtins(self))


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant in UTC, in the forms the Node runtime reads too: a date, or a date and a
    time with or without seconds, a fraction and an offset (none means UTC); else ``ValueError``."""
    match = _ISO_DATE_TIME.match(text)
    if match is not None:
        year, month, day, hour, minute, second = (int(part or 0) for part in match.groups()[:6])
        fraction, sign, offset_hours, offset_minutes = match.groups()[6:]
        if sign is None or (int(offset_hours) <= 23 and int(offset_minutes) <= 59):
            offset = timedelta(hours=int(offset_hours or 0), minutes=int(offset_minutes or 0))
            zone = timezone(-offset if sign == "-" else offset)
            microsecond = int((fraction or "").ljust(6, "0")[:6])
            try:
                return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone).astimezone(UTC)
            except (ValueError, OverflowError):
                pass  # February 30th, hour 24, or an offset beyond year 9999: said below
    raise ValueError(f"not an ISO 8601 date and time: {text!r}")


def _whole_number(value: object) -> object:
    """An attempt number written as a decimal string (Scheduler's substitution) or as a float with
    no fraction (how JSON parsers may read ``2.0``) as an int; anything else as it came."""
    if isinstance(value, str) and _DECIMAL.match(value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def schedule_input(*, task: str, task_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """The schedule's input: the task's identity plus Scheduler's per-invocation context attributes."""
    return {
        "task": task,
        "task_type": task_type,
        "params": params,
        "scheduled_time": SCHEDULED_TIME_ATTRIBUTE,
        "execution_id": EXECUTION_ID_ATTRIBUTE,
        "attempt": ATTEMPT_NUMBER_ATTRIBUTE,
    }


def render_schedule_input(
    template: dict[str, Any], *, scheduled_time: datetime, execution_id: str, attempt: int = 1
) -> dict[str, Any]:
    """Substitute the context attributes the way Scheduler does, for local runs and tests."""
    values = {
        SCHEDULED_TIME_ATTRIBUTE: iso_seconds(scheduled_time),
        EXECUTION_ID_ATTRIBUTE: execution_id,
        ATTEMPT_NUMBER_ATTRIBUTE: str(attempt),
    }
    return {key: values.get(value, value) if isinstance(value, str) else value for key, value in template.items()}
