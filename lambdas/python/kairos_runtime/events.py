"""The event every schedule sends to its function, and the template it is built from.

EventBridge Scheduler substitutes its context attributes (``<aws.scheduler.*>``) into the
schedule's input as strings; the model coerces them back into typed fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEDULED_TIME_ATTRIBUTE = "<aws.scheduler.scheduled-time>"
EXECUTION_ID_ATTRIBUTE = "<aws.scheduler.execution-id>"
ATTEMPT_NUMBER_ATTRIBUTE = "<aws.scheduler.attempt-number>"


def iso_seconds(moment: datetime) -> str:
    """``2026-11-27T07:15:00Z``: the UTC, whole-second form Scheduler uses for scheduled times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ScheduledEvent(BaseModel):
    """What a function receives from its schedule (or from ``kairos run``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    task: str = Field(min_length=1)
    task_type: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    scheduled_time: datetime
    execution_id: str = Field(min_length=1)
    attempt: int = Field(default=1, ge=1)

    @field_validator("scheduled_time")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


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
