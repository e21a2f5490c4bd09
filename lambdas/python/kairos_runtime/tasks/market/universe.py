"""The symbol universe of a fan-out crawl: every listed code of an asset class, cached per container.

Taken from the latest spot snapshot the spot task stored (the ``by_class_date`` index's
``<CLASS>#LATEST#<date>`` partition of the newest date within :data:`LOOKBACK_DAYS`), else from
Eastmoney's full quote list through akshare (``stock_zh_a_spot_em``: one paginated call), which is
also where the spot task's list comes from. Read once per container and kept :data:`CACHE_SECONDS`
(module level, so a warm planner reuses it); a fan-out's planner reads it once per slot and hands
the batches their symbols, so no batch ever reads it. The run record says where the universe came
from and how old it is (``universe_source``, ``universe_as_of``, ``universe_cached_s``), and warns
when it is older than the slot's trading date.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from kairos_runtime.tables import MARKET_DATA
from kairos_runtime.tasks.market.model import LATEST as LATEST_KIND
from kairos_runtime.tasks.market.model import AssetClass, class_date_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

CACHE_SECONDS = 3600
"""How long a container keeps a universe: listings change at most daily, and a planner runs once a slot."""
LOOKBACK_DAYS = 10
"""Calendar days back from the slot's trading date searched for a stored spot snapshot (a holiday week)."""
SPOT_SOURCE = "spot snapshot (MarketData by_class_date LATEST)"
CODE_LIST_SOURCE = "Eastmoney code list (akshare.stock_zh_a_spot_em)"


@dataclass(frozen=True, slots=True)
class Universe:
    symbols: tuple[str, ...]
    source: str
    as_of: date | None
    """The trading date of the snapshot it was read from (None: the source's list, as fetched)."""
    loaded_at: float

    def detail(self, day: date, now: float) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "universe_size": len(self.symbols),
            "universe_source": self.source,
            "universe_as_of": self.as_of.isoformat() if self.as_of else None,
            "universe_cached_s": round(now - self.loaded_at),
        }
        if self.as_of is not None and self.as_of < day:
            detail["universe_warning"] = (
                f"the newest stored spot snapshot is of {self.as_of.isoformat()}, before {day.isoformat()}: "
                "codes listed since are missing (run the spot task)"
            )
        return detail


def stored_universe(table: Table, asset_class: AssetClass, day: date) -> tuple[tuple[str, ...], date] | None:
    """The codes of the newest ``LATEST`` partition on or before ``day`` (at most LOOKBACK_DAYS back)."""
    index = MARKET_DATA.indexes[0]
    for offset in range(LOOKBACK_DAYS + 1):
        on = day - timedelta(days=offset)
        query: dict[str, Any] = {
            "IndexName": index.name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": index.partition_key, "#sk": index.sort_key},
            "ExpressionAttributeValues": {":pk": class_date_pk(asset_class, LATEST_KIND, on)},
            "ProjectionExpression": "#sk",
        }
        codes: list[str] = []
        while True:
            response = table.query(**query)
            codes.extend(str(item[index.sort_key]) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if codes:
            return tuple(sorted(set(codes))), on
    return None


class UniverseCache:
    """Universes by (table, asset class, trading date), each kept :data:`CACHE_SECONDS`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, AssetClass, date], Universe] = {}
        self.loads = 0
        """How often a universe was read rather than reused (tests and the benchmark read it)."""

    def get(
        self,
        table: Table,
        asset_class: AssetClass,
        day: date,
        *,
        fetch_codes: Callable[[], tuple[str, ...]],
    ) -> Universe:
        key = (table.name, asset_class, day)
        now = self._clock()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and now - kept.loaded_at < CACHE_SECONDS:
                return kept
        stored = stored_universe(table, asset_class, day)
        if stored is not None:
            universe = Universe(stored[0], SPOT_SOURCE, stored[1], now)
        else:
            universe = Universe(tuple(sorted(set(fetch_codes()))), CODE_LIST_SOURCE, None, now)
        with self._lock:
            self._kept = {k: v for k, v in self._kept.items() if now - v.loaded_at < CACHE_SECONDS}
            self._kept[key] = universe
            self.loads += 1
        return universe

    def now(self) -> float:
        return self._clock()

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self.loads = 0


UNIVERSES = UniverseCache()
