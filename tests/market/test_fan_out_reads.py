"""What a stock_daily_all batch reads of DynamoDB per symbol: one keys-only Query of its partition
tells its fetch start and whether the slot's bar is stored (docs/adr/0166-fan-out-bench-floors.md)."""

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


def partition_queries(dynamodb: Any) -> Counter[str]:
    """Every Query of a symbol's own partition (``pk = STOCK#<code>``), counted by partition."""
    seen: Counter[str] = Counter()

    def note(params: dict[str, Any], **kwargs: Any) -> None:
        value = params.get("ExpressionAttributeValues", {}).get(":pk")
        pk = value.get("S") if isinstance(value, dict) else value
        if "IndexName" not in params and isinstance(pk, str) and pk.startswith("STOCK#") and pk[6:].isdigit():
            seen[pk] += 1

    dynamodb.meta.client.meta.events.register("provide-client-params.dynamodb.Query", note)
    return seen


def crawl(dynamodb: Any, execution_id: str, **extra: Any) -> None:
    runner = runner_factory(dynamodb)()
    raw = {
        **scheduled_event(
            "stock-daily-all",
            "stock_daily_all",
            {"requests_per_second": 1000, "batch_size": 10},
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


def test_each_symbol_costs_one_partition_query_on_a_first_crawl_and_on_a_rerun(
    dynamodb: Any, http: responses.RequestsMock, waits: list[float]
) -> None:
    market: SyntheticMarket = serve(http)
    codes = universe(30)
    store_spot_universe(dynamodb, codes)
    queries = partition_queries(dynamodb)

    crawl(dynamodb, "exec-1")
    first = dict(queries)
    queries.clear()
    market.asked.clear()
    crawl(dynamodb, "exec-2", rerun=True)  # every symbol now holds the slot's bar

    assert first == {f"STOCK#{code}": 1 for code in codes}
    assert dict(queries) == {f"STOCK#{code}": 1 for code in codes}
    assert market.asked == [], "a symbol holding the slot's bar is not asked for"
