"""The handler refuses a past slot for a task type that cannot be backfilled (recorded SKIPPED as
PastSlotRefused) and runs one that can; a late delivery within the limit still runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kairos_runtime.registry import InvalidDeclarationError, TaskOutcome, TaskParams, TaskRegistry
from kairos_runtime.runner import TaskRunner
from kairos_runtime.settings import PAST_SLOT_REFUSED
from kairos_runtime.tasks import default_registry
from tests.conftest import FakeLambdaContext, scheduled_event

MakeRunner = Callable[..., TaskRunner]
SLOT = datetime(2026, 11, 27, 7, 15, tzinfo=UTC)
LIMIT_S = 900


class NoParams(TaskParams, frozen=True):
    pass


def two_types(calls: list[str]) -> TaskRegistry:
    registry = TaskRegistry()

    def snapshot(params: NoParams, context: Any) -> TaskOutcome:
        calls.append("snapshot")
        return TaskOutcome(items_written=1)

    def daily(params: NoParams, context: Any) -> TaskOutcome:
        calls.append("daily")
        return TaskOutcome(items_written=1)

    registry.task("snapshot", params=NoParams)(snapshot)
    registry.task("daily", params=NoParams, backfill=True)(daily)
    return registry


def record(dynamodb: Any, task: str) -> dict[str, Any]:
    [item] = dynamodb.Table("kairos-test-TaskRuns").query(
        # The run record only, not the slot's claim item beside it (SLOT#...).
        KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
        ExpressionAttributeValues={":pk": f"TASK#{task}", ":run": "RUN#"},
    )["Items"]
    return dict(item)


def dispatch(make_runner: MakeRunner, task_type: str, *, late_by: timedelta, calls: list[str]) -> dict[str, Any]:
    runner = make_runner(two_types(calls), clock=lambda: SLOT + late_by, late_delivery_limit_seconds=LIMIT_S)
    return runner.dispatch(scheduled_event(task_type, task_type), FakeLambdaContext())


def test_a_past_slot_of_a_task_that_cannot_be_backfilled_is_skipped_with_the_reason(
    make_runner: MakeRunner, dynamodb: Any
) -> None:
    calls: list[str] = []

    response = dispatch(make_runner, "snapshot", late_by=timedelta(days=3), calls=calls)

    assert calls == [], "the task's code never ran"
    assert response["status"] == "SKIPPED"
    stored = record(dynamodb, "snapshot")
    assert (stored["status"], stored["error_type"], stored["error_kind"]) == ("SKIPPED", PAST_SLOT_REFUSED, "permanent")
    assert "cannot run for a past slot" in stored["error_message"]
    assert f"limit of {LIMIT_S} s" in stored["detail"]["reason"]


def test_a_late_delivery_within_the_limit_still_runs(make_runner: MakeRunner, dynamodb: Any) -> None:
    calls: list[str] = []

    response = dispatch(make_runner, "snapshot", late_by=timedelta(seconds=LIMIT_S - 1), calls=calls)

    assert (response["status"], calls) == ("SUCCEEDED", ["snapshot"])


def test_a_backfillable_task_runs_a_past_slot(make_runner: MakeRunner, dynamodb: Any) -> None:
    calls: list[str] = []

    response = dispatch(make_runner, "daily", late_by=timedelta(days=30), calls=calls)

    assert (response["status"], calls) == ("SUCCEEDED", ["daily"])
    assert "error_type" not in record(dynamodb, "daily")


def test_without_a_limit_every_slot_runs(make_runner: MakeRunner, dynamodb: Any) -> None:
    calls: list[str] = []
    runner = make_runner(two_types(calls), clock=lambda: SLOT + timedelta(days=300))

    assert runner.dispatch(scheduled_event("snapshot", "snapshot"), FakeLambdaContext())["status"] == "SUCCEEDED"


def test_backfill_must_be_a_bool() -> None:
    with pytest.raises(InvalidDeclarationError, match="backfill must be True or False"):
        TaskRegistry().task("odd", params=NoParams, backfill="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task_type", "backfill"),
    [
        ("stock_daily", True),
        ("etf_daily", True),
        ("index_daily", True),
        ("trading_calendar", True),
        ("daily_summary", True),
        ("simple_task_2", True),
        ("stock_spot", False),
        ("etf_spot", False),
        ("index_spot", False),
        ("crypto_markets", False),
        ("simple_task_1", False),
    ],
)
def test_each_shipped_task_type_declares_whether_it_can_be_backfilled(task_type: str, backfill: bool) -> None:
    assert default_registry().get(task_type).backfill is backfill


@pytest.mark.parametrize("value", ["10", "soon", "-5"])
def test_a_malformed_late_delivery_limit_fails_the_cold_start(value: str) -> None:
    from kairos_runtime.settings import LATE_DELIVERY_LIMIT_ENV, RuntimeSettings
    from kairos_runtime.validation import InvalidInputError

    with pytest.raises(InvalidInputError):
        RuntimeSettings.from_environ({LATE_DELIVERY_LIMIT_ENV: value})
