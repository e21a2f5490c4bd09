"""``kairos invoke``: the deployed function, invoked with exactly the event its schedule sends.

The event is rendered from the plan's input template by the builder ``kairos run`` uses
(:func:`kairos_runtime.events.render_schedule_input`), with an execution id of its own so the run
record it writes can be read back by key. ``rerun`` adds ``"rerun": true``: the slot runs even when it
already SUCCEEDED (a schedule never sends it). A delivery the function declined (the slot is done or
in progress: ``kairos_runtime.slots``) wrote no record of its own; the slot's run is read instead.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kairos.operations.deployed import DeployedStage
from kairos.plan import TaskPlan
from kairos_runtime.events import iso_seconds, render_schedule_input
from kairos_runtime.slots import SLOT_PREFIX
from kairos_runtime.tables import TASK_RUNS

EXECUTION_ID_PREFIX = "kairos-invoke-"
INVOKE_GRACE_S = 30
"""Waited beyond the function's timeout for its answer (boto3 would give up after 60 s)."""


@dataclass(frozen=True, slots=True)
class InvokeResult:
    event: dict[str, Any]
    function_error: str | None
    """Lambda's FunctionError (``Unhandled``) when the handler raised."""
    response: Any
    """The function's answer, decoded from JSON when it is JSON."""
    record: dict[str, Any] | None


def scheduled_event(
    task: TaskPlan, *, scheduled_time: datetime, execution_id: str | None = None, rerun: bool = False
) -> dict[str, Any]:
    """The event the task's schedule sends for ``scheduled_time`` (``kairos run``, ``invoke``,
    backfill), with ``"rerun": true`` when asked."""
    return render_schedule_input(
        dict(task.input_template),
        scheduled_time=scheduled_time,
        execution_id=execution_id or f"{EXECUTION_ID_PREFIX}{uuid.uuid4()}",
        rerun=rerun,
    )


def past_slot_refusal(task: TaskPlan, slot: datetime, *, now: datetime) -> str | None:
    """Why the deployed handler would refuse ``slot`` (recorded SKIPPED, PastSlotRefused: ADR 0130),
    or None when it would run it. The handler's own rule (``RuntimeSettings.refuses_past_slot``) on
    the limit the plan deploys, so ``kairos invoke`` refuses the slot before invoking anything."""
    lateness = (now - slot).total_seconds()
    limit = task.late_delivery_limit_seconds
    if task.backfill or lateness <= limit:
        return None
    return (
        f"{task.name} cannot run for past slot {iso_seconds(slot)} ({round(lateness)} s ago, over its "
        f"late-delivery limit of {limit} s): task_type {task.task_type} only sees the present, so its handler "
        "would record it SKIPPED (PastSlotRefused); --rerun does not lift the limit and kairos backfill refuses "
        "this task type: leave out --scheduled-time to run the current slot"
    )


def invoke_deployed(
    stage: DeployedStage,
    task: TaskPlan,
    *,
    scheduled_time: datetime | None = None,
    event: dict[str, Any] | None = None,
    rerun: bool = False,
) -> InvokeResult:
    """Invoke and wait (RequestResponse), then read the run record the invocation wrote. The event is
    the schedule's for ``scheduled_time``, or ``event`` as it is (already rendered: ``kairos backfill``,
    ``kairos redrive``)."""
    if event is None:
        if scheduled_time is None:
            raise TypeError("invoke_deployed needs a scheduled_time or an event")
        event = scheduled_event(task, scheduled_time=scheduled_time, rerun=rerun)
    from botocore.config import Config

    # One attempt only: boto3 retries a read timeout, and a retried Invoke runs the task again.
    config = Config(read_timeout=task.timeout + INVOKE_GRACE_S, retries={"total_max_attempts": 1})
    answer = stage.client("lambda", config=config).invoke(
        FunctionName=stage.task(task.name).function_name,
        InvocationType="RequestResponse",
        Payload=json.dumps(event).encode(),
    )
    body = answer["Payload"].read().decode("utf-8", errors="replace")
    try:
        response: Any = json.loads(body)
    except ValueError:
        response = body
    return InvokeResult(event, answer.get("FunctionError"), response, run_record(stage.runs_table(), event))


def declined(response: Any) -> str | None:
    """Why the function did not run the event (``done``, ``in_progress``), if it declined it."""
    reason = response.get("declined") if isinstance(response, dict) else None
    return reason if isinstance(reason, str) else None


def run_record(table: Any, event: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the event's slot and execution id (any attempt), by key: one consistent Query;
    else, when the delivery was declined, the record of the run that holds the slot."""
    response = table.query(
        KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
        ExpressionAttributeNames={"#pk": TASK_RUNS.partition_key, "#sk": TASK_RUNS.sort_key},
        ExpressionAttributeValues={
            ":pk": f"TASK#{event['task']}",
            ":prefix": f"RUN#{event['scheduled_time']}#{event['execution_id']}#",
        },
        ConsistentRead=True,
    )
    items = response.get("Items", [])
    if items:
        return dict(items[-1])
    key = {
        TASK_RUNS.partition_key: f"TASK#{event['task']}",
        TASK_RUNS.sort_key: f"{SLOT_PREFIX}{event['scheduled_time']}",
    }
    slot = table.get_item(Key=key, ConsistentRead=True).get("Item")
    if slot is None or not slot.get("run_id"):
        return None
    key[TASK_RUNS.sort_key] = str(slot["run_id"])
    record = table.get_item(Key=key, ConsistentRead=True).get("Item")
    return dict(record) if record else None
