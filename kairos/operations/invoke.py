"""``kairos invoke``: the deployed function, invoked with exactly the event its schedule sends.

The event is rendered from the plan's input template by the builder ``kairos run`` uses
(:func:`kairos_runtime.events.render_schedule_input`), with an execution id of its own so the run
record it writes can be read back by key. ``rerun`` adds ``"rerun": true``: the slot runs even when it
already SUCCEEDED (a schedule never sends it). A delivery the function declined (the slot is done or
in progress: ``kairos_runtime.slots``) wrote no record of its own; the slot's run is read instead.

A fan-out task is not one function: its schedule starts its state machine, so an invoke (and with
it ``kairos backfill --stage`` and ``kairos redrive``) starts an execution of that machine with the
same event and waits for it, as its schedule would have (docs/adr/0167-invoking-a-fan-out-task.md).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kairos.operations.deployed import DeployedStage, DeployedStageError
from kairos.plan import TaskPlan
from kairos_runtime.events import iso_seconds, render_schedule_input
from kairos_runtime.slots import SLOT_PREFIX
from kairos_runtime.tables import TASK_RUNS

EXECUTION_ID_PREFIX = "kairos-invoke-"
INVOKE_GRACE_S = 30
"""Waited beyond the function's timeout for its answer (boto3 would give up after 60 s)."""
EXECUTION_POLL_S = 2.0
"""How often a fan-out's execution is described while it runs."""
EXECUTION_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


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
    if task.fan_out is not None:
        return execute_fan_out(stage, task, event)
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


def execution_name(event: dict[str, Any]) -> str:
    """A name for the execution of ``event``: its execution id (so the console and the record agree)
    plus a random tail, since a name may not be reused for 90 days and a redrive resends the event as
    it was; within Step Functions' 80 characters of letters, digits, ``-`` and ``_``."""
    stem = EXECUTION_NAME_CHARACTERS.sub("-", str(event.get("execution_id", "")))[:63]
    return f"{stem}-{uuid.uuid4().hex[:16]}"


def execute_fan_out(
    stage: DeployedStage,
    task: TaskPlan,
    event: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> InvokeResult:
    """Start the fan-out's state machine with ``event``, wait for the execution to end (at most its
    timeout and :data:`INVOKE_GRACE_S`), then read the slot's record. ``function_error`` is the
    execution's status when it did not succeed; ``response`` the summary's answer (or the planner's,
    when the slot ended at the plan: declined, skipped), else the execution's output."""
    if task.fan_out is None:
        raise TypeError(f"task {task.name} is not a fan-out task")
    machine = stage.task(task.name).state_machine_arn
    if machine is None:
        raise DeployedStageError(f"fan-out task {task.name} has no state machine in the stage: deploy again")
    client = stage.client("stepfunctions")
    started = client.start_execution(stateMachineArn=machine, name=execution_name(event), input=json.dumps(event))
    deadline = clock() + task.fan_out.execution_timeout_seconds + INVOKE_GRACE_S
    described = client.describe_execution(executionArn=started["executionArn"])
    while described["status"] == "RUNNING" and clock() < deadline:
        sleep(EXECUTION_POLL_S)
        described = client.describe_execution(executionArn=started["executionArn"])
    status = str(described["status"])
    output = _decoded(described.get("output"))
    response: Any = output
    if isinstance(output, dict):
        plan = output.get("plan")
        if isinstance(output.get("summary"), dict):
            response = output["summary"]
        elif isinstance(plan, dict) and isinstance(plan.get("response"), dict):
            response = plan["response"]
    if status == "SUCCEEDED":
        error = None
    elif status == "RUNNING":
        error = f"execution still RUNNING after {task.fan_out.execution_timeout_seconds + INVOKE_GRACE_S} s"
    else:
        error = f"execution {status}"
        cause = described.get("error") or described.get("cause")
        response = {"error": described.get("error"), "cause": described.get("cause")} if cause else response
    return InvokeResult(event, error, response, run_record(stage.runs_table(), event))


def _decoded(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


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
