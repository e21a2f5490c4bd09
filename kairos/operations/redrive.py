"""``kairos redrive``: the stage's dead-letter queue, read, re-run and emptied of what succeeded.

Two services write to the queue, in two shapes (docs/adr/0131-backfill-and-redrive-semantics.md):

* Lambda's on-failure destination (an asynchronous invocation whose retries ran out, or that grew
  too old): the body is an invocation record, JSON with ``requestContext`` (``condition``:
  ``RetriesExhausted`` / ``EventAgeExceeded``, ``approximateInvokeCount``, ``functionArn``),
  ``requestPayload`` (the event as delivered), ``responseContext`` and ``responsePayload`` (the
  function's error, ``errorType`` / ``errorMessage``).
* Scheduler's dead-letter queue (a delivery Scheduler could not make: throttled, no permission, the
  function missing): the body is the schedule's input as it would have been delivered (the event),
  and the why is in message attributes (``ERROR_CODE``, ``ERROR_MESSAGE``, ``EXECUTION_ID``,
  ``SCHEDULE_ARN``, ``TARGET_ARN``).

Each message's event is run again, exactly as it was (its own slot and execution id), by invoking
the deployed function and waiting; the message is deleted only once the slot's run record reads
SUCCEEDED or SKIPPED. A message whose re-run failed, or that is not a Kairos event of this stage
(garbled, another task), is left in the queue and made visible again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kairos.operations.invoke import INVOKE_GRACE_S, InvokeResult
from kairos.plan import StagePlan
from kairos_runtime.events import ScheduledEvent, iso_seconds
from kairos_runtime.runs import RunStatus
from kairos_runtime.validation import InvalidInputError

RECEIVE_BATCH = 10
"""SQS hands out at most 10 messages a ReceiveMessage."""
MAX_MESSAGES = 1000
"""A redrive reads at most this many messages (a queue that full is read by several redrives)."""
FINAL_OK = frozenset({RunStatus.SUCCEEDED.value, RunStatus.SKIPPED.value})
WHY_LIMIT = 300


class Source(StrEnum):
    LAMBDA = "lambda"
    """Lambda's on-failure destination record."""
    SCHEDULER = "scheduler"
    """Scheduler's dead-letter message."""
    UNKNOWN = "unknown"


class Action(StrEnum):
    REDRIVEN = "redriven"
    """Run again, recorded SUCCEEDED or SKIPPED, and deleted."""
    KEPT = "kept"
    """Left in the queue: the re-run failed, or the message is not one this stage can run."""
    WOULD_REDRIVE = "would_redrive"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    source: Source
    why: str
    event: dict[str, Any] | None
    """The event to deliver again; None when the message holds none this stage can run."""
    task: str | None = None
    slot: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "source": self.source.value,
            "task": self.task,
            "scheduled_time": self.slot,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Redriven:
    letter: DeadLetter
    action: Action
    detail: str | None = None
    """Why it was kept, or the record's status when redriven."""

    def as_json(self) -> dict[str, Any]:
        return self.letter.as_json() | {"action": self.action.value, "detail": self.detail}


def _cut(text: str) -> str:
    return text if len(text) <= WHY_LIMIT else text[: WHY_LIMIT - 1] + "…"


def _attributes(message: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(name): str(value.get("StringValue", ""))
        for name, value in (message.get("MessageAttributes") or {}).items()
        if isinstance(value, Mapping)
    }


def parse_message(message: Mapping[str, Any], plan: StagePlan) -> DeadLetter:
    """The message as a dead letter of ``plan``'s stage: its source, why, and event (if runnable)."""
    message_id, receipt = str(message.get("MessageId", "")), str(message.get("ReceiptHandle", ""))
    try:
        body: Any = json.loads(str(message.get("Body", "")))
    except ValueError:
        return DeadLetter(message_id, receipt, Source.UNKNOWN, "the body is not JSON", None)
    attributes = _attributes(message)
    if isinstance(body, dict) and isinstance(body.get("requestContext"), dict) and "requestPayload" in body:
        context, response = body["requestContext"], body.get("responsePayload")
        why = f"{context.get('condition', 'failed')} after {context.get('approximateInvokeCount', '?')} attempt(s)"
        if isinstance(response, dict) and (response.get("errorType") or response.get("errorMessage")):
            why += f": {response.get('errorType', 'Error')}: {response.get('errorMessage', '')}"
        letter = DeadLetter(message_id, receipt, Source.LAMBDA, _cut(why), None)
        return _with_event(letter, body["requestPayload"], plan)
    if "ERROR_CODE" in attributes or "SCHEDULE_ARN" in attributes:
        why = f"{attributes.get('ERROR_CODE', 'error')}: {attributes.get('ERROR_MESSAGE', '')}".rstrip(": ")
        return _with_event(DeadLetter(message_id, receipt, Source.SCHEDULER, _cut(why), None), body, plan)
    return DeadLetter(
        message_id, receipt, Source.UNKNOWN, "neither a Lambda failure record nor a Scheduler dead letter", None
    )


def _with_event(letter: DeadLetter, payload: object, plan: StagePlan) -> DeadLetter:
    """The letter with its event, once the payload reads as an event of one of the stage's tasks."""
    try:
        event = ScheduledEvent.parse(payload)
    except InvalidInputError as invalid:
        where = invalid.location or "event"
        problem = f"{letter.why}; the event is not one kairos can run ({where}: {invalid.message})"
        return DeadLetter(letter.message_id, letter.receipt_handle, letter.source, _cut(problem), None)
    slot = iso_seconds(event.scheduled_time)
    names = {task.name for task in plan.tasks}
    if event.task not in names:
        problem = f"{letter.why}; task {event.task!r} is not in stage {plan.stage}"
        return DeadLetter(
            letter.message_id, letter.receipt_handle, letter.source, _cut(problem), None, event.task, slot
        )
    assert isinstance(payload, dict)
    return DeadLetter(letter.message_id, letter.receipt_handle, letter.source, letter.why, payload, event.task, slot)


def receive_all(sqs: Any, queue_url: str, *, visibility_s: int, limit: int = MAX_MESSAGES) -> Iterator[dict[str, Any]]:
    """Every message the queue hands out (each once), hidden from other readers for ``visibility_s``."""
    seen: set[str] = set()
    while len(seen) < limit:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=RECEIVE_BATCH,
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility_s,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        messages = [message for message in response.get("Messages", []) if message.get("MessageId") not in seen]
        if not messages:
            return
        for message in messages:
            seen.add(str(message.get("MessageId")))
            yield message


def redrive_letter(
    letter: DeadLetter, *, invoke: Callable[[dict[str, Any]], InvokeResult] | None
) -> tuple[Action, str | None]:
    """Run one letter again (``invoke`` None: a dry run); the message is to be deleted only on REDRIVEN."""
    if letter.event is None:
        return Action.KEPT, "not runnable: left in the queue"
    if invoke is None:
        return Action.WOULD_REDRIVE, None
    try:
        result = invoke(letter.event)
    except Exception as error:  # this message is kept, the others go on
        return Action.KEPT, _cut(f"the invoke failed: {type(error).__name__}: {error}")
    record = result.record
    if result.function_error:
        return Action.KEPT, _cut(f"the function failed again ({result.function_error})")
    if record is None:
        return Action.KEPT, "no run record was written for its slot"
    status = str(record.get("status"))
    if status not in FINAL_OK:
        why = f": {record.get('error_type')}: {record.get('error_message', '')}" if record.get("error_type") else ""
        return Action.KEPT, _cut(f"the re-run is recorded {status}{why}")
    # A SKIPPED re-run says why (PastSlotRefused: a snapshot's slot is gone for good).
    return Action.REDRIVEN, f"{status} ({record['error_type']})" if record.get("error_type") else status


def visibility_for(plan: StagePlan) -> int:
    """How long a received message stays hidden: long enough to re-run the slowest task of the stage."""
    return max((task.timeout for task in plan.tasks), default=60) + INVOKE_GRACE_S
