"""Open-end funds' daily NAVs from Eastmoney (天天基金) through akshare.

Two sources, one item shape (``FUND#<code>`` / ``NAV#<nav date>``, :func:`.model.nav_item`):

* ``source: latest`` (the daily run): ``fund_open_fund_daily_em`` — every open-end fund's two latest
  NAVs in one request. The list names its two NAV dates (``showday``) in its column names; a fund
  that has published for the newer date is stored at that date with its daily growth, subscription
  and redemption status and fee. A fund that has not (it publishes late, or a day behind, as QDII
  funds do) is stored at the older date without growth, since the list's growth compares the two
  dates, and only when no NAV of that date is stored yet: an earlier run may have stored it with
  its growth, and that item is kept (one index query of the older date finds them all).
* ``source: history`` (backfill of explicit ``symbols``): ``fund_open_fund_info_em`` — a fund's
  whole NAV history (unit NAV and daily growth %, then accumulated NAV: two akshare calls of the same
  ``pingzhongdata/<code>.js`` file, evaluated by akshare with its JS engine). Only the dates in the
  lookback window that are not stored yet are written, so a rerun writes nothing new and never
  replaces an item of the daily list (which carries the statuses a history point lacks).

A NAV is keyed by its own date, never the slot's: funds publish in the evening, often for the
previous trading day. Runs skip days the exchanges are closed, like the other Eastmoney tasks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from kairos_runtime.context import TaskContext
from kairos_runtime.registry import Access, DependencyGroup, Partitions, TaskOutcome, TaskRegistry
from kairos_runtime.tables import MARKET_DATA, TableId
from kairos_runtime.tasks.market.a_shares import DETAIL_SYMBOLS, KeptSymbols, require_trading_day, retrier_for
from kairos_runtime.tasks.market.model import (
    CALENDAR,
    NAV,
    AssetClass,
    Item,
    Provenance,
    Quote,
    class_date_pk,
    instrument_pk,
    nav_item,
    nav_sk,
    partition_prefix,
)
from kairos_runtime.tasks.market.normalise import FUND_NAV, Normalised, Records, Rejection, normalise_rows, to_date
from kairos_runtime.tasks.market.upstream import (
    CrawlerParams,
    NoValidRows,
    SourceRejected,
    SourceUnavailable,
    upstream_requests,
)
from kairos_runtime.tasks.market.writer import write_items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

registry = TaskRegistry()

LATEST_LABEL = "Eastmoney (akshare.fund_open_fund_daily_em)"
HISTORY_LABEL = "Eastmoney (akshare.fund_open_fund_info_em)"
MAX_LOOKBACK_DAYS = 12000
"""About 33 years: older than any open-end fund in China (the first were launched in 1998)."""

FundCode = Annotated[str, Meta(pattern=r"^[0-9]{6}\Z", description="a six-digit fund code such as 000001")]

_NAV_COLUMN = re.compile(r"^(\d{4}-\d{2}-\d{2})-(单位净值|累计净值)$")
_GROWTH_COLUMNS = ("日增长值", "日增长率")
LAGGING = "_lagging"
"""Marks a daily-list row stored at the list's older date (not part of any item)."""


class FundNavSource(StrEnum):
    LATEST = "latest"
    """Every fund's latest NAV, from the daily list (one request)."""
    HISTORY = "history"
    """The listed ``symbols``' NAV histories over ``lookback_days`` (two requests a fund)."""


class FundNavParams(CrawlerParams, frozen=True):
    source: FundNavSource = FundNavSource.LATEST
    symbols: (
        Annotated[
            KeptSymbols[FundCode],
            Meta(description="latest: store only these funds (the list always has every fund); history: required"),
        ]
        | None
    ) = None
    lookback_days: Annotated[
        int,
        Meta(
            ge=1,
            le=MAX_LOOKBACK_DAYS,
            description="history: calendar days of NAVs up to the slot's date, written where none is stored",
        ),
    ] = 30

    def __post_init__(self) -> None:
        if self.source is FundNavSource.HISTORY and not self.symbols:
            raise ValueError("source history needs symbols: the NAV history endpoint serves one fund a request")


@dataclass(frozen=True, slots=True)
class DailyList:
    """The daily list's rows, each with its NAV's own date (净值日期) and generic column names."""

    rows: Records
    nav_date: date | None
    """The newer of the list's two NAV dates (``showday[0]``)."""
    previous_date: date | None


def nav_dates(columns: Iterable[str]) -> list[date]:
    """The NAV dates the list's column names carry, in the list's order (newest first)."""
    found: list[date] = []
    for column in columns:
        match = _NAV_COLUMN.match(column)
        if match and (day := date.fromisoformat(match.group(1))) not in found:
            found.append(day)
    return found


def daily_list_rows(records: Records, columns: Iterable[str]) -> DailyList:
    """Each fund's newest NAV in the list: the newer date's when published, else the older date's."""
    dates = nav_dates(columns)
    newer = dates[0] if dates else None
    older = dates[1] if len(dates) > 1 else None
    rows: Records = []
    for record in records:
        base = {name: value for name, value in record.items() if not _NAV_COLUMN.match(name)}
        row = _at(base, record, newer)
        if row is None and older is not None:
            row = _at({name: value for name, value in base.items() if name not in _GROWTH_COLUMNS}, record, older)
            if row is not None:
                row[LAGGING] = True
        rows.append(row if row is not None else base | {"净值日期": newer.isoformat() if newer else None})
    return DailyList(rows, newer, older)


def _at(base: dict[str, object], record: Mapping[str, object], day: date | None) -> dict[str, object] | None:
    """The row at ``day`` when its unit NAV there is a number, else None."""
    if day is None:
        return None
    unit, accumulated = record.get(f"{day.isoformat()}-单位净值"), record.get(f"{day.isoformat()}-累计净值")
    if FUND_NAV.numbers({"单位净值": unit}).get("unit_nav") is None:
        return None
    return base | {"净值日期": day.isoformat(), "单位净值": unit, "累计净值": accumulated}


def history_rows(unit: Records, accumulated: Records) -> Records:
    """A fund's NAV history points merged by date: unit NAV and growth %, then accumulated NAV."""
    by_day: dict[date, dict[str, object]] = {}
    for point in unit:
        day = to_date(point.get("净值日期"))
        if day is not None:
            by_day[day] = {"净值日期": day, "单位净值": point.get("单位净值"), "日增长率": point.get("日增长率")}
    for point in accumulated:
        day = to_date(point.get("净值日期"))
        if day is not None and day in by_day:
            by_day[day]["累计净值"] = point.get("累计净值")
    return [by_day[day] for day in sorted(by_day)]


def _records(frame: Any) -> Records:
    return [{str(key): value for key, value in row.items()} for row in frame.to_dict("records")]


def _fetch_daily_list() -> DailyList:
    import akshare

    frame = akshare.fund_open_fund_daily_em()
    return daily_list_rows(_records(frame), [str(column) for column in frame.columns])


def _fetch_history(symbol: str) -> Records:
    import akshare

    # akshare requests the fund's pingzhongdata/<code>.js for each indicator; it sends no timeout
    # of its own, so upstream_requests supplies one.
    unit = akshare.fund_open_fund_info_em(symbol=symbol, indicator="单位净值走势")
    if unit.empty:
        return []
    accumulated = akshare.fund_open_fund_info_em(symbol=symbol, indicator="累计净值走势")
    return history_rows(_records(unit), [] if accumulated.empty else _records(accumulated))


def stored_nav_dates(table: Table, symbol: str, start: date, end: date) -> set[date]:
    """The dates in ``start..end`` a fund already has a NAV for (one Query of its partition, paged)."""
    query: dict[str, Any] = {
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :first AND :last",
        "ExpressionAttributeNames": {"#pk": MARKET_DATA.partition_key, "#sk": MARKET_DATA.sort_key},
        "ExpressionAttributeValues": {
            ":pk": instrument_pk(AssetClass.FUND, symbol),
            ":first": nav_sk(start),
            ":last": nav_sk(end),
        },
        "ProjectionExpression": "#sk",
    }
    return {date.fromisoformat(str(item[MARKET_DATA.sort_key]).split("#", 1)[1]) for item in _pages(table, query)}


def funds_with_nav_on(table: Table, day: date) -> set[str]:
    """Every fund with a NAV stored for ``day`` (one Query of the ``by_class_date`` index, paged)."""
    index = MARKET_DATA.indexes[0]
    query: dict[str, Any] = {
        "IndexName": index.name,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": index.partition_key, "#sk": index.sort_key},
        "ExpressionAttributeValues": {":pk": class_date_pk(AssetClass.FUND, NAV, day)},
        "ProjectionExpression": "#sk",
    }
    return {str(item[index.sort_key]) for item in _pages(table, query)}


def _pages(table: Table, query: dict[str, Any]) -> Iterable[Mapping[str, Any]]:
    while True:
        response = table.query(**query)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        query["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _provenance(label: str) -> Provenance:
    return Provenance(source=label, fetched_at=datetime.now(UTC))


def crawl_latest(params: FundNavParams, context: TaskContext) -> TaskOutcome:
    _, detail = require_trading_day(context)
    table = context.clients.table(TableId.MARKET_DATA)
    retrier = retrier_for(LATEST_LABEL, params, context)
    try:
        with upstream_requests(proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds):
            listing = retrier.call(_fetch_daily_list, what="open-end fund NAVs")
    except (SourceUnavailable, SourceRejected) as failure:
        failure.detail = detail | failure.detail
        raise
    provenance = _provenance(LATEST_LABEL)
    rows = listing.rows
    detail |= {
        "source": LATEST_LABEL,
        "rows_received": len(rows),
        "retries": retrier.retries,
        "nav_date": listing.nav_date.isoformat() if listing.nav_date else None,
        "previous_nav_date": listing.previous_date.isoformat() if listing.previous_date else None,
    }
    if params.symbols:
        wanted = set(params.symbols)
        rows = [row for row in rows if str(row.get("基金代码")) in wanted]
        missing = sorted(wanted - {str(row.get("基金代码")) for row in rows})
        detail |= {"symbols_missing": missing[:DETAIL_SYMBOLS], "symbols_missing_count": len(missing)}
    lagging = {str(row.get("基金代码")) for row in rows if row.get(LAGGING)}
    batch = normalise_rows(FUND_NAV, rows)
    detail |= batch.detail()
    if batch.valid == 0:
        among = "the requested funds" if params.symbols else "them"
        raise NoValidRows(f"{LATEST_LABEL} sent {len(rows)} row(s) and none of {among} had a unit NAV", detail=detail)
    quotes = batch.quotes
    if lagging and listing.previous_date is not None:
        stored = funds_with_nav_on(table, listing.previous_date)
        kept = {quote.symbol for quote in quotes if quote.symbol in lagging and quote.symbol in stored}
        quotes = [quote for quote in quotes if quote.symbol not in kept]
        detail |= {"lagging": len(lagging), "lagging_already_stored": len(kept)}
    result = write_items(table, [nav_item(quote, provenance=provenance) for quote in quotes])
    return TaskOutcome(
        items_written=result.written, items_rejected=len(batch.rejections), detail=detail | result.detail()
    )


@dataclass
class _HistoryHarvest:
    quotes: list[Quote] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    already_stored: int = 0
    without_data: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def detail(self) -> dict[str, Any]:
        detail = Normalised(self.quotes, self.rejections).detail() | {"already_stored": self.already_stored}
        if self.without_data:
            detail["symbols_without_data"] = self.without_data[:DETAIL_SYMBOLS]
        if self.errors:
            detail["symbol_errors"] = dict(list(self.errors.items())[:DETAIL_SYMBOLS])
            detail["symbols_with_errors"] = len(self.errors)
        return detail


def crawl_history(params: FundNavParams, context: TaskContext) -> TaskOutcome:
    day, detail = require_trading_day(context)
    start = day - timedelta(days=params.lookback_days)
    table = context.clients.table(TableId.MARKET_DATA)
    retrier = retrier_for(HISTORY_LABEL, params, context)
    harvest = _HistoryHarvest()
    unavailable: SourceUnavailable | None = None
    for symbol in params.symbols or ():
        stored = stored_nav_dates(table, symbol, start, day)
        try:
            with upstream_requests(proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds):
                points = retrier.call(partial(_fetch_history, symbol), what=f"the NAV history of {symbol}")
        except SourceRejected as rejected:
            harvest.errors[symbol] = str(rejected)[:300]
            continue
        except SourceUnavailable as error:
            unavailable = error
            break
        if not points:
            harvest.without_data.append(symbol)
            continue
        window = [point for point in points if (when := to_date(point.get("净值日期"))) and start <= when <= day]
        fresh = [point for point in window if to_date(point.get("净值日期")) not in stored]
        harvest.already_stored += len(window) - len(fresh)
        batch = normalise_rows(FUND_NAV, fresh, symbol=symbol)
        harvest.quotes.extend(batch.quotes)
        harvest.rejections.extend(batch.rejections)
    detail |= {
        "source": HISTORY_LABEL,
        "retries": retrier.retries,
        "window": f"{start.isoformat()}..{day.isoformat()}",
    } | harvest.detail()
    provenance = _provenance(HISTORY_LABEL)
    items: list[Item] = [nav_item(quote, provenance=provenance) for quote in harvest.quotes]
    result = write_items(table, items)
    detail |= result.detail() | {"items_written": result.written}
    if unavailable is not None:
        raise SourceUnavailable(str(unavailable), detail=detail | unavailable.detail)
    if not harvest.quotes and not harvest.already_stored:
        raise NoValidRows(
            f"{HISTORY_LABEL} returned no valid NAV in {detail['window']} for {len(params.symbols or ())} fund(s)",
            detail=detail,
        )
    return TaskOutcome(items_written=result.written, items_rejected=len(harvest.rejections), detail=detail)


@registry.task(
    "fund_nav",
    params=FundNavParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    # Reads its own NAVs (what is stored already) and the trading calendar; writes only FUND#.
    partitions={
        TableId.MARKET_DATA: Partitions(
            read=(partition_prefix(AssetClass.FUND), partition_prefix(CALENDAR)),
            write=(partition_prefix(AssetClass.FUND),),
            query_indexes=True,  # funds_with_nav_on: the by_class_date index
        )
    },
    group=DependencyGroup.CRAWLER,
)
def fund_nav(params: FundNavParams, context: TaskContext) -> TaskOutcome:
    """Store open-end funds' NAVs at their own dates: every fund's latest, or some funds' history."""
    if params.source is FundNavSource.HISTORY:
        return crawl_history(params, context)
    return crawl_latest(params, context)
