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
    assert task.resource_count == 20


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
