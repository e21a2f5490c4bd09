"""What a stock_daily_all batch reads of DynamoDB: one keys-only Query of the ``by_class_date`` index
per trading day of the lookback window, for the whole batch, tells each symbol's fetch start and
whether the slot's bar is stored; only a symbol with no bar in the window costs a Query of its own
partition (docs/adr/0166-fan-out-bench-floors.md, docs/adr/0204-fan-out-bench-server.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from kairos.local.fan_out import drive
from kairos.plan import BATCH_RETRY
from kairos_runtime.tasks.market.universe import UNIVERSES
from tests.conftest import FakeLambdaContext, scheduled_event
from tests.market.synthetic_market import SLOT, SyntheticMarket, runner_factory, serve, store_spot_universe, universe


@pytest.fixture(autouse=True)
def fresh_universe_cache() -> Iterator[None]:
    UNIVERSES.clear()
    yield
    UNIVERSES.clear()


def partition_queries(dynamodb: Any) -> tuple[Counter[str], Counter[str]]:
    """Every Query of a symbol's own partition (``pk = STOCK#<code>``), counted by partition, and
    every Query of the index for a date's daily bars (``STOCK#DAY#<date>``), counted by date."""
    own: Counter[str] = Counter()
    by_date: Counter[str] = Counter()

    def note(params: dict[str, Any], **kwargs: Any) -> None:
        value = params.get("ExpressionAttributeValues", {}).get(":pk")
        pk = value.get("S") if isinstance(value, dict) else value
        if not isinstance(pk, str):
            return
        if "IndexName" not in params and pk.startswith("STOCK#") and pk[6:].isdigit():
            own[pk] += 1
        elif params.get("IndexName") == "by_class_date" and pk.startswith("STOCK#DAY#"):
            by_date[pk.removeprefix("STOCK#DAY#")] += 1

    dynamodb.meta.client.meta.events.register("provide-client-params.dynamodb.Query", note)
    return own, by_date


def crawl(dynamodb: Any, execution_id: str, params: dict[str, Any] | None = None, **extra: Any) -> None:
    runner = runner_factory(dynamodb)()
    raw = {
        **scheduled_event(
            "stock-daily-all",
            "stock_daily_all",
            {"requests_per_second": 1000, "batch_size": 10, **(params or {})},
            scheduled_time=SLOT,
            execution_id=execution_id,
        ),
        **extra,
    }
    drive(
        raw,
        plan=runner.plan,
        batch=runner.batch,
        summarize=runner.summarize,
        max_concurrency=3,
        batch_retry=BATCH_RETRY,
        contexts={step: (lambda: FakeLambdaContext(900_000)) for step in ("plan", "batch", "summarize")},
        sleep=lambda seconds: None,
    )


def test_a_batch_reads_the_index_once_per_trading_day_and_only_a_symbol_without_bars_its_partition(
    dynamodb: Any, http: responses.RequestsMock, waits: list[float]
) -> None:
    from datetime import date, timedelta

    from kairos_runtime.tasks.market.trading_calendar import default_calendar

    market: SyntheticMarket = serve(http)
    codes = universe(30)
    store_spot_universe(dynamodb, codes)
    own, by_date = partition_queries(dynamodb)
    calendar = default_calendar()
    day = date.fromisoformat(SLOT[:10])
    window = [day - timedelta(days=offset) for offset in range(31)]  # the default lookback, 30 days
    trading_days = {each.isoformat() for each in window if calendar.check(each).is_trading_day}

    crawl(dynamodb, "exec-1")  # no bar stored yet: every symbol's own partition tells it has none
    first_own, first_by_date = dict(own), dict(by_date)
    own.clear()
    by_date.clear()
    market.asked.clear()
    crawl(dynamodb, "exec-2", rerun=True)  # every symbol now holds the slot's bar

    batches = 3  # 30 symbols, 10 a batch; the summary reads the slot's date once more, for coverage
    expected = dict.fromkeys(trading_days, batches) | {day.isoformat(): batches + 1}
    assert first_own == {f"STOCK#{code}": 1 for code in codes}
    assert first_by_date == expected
    assert dict(own) == {}
    assert dict(by_date) == expected
    assert market.asked == [], "a symbol holding the slot's bar is not asked for"


def test_a_batch_of_an_explicit_list_reads_each_symbols_partition_not_the_index(
    dynamodb: Any, http: responses.RequestsMock, waits: list[float]
) -> None:
    serve(http)
    codes = universe(30)
    store_spot_universe(dynamodb, codes)
    own, by_date = partition_queries(dynamodb)
    listed = [codes[0], codes[-1]]  # one batch whose code range spans the whole universe

    crawl(dynamodb, "exec-1", {"symbols": listed})
    first_own, first_by_date = dict(own), dict(by_date)
    own.clear()
    by_date.clear()
    crawl(dynamodb, "exec-2", {"symbols": listed}, rerun=True)

    day = SLOT[:10]
    assert first_own == dict(own) == {f"STOCK#{code}": 1 for code in listed}
    assert first_by_date == dict(by_date) == {day: 1}, "only the summary's coverage read uses the index"
