"""Batched writes to the MarketData table.

``BatchWriteItem`` through the table's low-level client (the resource's ``batch_writer`` hides
``UnprocessedItems``, which are what a throttled table hands back): 25 puts a request, and whatever
comes back unprocessed is sent again with exponential backoff and jitter. Keys are deterministic, so
writing the same slot twice overwrites; duplicates within one batch are collapsed first because
DynamoDB rejects a batch that names a key twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kairos_runtime.tasks.market import upstream
from kairos_runtime.tasks.market.model import Item, item_key
from kairos_runtime.tasks.market.upstream import SourceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

BATCH_SIZE = 25


class ThrottledWriteError(SourceUnavailable):
    """DynamoDB kept handing items back unprocessed; another delivery may get them in."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int
    duplicates: int
    """Items dropped because a later item in the same run had the same key."""
    requests: int
    retried_items: int

    def detail(self) -> dict[str, int]:
        return {
            "write_requests": self.requests,
            "write_retried_items": self.retried_items,
            "duplicate_keys": self.duplicates,
        }


def dedupe(items: Iterable[Item]) -> tuple[list[Item], int]:
    """The items with one per key (the last wins), and how many were dropped."""
    by_key: dict[tuple[str, str], Item] = {}
    count = 0
    for item in items:
        by_key[item_key(item)] = item
        count += 1
    return list(by_key.values()), count - len(by_key)


def write_items(
    table: Table,
    items: Iterable[Item],
    *,
    max_attempts: int = 8,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] | None = None,
) -> WriteResult:
    unique, duplicates = dedupe(items)
    client: Any = table.meta.client
    wait = sleep or upstream.sleep
    requests = retried = 0
    for start in range(0, len(unique), BATCH_SIZE):
        pending: Sequence[Any] = [{"PutRequest": {"Item": item}} for item in unique[start : start + BATCH_SIZE]]
        attempt = 0
        while pending:
            response = client.batch_write_item(RequestItems={table.name: pending})
            requests += 1
            pending = response.get("UnprocessedItems", {}).get(table.name, [])
            if not pending:
                break
            attempt += 1
            if attempt >= max_attempts:
                raise ThrottledWriteError(
                    f"DynamoDB left {len(pending)} of {len(unique)} items unprocessed after {attempt} attempts",
                    detail={
                        "unprocessed": len(pending),
                        "written": min(start + BATCH_SIZE, len(unique)) - len(pending),
                    },
                )
            retried += len(pending)
            ceiling = min(max_delay, base_delay * 2.0**attempt)
            wait(ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311 - jitter, not cryptography
    return WriteResult(written=len(unique), duplicates=duplicates, requests=requests, retried_items=retried)
