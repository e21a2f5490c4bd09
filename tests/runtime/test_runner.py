"""The runner against moto's DynamoDB: every delivery leaves a truthful run record."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kairos_runtime.bounds import MAX_DETAIL_BYTES
from kairos_runtime.context import TaskContext, UndeclaredTableError
from kairos_runtime.errors import PermanentTaskError, TransientTaskError
from kairos_runtime.registry import Access, TaskOutcome, TaskParams, TaskRegistry, TaskSkipped
from kairos_runtime.runner import RunResult, TaskRunFailed, TaskRunner
from kairos_runtime.runs import RunHistory, RunRecorder
from kairos_runtime.tables import TASK_RUNS, TableId, query_index
from tests.conftest import EVENTS_DIR, FakeLambdaContext, scheduled_event

MakeRunner = Callable[..., TaskRunner]


def run_record(dynamodb: Any, task: str) -> dict[str, Any]:
    items = dynamodb.Table("kairos-test-TaskRuns").query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
        ExpressionAttributeValues={":pk": f"TASK#{task}", ":run": "RUN#"},
    )["Items"]
    assert len(items) == 1, items
    return dict(items[0])


class NoParams(TaskParams, frozen=True):
    pass


def registry_with(function: Callable[[NoParams, TaskContext], TaskOutcome | None], **options: Any) -> TaskRegistry:
    registry = TaskRegistry()
    registry.task("probe", params=NoParams, **options)(function)
    return registry


def test_a_canned_scheduler_event_runs_and_is_recorded(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    event = json.loads((EVENTS_DIR / "simple_task_1.json").read_text())

    response = make_runner().dispatch(event, lambda_context)

    record = run_record(dynamodb, "python-task-1")
    assert response["status"] == "SUCCEEDED"
    assert record["sk"] == "RUN#2026-11-27T07:15:00Z#d4f1c7f0-5a8e-4c51-9d8a-2f3f2f0d8b11#1"
    assert record["status"] == "SUCCEEDED"
    assert record["task_type"] == "simple_task_1"
    assert record["runtime"] == "python3.13"
    assert record["attempt"] == Decimal(1)
    assert record["deliveries"] == Decimal(1)
    assert record["request_id"] == "request-1"
    assert record["duration_ms"] >= 0
    assert record["detail"]["timestamp"].endswith("Z")
    assert record["gsi1pk"] == f"RUNDATE#{record['started_at'][:10]}"
    started = datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
    assert int(record["expires_at"]) == int((started + timedelta(days=90)).timestamp())
    assert "error_type" not in record


def test_simple_task_2_echoes_its_event(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    event = json.loads((EVENTS_DIR / "simple_task_2.json").read_text())

    make_runner().dispatch(event, lambda_context)

    echoed = run_record(dynamodb, "python-task-2")["detail"]["event"]
    assert echoed["params"] == {"payload": {"source": "python-task-2"}}
    assert echoed["attempt"] == 2
    assert echoed["scheduled_time"] == "2026-11-27T07:20:00Z"


def test_an_unknown_task_type_is_a_failed_run_not_a_crash(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    response = make_runner().dispatch(scheduled_event("ghost", "no_such_type"), lambda_context)

    record = run_record(dynamodb, "ghost")
    assert response["status"] == "FAILED"
    assert record["status"] == "FAILED"
    assert record["error_type"] == "UnknownTaskType"
    assert "unknown task_type 'no_such_type'" in record["error_message"]
    assert "simple_task_1" in record["error_message"], "the message lists what is registered"
    assert record["error_kind"] == "permanent"


def test_params_that_do_not_fit_fail_with_the_field_named(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    make_runner().dispatch(scheduled_event("one", "simple_task_1", {"label": ["not", "text"]}), lambda_context)

    record = run_record(dynamodb, "one")
    assert record["error_type"] == "InvalidParams"
    assert record["error_message"] == "params do not fit task_type 'simple_task_1': label: Expected `str`, got `array`"


@pytest.mark.parametrize(
    ("event", "task"),
    [
        pytest.param({"task": "half", "task_type": "simple_task_1"}, "half", id="missing-fields"),
        pytest.param(
            {"task": "when", "task_type": "simple_task_1", "scheduled_time": "soon", "execution_id": "e"},
            "when",
            id="bad-time",
        ),
        pytest.param(["not", "a", "mapping"], "unknown-task", id="not-a-mapping"),
    ],
)
def test_a_malformed_event_is_recorded_as_invalid(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, event: object, task: str
) -> None:
    response = make_runner().dispatch(event, lambda_context)

    record = run_record(dynamodb, task)
    assert response["status"] == "FAILED"
    assert record["error_type"] == "InvalidEvent"
    assert record["error_kind"] == "permanent"


def test_a_skip_is_recorded_with_its_reason(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def skipping(params: NoParams, context: TaskContext) -> None:
        raise TaskSkipped("market closed", detail={"reason": "overridden?", "calendar": "sse"})

    make_runner(registry_with(skipping)).dispatch(scheduled_event("probe", "probe"), lambda_context)

    record = run_record(dynamodb, "probe")
    assert record["status"] == "SKIPPED"
    assert record["detail"] == {"reason": "market closed", "calendar": "sse"}


def test_a_transient_failure_is_recorded_then_raised_for_a_retry(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def flaky(params: NoParams, context: TaskContext) -> None:
        raise TransientTaskError("upstream timed out after 15 s")

    with pytest.raises(TaskRunFailed, match="upstream timed out"):
        make_runner(registry_with(flaky)).dispatch(scheduled_event("probe", "probe"), lambda_context)

    record = run_record(dynamodb, "probe")
    assert (record["status"], record["error_type"], record["error_kind"]) == (
        "FAILED",
        "TransientTaskError",
        "transient",
    )


def test_a_permanent_failure_is_recorded_and_not_retried(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def refused(params: NoParams, context: TaskContext) -> None:
        raise PermanentTaskError("source returned no rows")

    response = make_runner(registry_with(refused)).dispatch(scheduled_event("probe", "probe"), lambda_context)

    assert response["error"] == {"type": "PermanentTaskError", "message": "source returned no rows"}
    assert run_record(dynamodb, "probe")["error_kind"] == "permanent"


def test_a_redelivered_event_counts_deliveries_and_keeps_the_earlier_outcome(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    calls: list[int] = []

    def fails_once(params: NoParams, context: TaskContext) -> TaskOutcome:
        calls.append(1)
        if len(calls) == 1:
            raise TransientTaskError("connection reset")
        return TaskOutcome(items_written=3)

    runner = make_runner(registry_with(fails_once))
    event = scheduled_event("probe", "probe")
    with pytest.raises(TaskRunFailed):
        runner.dispatch(event, lambda_context)
    runner.dispatch(event, FakeLambdaContext())

    record = run_record(dynamodb, "probe")
    assert record["status"] == "SUCCEEDED"
    assert record["deliveries"] == Decimal(2)
    assert record["items_written"] == Decimal(3)
    assert "error_type" not in record, "the retry's record does not keep the old error as its own"
    [previous] = record["previous_outcomes"]
    assert (previous["status"], previous["error_type"], previous["error_message"]) == (
        "FAILED",
        "TransientTaskError",
        "connection reset",
    )


def test_a_task_cannot_touch_a_table_it_did_not_declare(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def snooping(params: NoParams, context: TaskContext) -> None:
        context.clients.table(TableId.MARKET_DATA).scan()

    make_runner(registry_with(snooping)).dispatch(scheduled_event("probe", "probe"), lambda_context)

    record = run_record(dynamodb, "probe")
    assert record["error_type"] == "UndeclaredTableError"
    assert "market_data" in record["error_message"]


def test_a_declared_table_is_reachable(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def writer(params: NoParams, context: TaskContext) -> TaskOutcome:
        context.clients.table(TableId.MARKET_DATA).put_item(Item={"pk": "X#1", "sk": "LATEST"})
        return TaskOutcome(items_written=1)

    make_runner(
        registry_with(writer, tables={TableId.MARKET_DATA: "write"}, partitions={TableId.MARKET_DATA: ("X#",)})
    ).dispatch(scheduled_event("probe", "probe"), lambda_context)

    assert run_record(dynamodb, "probe")["status"] == "SUCCEEDED"
    assert dynamodb.Table("kairos-test-MarketData").get_item(Key={"pk": "X#1", "sk": "LATEST"})["Item"]


def test_an_oversized_detail_is_summarised_so_the_record_still_finishes(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def verbose(params: NoParams, context: TaskContext) -> TaskOutcome:
        return TaskOutcome(detail={"rows": ["x" * 100] * (MAX_DETAIL_BYTES // 50)})

    make_runner(registry_with(verbose)).dispatch(scheduled_event("probe", "probe"), lambda_context)

    record = run_record(dynamodb, "probe")
    assert record["status"] == "SUCCEEDED"
    assert record["detail"]["truncated"] is True
    assert record["detail"]["keys"] == ["rows"]


def test_history_lists_runs_newest_first(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    clock = iter([datetime(2026, 11, 27, 7, minute, tzinfo=UTC) for minute in range(0, 40)])
    runner = make_runner(clock=lambda: next(clock))
    for minute in (5, 10, 15):
        event = scheduled_event("one", "simple_task_1", scheduled_time=f"2026-11-27T07:{minute:02d}:00Z")
        runner.dispatch(event, lambda_context)
    runner.dispatch(scheduled_event("two", "simple_task_2"), lambda_context)

    history = RunHistory(dynamodb.Table("kairos-test-TaskRuns"))
    assert [item["scheduled_time"][11:16] for item in history.for_task("one", limit=10)] == [
        "07:15",
        "07:10",
        "07:05",
    ]
    assert [item["task"] for item in history.recent(limit=10, today=datetime(2026, 11, 27, 23, tzinfo=UTC))] == [
        "two",
        "one",
        "one",
        "one",
    ]
    assert len(history.for_task("one", limit=2)) == 2


def test_a_function_records_under_its_own_task_whatever_the_event_says(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    # IAM lets a function write only TASK#<its own name>: every record must go there.
    runner = make_runner(task="python-task-1")

    runner.dispatch({"garbage": True}, lambda_context)
    runner.dispatch(scheduled_event("someone-else", "simple_task_1"), FakeLambdaContext())

    items = dynamodb.Table("kairos-test-TaskRuns").scan()["Items"]
    assert {item["pk"] for item in items} == {"TASK#python-task-1"}
    messages = sorted(item["error_message"] for item in items)
    assert messages[1] == "this function runs task 'python-task-1'; the event names 'someone-else'"
    assert all(item["error_type"] == "InvalidEvent" for item in items)


def test_a_shared_function_runs_its_own_tasks_and_refuses_another_recording_it_under_its_first(
    make_runner: MakeRunner, dynamodb: Any
) -> None:
    # Given a function shared by two tasks (KAIROS_TASKS; IAM lets it write their records only)
    runner = make_runner(tasks=["python-task-1", "python-task-2"], task_type="simple_task_1")

    # When each of its tasks' schedules fires, and an event names a third task
    first = runner.dispatch(scheduled_event("python-task-1", "simple_task_1"), FakeLambdaContext())
    second = runner.dispatch(scheduled_event("python-task-2", "simple_task_1"), FakeLambdaContext())
    foreign = runner.dispatch(scheduled_event("someone-else", "simple_task_1"), FakeLambdaContext())

    # Then its tasks run under their own names, and the foreign event is refused, recorded, not run
    assert (first["status"], second["status"], foreign["status"]) == ("SUCCEEDED", "SUCCEEDED", "FAILED")
    items = dynamodb.Table("kairos-test-TaskRuns").scan()["Items"]
    runs = [item for item in items if str(item["sk"]).startswith("RUN#")]
    assert {item["pk"] for item in runs} == {"TASK#python-task-1", "TASK#python-task-2"}
    [refused] = [item for item in runs if item.get("error_type") == "InvalidEvent"]
    assert refused["pk"] == "TASK#python-task-1"
    assert refused["error_message"] == (
        "this shared function runs tasks 'python-task-1', 'python-task-2'; the event names 'someone-else'"
    )
    assert "detail" not in refused or not refused["detail"]


def test_detail_values_dynamodb_cannot_store_become_null_and_decimals_stay_numbers(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def odd_numbers(params: NoParams, context: TaskContext) -> TaskOutcome:
        return TaskOutcome(detail={"ratio": float("nan"), "limit": float("inf"), "price": Decimal("1700.5")})

    make_runner(registry_with(odd_numbers)).dispatch(scheduled_event("probe", "probe"), lambda_context)

    record = run_record(dynamodb, "probe")
    assert record["status"] == "SUCCEEDED"
    assert record["detail"] == {"ratio": None, "limit": None, "price": Decimal("1700.5")}


class RecordingObserver:
    """Keeps what the runner reports to metrics and tracing."""

    def __init__(self) -> None:
        self.results: list[RunResult] = []

    def run_started(self, event: object) -> None:
        return None

    def run_finished(self, event: object, result: RunResult) -> None:
        self.results.append(result)


SLOT = datetime(2026, 11, 27, 7, 15, tzinfo=UTC)  # scheduled_event's slot
# When Lambda's attempts at one invocation run: at once, a minute later, two minutes after that.
ATTEMPT_TIMES = (SLOT + timedelta(seconds=5), SLOT + timedelta(seconds=70), SLOT + timedelta(seconds=190))


class SteppingClock:
    def __init__(self) -> None:
        self.now = ATTEMPT_TIMES[0]

    def __call__(self) -> datetime:
        return self.now


def always_down(params: NoParams, context: TaskContext) -> None:
    raise TransientTaskError("upstream down")


def fail(runner: TaskRunner, context: FakeLambdaContext) -> RunResult:
    with pytest.raises(TaskRunFailed) as failure:
        runner.dispatch(scheduled_event("probe", "probe"), context)
    return failure.value.result


@pytest.mark.parametrize(
    ("settings", "retried"),
    [
        ({"lambda_retry_attempts": 2}, [True, True, False]),
        ({"lambda_retry_attempts": 0}, [False, False, False]),  # a local run: one delivery
        # A task every 3 minutes: the second retry would come after the event's maximum age.
        ({"lambda_retry_attempts": 2, "max_event_age_seconds": 180}, [True, False, False]),
    ],
)
def test_a_transient_failure_counts_as_retried_only_when_lambda_will_invoke_again(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    settings: dict[str, int],
    retried: list[bool],
) -> None:
    clock = SteppingClock()
    runner = make_runner(registry_with(always_down), clock=clock, **settings)
    results = []
    for attempt_time in ATTEMPT_TIMES:  # Lambda's retries keep the request id
        clock.now = attempt_time
        results.append(fail(runner, lambda_context))

    assert [result.retried for result in results] == retried
    assert [result.as_response().get("retried", False) for result in results] == retried
    assert run_record(dynamodb, "probe")["deliveries"] == Decimal(3)


def test_a_duplicate_delivery_does_not_use_up_another_invocations_retries(
    make_runner: MakeRunner, dynamodb: Any
) -> None:
    clock = SteppingClock()
    runner = make_runner(registry_with(always_down), clock=clock, lambda_retry_attempts=1)
    original, duplicate = FakeLambdaContext(), FakeLambdaContext()
    duplicate.aws_request_id = "request-duplicate"

    first = fail(runner, original)
    copy = fail(runner, duplicate)  # the same event, queued twice: its own invocation
    clock.now = ATTEMPT_TIMES[1]
    retry = fail(runner, original)  # Lambda's retry of the first invocation

    assert (first.retried, copy.retried, retry.retried) == (True, True, False)
    assert run_record(dynamodb, "probe")["deliveries"] == Decimal(3)


def test_a_permanent_failure_is_never_counted_as_retried(
    make_runner: MakeRunner, lambda_context: FakeLambdaContext
) -> None:
    observer = RecordingObserver()

    def refused(params: NoParams, context: TaskContext) -> None:
        raise PermanentTaskError("bad symbol")

    runner = make_runner(registry_with(refused), observer=observer, lambda_retry_attempts=2)
    runner.dispatch(scheduled_event("probe", "probe"), lambda_context)

    [result] = observer.results
    assert (result.status.value, result.retried) == ("FAILED", False)


def test_a_delivery_superseded_while_it_ran_is_not_retried_and_leaves_the_status_to_the_new_owner(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    event = scheduled_event("probe", "probe")
    observer = RecordingObserver()

    def overtaken(params: NoParams, context: TaskContext) -> None:
        # A duplicate delivery of the same event starts on another instance while this one runs.
        duplicate = RunRecorder(dynamodb.Table("kairos-test-TaskRuns"), ttl_days=90)
        duplicate.start(context.event, runtime="python3.13", request_id="request-2", started_at=datetime.now(UTC))
        raise TransientTaskError("upstream down")

    runner = make_runner(registry_with(overtaken), observer=observer, lambda_retry_attempts=2)
    response = runner.dispatch(event, lambda_context)  # no TaskRunFailed: Lambda must not retry it

    assert response["superseded"] is True
    [result] = observer.results
    assert (result.superseded, result.retried, result.metric_name) == (True, False, "RunsSuperseded")
    record = run_record(dynamodb, "probe")
    assert (record["status"], record["request_id"]) == ("STARTED", "request-2")
    assert record["previous_outcomes"][-1]["error_type"] == "TransientTaskError"


def test_an_index_only_declaration_allows_index_queries_and_refuses_the_rest(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    seen: dict[str, object] = {}

    def summarising(params: NoParams, context: TaskContext) -> TaskOutcome:
        runs = context.clients.table(TableId.TASK_RUNS)
        seen["today"] = list(query_index(runs, TASK_RUNS.indexes[0], "RUNDATE#2026-11-27"))
        try:
            runs.get_item(Key={"pk": "TASK#other", "sk": "RUN#1"})
        except UndeclaredTableError as refused:
            seen["get_item"] = str(refused)
        try:
            runs.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "TASK#other"})
        except UndeclaredTableError as refused:
            seen["table_query"] = str(refused)
        return TaskOutcome()

    registry = registry_with(summarising, tables={TableId.TASK_RUNS: Access.QUERY_INDEXES})
    response = make_runner(registry).dispatch(scheduled_event("probe", "probe"), lambda_context)

    assert response["status"] == "SUCCEEDED"
    assert isinstance(seen["today"], list)
    assert "get_item needs read access" in str(seen["get_item"])
    assert "a query of the table itself needs read access" in str(seen["table_query"])
