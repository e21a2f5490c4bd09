"""Batched writes: 25 items a request, UnprocessedItems sent again, duplicate keys collapsed."""

from __future__ import annotations

from typing import Any

import pytest

from kairos_runtime.tasks.market.model import Item
from kairos_runtime.tasks.market.writer import ThrottledWriteError, dedupe, write_items
from tests.market.conftest import MARKET_TABLE, Throttling, market_items


def items(count: int, *, price: int = 1) -> list[Item]:
    return [{"pk": f"STOCK#{index:06d}", "sk": "LATEST", "price": price} for index in range(count)]


@pytest.fixture
def table(dynamodb: Any) -> Any:
    return dynamodb.Table(MARKET_TABLE)


def test_items_go_in_batches_of_25(dynamodb: Any, table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Throttling(dynamodb.meta.client, hold_back=1, throttled_calls=0)
    monkeypatch.setattr(dynamodb.meta.client, "batch_write_item", spy)

    result = write_items(table, items(60), sleep=lambda _: None)

    assert spy.batch_sizes == [25, 25, 10]
    assert (result.written, result.requests, result.retried_items) == (60, 3, 0)
    assert len(market_items(dynamodb)) == 60


def test_unprocessed_items_are_sent_again_until_all_are_written(
    dynamodb: Any, table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Throttling(dynamodb.meta.client, hold_back=7, throttled_calls=2)
    monkeypatch.setattr(dynamodb.meta.client, "batch_write_item", spy)
    waits: list[float] = []

    result = write_items(table, items(30), sleep=waits.append)

    assert spy.batch_sizes == [25, 7, 7, 5]
    assert (result.written, result.retried_items) == (30, 14)
    first, second = waits
    assert 0.05 <= first <= 0.1, "half to all of 0.1 s"
    assert 0.1 <= second <= 0.2, "doubled for the second resend"
    assert len(market_items(dynamodb)) == 30


def test_a_table_that_never_takes_the_items_fails_as_transient(
    dynamodb: Any, table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        dynamodb.meta.client, "batch_write_item", Throttling(dynamodb.meta.client, hold_back=3, throttled_calls=99)
    )

    with pytest.raises(ThrottledWriteError, match="3 of 10 items unprocessed after 4 attempts") as raised:
        write_items(table, items(10), max_attempts=4, sleep=lambda _: None)

    assert raised.value.kind.value == "transient"
    assert raised.value.detail == {"unprocessed": 3, "written": 7}


def test_duplicate_keys_collapse_to_the_last_item() -> None:
    unique, dropped = dedupe([*items(2, price=1), *items(1, price=2)])

    assert dropped == 1
    assert [(item["pk"], item["price"]) for item in unique] == [("STOCK#000000", 2), ("STOCK#000001", 1)]
