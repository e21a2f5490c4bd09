"""``kairos invoke``: the deployed function, invoked with exactly the event its schedule sends.

The event is rendered from the plan's input template by the builder ``kairos run`` uses
(:func:`kairos_runtime.events.render_schedule_input`), with an execution id of its own so the run
record it writes can be read back by key.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kairos.operations.deployed import DeployedStage
from kairos.plan import TaskPlan
from kairos_runtime.events import render_schedule_input
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


def scheduled_event(task: TaskPlan, *, scheduled_time: datetime, execution_id: str | None = None) -> dict[str, Any]:
    return render_schedule_input(
        dict(task.input_template),
        scheduled_time=scheduled_time,
        execution_id=execution_id or f"{EXECUTION_ID_PREFIX}{uuid.uuid4()}",
    )


def invoke_deployed(
    stage: DeployedStage,
    task: TaskPlan,
    *,
    scheduled_time: datetime | None = None,
    event: dict[str, Any] | None = None,
) -> InvokeResult:
    """Invoke and wait (RequestResponse), then read the run record the invocation wrote. The event is
    the schedule's for ``scheduled_time``, or ``event`` as it is (already rendered: ``kairos backfill``,
    ``kairos redrive``)."""
    if event is None:
        if scheduled_time is None:
            raise TypeError("invoke_deployed needs a scheduled_time or an event")
        event = scheduled_event(task, scheduled_time=scheduled_time)
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


def run_record(table: Any, event: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the event's slot and execution id (any attempt), by key: one consistent Query."""
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
    return dict(items[-1]) if items else None
