"""Reading a fan-out's state machine definition for ``kairos local``: the states found by their type,
not their names; an INLINE and a DISTRIBUTED Map together; the Lambda integration's two shapes;
Step Functions' defaults; one-line errors for what cannot run locally."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest

from kairos.local.state_machine import (
    STANDARD_MAX_SECONDS,
    UNBOUNDED_MAP_CONCURRENCY,
    UNCAPPED_DELAY_SECONDS,
    DefinitionError,
    read_definition,
)
from kairos.plan import RetryPlan


def batch_processor(function: str, *, mode: str | None = None, retry: list[dict[str, Any]] | None = None) -> Any:
    processor: dict[str, Any] = {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": function,
                "End": True,
                "Retry": retry
                if retry is not None
                else [
                    {
                        "ErrorEquals": ["BatchTransientError"],
                        "IntervalSeconds": 10,
                        "MaxAttempts": 3,
                        "BackoffRate": 3,
                        "MaxDelaySeconds": 300,
                    }
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            },
            "Failed": {"Type": "Pass", "End": True},
        },
    }
    if mode:
        processor["ProcessorConfig"] = {"Mode": mode}
    return processor


DEFINITION: dict[str, Any] = {
    "StartAt": "First",
    "TimeoutSeconds": 3600,
    "States": {
        "First": {"Type": "Task", "Resource": "fn-plan", "Next": "Which?"},
        "Which?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.big", "BooleanEquals": True, "Next": "Many"}],
            "Default": "Few",
        },
        "Few": {
            "Type": "Map",
            "MaxConcurrency": 4,
            "ItemProcessor": batch_processor("fn-batch", mode="INLINE"),
            "Next": "Sum",
        },
        "Many": {
            "Type": "Map",
            "MaxConcurrency": 500,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject"},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject"},
            "ItemProcessor": batch_processor("fn-batch", mode="DISTRIBUTED"),
            "Next": "Sum",
        },
        "Sum": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "fn-summarize", "Payload.$": "$"},
            "End": True,
        },
    },
}


def test_an_inline_and_a_distributed_map_take_the_inline_ones_values() -> None:
    shape = read_definition(DEFINITION)

    assert shape.functions == {"plan": "fn-plan", "batch": "fn-batch", "summarize": "fn-summarize"}
    assert (shape.map_state, shape.max_concurrency, shape.timeout_seconds) == ("Few", 4, 3600)
    assert shape.batch_retry == RetryPlan(("BatchTransientError",), 10, 3, 3.0, 300)
    assert shape.notes == (
        "it has an INLINE Map (Few) and a DISTRIBUTED one (Many) with other MaxConcurrency or batch Retry: "
        "the INLINE one's run",
    )


def test_a_distributed_map_alone_is_the_batches() -> None:
    definition = copy.deepcopy(DEFINITION)
    del definition["States"]["Few"]
    definition["States"]["Which?"]["Default"] = "Many"

    shape = read_definition(definition)

    assert (shape.map_state, shape.max_concurrency, shape.notes) == ("Many", 500, ())


def test_step_functions_defaults_apply_where_the_definition_is_silent() -> None:
    definition = copy.deepcopy(DEFINITION)
    del definition["TimeoutSeconds"]
    del definition["States"]["Many"]
    few = definition["States"]["Few"]
    del few["MaxConcurrency"]
    # The legacy Iterator field, and a retrier with only its errors.
    few["Iterator"] = batch_processor("fn-batch", retry=[{"ErrorEquals": ["BatchTransientError"]}])
    del few["ItemProcessor"]

    shape = read_definition(definition)

    assert shape.timeout_seconds == STANDARD_MAX_SECONDS
    assert shape.max_concurrency == UNBOUNDED_MAP_CONCURRENCY
    assert shape.batch_retry == RetryPlan(("BatchTransientError",), 1, 3, 2.0, UNCAPPED_DELAY_SECONDS)


def test_a_batch_without_retry_is_never_retried() -> None:
    definition = copy.deepcopy(DEFINITION)
    definition["States"]["Few"]["ItemProcessor"] = batch_processor("fn-batch", retry=[])

    assert read_definition(definition).batch_retry.max_attempts == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["States"].pop("Few") and d["States"].pop("Many"), "it has no Map state (the batches)"),
        (lambda d: d["States"]["Few"].update(MaxConcurrencyPath="$.n"), "Map Few takes MaxConcurrencyPath"),
        (lambda d: d["States"]["Few"].update(MaxConcurrency="4"), "Map Few's MaxConcurrency is '4'"),
        (lambda d: d["States"]["Few"].update(Next="Nowhere"), "Map Few's Next leads to 'Nowhere'"),
        (lambda d: d.update(StartAt="Which?"), "no Task state follows StartAt"),
        (lambda d: d.update(TimeoutSeconds=0), "its TimeoutSeconds is 0"),
        (lambda d: d["States"]["Many"]["ItemProcessor"].update(ProcessorConfig={}), "several INLINE Map states"),
        (lambda d: d["States"]["Sum"]["Parameters"].pop("FunctionName"), "Task Sum names no function"),
    ],
)
def test_what_cannot_run_locally_is_a_one_line_error(edit: Any, message: str) -> None:
    definition = copy.deepcopy(DEFINITION)
    edit(definition)

    with pytest.raises(DefinitionError) as raised:
        read_definition(definition)

    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_distributed_map_with_the_inline_ones_values_needs_no_note() -> None:
    """As kairos ships it (docs/adr/0164): both Maps run batches alike, so nothing is worth saying."""
    definition = copy.deepcopy(DEFINITION)
    definition["States"]["Many"]["MaxConcurrency"] = 4
    shape = read_definition(definition)
    assert (shape.map_state, shape.max_concurrency, shape.notes) == ("Few", 4, ())


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["States"]["Few"]["ItemProcessor"].update(ProcessorConfig="INLINE"),
        lambda d: d["States"]["Sum"].update(Parameters=["fn-summarize"]),
        lambda d: d["States"]["Many"]["ItemProcessor"].update(States=[]),
        lambda d: d["States"]["Many"]["ItemProcessor"].update(StartAt=7),
    ],
)
def test_a_field_of_the_wrong_type_is_a_definition_error_or_absent_never_a_crash(break_it: Any) -> None:
    """Found by mutating the definition at random: a string or list where an object belongs."""
    definition = copy.deepcopy(DEFINITION)
    break_it(definition)
    with contextlib.suppress(DefinitionError):  # anything else (AttributeError, say) fails the test
        read_definition(definition)
