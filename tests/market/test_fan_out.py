"""stock_daily_all end to end through the local fan-out: the planner, the batches on a thread pool
(each paced at its share of the rate) and the summary, over a synthetic universe of a few hundred
symbols in Eastmoney's wire shape (akshare's own request and parsing code runs), into moto."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import responses

from kairos.local.fan_out import LocalFanOutResult, drive
from kairos.plan import BATCH_RETRY
from kairos_runtime.fan_out_runner import FanOutRunner
from kairos_runtime.tasks.market.universe import CODE_LIST_SOURCE, SPOT_SOURCE, UNIVERSES
from tests.conftest import FakeLambdaContext, scheduled_event
from tests.market.conftest import add_stock_spot, market_items, run_record
from tests.market.synthetic_market import (
    SESSIONS,
    SLOT,
    TRADING_DATE,
    SyntheticMarket,
    runner_factory,
    serve,
    store_spot_universe,
    universe,
)

TASK = "stock-daily-all"


@pytest.fixture(autouse=True)
def fresh_universe_cache() -> Iterator[None]:
    UNIVERSES.clear()
    yield
    UNIVERSES.clear()


FAST = 1000
"""requests_per_second where the rate is not what a test is about."""


def event(execution_id: str = "exec-1", **params: Any) -> dict[str, object]:
    params.setdefault("requests_per_second", FAST)
    return scheduled_event(TASK, "stock_daily_all", params, scheduled_time=SLOT, execution_id=execution_id)


def run(runner: FanOutRunner, raw: dict[str, object], *, max_concurrency: int = 4) -> LocalFanOutResult:
    return drive(
        raw,
        plan=runner.plan,
        batch=runner.batch,
        summarize=runner.summarize,
        max_concurrency=max_concurrency,
        batch_retry=BATCH_RETRY,
        contexts={step: (lambda: FakeLambdaContext(900_000)) for step in ("plan", "batch", "summarize")},
        sleep=lambda seconds: None,
    )


@pytest.fixture
def market(http: responses.RequestsMock) -> SyntheticMarket:
    return serve(http)


def bars(dynamodb: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {key: item for key, item in market_items(dynamodb).items() if key[1].startswith("DAY#")}


def test_the_whole_universe_is_crawled_in_batches_with_a_truthful_slot_record(
    dynamodb: Any, market: SyntheticMarket, waits: list[float]
) -> None:
    codes = universe(300)
    store_spot_universe(dynamodb, codes)
    transient = codes[10:15]
    refused, empty = codes[42], codes[77]
    market.transient.update(dict.fromkeys(transient, 2))
    market.refused.add(refused)
    market.without_data.add(empty)

    result = run(runner_factory(dynamodb)(), event(batch_size=40, max_concurrency=4))

    assert result.planned.get("planned"), run_record(dynamodb, TASK).get("error_message")
    assert [batch["index"] for batch in result.planned["batches"]] == list(range(8))
    assert [len(batch["items"]) for batch in result.planned["batches"]] == [40] * 7 + [20]
    assert all("error" not in each for each in result.results)
    stored = bars(dynamodb)
    fetched = set(codes) - {refused, empty}
    # The lookback (30 days) covers every session: five bars per symbol that answered, none for the others.
    assert set(stored) == {(f"STOCK#{code}", f"DAY#{day}") for code in fetched for day in SESSIONS}
    bar = stored[(f"STOCK#{codes[0]}", f"DAY#{TRADING_DATE}")]
    assert (bar["close"], bar["gsi1pk"], bar["exchange"]) == (Decimal("10.00"), f"STOCK#DAY#{TRADING_DATE}", "SH")
    # Each transient symbol answered 503 twice, then its bars: retried within the batch, not failed.
    assert all(market.requests_per_symbol()[code] == 3 for code in transient)
    record = run_record(dynamodb, TASK)
    detail = record["detail"]
    assert (record["status"], record["error_type"]) == ("FAILED", "PartialFailure")
    assert record["error_message"].startswith("1 of 300 symbol(s) failed; 298 done, 0 up to date, 1 without data")
    assert record["items_written"] == 298 * 5 == detail["bars_written"]
    assert (detail["symbols_planned"], detail["symbols_done"]) == (300, 298)
    assert (detail["symbols_failed"], detail["symbols_without_data"]) == ([refused], [empty])
    assert detail["universe_source"] == SPOT_SOURCE
    assert detail["universe_as_of"] == TRADING_DATE
    missing = sorted([refused, empty])
    assert detail["coverage"] == {"universe": 300, "with_bar": 298, "missing_count": 2, "missing": missing}
    assert detail["fan_out"]["batches"] == 8
    assert detail["fan_out"]["max_concurrency"] == 4
    assert detail["retries"] == 10
    assert detail["slowdowns"] == 10
    # One BatchWriteItem per 25 bars of a batch.
    per_batch = [len([code for code in batch["items"] if code in fetched]) * 5 for batch in result.planned["batches"]]
    assert detail["write_requests"] == sum(-(-bars_of_batch // 25) for bars_of_batch in per_batch)


def test_a_rerun_of_a_finished_slot_asks_for_nothing_and_writes_nothing(
    dynamodb: Any, market: SyntheticMarket, waits: list[float]
) -> None:
    codes = universe(120)
    store_spot_universe(dynamodb, codes)
    runner = runner_factory(dynamodb)
    run(runner(), event(batch_size=50))
    first = bars(dynamodb)
    asked = len(market.asked)

    # A second delivery of the done slot: the planner declines it (docs/adr/0162), no batch runs.
    declined = run(runner(), event("exec-2", batch_size=50))
    assert declined.response["declined"] == "done"
    assert declined.results == ()
    # An operator's rerun runs it again: every symbol is up to date, nothing is asked or written.
    run(runner(), {**event("exec-3", batch_size=50), "rerun": True})

    assert len(market.asked) == asked == 120
    assert bars(dynamodb) == first
    items = dynamodb.Table("kairos-test-TaskRuns").scan()["Items"]
    assert not [each for each in items if each.get("execution_id") == "exec-2"], "a declined delivery records no run"
    [record] = [each for each in items if each.get("execution_id") == "exec-3"]
    assert record["rerun"] is True
    assert (record["status"], record["items_written"]) == ("SUCCEEDED", 0)
    assert record["detail"]["symbols_up_to_date"] == 120
    assert record["detail"]["coverage"]["with_bar"] == 120


def test_a_symbol_resumes_after_its_newest_stored_bar(
    dynamodb: Any, market: SyntheticMarket, waits: list[float]
) -> None:
    store_spot_universe(dynamodb, ["600000", "000001"])
    market.sessions = SESSIONS[:3]
    runner = runner_factory(dynamodb)
    run(runner(), event())
    market.sessions = SESSIONS
    market.asked.clear()

    run(runner(), {**event("exec-2"), "rerun": True})  # the same slot again: an operator's rerun

    assert sorted(market.asked) == [("000001", "20261126", "20261127"), ("600000", "20261126", "20261127")]
    assert len(bars(dynamodb)) == 10


def test_the_rate_limit_holds_across_concurrent_batches(
    dynamodb: Any, market: SyntheticMarket, waits: list[float]
) -> None:
    codes = universe(240)
    store_spot_universe(dynamodb, codes)
    limit = 80.0

    run(runner_factory(dynamodb)(), event(batch_size=30, max_concurrency=4, requests_per_second=limit))

    assert len(market.times) == 240
    # Each of the 4 batches starts a request at most every 4/80 s: within any second, at most 80 of
    # them, plus one per batch at the window's edge.
    assert market.peak_rate(1.0) <= limit + 4
    assert market.peak_rate(2.0) <= 2 * limit + 4
    # And the limiter is what paced them: 240 requests at 80 a second take about 3 s.
    assert max(market.times) - min(market.times) >= (240 - 4) / limit


def test_without_a_stored_snapshot_the_universe_is_eastmoneys_code_list_read_once_per_container(
    dynamodb: Any, http: responses.RequestsMock, waits: list[float]
) -> None:
    add_stock_spot(http)
    market = serve(http)
    runner = runner_factory(dynamodb)

    run(runner(), event())
    run(runner(), {**event("exec-2"), "rerun": True})  # planned again, not declined

    assert UNIVERSES.loads == 1  # the second slot's planner reused the container's universe
    detail = run_record_of(dynamodb, "exec-1")["detail"]
    assert detail["universe_source"] == CODE_LIST_SOURCE
    spot_codes = {symbol for symbol, _, _ in market.asked}
    assert detail["universe_size"] == len(spot_codes) > 0


def run_record_of(dynamodb: Any, execution_id: str) -> dict[str, Any]:
    items = dynamodb.Table("kairos-test-TaskRuns").scan()["Items"]
    record: dict[str, Any]
    [record] = [each for each in items if each.get("execution_id") == execution_id]
    return record


def test_a_backfill_loads_the_range_for_an_explicit_list_with_exactly_the_items_expected(
    dynamodb: Any, market: SyntheticMarket, waits: list[float]
) -> None:
    market.sessions = ("2025-06-30", "2025-07-01", "2025-07-02", "2025-07-03", "2025-07-04", "2025-07-07")
    codes = universe(60)

    run(
        runner_factory(dynamodb)(),
        event(symbols=codes, start_date="2025-07-01", end_date="2025-07-04", batch_size=25),
    )

    days = ("2025-07-01", "2025-07-02", "2025-07-03", "2025-07-04")
    expected = {(f"STOCK#{code}", f"DAY#{day}") for code in codes for day in days}
    assert set(bars(dynamodb)) == expected
    assert {(beg, end) for _, beg, end in market.asked} == {("20250701", "20250704")}
    record = run_record(dynamodb, TASK)
    assert record["status"] == "SUCCEEDED"
    assert record["detail"]["backfill"] == {"start_date": "2025-07-01", "end_date": "2025-07-04"}
    assert record["detail"]["coverage"]["with_bar"] == 60


def test_a_batch_that_stays_unreachable_is_retried_then_caught_and_the_others_finish(
    dynamodb: Any, market: SyntheticMarket, waits: list[float]
) -> None:
    codes = universe(100)
    store_spot_universe(dynamodb, codes)
    codes.sort()  # the planner's order: batch 1 is codes[50:100]
    market.transient[codes[60]] = 10_000  # never answers

    result = run(runner_factory(dynamodb)(), event(batch_size=50, max_retry_seconds=0))

    assert result.attempts == {0: 1, 1: 1 + BATCH_RETRY.max_attempts}
    assert result.results[1] == {"index": 1, "error": "BatchTransientError"}
    record = run_record(dynamodb, TASK)
    assert (record["status"], record["error_type"]) == ("FAILED", "PartialFailure")
    assert record["detail"]["batches_failed"] == [1]
    assert record["detail"]["symbols_failed_count"] == 50
    # What the failed batch fetched before the outage is kept: its symbols before codes[60].
    stored = {pk for pk, _ in bars(dynamodb)}
    assert stored == {f"STOCK#{code}" for code in codes[:60]}


def test_a_plan_past_the_inline_map_without_a_bucket_fails_the_run_and_says_what_is_missing(
    dynamodb: Any, waits: list[float]
) -> None:
    result = run(runner_factory(dynamodb)(), event(symbols=universe(9000), batch_size=1))

    assert result.planned["planned"] is False
    record = run_record(dynamodb, TASK)
    assert (record["status"], record["error_type"]) == ("FAILED", "PayloadTooLargeError")
    assert "need a Distributed Map (state bound" in record["error_message"]
    assert "KAIROS_FAN_OUT_BUCKET" in record["error_message"]


def test_a_plan_over_the_switch_runs_distributed_through_the_object_store_with_the_same_record(
    dynamodb: Any, market: SyntheticMarket, waits: list[float], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the inline limit (lowered here to 2 batches, so a small universe crosses it) the planner
    writes its batches to the store, the driver reads them there and writes the results in
    ResultWriter's shape, and the summary reads those: the record is the inline run's."""
    import json

    from kairos.local.fan_out import drive
    from kairos_runtime import fan_out
    from kairos_runtime.fan_out_objects import DirectoryObjects

    monkeypatch.setattr(fan_out, "MAX_INLINE_BATCHES", 2)
    codes = universe(30)
    store_spot_universe(dynamodb, codes)
    runner = runner_factory(dynamodb)(fan_out_dir=str(tmp_path))
    result = drive(
        event(batch_size=10),
        plan=runner.plan,
        batch=runner.batch,
        summarize=runner.summarize,
        max_concurrency=2,
        batch_retry=BATCH_RETRY,
        contexts={step: (lambda: FakeLambdaContext(900_000)) for step in ("plan", "batch", "summarize")},
        objects=DirectoryObjects(tmp_path),
        sleep=lambda seconds: None,
    )

    assert "batches" not in result.planned, "the batches stay out of the state"
    assert result.planned["batch_count"] == 3
    key = result.planned["items"]["key"]
    assert key.startswith(f"fan-out/{TASK}/batches/")
    written = json.loads((tmp_path / key).read_text(encoding="utf-8"))
    assert [len(batch["items"]) for batch in written] == [10, 10, 10]
    [manifest] = (tmp_path / "fan-out" / TASK / "results").glob("*/manifest.json")
    assert json.loads(manifest.read_text(encoding="utf-8"))["ResultFiles"]["SUCCEEDED"]
    assert result.response["status"] == "SUCCEEDED"
    record = run_record(dynamodb, TASK)
    assert (record["status"], record["items_written"]) == ("SUCCEEDED", 30 * 5)
    assert record["detail"]["fan_out"]["map"] == "distributed"
    assert record["detail"]["fan_out"]["map_reason"] == "3 batches > 2 in one history"
    assert record["detail"]["symbols_done"] == 30
    assert record["detail"]["coverage"]["with_bar"] == 30


def test_a_holiday_is_skipped_by_the_planner_before_any_batch(dynamodb: Any, waits: list[float]) -> None:
    result = run(
        runner_factory(dynamodb)(),
        scheduled_event(TASK, "stock_daily_all", {}, scheduled_time="2026-11-28T08:00:00Z", execution_id="exec-1"),
    )

    assert result.planned["planned"] is False
    assert result.results == ()
    assert run_record(dynamodb, TASK)["status"] == "SKIPPED"


logging.getLogger("kairos.test").setLevel(logging.CRITICAL)


class RecordingObserver:
    """What the runner reports as metrics: each finished result's counters, per step's result."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, ...]] = []

    def run_started(self, event: Any) -> None:
        return None

    def run_finished(self, event: Any, result: Any) -> None:
        self.finished.append(tuple(result.counters))


def test_the_summary_counts_runs_alive_so_the_freshness_alarm_sees_a_fan_out(
    dynamodb: Any, market: SyntheticMarket, waits: list[float]
) -> None:
    from kairos_runtime import metrics
    from kairos_runtime.runs import RunStatus

    store_spot_universe(dynamodb, universe(30))
    observer = RecordingObserver()
    runner = runner_factory(dynamodb)()
    runner._observer = observer  # the handler passes PowertoolsObserver; the counters are the same

    result = run(runner, event(batch_size=10))

    assert result.response["status"] == "SUCCEEDED"
    [counters] = observer.finished  # one final outcome: the summary's (the planner's run goes on)
    assert metrics.RUNS_ALIVE in counters
    assert metrics.RUN_OUTCOMES[RunStatus.SUCCEEDED] in counters


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not an object", "a batch invocation needs"),
        ({"event": {}, "batch": [1, 2]}, "a batch invocation needs"),
        ({"event": event(), "batch": {"index": "0", "items": ["600000"]}}, "an integer 'index'"),
        ({"event": event(), "batch": {"index": 0, "items": [600000]}}, "a list of 'items' (strings)"),
        ({"event": event(), "batch": {"index": 0, "items": ["600000"]}, "shared": "x"}, "'shared' must be an object"),
    ],
)
def test_a_malformed_batch_payload_fails_the_batch_with_a_message_not_a_traceback(
    dynamodb: Any, payload: object, message: str
) -> None:
    from kairos_runtime.fan_out import BatchFailedError

    with pytest.raises(BatchFailedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        runner_factory(dynamodb)().batch(payload, FakeLambdaContext(900_000))


@pytest.mark.parametrize(
    ("run_claim", "message"),
    [
        (None, "needs the planner's 'plan.run'"),
        ({"started_at": "2026-11-27T08:00:01Z"}, "needs the planner's 'plan.run'"),
        ({"request_id": "r-1", "started_at": "yesterday"}, "is not a timestamp: 'yesterday'"),
        ({"request_id": "r-1"}, "is not a timestamp: None"),
        ({"request_id": "r-1", "started_at": "2026-11-27T08:00:01"}, "has no time zone"),
    ],
)
def test_a_summary_without_a_readable_claim_says_which_field_is_wrong(
    dynamodb: Any, run_claim: object, message: str
) -> None:
    from kairos_runtime.fan_out import BatchFailedError

    plan: dict[str, Any] = {"planned": True, "shared": {}, "batches": []}
    if run_claim is not None:
        plan["run"] = run_claim
    with pytest.raises(BatchFailedError, match=message):
        runner_factory(dynamodb)().summarize(
            {"event": event(), "plan": plan, "results": []}, FakeLambdaContext(900_000)
        )
