"""Every delivery leaves a final run record, whatever the event: oversized and odd key fields, lone
surrogates, deep nesting, huge params, a function asked to run another task type or read another
SSM parameter, and a final write DynamoDB refuses. The runner against moto's DynamoDB."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from kairos_runtime.bounds import MAX_DETAIL_DEPTH, MAX_PARAMS_BYTES, MAX_PARAMS_DEPTH
from kairos_runtime.context import TaskContext
from kairos_runtime.registry import Access, TaskOutcome, TaskParams, TaskRegistry
from kairos_runtime.runner import TaskRunner
from kairos_runtime.runs import RECORD_WRITE_FAILED, bounded_detail
from kairos_runtime.tables import TableId
from tests.conftest import FakeLambdaContext, scheduled_event

MakeRunner = Callable[..., TaskRunner]
TABLE = "kairos-test-TaskRuns"
OWN_TASK = "python-task-2"
FINAL = {"SUCCEEDED", "FAILED", "SKIPPED"}


def records(dynamodb: Any) -> list[dict[str, Any]]:
    """The run records (not the slot claims, ``SLOT#``)."""
    table = dynamodb.Table(TABLE)
    items: list[dict[str, Any]] = []
    page: dict[str, Any] = {}
    while True:
        response = table.scan(**page)
        items.extend(item for item in response["Items"] if item["sk"].startswith("RUN#"))
        if "LastEvaluatedKey" not in response:
            return items
        page = {"ExclusiveStartKey": response["LastEvaluatedKey"]}


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep (``{}`` is 1), built without recursion."""
    value: dict[str, Any] = {}
    for _level in range(depth - 1):
        value = {"a": value}
    return value


def from_json(text: str) -> Any:
    """As Lambda hands the event over: parsed from JSON text, where ``\\ud800`` escapes are legal."""
    return json.loads(text)


MALFORMED = {
    "execution_id over 1 KB": scheduled_event(OWN_TASK, "simple_task_2", execution_id="e" * 1100),
    "execution_id of 129 characters": scheduled_event(OWN_TASK, "simple_task_2", execution_id="e" * 129),
    "execution_id with a space": scheduled_event(OWN_TASK, "simple_task_2", execution_id="exec 1"),
    "task_type of 500 KB": scheduled_event(OWN_TASK, "t" * 500_000),
    "task of 500 KB": scheduled_event("t" * 500_000, "simple_task_2"),
    "lone surrogate in execution_id": from_json(
        json.dumps(scheduled_event(OWN_TASK, "simple_task_2")).replace('"exec-1"', '"exec-\\ud800"')
    ),
    "lone surrogate in task_type": from_json(
        json.dumps(scheduled_event(OWN_TASK, "simple_task_2")).replace('"simple_task_2"', '"simple\\ud800"')
    ),
    "lone surrogate in params": from_json(
        json.dumps(scheduled_event(OWN_TASK, "simple_task_2", {"payload": {"x": "y"}})).replace('"y"', '"\\udfff"')
    ),
    "payload nested 500 deep": scheduled_event(OWN_TASK, "simple_task_2", {"payload": nested(500)}),
    "params over 256 KiB": scheduled_event(OWN_TASK, "simple_task_2", {"payload": {"blob": "x" * MAX_PARAMS_BYTES}}),
    "attempt of 5000 digits": scheduled_event(OWN_TASK, "simple_task_2", attempt="1" * 5000),
    "not an object": ["not", "an", "event"],
}


@pytest.mark.parametrize("event", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_event_leaves_a_final_invalid_event_record(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, event: object
) -> None:
    response = make_runner(task=OWN_TASK, task_type="simple_task_2").dispatch(event, lambda_context)

    [record] = records(dynamodb)
    assert response["status"] == "FAILED"
    assert (record["status"], record["error_type"], record["error_kind"]) == ("FAILED", "InvalidEvent", "permanent")
    assert record["pk"] == f"TASK#{OWN_TASK}"
    assert len(record["sk"].encode()) <= 200
    assert len(record["error_message"]) <= 1000


def test_an_invalid_events_record_keeps_the_identity_fields_that_are_fit_for_a_key(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    event = scheduled_event(OWN_TASK, "simple_task_2", execution_id="e" * 129, scheduled_time="soon")

    make_runner().dispatch(event, lambda_context)

    [record] = records(dynamodb)
    assert (record["task"], record["task_type"]) == (OWN_TASK, "simple_task_2")
    assert record["execution_id"] == lambda_context.aws_request_id, "the overlong one is not used"
    assert record["error_message"] == "execution_id: must be printable ASCII without spaces ([!-~]{1,128})"


def test_the_longest_execution_id_and_deepest_params_still_run(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    # The payload is params' second level: params nested MAX_PARAMS_DEPTH deep in all.
    event = scheduled_event(
        OWN_TASK, "simple_task_2", {"payload": nested(MAX_PARAMS_DEPTH - 1)}, execution_id="e" * 128
    )

    make_runner(task=OWN_TASK, task_type="simple_task_2").dispatch(event, lambda_context)

    [record] = records(dynamodb)
    assert record["status"] == "SUCCEEDED"
    assert record["sk"].endswith("#" + "e" * 128 + "#1")
    echoed = record["detail"]["event"]["params"]
    assert echoed == {"payload": nested(MAX_PARAMS_DEPTH - 1)}


@pytest.mark.parametrize(
    ("detail", "note"),
    [
        pytest.param({"deep": nested(MAX_DETAIL_DEPTH)}, f"nested deeper than {MAX_DETAIL_DEPTH} levels", id="deep"),
        pytest.param({"deep": nested(100_000)}, f"nested deeper than {MAX_DETAIL_DEPTH} levels", id="very-deep"),
        pytest.param({"wide": [[0] * 1000] * 1000}, "more than 32000 values", id="many-values"),
    ],
)
def test_a_detail_too_deep_or_too_many_values_becomes_a_note(detail: dict[str, Any], note: str) -> None:
    assert bounded_detail(detail) == {"truncated": True, "reason": note, "keys": sorted(detail)}


def test_a_cyclic_detail_becomes_a_note() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle

    assert bounded_detail(cycle)["truncated"] is True


def test_lone_surrogates_in_a_detail_are_stored_as_replacement_characters(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def upstream_text(params: NoParams, context: TaskContext) -> TaskOutcome:
        return TaskOutcome(detail={"name\ud800": ["bad \udfff text"]})

    make_runner(registry_with(upstream_text)).dispatch(scheduled_event("probe", "probe"), lambda_context)

    [record] = records(dynamodb)
    assert record["status"] == "SUCCEEDED"
    assert record["detail"] == {"name\ufffd": ["bad \ufffd text"]}


class NoParams(TaskParams, frozen=True):
    pass


def registry_with(function: Callable[[NoParams, TaskContext], TaskOutcome | None], **options: Any) -> TaskRegistry:
    registry = TaskRegistry()
    registry.task("probe", params=NoParams, **options)(function)
    return registry


def test_a_final_write_dynamodb_refuses_leaves_a_minimal_failed_record(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    # The task grows its own record to near DynamoDB's 400 KB item limit, so the final update with
    # its detail is refused (ValidationException) while the minimal one still fits.
    def bloating(params: NoParams, context: TaskContext) -> TaskOutcome:
        table = context.clients.table(TableId.TASK_RUNS)
        [item] = [item for item in table.scan()["Items"] if isinstance(sk := item["sk"], str) and sk.startswith("RUN#")]
        table.update_item(
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET #bloat = :bloat",
            ExpressionAttributeNames={"#bloat": "bloat"},
            ExpressionAttributeValues={":bloat": "b" * 385_000},
        )
        return TaskOutcome(items_written=3, detail={"rows": "r" * 30_000})

    registry = registry_with(
        bloating, tables={TableId.TASK_RUNS: Access.READ_WRITE}, partitions={TableId.TASK_RUNS: ("TASK#",)}
    )
    response = make_runner(registry).dispatch(scheduled_event("probe", "probe"), lambda_context)

    [record] = records(dynamodb)
    assert (record["status"], record["error_type"], record["error_kind"]) == (
        "FAILED",
        RECORD_WRITE_FAILED,
        "permanent",
    )
    assert record["error_message"].startswith("the run's outcome (SUCCEEDED) could not be recorded: ClientError: ")
    assert "detail" not in record
    assert record["finished_at"] >= record["started_at"]
    assert (response["status"], response["error"]["type"], response["items_written"]) == (
        "FAILED",
        RECORD_WRITE_FAILED,
        0,
    )


def test_a_final_write_boto3_cannot_encode_leaves_a_minimal_failed_record(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    def overflowing(params: NoParams, context: TaskContext) -> TaskOutcome:
        return TaskOutcome(items_written=10**40)  # beyond DynamoDB's 38 digits of precision

    make_runner(registry_with(overflowing)).dispatch(scheduled_event("probe", "probe"), lambda_context)

    [record] = records(dynamodb)
    assert (record["status"], record["error_type"]) == ("FAILED", RECORD_WRITE_FAILED)


# --- Pinning: the function runs its own task type and reads only its own parameters ---
CRYPTO = "crypto-markets"
KEY_PARAMETER = "/kairos/coingecko/api-key"


def crypto_runner(make_runner: MakeRunner) -> TaskRunner:
    return make_runner(task=CRYPTO, task_type="crypto_markets", ssm_parameters=[KEY_PARAMETER])


def test_the_crypto_function_asked_for_daily_summary_records_invalid_event_and_does_not_run(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    crypto_runner(make_runner).dispatch(scheduled_event(CRYPTO, "daily_summary"), lambda_context)

    [record] = records(dynamodb)
    assert (record["status"], record["error_type"]) == ("FAILED", "InvalidEvent")
    assert record["error_message"] == "this function runs task_type 'crypto_markets'; the event names 'daily_summary'"
    assert dynamodb.Table("kairos-test-MarketData").scan()["Items"] == [], "no summary was written"


def test_a_crypto_event_naming_another_api_key_parameter_is_refused_before_the_task_runs(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    # Nothing is served: were the task to run, it would fail reading SSM or reaching CoinGecko.
    event = scheduled_event(CRYPTO, "crypto_markets", {"top_n": 5, "api_key_parameter": "/someone/elses/key"})

    crypto_runner(make_runner).dispatch(event, lambda_context)

    [record] = records(dynamodb)
    assert (record["status"], record["error_type"]) == ("FAILED", "InvalidEvent")
    assert record["error_message"] == (
        f"params name SSM parameter(s) this function may not read: /someone/elses/key; it may read: {KEY_PARAMETER}"
    )


def test_an_unpinned_runner_still_runs_whatever_type_the_event_names(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext
) -> None:
    make_runner().dispatch(scheduled_event("one", "simple_task_1"), lambda_context)

    assert records(dynamodb)[0]["status"] == "SUCCEEDED"


# --- Fuzz: a few hundred malformed events, each leaving a final record ---
FUZZ_EVENTS = 300
FUZZ_SECONDS = 120


NASTY_VALUES: tuple[Callable[[random.Random], object], ...] = (
    lambda rng: "x" * rng.choice([0, 1, 128, 129, 1025, 50_000, 500_000]),
    lambda rng: rng.choice(["\ud800", "a\udfff", "\ud83d", "ok\ud800ok"]),
    lambda rng: nested(rng.choice([15, 16, 17, 40, 500, 5000])),
    lambda rng: [nested(rng.randrange(1, 30))] * rng.randrange(1, 50),
    lambda rng: rng.choice([None, True, False, 0, -1, 1.5, 2**64, 10**400, float("inf")]),
    lambda rng: "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(1, 40))),
    lambda rng: {"blob": "y" * rng.choice([1000, MAX_PARAMS_BYTES, 400_000])},
    lambda rng: rng.choice(["2026-11-27T07:15:00Z", "soon", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]),
    lambda rng: rng.choice(["1", " 2 ", "1" * 5000, "0", "+3", "1e1"]),
    lambda rng: {"payload": nested(rng.randrange(1, 40))},
    lambda rng: {"payload": {"s": rng.choice(["\ud800", "fine", "\udfff" * 10])}},
    lambda rng: rng.choice(["e\n1", "e 1", "é", "exec#1", "#", "<aws.scheduler.execution-id>"]),
    lambda rng: [rng.random() for _ in range(rng.randrange(0, 100))],
    lambda rng: rng.choice(["simple_task_2", "simple_task_1", OWN_TASK, "crypto_markets", "Simple", ""]),
)


def nasty_value(rng: random.Random) -> object:
    return rng.choice(NASTY_VALUES)(rng)


def malformed_event(rng: random.Random, number: int) -> object:
    if rng.random() < 0.05:
        return nasty_value(rng)
    event = scheduled_event(OWN_TASK, "simple_task_2", {"payload": {"n": 1}}, execution_id=f"exec-{number}")
    for field in rng.sample([*event, "extra"], rng.randrange(1, 4)):
        if rng.random() < 0.15:
            event.pop(field, None)
        else:
            event[field] = nasty_value(rng)
    # Through JSON, as Lambda delivers it, whenever JSON can carry it.
    try:
        return json.loads(json.dumps(event))
    except (ValueError, TypeError, RecursionError):
        return event


def test_fuzzed_malformed_events_each_leave_a_final_record(make_runner: MakeRunner, dynamodb: Any) -> None:
    rng = random.Random(20261201)  # noqa: S311 - a seeded fuzz, not a secret
    runner = make_runner(task=OWN_TASK, task_type="simple_task_2")
    started = time.monotonic()

    for number in range(FUZZ_EVENTS):
        context = FakeLambdaContext()
        context.aws_request_id = f"fuzz-{number}"
        event = malformed_event(rng, number)
        try:
            runner.dispatch(event, context)
        except Exception as failure:  # pragma: no cover - the assertion says which event
            pytest.fail(f"event {number} raised {type(failure).__name__}: {failure}")

    elapsed = time.monotonic() - started
    stored = records(dynamodb)
    # Two events may name the same delivery (an execution_id the fuzz chose twice): the record then
    # keeps the earlier delivery in previous_outcomes. Two valid events of one slot: the second is
    # declined (the slot is done), and listed on the slot's claim.
    slots = [item for item in dynamodb.Table(TABLE).scan()["Items"] if item["sk"].startswith("SLOT#")]
    delivered = {
        outcome["request_id"] for record in stored for outcome in (record, *record.get("previous_outcomes", []))
    } | {declined["request_id"] for slot in slots for declined in slot.get("declined", [])}
    missing = [number for number in range(FUZZ_EVENTS) if f"fuzz-{number}" not in delivered]
    assert missing == [], "every delivery has a record"
    assert {record["status"] for record in stored} <= FINAL, "none is left STARTED"
    assert elapsed < FUZZ_SECONDS
