"""Exactly one effect per scheduled slot, through the real runner on moto (kairos_runtime/slots.py).

The stored claims themselves are the shared contract (``slot_scenarios`` in
tests/contract/run_records.json); these tests count the calls of a probe task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import plan_stage
from kairos_runtime.context import Clients, TaskContext
from kairos_runtime.events import render_schedule_input
from kairos_runtime.registry import TaskOutcome, TaskParams, TaskRegistry
from kairos_runtime.runner import TaskRunner
from kairos_runtime.settings import RuntimeSettings
from kairos_runtime.slots import CLAIM_MARGIN_SECONDS, SlotInProgressError
from kairos_runtime.validation import parse
from tests.conftest import PROJECT_ROOT, FakeLambdaContext, scheduled_event

TABLE = "kairos-test-TaskRuns"
SLOT = "2026-11-27T07:15:00Z"
SLOT_TIME = datetime(2026, 11, 27, 7, 15, tzinfo=UTC)
MakeRunner = Callable[..., TaskRunner]


class NoParams(TaskParams, frozen=True):
    pass


class Probe:
    """A task that counts its calls: each call is one effect."""

    def __init__(self, *, hold_s: float = 0.0, crash_first: bool = False) -> None:
        self.calls = 0
        self._hold_s = hold_s
        self._crash_first = crash_first
        self._lock = threading.Lock()

    def __call__(self, params: NoParams, context: TaskContext) -> TaskOutcome:
        with self._lock:
            self.calls += 1
            calls = self.calls
        if self._crash_first and calls == 1:
            # What the runner cannot catch, as an out-of-memory kill or a timeout stops it.
            raise SystemExit("the instance died")
        time.sleep(self._hold_s)
        return TaskOutcome(items_written=calls)

    def registry(self) -> TaskRegistry:
        registry = TaskRegistry()
        registry.task("probe", params=NoParams)(self)
        return registry


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def context(request_id: str, remaining_ms: int = 60_000) -> FakeLambdaContext:
    invocation = FakeLambdaContext(remaining_ms)
    invocation.aws_request_id = request_id
    return invocation


def stored(dynamodb: Any, prefix: str) -> list[dict[str, Any]]:
    items = dynamodb.Table(TABLE).query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": "TASK#probe", ":prefix": prefix},
        ConsistentRead=True,
    )["Items"]
    return list(items)


def the_slot(dynamodb: Any) -> dict[str, Any]:
    [slot] = stored(dynamodb, "SLOT#")
    return slot


def test_a_later_delivery_of_a_succeeded_slot_does_not_run_and_answers_with_the_earlier_result(
    make_runner: MakeRunner, dynamodb: Any
) -> None:
    probe = Probe()
    runner = make_runner(probe.registry())

    first = runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))
    again = runner.dispatch(scheduled_event("probe", "probe", execution_id="exec-2"), context("req-2"))
    same_event = runner.dispatch(scheduled_event("probe", "probe"), context("req-3"))

    assert probe.calls == 1
    assert again == same_event == {**first, "declined": "done"}
    [run] = stored(dynamodb, "RUN#")
    assert (run["status"], run["deliveries"]) == ("SUCCEEDED", 1)
    slot = the_slot(dynamodb)
    assert slot["deliveries"] == 3
    assert [(declined["request_id"], declined["reason"]) for declined in slot["declined"]] == [
        ("req-2", "done"),
        ("req-3", "done"),
    ]


def test_a_skipped_slot_is_done_too(make_runner: MakeRunner, dynamodb: Any) -> None:
    from kairos_runtime.registry import TaskSkipped

    calls: list[str] = []

    def holiday(params: NoParams, context: TaskContext) -> None:
        calls.append(context.event.execution_id)
        raise TaskSkipped("market closed")

    registry = TaskRegistry()
    registry.task("probe", params=NoParams)(holiday)
    runner = make_runner(registry)
    runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))
    answer = runner.dispatch(scheduled_event("probe", "probe", execution_id="exec-2"), context("req-2"))

    assert calls == ["exec-1"]
    assert (answer["status"], answer["declined"]) == ("SKIPPED", "done")


def test_concurrent_duplicate_deliveries_have_one_effect_and_each_a_final_record(dynamodb: Any) -> None:
    import boto3

    probe = Probe(hold_s=0.3)
    settings = parse(
        {
            "stage": "test",
            "runtime": "python3.13",
            "table_names": {"task_runs": TABLE, "market_data": "kairos-test-MarketData"},
        },
        RuntimeSettings,
    )
    deliveries = 8
    answers: dict[str, dict[str, Any]] = {}
    failures: list[BaseException] = []
    barrier = threading.Barrier(deliveries)
    moto_lock = threading.Lock()

    def deliver(number: int) -> None:
        # Each "instance" has its own client, as each Lambda instance has. moto checks a condition and
        # writes without a lock, where DynamoDB does both atomically: requests (not deliveries) are
        # serialised, so each conditional write is atomic as in AWS while the deliveries interleave.
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        send = resource.meta.client._make_api_call  # type: ignore[attr-defined]  # botocore-stubs omit it

        def atomic(operation: str, request: Any) -> Any:
            with moto_lock:
                return send(operation, request)

        resource.meta.client._make_api_call = atomic  # type: ignore[attr-defined]  # botocore-stubs omit it
        runner = TaskRunner(
            registry=probe.registry(),
            settings=settings,
            clients=Clients(settings, resource_factory=lambda: resource),
            logger=logging.getLogger("kairos.test"),
        )
        event = scheduled_event("probe", "probe", execution_id=f"exec-{number}")
        barrier.wait()
        try:
            answers[f"req-{number}"] = runner.dispatch(event, context(f"req-{number}"))
        except BaseException as failure:  # pragma: no cover - the assertion shows it
            failures.append(failure)

    threads = [threading.Thread(target=deliver, args=(number,)) for number in range(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert probe.calls == 1, "exactly one delivery ran the task"
    ran = [request for request, answer in answers.items() if "declined" not in answer]
    assert len(ran) == 1
    assert all(answers[request]["declined"] in {"in_progress", "done"} for request in answers if request not in ran)
    [run] = stored(dynamodb, "RUN#")
    assert (run["status"], run["request_id"]) == ("SUCCEEDED", ran[0])
    slot = the_slot(dynamodb)
    assert slot["status"] == "SUCCEEDED"
    assert slot["deliveries"] == deliveries, "every delivery is counted"
    assert {declined["request_id"] for declined in slot["declined"]} == set(answers) - set(ran)


def test_a_crash_left_started_is_recovered_by_the_next_delivery_after_its_lease(
    make_runner: MakeRunner, dynamodb: Any
) -> None:
    probe = Probe(crash_first=True)
    clock = Clock(SLOT_TIME + timedelta(seconds=1))
    runner = make_runner(probe.registry(), clock=clock)
    with pytest.raises(SystemExit):
        runner.dispatch(scheduled_event("probe", "probe"), context("req-1", remaining_ms=60_000))
    assert the_slot(dynamodb)["status"] == "STARTED"

    # Within the lease: a duplicate is declined, and Lambda's retry of the crashed invocation fails
    # so that Lambda comes back later.
    clock.now = SLOT_TIME + timedelta(seconds=60)
    declined = runner.dispatch(scheduled_event("probe", "probe", execution_id="exec-2"), context("req-2"))
    assert declined["declined"] == "in_progress"
    with pytest.raises(SlotInProgressError, match="retry after its lease"):
        runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))
    assert probe.calls == 1

    clock.now = SLOT_TIME + timedelta(seconds=1 + 60 + CLAIM_MARGIN_SECONDS)
    recovered = runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))

    assert probe.calls == 2
    assert recovered["status"] == "SUCCEEDED"
    [run] = stored(dynamodb, "RUN#")
    assert (run["status"], run["replaced"]["status"]) == ("SUCCEEDED", "STARTED")
    assert the_slot(dynamodb)["status"] == "SUCCEEDED"


def test_a_failed_slot_runs_again(make_runner: MakeRunner, dynamodb: Any) -> None:
    from kairos_runtime.errors import PermanentTaskError

    calls: list[str] = []

    def once_broken(params: NoParams, context: TaskContext) -> TaskOutcome:
        calls.append(context.event.execution_id)
        if len(calls) == 1:
            raise PermanentTaskError("bad data")
        return TaskOutcome()

    registry = TaskRegistry()
    registry.task("probe", params=NoParams)(once_broken)
    runner = make_runner(registry)
    assert runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))["status"] == "FAILED"
    answer = runner.dispatch(scheduled_event("probe", "probe", execution_id="exec-2"), context("req-2"))

    assert calls == ["exec-1", "exec-2"]
    assert answer["status"] == "SUCCEEDED"
    assert the_slot(dynamodb)["replaced"]["status"] == "FAILED"


def test_a_rerun_runs_a_done_slot_again_and_its_record_says_what_it_replaced(
    make_runner: MakeRunner, dynamodb: Any
) -> None:
    probe = Probe()
    runner = make_runner(probe.registry())
    first = runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))

    rerun = runner.dispatch(scheduled_event("probe", "probe", execution_id="exec-2", rerun=True), context("req-2"))

    assert probe.calls == 2
    assert "declined" not in rerun
    record = next(run for run in stored(dynamodb, "RUN#") if run["execution_id"] == "exec-2")
    assert record["rerun"] is True
    assert (record["replaced"]["status"], record["replaced"]["run_id"]) == ("SUCCEEDED", first["run_id"])


def test_rerun_passes_no_check_an_event_must_pass_to_run(make_runner: MakeRunner, dynamodb: Any) -> None:
    probe = Probe()
    runner = make_runner(probe.registry(), task="probe", task_type="probe")
    runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))

    other_type = runner.dispatch(
        scheduled_event("probe", "simple_task_1", execution_id="exec-2", rerun=True), context("req-2")
    )
    not_a_bool = runner.dispatch(
        scheduled_event("probe", "probe", execution_id="exec-3", rerun="yes"), context("req-3")
    )

    assert probe.calls == 1
    assert (other_type["status"], other_type["error"]["type"]) == ("FAILED", "InvalidEvent")
    assert not_a_bool["error"]["message"].startswith("rerun:")
    assert the_slot(dynamodb)["deliveries"] == 1, "an invalid event claims no slot"


def test_no_schedule_carries_rerun_and_only_an_operators_run_adds_it() -> None:
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, "dev")
    task = plan.tasks[0]

    assert "rerun" not in task.input_template
    scheduled = render_schedule_input(dict(task.input_template), scheduled_time=SLOT_TIME, execution_id="e")
    forced = render_schedule_input({**task.input_template, "rerun": True}, scheduled_time=SLOT_TIME, execution_id="e")
    asked = render_schedule_input(dict(task.input_template), scheduled_time=SLOT_TIME, execution_id="e", rerun=True)

    assert "rerun" not in scheduled
    assert "rerun" not in forced, "a template cannot say rerun: only the builder's argument does"
    assert asked["rerun"] is True


def test_slot_claims_are_not_runs_to_the_history_status_reads(make_runner: MakeRunner, dynamodb: Any) -> None:
    from kairos.operations.history import latest_runs, stage_runs, task_runs
    from kairos_runtime.runs import RunHistory

    probe = Probe()
    runner = make_runner(probe.registry())
    runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))
    runner.dispatch(scheduled_event("probe", "probe", execution_id="exec-2"), context("req-2"))
    table = dynamodb.Table(TABLE)
    today = datetime.now(UTC)

    assert len(stored(dynamodb, "SLOT#")) == 1
    for runs in (
        latest_runs(table, "probe"),
        task_runs(table, "probe", since=None, status=None, limit=10),
        stage_runs(table, since=today - timedelta(days=1), now=today, status=None, limit=10),
        RunHistory(table).recent(limit=10, today=today),
    ):
        assert [run["sk"][:4] for run in runs] == ["RUN#"], "one run: the slot's, and no claim item"


def test_the_cli_reads_a_declined_deliverys_slot_run(make_runner: MakeRunner, dynamodb: Any) -> None:
    from kairos.operations.invoke import declined, run_record

    runner = make_runner(Probe().registry())
    runner.dispatch(scheduled_event("probe", "probe"), context("req-1"))
    second = scheduled_event("probe", "probe", execution_id="exec-2")
    answer = runner.dispatch(second, context("req-2"))

    record = run_record(dynamodb.Table(TABLE), second)

    assert declined(answer) == "done"
    assert record is not None
    assert (record["execution_id"], record["status"]) == ("exec-1", "SUCCEEDED"), "the slot's run, not a new one"
    assert (
        run_record(dynamodb.Table(TABLE), scheduled_event("probe", "probe", scheduled_time="2026-11-27T08:00:00Z"))
        is None
    )
