"""Holes in stored daily series: the trading days between a symbol's first and last stored bar
(or fund NAV) with none, against the exchange calendar.

Requests, whatever the range: one Query of each symbol's own partition (``pk = <CLASS>#<symbol>``,
``sk BETWEEN <KIND>#<from> AND <KIND>#<to>``, keys only, paged), the calendar's partition once, and,
without ``--symbol``, a few Queries of the ``by_class_date`` index to list the symbols: the
partitions ``<CLASS>#<KIND>#<date>`` of the last :data:`LISTING_DAYS` trading days up to ``to`` (and
of ``from``'s first trading day when given), keys only. A symbol with no bar on any of those days is
not listed; name it with ``--symbol``.

Every trading day counts, so a suspension shows as a gap too (Eastmoney sends no bar for a suspended
day): the report says where the series has holes, the reader decides which are expected.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from kairos_runtime.tables import MARKET_DATA
from kairos_runtime.tasks.market.model import NAV, AssetClass, BarKind, class_date_pk, instrument_pk
from kairos_runtime.tasks.market.trading_calendar import TradingCalendar

LISTING_DAYS = 5
"""Trading days (up to ``to``) whose index partitions list the symbols to check."""
EARLIEST = date(1990, 12, 19)
"""The Shanghai exchange's first session: no series starts before it."""

SERIES_KIND: Mapping[AssetClass, str] = {
    AssetClass.STOCK: BarKind.RAW.value,
    AssetClass.ETF: BarKind.RAW.value,
    AssetClass.INDEX: BarKind.RAW.value,
    AssetClass.FUND: NAV,
}
"""The daily series checked per class: raw daily bars, and funds' NAVs."""


@dataclass(frozen=True, slots=True)
class SeriesGaps:
    symbol: str
    stored: int
    first: date | None
    last: date | None
    missing: tuple[date, ...]
    """Trading days between ``first`` and ``last`` without an item, oldest first."""

    def ranges(self) -> list[tuple[date, date]]:
        """The missing days as runs of consecutive trading days (``first``, ``last`` of each run)."""
        return [(run[0], run[-1]) for run in self._runs]

    _runs: tuple[tuple[date, ...], ...] = field(default=(), repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "stored": self.stored,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "missing_count": len(self.missing),
            "missing": [day.isoformat() for day in self.missing],
            "ranges": [[start.isoformat(), end.isoformat()] for start, end in self.ranges()],
        }


@dataclass(frozen=True, slots=True)
class GapsReport:
    asset_class: AssetClass
    kind: str
    start: date | None
    end: date
    calendar: str
    series: tuple[SeriesGaps, ...]
    queries: int

    def as_json(self) -> dict[str, Any]:
        return {
            "asset": self.asset_class.value,
            "series": self.kind,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat(),
            "calendar": self.calendar,
            "queries": self.queries,
            "symbols": [each.as_json() for each in self.series],
            "symbols_with_gaps": sum(1 for each in self.series if each.missing),
        }


def trading_days(calendar: TradingCalendar, start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        if calendar.check(day).is_trading_day:
            yield day
        day += timedelta(days=1)


def series_gaps(symbol: str, stored: set[date], calendar: TradingCalendar) -> SeriesGaps:
    """The trading days between the first and last of ``stored`` that are not in it, and their runs."""
    if not stored:
        return SeriesGaps(symbol, 0, None, None, ())
    first, last = min(stored), max(stored)
    runs: list[list[date]] = []
    previous_had_item = True
    for day in trading_days(calendar, first, last):
        if day in stored:
            previous_had_item = True
            continue
        if previous_had_item:
            runs.append([])
        runs[-1].append(day)
        previous_had_item = False
    missing = tuple(day for run in runs for day in run)
    return SeriesGaps(symbol, len(stored), first, last, missing, tuple(tuple(run) for run in runs))


class _Counter:
    def __init__(self) -> None:
        self.queries = 0

    def pages(self, table: Any, query: dict[str, Any]) -> Iterator[Mapping[str, Any]]:
        while True:
            response = table.query(**query)
            self.queries += 1
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def stored_dates(
    counter: _Counter, table: Any, asset_class: AssetClass, kind: str, symbol: str, start: date, end: date
) -> set[date]:
    query = {
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :first AND :last",
        "ExpressionAttributeNames": {"#pk": MARKET_DATA.partition_key, "#sk": MARKET_DATA.sort_key},
        "ExpressionAttributeValues": {
            ":pk": instrument_pk(asset_class, symbol),
            ":first": f"{kind}#{start.isoformat()}",
            ":last": f"{kind}#{end.isoformat()}",
        },
        "ProjectionExpression": "#sk",
    }
    return {
        date.fromisoformat(str(item[MARKET_DATA.sort_key]).split("#", 1)[1]) for item in counter.pages(table, query)
    }


def listed_symbols(
    counter: _Counter,
    table: Any,
    asset_class: AssetClass,
    kind: str,
    calendar: TradingCalendar,
    start: date | None,
    end: date,
) -> list[str]:
    """Symbols with an item on one of the last :data:`LISTING_DAYS` trading days up to ``end``, or on
    ``start``'s first trading day (the ``by_class_date`` index, keys only)."""
    days: list[date] = []
    day = end
    while len(days) < LISTING_DAYS and day >= (start or EARLIEST) and (end - day).days <= 31:
        if calendar.check(day).is_trading_day:
            days.append(day)
        day -= timedelta(days=1)
    if start is not None:
        days.extend(list(trading_days(calendar, start, min(end, start + timedelta(days=14))))[:1])
    index = MARKET_DATA.indexes[0]
    symbols: set[str] = set()
    for listed_day in sorted(set(days)):
        query = {
            "IndexName": index.name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": index.partition_key, "#sk": index.sort_key},
            "ExpressionAttributeValues": {":pk": class_date_pk(asset_class, kind, listed_day)},
            "ProjectionExpression": "#sk",
        }
        symbols.update(str(item[index.sort_key]) for item in counter.pages(table, query))
    return sorted(symbols)


def find_gaps(
    table: Any,
    asset_class: AssetClass,
    calendar: TradingCalendar,
    *,
    end: date,
    start: date | None = None,
    symbol: str | None = None,
) -> GapsReport:
    """The gaps of one symbol's series, or of every listed symbol's (see the module docstring)."""
    kind = SERIES_KIND[asset_class]
    counter = _Counter()
    symbols = [symbol] if symbol else listed_symbols(counter, table, asset_class, kind, calendar, start, end)
    series = tuple(
        series_gaps(each, stored_dates(counter, table, asset_class, kind, each, start or EARLIEST, end), calendar)
        for each in symbols
    )
    return GapsReport(asset_class, kind, start, end, calendar.source, series, counter.queries)
