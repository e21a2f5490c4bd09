"""The fan-out's pure parts: the payload bound that decides inline Map versus Distributed Map, the
plan's fan-out values for the shipped task, the reports' sum, and the rate limiter's pacing."""

from __future__ import annotations

import json

import pytest

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import BATCH_RETRY, FAN_OUT_HANDLERS, plan_stage
from kairos_runtime.fan_out import (
    INLINE_MAP_PAYLOAD_BUDGET,
    BatchReport,
    add_up,
    json_size,
    max_inline_items,
    payload_bound,
    report_bound,
    split,
)
from kairos_runtime.rate_limit import (
    COINGECKO_REQUESTS_PER_SECOND,
    EASTMONEY_REQUESTS_PER_SECOND,
    AdaptiveRateLimiter,
    per_batch_rate,
)
from tests.conftest import PROJECT_ROOT

FULL_MARKET = 5400


def test_the_shipped_full_market_task_fits_an_inline_map_with_room_to_spare() -> None:
    catalog = load_catalog()
    task = plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, "prod").task("stock-daily-all")
    fan_out = task.fan_out
    assert fan_out is not None
    assert (fan_out.batch_size, fan_out.max_concurrency, fan_out.requests_per_second) == (100, 4, 3.0)
    assert fan_out.rate_per_batch == 0.75
    assert fan_out.max_inline_items >= 1.4 * FULL_MARKET
    assert payload_bound(FULL_MARKET, fan_out.batch_size, fixed_bytes=12_288) <= INLINE_MAP_PAYLOAD_BUDGET
    assert {step: function.handler for step, function in fan_out.functions.items()} == FAN_OUT_HANDLERS
    assert (fan_out.functions["batch"].memory, fan_out.functions["batch"].timeout) == (task.memory, task.timeout)
    assert fan_out.batch_retry == BATCH_RETRY
    assert fan_out.execution_timeout_seconds == task.max_event_age_seconds
    assert task.resource_count == 21  # with the Distributed Map's own policy (child executions)


def test_the_bound_holds_for_the_largest_reports_a_batch_can_send() -> None:
    items = [f"{index:06d}" for index in range(250)]
    worst = BatchReport(
        index=999,
        planned=250,
        failed={item: f"reason {index % 7} " + "x" * 200 for index, item in enumerate(items)},
        rejected={"bad_price": 10**9, "stale_quote": 10**9},
        requests=10**9,
        slowdowns=10**9,
        retries=10**9,
        write_requests=10**9,
        items_written=10**9,
    )
    assert json_size(worst.as_json()) <= report_bound(250)
    batches = [{"index": index, "items": list(chunk)} for index, chunk in enumerate(split(items, 50))]
    assert json_size(batches) <= payload_bound(250, 50, fixed_bytes=0)


def test_the_switch_point_is_the_largest_count_within_the_budget() -> None:
    most = max_inline_items(50, fixed_bytes=12_288)
    assert payload_bound(most, 50, fixed_bytes=12_288) <= INLINE_MAP_PAYLOAD_BUDGET
    assert payload_bound(most + 1, 50, fixed_bytes=12_288) > INLINE_MAP_PAYLOAD_BUDGET


def test_reports_add_up_and_a_caught_batch_fails_all_its_items() -> None:
    batches = [{"index": 0, "items": ["600000", "600001"]}, {"index": 1, "items": ["000001", "000002"]}]
    report = BatchReport(
        index=0, planned=2, done=1, without_data=("600001",), items_written=5, rejected={"bad_price": 1}
    ).as_json()
    totals = add_up(batches, [json.loads(json.dumps(report)), {"index": 1, "error": "BatchTransientError"}])
    assert (totals.planned, totals.done, totals.items_written, totals.items_rejected) == (4, 1, 5, 1)
    assert totals.failed == ("000001", "000002")
    assert totals.failure_reasons == {"batch failed: BatchTransientError": 2}
    assert totals.failed_batches == (1,)
    assert add_up(batches, [report]).failure_reasons == {"batch failed: no report": 2}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.starts: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_limiter_spaces_requests_and_slows_down_on_429_and_5xx_then_recovers() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(4.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire()
        clock.starts.append(clock.now)
    assert clock.starts == [0.0, 0.25, 0.5, 0.75, 1.0]
    limiter.record(429)
    limiter.record(503)
    assert limiter.rate == 1.0
    assert limiter.stats.slowdowns == 2
    limiter.acquire()
    limiter.acquire()
    assert clock.now == pytest.approx(1.25 + 1.0)  # the next token 1/rate after the last
    for _ in range(100):
        limiter.record(200)
    assert limiter.rate == 4.0  # never above the ceiling
    for _ in range(20):
        limiter.record(None)
    assert limiter.rate == 4.0 / 16  # the floor


def test_the_rate_is_shared_by_the_concurrent_batches_and_the_defaults_are_gentle() -> None:
    assert per_batch_rate(3.0, 4) == 0.75
    assert EASTMONEY_REQUESTS_PER_SECOND <= 5
    assert COINGECKO_REQUESTS_PER_SECOND * 60 <= 30  # CoinGecko's published free plan: 30-100 calls a minute
    with pytest.raises(ValueError, match="positive"):
        per_batch_rate(0, 4)


# -- the switch to a Distributed Map (docs/adr/0164) ------------------------------------------------


def test_the_history_bound_counts_every_attempt_of_a_caught_batch_and_the_plan_carries_it() -> None:
    from kairos_runtime.fan_out import (
        EVENTS_PER_ATTEMPT,
        EVENTS_PER_INLINE_BATCH,
        HISTORY_EVENT_LIMIT,
        HISTORY_RESERVE_EVENTS,
        MAX_INLINE_BATCHES,
    )

    per_batch = EVENTS_PER_INLINE_BATCH + EVENTS_PER_ATTEMPT * (1 + BATCH_RETRY.max_attempts)
    assert per_batch == 18
    assert MAX_INLINE_BATCHES == 1333
    assert HISTORY_RESERVE_EVENTS + MAX_INLINE_BATCHES * per_batch <= HISTORY_EVENT_LIMIT
    assert HISTORY_RESERVE_EVENTS + (MAX_INLINE_BATCHES + 1) * per_batch > HISTORY_EVENT_LIMIT
    catalog = load_catalog()
    task = plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, "prod").task("stock-daily-all")
    assert task.fan_out is not None
    assert task.fan_out.max_inline_batches == MAX_INLINE_BATCHES


@pytest.mark.parametrize(
    ("items", "batch_size", "distributed", "reason"),
    [
        (FULL_MARKET, 100, False, "54 batches, state bound"),
        (19_000, 100, True, "state bound 561,388 bytes > 245,760"),  # every open-end fund
        (1_333, 1, True, "state bound"),  # small batches pass the payload first
    ],
)
def test_the_planner_goes_distributed_past_the_payload_budget(
    items: int, batch_size: int, distributed: bool, reason: str
) -> None:
    from kairos_runtime.fan_out import choose_map

    choice = choose_map(items, batch_size, fixed_bytes=12_288)
    assert (choice.distributed, choice.batches) == (distributed, -(-items // batch_size))
    assert choice.reason.startswith(reason)
    assert choice.state_bytes_bound == payload_bound(items, batch_size, fixed_bytes=12_288)


def test_the_planner_goes_distributed_past_the_history_bound_even_within_the_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kairos_runtime import fan_out

    within = fan_out.choose_map(30, 10, fixed_bytes=0)
    monkeypatch.setattr(fan_out, "MAX_INLINE_BATCHES", 2)
    past = fan_out.choose_map(30, 10, fixed_bytes=0)
    assert not within.distributed
    assert (past.distributed, past.reason) == (True, "3 batches > 2 in one history")
    assert past.state_bytes_bound <= INLINE_MAP_PAYLOAD_BUDGET
    assert not fan_out.choose_map(20, 10, fixed_bytes=0).distributed


def test_the_summary_reads_result_writer_files_succeeded_caught_and_failed_children(tmp_path: object) -> None:
    from pathlib import Path

    from kairos_runtime.fan_out_objects import (
        DirectoryObjects,
        FanOutObjectError,
        read_map_results,
        write_map_results,
    )

    store = DirectoryObjects(Path(str(tmp_path)))
    inputs = [{"batch": {"index": 0, "items": ["600000"]}}, {"batch": {"index": 1, "items": ["000001"]}}]
    outputs: list[dict[str, object]] = [{"index": 0, "done": 1}, {"index": 1, "error": "BatchFailedError"}]
    details = write_map_results(store, "funds", "run-1", inputs, outputs)
    assert details == {"Bucket": "local", "Key": "fan-out/funds/results/run-1/manifest.json"}
    # A child execution that failed outright (timed out, say) is in a FAILED file, with its input.
    failed_key = "fan-out/funds/results/run-1/FAILED_0.json"
    store.put_json(
        failed_key,
        [{"Status": "TIMED_OUT", "Input": json.dumps({"batch": {"index": 2, "items": []}}), "Error": "States.Timeout"}],
    )
    manifest = store.get_json(details["Key"])
    manifest["ResultFiles"]["FAILED"] = [{"Key": failed_key, "Size": 1}]
    store.put_json(details["Key"], manifest)

    assert sorted(read_map_results(store, details, "funds"), key=lambda result: result["index"]) == [
        {"index": 0, "done": 1},
        {"index": 1, "error": "BatchFailedError"},
        {"index": 2, "error": "States.Timeout"},
    ]
    with pytest.raises(FanOutObjectError, match="is not under fan-out/other/"):
        read_map_results(store, details, "other")  # another task's results are refused
    with pytest.raises(FanOutObjectError, match="leaves the store"):
        store.get_json("fan-out/funds/../../etc/passwd")
