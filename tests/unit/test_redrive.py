"""Dead-letter messages in both shapes (Lambda's on-failure record, Scheduler's dead letter), read
without AWS; and when a re-run lets a message go."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kairos.catalog import load_catalog
from kairos.config import TasksFile
from kairos.operations.invoke import InvokeResult
from kairos.operations.redrive import Action, Source, parse_message, redrive_letter
from kairos.plan import StagePlan, plan_stage

EVENT = {
    "task": "snap",
    "task_type": "simple_task_1",
    "params": {},
    "scheduled_time": "2026-11-26T09:30:00Z",
    "execution_id": "exec-1",
    "attempt": "2",
}


@pytest.fixture(scope="module")
def plan() -> StagePlan:
    task = {"name": "snap", "task_type": "simple_task_1", "schedule": "rate(5 minutes)"}
    tasks_file = TasksFile.model_validate({"stages": {"dev": {}}, "tasks": [task]})
    return plan_stage(tasks_file, load_catalog(), "dev")


def message(body: Any, **attributes: str) -> dict[str, Any]:
    return {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": body if isinstance(body, str) else json.dumps(body),
        "MessageAttributes": {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
    }


def test_a_lambda_failure_record_gives_its_event_and_why(plan: StagePlan) -> None:
    record = {
        "requestContext": {"condition": "EventAgeExceeded", "approximateInvokeCount": 1},
        "requestPayload": EVENT,
        "responsePayload": None,
    }

    letter = parse_message(message(record), plan)

    assert (letter.source, letter.task, letter.slot) == (Source.LAMBDA, "snap", "2026-11-26T09:30:00Z")
    assert letter.why == "EventAgeExceeded after 1 attempt(s)"
    assert letter.event == EVENT, "the event goes again exactly as it was delivered"


def test_a_scheduler_dead_letter_gives_its_event_and_the_attributes_why(plan: StagePlan) -> None:
    letter = parse_message(message(EVENT, ERROR_CODE="AWS.Scheduler.Throttling", ERROR_MESSAGE="slow down"), plan)

    assert (letter.source, letter.why, letter.event) == (Source.SCHEDULER, "AWS.Scheduler.Throttling: slow down", EVENT)


@pytest.mark.parametrize(
    ("body", "attributes", "why"),
    [
        ("{not json", {}, "the body is not JSON"),
        ({"some": "thing"}, {}, "neither a Lambda failure record nor a Scheduler dead letter"),
        ({**EVENT, "task": "elsewhere"}, {"ERROR_CODE": "X"}, "task 'elsewhere' is not in stage dev"),
        ({**EVENT, "scheduled_time": "yesterday"}, {"ERROR_CODE": "X"}, "scheduled_time: must be an ISO 8601"),
    ],
)
def test_a_message_this_stage_cannot_run_is_kept(
    plan: StagePlan, body: Any, attributes: dict[str, str], why: str
) -> None:
    letter = parse_message(message(body, **attributes), plan)

    assert letter.event is None
    assert why in letter.why
    assert redrive_letter(letter, invoke=lambda event: pytest.fail("never invoked")) == (
        Action.KEPT,
        "not runnable: left in the queue",
    )


def outcome(record: dict[str, Any] | None, function_error: str | None = None) -> InvokeResult:
    return InvokeResult(EVENT, function_error, None, record)


@pytest.mark.parametrize(
    ("result", "action", "detail"),
    [
        (outcome({"status": "SUCCEEDED"}), Action.REDRIVEN, "SUCCEEDED"),
        (outcome({"status": "SKIPPED", "error_type": "PastSlotRefused"}), Action.REDRIVEN, "SKIPPED (PastSlotRefused)"),
        (outcome({"status": "FAILED", "error_type": "Boom", "error_message": "x"}), Action.KEPT, None),
        (outcome({"status": "STARTED"}), Action.KEPT, "the re-run is recorded STARTED"),
        (outcome(None), Action.KEPT, "no run record was written for its slot"),
        (outcome({"status": "SUCCEEDED"}, "Unhandled"), Action.KEPT, "the function failed again (Unhandled)"),
    ],
)
def test_a_message_goes_only_when_its_slot_is_recorded_done(
    plan: StagePlan, result: InvokeResult, action: Action, detail: str | None
) -> None:
    letter = parse_message(message(EVENT, ERROR_CODE="X"), plan)

    got_action, got_detail = redrive_letter(letter, invoke=lambda event: result)

    assert got_action is action
    if detail is not None:
        assert got_detail == detail


def test_an_invoke_that_raises_keeps_the_message(plan: StagePlan) -> None:
    letter = parse_message(message(EVENT, ERROR_CODE="X"), plan)

    def refuse(event: dict[str, Any]) -> InvokeResult:
        raise RuntimeError("AccessDenied")

    assert redrive_letter(letter, invoke=refuse) == (Action.KEPT, "the invoke failed: RuntimeError: AccessDenied")
