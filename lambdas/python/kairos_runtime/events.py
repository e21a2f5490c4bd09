"""The event every schedule sends to its function, and the template it is built from.

EventBridge Scheduler substitutes its context attributes (``<aws.scheduler.*>``) into the
schedule's input as strings; :meth:`ScheduledEvent.parse` turns them back into typed fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, cast

import msgspec

from kairos_runtime.validation import parse, to_builtins

SCHEDULED_TIME_ATTRIBUTE = "<aws.scheduler.scheduled-time>"
EXECUTION_ID_ATTRIBUTE = "<aws.scheduler.execution-id>"
ATTEMPT_NUMBER_ATTRIBUTE = "<aws.scheduler.attempt-number>"


def iso_seconds(moment: datetime) -> str:
    """``2026-11-27T07:15:00Z``: the UTC, whole-second form Scheduler uses for scheduled times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class ScheduledEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What a function receives from its schedule (or from ``kairos run``). Fields it does not know
    are ignored: an event from a newer schedule still runs."""

    task: _NonEmpty
    task_type: _NonEmpty
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    scheduled_time: datetime
    """Always in UTC (a naive time is taken as UTC)."""
    execution_id: _NonEmpty
    attempt: Annotated[int, msgspec.Meta(ge=1)] = 1

    def __post_init__(self) -> None:
        moment = self.scheduled_time
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        # Frozen: normalising the value the event was built with is this method's one write.
        msgspec.structs.force_setattr(self, "scheduled_time", utc)

    @classmethod
    def parse(cls, raw: object) -> ScheduledEvent:
        """The event as delivered; :class:`~kairos_runtime.validation.InvalidInputError` when it does not fit."""
        return parse(raw, cls, lax=True)

    def for_task(self, task: str) -> ScheduledEvent:
        return msgspec.structs.replace(self, task=task)

    def as_json(self) -> dict[str, Any]:
        """The event as JSON-ready values (``scheduled_time`` as ``2026-11-27T07:15:00Z``), as the
        Node runtime's ``eventAsJson`` writes it."""
        return cast("dict[str, Any]", to_builtins(self))


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
