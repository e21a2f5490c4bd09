"""The two original demonstration tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from msgspec import Meta, field

from kairos_runtime.context import TaskContext
from kairos_runtime.registry import TaskOutcome, TaskParams, TaskRegistry

registry = TaskRegistry()


class SimpleTask1Params(TaskParams, frozen=True):
    label: Annotated[str, Meta(max_length=200)] = "simple task 1"


class SimpleTask2Params(TaskParams, frozen=True):
    payload: dict[str, Any] = field(default_factory=dict)


# It reports the time it runs at, not the slot's: a past slot would get the present's answer.
@registry.task("simple_task_1", params=SimpleTask1Params)
def log_timestamp(params: SimpleTask1Params, context: TaskContext) -> TaskOutcome:
    """Log and return the current timestamp."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    context.logger.info(f"{params.label}: the time is {now}", extra={"timestamp": now})
    return TaskOutcome(detail={"timestamp": now})


# Its answer is the event, slot included: any slot, past or present, gets its own.
@registry.task("simple_task_2", params=SimpleTask2Params, backfill=True)
def echo_event(params: SimpleTask2Params, context: TaskContext) -> TaskOutcome:
    """Echo the event it was invoked with."""
    echoed = context.event.as_json()
    context.logger.info("echo", extra={"event": echoed})
    return TaskOutcome(detail={"event": echoed})
