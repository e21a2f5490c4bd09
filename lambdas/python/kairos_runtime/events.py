"""The event every schedule sends to its function, and the template it is built from.

EventBridge Scheduler substitutes its context attributes (``<aws.scheduler.*>``) into the
schedule's input as strings; :meth:`ScheduledEvent.parse` turns them back into typed fields. A
hand-written event (a console test event, ``aws lambda invoke``) may write them as people do: the
forms accepted are the Node runtime's too (``lambdas/node/src/events.mjs``), and
``tests/contract/scheduled_events.json`` holds both runtimes to them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, cast

import msgspec

from kairos_runtime.bounds import (
    EXECUTION_ID_PATTERN,
    MAX_PARAMS_BYTES,
    MAX_PARAMS_DEPTH,
    TASK_NAME_PATTERN,
    TASK_TYPE_PATTERN,
)
from kairos_runtime.validation import InputPath, InvalidInputError, parse, to_builtins

SCHEDULED_TIME_ATTRIBUTE = "<aws.scheduler.scheduled-time>"
EXECUTION_ID_ATTRIBUTE = "<aws.scheduler.execution-id>"
ATTEMPT_NUMBER_ATTRIBUTE = "<aws.scheduler.attempt-number>"
RERUN_FIELD = "rerun"


def iso_seconds(moment: datetime) -> str:
    """``2026-11-27T07:15:00Z``: the UTC, whole-second form Scheduler uses for scheduled times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def full_match(pattern: str) -> re.Pattern[str]:
    """One of :mod:`kairos_runtime.bounds`' unanchored patterns, matching a whole string only."""
    return re.compile(rf"^(?:{pattern})\Z")


MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer JavaScript (the Node runtime, jsii) holds exactly."""
# The fields that go into the run record's keys, with what each must be; checked before anything
# else reads the event, so no key can pass DynamoDB's limits or fail to encode.
KEY_FIELDS: dict[str, tuple[re.Pattern[str], str]] = {
    "task": (full_match(TASK_NAME_PATTERN), f"must be a task name ({TASK_NAME_PATTERN})"),
    "task_type": (full_match(TASK_TYPE_PATTERN), f"must be a task type name ({TASK_TYPE_PATTERN})"),
    "execution_id": (
        full_match(EXECUTION_ID_PATTERN),
        f"must be printable ASCII without spaces ({EXECUTION_ID_PATTERN})",
    ),
}
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# A date, then optionally a time with optional seconds, fraction and offset; no offset means UTC.
_ISO_DATE_TIME = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(?:[Zz]|([+-])([0-9]{2}):?([0-9]{2}))?)?\Z"
)
_DECIMAL = re.compile(r"^\s*\+?[0-9]+\s*\Z")


class ScheduledEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What a function receives from its schedule (or from ``kairos run``). Fields it does not know
    are ignored: an event from a newer schedule still runs."""

    task: str
    task_type: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    scheduled_time: datetime
    """Always in UTC (a naive time is taken as UTC)."""
    execution_id: str
    attempt: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER)] = 1
    rerun: bool = False
    """Run the slot even when it already SUCCEEDED or was SKIPPED (``kairos invoke --rerun``, ``kairos run
    --rerun``, backfill). A JSON ``true`` or ``false`` only; no schedule's input ever carries it
    (:func:`schedule_input`), and it passes none of the checks an event must pass to run."""

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
            for field, (pattern, requirement) in KEY_FIELDS.items():
                if isinstance(raw.get(field), str) and not pattern.match(raw[field]):
                    raise InvalidInputError((field,), requirement)
            for field in cls.__struct_fields__:
                # msgspec cannot even read such a string (it raises UnicodeEncodeError).
                if isinstance(raw.get(field), str) and _LONE_SURROGATE.search(raw[field]):
                    raise InvalidInputError((field,), "holds a lone surrogate, which is not text")
            check_params(raw.get("params"))
            if isinstance(raw.get("scheduled_time"), str):
                try:
                    raw["scheduled_time"] = parse_instant(raw["scheduled_time"])
                except ValueError:
                    raise InvalidInputError(("scheduled_time",), "must be an ISO 8601 date-time string") from None
            raw["attempt"] = _whole_number(raw.get("attempt", 1))
        try:
            return parse(raw, cls)
        except UnicodeEncodeError:
            raise InvalidInputError((), "must be an object (it holds a lone surrogate, which is not text)") from None

    def for_task(self, task: str) -> ScheduledEvent:
        return msgspec.structs.replace(self, task=task)

    def as_json(self) -> dict[str, Any]:
        """The event as JSON-ready values (``scheduled_time`` as ``2026-11-27T07:15:00Z``), as the
        Node runtime's ``eventAsJson`` writes it."""
        written = cast("dict[str, Any]", to_builtins(self))
        if not self.rerun:
            del written[RERUN_FIELD]  # only a rerun says so, as the operator's event did
        return written


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


def key_field(raw: object, field: str) -> str | None:
    """The raw event's ``field`` when it is fit for a key (see ``KEY_FIELDS``), else None: what an
    invalid event's record may still be filed under."""
    value = raw.get(field) if isinstance(raw, Mapping) else None
    return value if isinstance(value, str) and KEY_FIELDS[field][0].match(value) else None


def check_params(params: object) -> None:
    """Refuses params nested deeper than ``MAX_PARAMS_DEPTH``, holding a lone surrogate (valid as a
    ``\\ud800`` escape in JSON text, but no UTF-8 encoder takes it), or over ``MAX_PARAMS_BYTES`` as
    JSON. Iterative, so no nesting can exhaust the stack. Anything but an object is left to the model."""
    if not isinstance(params, dict):
        return
    pending: list[tuple[object, InputPath, int]] = [(params, ("params",), 1)]
    while pending:
        value, path, depth = pending.pop()
        pending.extend(_members(value, path, depth))
    size = len(json.dumps(params, ensure_ascii=False, separators=(",", ":"), default=str).encode())
    if size > MAX_PARAMS_BYTES:
        raise InvalidInputError(("params",), f"{size} bytes as JSON, over the {MAX_PARAMS_BYTES} allowed")


def _members(value: object, path: InputPath, depth: int) -> list[tuple[object, InputPath, int]]:
    """One step of :func:`check_params`: ``value`` checked, and what it holds, to check next."""
    if isinstance(value, str) and _LONE_SURROGATE.search(value):
        raise InvalidInputError(path, "holds a lone surrogate, which is not text")
    if not isinstance(value, dict | list):
        return []
    if depth > MAX_PARAMS_DEPTH:
        raise InvalidInputError(("params",), f"nested deeper than {MAX_PARAMS_DEPTH} levels")
    if isinstance(value, list):
        return [(member, (*path, index), depth + 1) for index, member in enumerate(value)]
    members: list[tuple[object, InputPath, int]] = []
    for key, member in value.items():
        if isinstance(key, str) and _LONE_SURROGATE.search(key):
            raise InvalidInputError(path, "holds a key with a lone surrogate, which is not text")
        members.append((member, (*path, str(key)), depth + 1))
    return members


def _whole_number(value: object) -> object:
    """An attempt number written as a decimal string (Scheduler's substitution) or as a float with
    no fraction (how JSON parsers may read ``2.0``) as an int; anything else as it came."""
    if isinstance(value, str) and _DECIMAL.match(value):
        digits = value.strip().lstrip("+").lstrip("0")
        # Beyond 16 digits it is past MAX_SAFE_INTEGER, and refused as it came; int() of a long
        # enough string would raise instead (Python's limit on digits converted).
        return int(digits or "0") if len(digits) <= len(str(MAX_SAFE_INTEGER)) else value
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
    template: dict[str, Any], *, scheduled_time: datetime, execution_id: str, attempt: int = 1, rerun: bool = False
) -> dict[str, Any]:
    """Substitute the context attributes the way Scheduler does, for local runs and tests; ``rerun``
    adds ``"rerun": true`` (what only an operator's run may say: a schedule never does)."""
    values = {
        SCHEDULED_TIME_ATTRIBUTE: iso_seconds(scheduled_time),
        EXECUTION_ID_ATTRIBUTE: execution_id,
        ATTEMPT_NUMBER_ATTRIBUTE: str(attempt),
    }
    event = {key: values.get(value, value) if isinstance(value, str) else value for key, value in template.items()}
    event.pop(RERUN_FIELD, None)
    if rerun:
        event[RERUN_FIELD] = True
    return event
