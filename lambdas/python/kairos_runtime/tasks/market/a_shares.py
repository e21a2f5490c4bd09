"""A-share, ETF and index quotes from Eastmoney through akshare: spot snapshots and daily bars.

Every task here skips days the Shanghai and Shenzhen exchanges are closed (the calendar kept in
MarketData, else akshare's bundled one: :mod:`.trading_calendar`), calls akshare under the upstream
HTTP policy (:mod:`.upstream`), normalises and validates each row (:mod:`.normalise`) and writes in
batches (:mod:`.writer`). akshare and pandas are imported inside the fetch functions only.

A spot row that carries its quote time (the ETF list's 更新时间) and was quoted before the slot's
session opened is the last session's, not the slot's: it is rejected as ``stale_quote``. The stock
and index lists carry no quote time (akshare requests no ``f124`` for them and maps their columns by
position), so their runs first ask for the Shanghai Composite's daily bars: without a bar for the
slot's trading date Eastmoney is serving an earlier session, and the run is skipped before the
full-market crawl.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeAlias, TypeVar

from msgspec import Meta

from kairos_runtime.context import TaskContext
from kairos_runtime.registry import Access, DependencyGroup, Partitions, TaskOutcome, TaskRegistry, TaskSkipped
from kairos_runtime.tables import MARKET_DATA, TableId
from kairos_runtime.tasks.market.model import (
    CALENDAR,
    SHANGHAI,
    AssetClass,
    BarKind,
    Provenance,
    Quote,
    bar_item,
    class_date_pk,
    instrument_pk,
    partition_prefix,
    snapshot_items,
    trading_date_of,
)
from kairos_runtime.tasks.market.normalise import (
    DAILY_BAR,
    ETF_SPOT,
    INDEX_DAILY_BAR,
    INDEX_SPOT,
    STOCK_SPOT,
    Normalised,
    Reason,
    Records,
    Rejection,
    RowSchema,
    normalise_rows,
    to_date,
)
from kairos_runtime.tasks.market.trading_calendar import CALENDARS, TradingCalendar
from kairos_runtime.tasks.market.upstream import (
    CrawlerParams,
    NoValidRows,
    Retrier,
    SourceRejected,
    SourceUnavailable,
    upstream_requests,
)
from kairos_runtime.tasks.market.writer import write_items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

registry = TaskRegistry()

DETAIL_SYMBOLS = 50
"""Per-symbol entries a run record lists before it only counts them."""

Symbol = Annotated[str, Meta(pattern=r"^[0-9]{6}\Z", description="a six-digit exchange code such as 600519")]
IndexSymbol = Annotated[str, Meta(pattern=r"^[0-9A-Z]{6}\Z", description="a six-character index code such as 000300")]

MAX_KEPT_SYMBOLS = 2000
"""How many codes a ``symbols`` filter of a whole-market list may name."""

Code = TypeVar("Code", bound=str)
KeptSymbols: TypeAlias = Annotated[tuple[Code, ...], Meta(min_length=1, max_length=MAX_KEPT_SYMBOLS)]
"""The ``symbols`` filter of a source that always sends the whole list (spot quotes, the fund NAV
list): only these codes are stored. One definition for every such task's params."""


class Adjust(StrEnum):
    """Price adjustment of daily bars: none, forward (qfq) or backward (hfq)."""

    NONE = "none"
    FORWARD = "qfq"
    BACKWARD = "hfq"

    @property
    def akshare(self) -> str:
        return "" if self is Adjust.NONE else self.value

    @property
    def bar_kind(self) -> BarKind:
        return {
            Adjust.NONE: BarKind.RAW,
            Adjust.FORWARD: BarKind.FORWARD_ADJUSTED,
            Adjust.BACKWARD: BarKind.BACKWARD_ADJUSTED,
        }[self]


class IndexGroup(StrEnum):
    """The index lists Eastmoney publishes; akshare names them in Chinese."""

    MAJOR = "major"
    SHANGHAI = "shanghai"
    SHENZHEN = "shenzhen"
    CONSTITUENT = "constituent"
    CSI = "csi"

    @property
    def akshare(self) -> str:
        return {
            IndexGroup.MAJOR: "沪深重要指数",
            IndexGroup.SHANGHAI: "上证系列指数",
            IndexGroup.SHENZHEN: "深证系列指数",
            IndexGroup.CONSTITUENT: "指数成份",
            IndexGroup.CSI: "中证系列指数",
        }[self]


class SpotParams(CrawlerParams, frozen=True):
    trading_hours_only: Annotated[
        bool,
        Meta(
            description=(
                "skip slots outside the continuous trading sessions, 09:30-11:30 and 13:00-15:00 Shanghai time "
                "(quotes do not move in the lunch break or after the close)"
            )
        ),
    ] = True


class StockSpotParams(SpotParams, frozen=True):
    symbols: (
        Annotated[
            KeptSymbols[Symbol], Meta(description="store only these codes (the source always sends the whole market)")
        ]
        | None
    ) = None


class EtfSpotParams(StockSpotParams, frozen=True):
    pass


class IndexSpotParams(SpotParams, frozen=True):
    group: IndexGroup = IndexGroup.MAJOR
    symbols: KeptSymbols[IndexSymbol] | None = None


class StockDailyParams(CrawlerParams, frozen=True, kw_only=True):
    symbols: Annotated[tuple[Symbol, ...], Meta(min_length=1, max_length=500)]
    adjust: Adjust = Adjust.NONE
    lookback_days: Annotated[
        int, Meta(ge=1, le=3650, description="calendar days fetched for a symbol with no stored bars")
    ] = 30


class EtfDailyParams(StockDailyParams, frozen=True):
    pass


class IndexDailyParams(CrawlerParams, frozen=True, kw_only=True):
    symbols: Annotated[tuple[IndexSymbol, ...], Meta(min_length=1, max_length=500)]
    lookback_days: Annotated[int, Meta(ge=1, le=3650)] = 30


SpotParamsT = TypeVar("SpotParamsT", StockSpotParams, EtfSpotParams, IndexSpotParams)
DailyParamsT = TypeVar("DailyParamsT", StockDailyParams, EtfDailyParams, IndexDailyParams)


@dataclass(frozen=True, slots=True)
class SpotSource(Generic[SpotParamsT]):
    asset_class: AssetClass
    function: str
    schema: RowSchema
    fetch: Callable[[SpotParamsT], Records]
    probes_session: bool = False
    """Rows carry no quote time: prove the slot's session with :func:`latest_session` first."""

    @property
    def label(self) -> str:
        return f"Eastmoney (akshare.{self.function})"


@dataclass(frozen=True, slots=True)
class DailySource(Generic[DailyParamsT]):
    asset_class: AssetClass
    function: str
    schema: RowSchema
    fetch: Callable[[str, date, date, DailyParamsT], Records]

    @property
    def label(self) -> str:
        return f"Eastmoney (akshare.{self.function})"


def _records(frame: Any) -> Records:
    """The frame's rows as dicts, with the values ``frame.to_dict("records")`` gives (each column
    iterated, object and extension columns boxed to Python values), but a column at a time instead
    of a row at a time: a third of its CPU, which a full-market fan-out pays once per symbol."""
    import numpy
    from pandas.core.dtypes.cast import maybe_box_native

    columns: list[tuple[str, list[Any]]] = []
    for name, column in frame.items():
        values = list(column)
        if column.dtype == object or not isinstance(column.dtype, numpy.dtype):
            values = [maybe_box_native(value) for value in values]
        columns.append((str(name), values))
    names = [name for name, _ in columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*(values for _, values in columns), strict=True)]


def _ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


def _fetch_stock_spot(params: StockSpotParams) -> Records:
    import akshare

    return _records(akshare.stock_zh_a_spot_em())


def _fetch_etf_spot(params: EtfSpotParams) -> Records:
    import akshare

    return _records(akshare.fund_etf_spot_em())


def _fetch_index_spot(params: IndexSpotParams) -> Records:
    import akshare

    return _records(akshare.stock_zh_index_spot_em(symbol=params.group.akshare))


def _fetch_stock_bars(symbol: str, start: date, end: date, params: StockDailyParams) -> Records:
    import akshare

    frame = akshare.stock_zh_a_hist(
        symbol=symbol,
        period="daily",
        start_date=_ymd(start),
        end_date=_ymd(end),
        adjust=params.adjust.akshare,
        timeout=params.request_timeout_seconds,
    )
    return _records(frame)


def _fetch_etf_bars(symbol: str, start: date, end: date, params: EtfDailyParams) -> Records:
    import akshare

    # fund_etf_hist_em takes no timeout argument (it uses 15 s); upstream_requests caps it anyway.
    frame = akshare.fund_etf_hist_em(
        symbol=symbol, period="daily", start_date=_ymd(start), end_date=_ymd(end), adjust=params.adjust.akshare
    )
    return _records(frame)


def _fetch_index_bars(symbol: str, start: date, end: date, params: IndexDailyParams) -> Records:
    import akshare

    # index_zh_a_hist passes no timeout at all: upstream_requests supplies one. Its first call in a
    # process also crawls Eastmoney's index code list (cached for the life of the process).
    frame = akshare.index_zh_a_hist(symbol=symbol, period="daily", start_date=_ymd(start), end_date=_ymd(end))
    return _records(frame)


SESSION_PROBE_SYMBOL = "sh000001"
"""The Shanghai Composite: it has a daily bar for every session, and is never suspended."""
SESSION_PROBE_LABEL = "Eastmoney (akshare.stock_zh_index_daily_em)"
SESSION_PROBE_DAYS = 14
"""Calendar days of bars asked for: enough to name the latest session across the longest holiday."""


def _fetch_probe_dates(day: date) -> list[date]:
    import akshare

    frame = akshare.stock_zh_index_daily_em(
        symbol=SESSION_PROBE_SYMBOL, start_date=_ymd(day - timedelta(days=SESSION_PROBE_DAYS)), end_date=_ymd(day)
    )
    if frame.empty:
        return []
    return [each for each in (to_date(value) for value in frame["date"]) if each is not None]


STOCK_SPOT_SOURCE = SpotSource(
    AssetClass.STOCK, "stock_zh_a_spot_em", STOCK_SPOT, _fetch_stock_spot, probes_session=True
)
ETF_SPOT_SOURCE = SpotSource(AssetClass.ETF, "fund_etf_spot_em", ETF_SPOT, _fetch_etf_spot)
INDEX_SPOT_SOURCE = SpotSource(
    AssetClass.INDEX, "stock_zh_index_spot_em", INDEX_SPOT, _fetch_index_spot, probes_session=True
)
STOCK_DAILY_SOURCE = DailySource(AssetClass.STOCK, "stock_zh_a_hist", DAILY_BAR, _fetch_stock_bars)
ETF_DAILY_SOURCE = DailySource(AssetClass.ETF, "fund_etf_hist_em", DAILY_BAR, _fetch_etf_bars)
INDEX_DAILY_SOURCE = DailySource(AssetClass.INDEX, "index_zh_a_hist", INDEX_DAILY_BAR, _fetch_index_bars)


def require_trading_day(context: TaskContext) -> tuple[date, dict[str, Any]]:
    """The slot's trading date (Asia/Shanghai), or TaskSkipped when the exchanges are closed."""
    day = trading_date_of(context.event.scheduled_time)
    check = CALENDARS.get(context.clients.table(TableId.MARKET_DATA)).check(day)
    detail = {"trading_date": day.isoformat()} | check.detail()
    if not check.is_trading_day:
        raise TaskSkipped(f"{day.isoformat()} ({day:%A}) is not a trading day in Shanghai/Shenzhen", detail=detail)
    return day, detail


# The continuous trading sessions of the Shanghai and Shenzhen exchanges, both ends included, so a
# schedule that fires at 11:30 or 15:00 stores the session's closing prices (the shipped crons stop at
# 14:45 and leave the close to the daily tasks).
TRADING_SESSIONS = ((time(9, 30), time(11, 30)), (time(13, 0), time(15, 0)))
SESSION_OPENS = time(9, 15)
"""The opening call auction: a quote from before it on the slot's trading date is an earlier session's."""


def session_opens(day: date) -> datetime:
    return datetime.combine(day, SESSION_OPENS, tzinfo=SHANGHAI)


def require_trading_session(context: TaskContext, detail: dict[str, Any]) -> None:
    """TaskSkipped when the slot falls outside both trading sessions (before the open, at lunch, after the close)."""
    slot = context.event.scheduled_time.astimezone(SHANGHAI)
    if not any(start <= slot.time() <= end for start, end in TRADING_SESSIONS):
        raise TaskSkipped(
            f"{slot:%H:%M} Shanghai time is outside the trading sessions (09:30-11:30, 13:00-15:00)",
            detail=detail | {"slot_shanghai": f"{slot:%H:%M}"},
        )


def require_current_session(day: date, params: CrawlerParams, context: TaskContext, detail: dict[str, Any]) -> None:
    """TaskSkipped when Eastmoney's daily bars end before ``day``: its quotes are an earlier session's.

    Eastmoney's daily kline carries the current session's bar from the opening auction on, so a bar
    dated ``day`` proves the session whose quotes the spot lists then serve.
    """
    retrier = retrier_for(SESSION_PROBE_LABEL, params, context)
    try:
        with upstream_requests(proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds):
            dates = retrier.call(partial(_fetch_probe_dates, day), what="the latest session")
    except (SourceUnavailable, SourceRejected) as failure:
        failure.detail = detail | failure.detail
        raise
    latest = max(dates, default=None)
    detail["latest_session"] = latest.isoformat() if latest else None
    if latest != day:
        raise TaskSkipped(
            f"Eastmoney serves an earlier session (the Shanghai Composite's latest daily bar is "
            f"{latest.isoformat() if latest else 'none in 14 days'}, not {day.isoformat()}): the exchange is closed",
            detail=detail,
        )


def retrier_for(source: str, params: CrawlerParams, context: TaskContext) -> Retrier:
    return Retrier(
        source=source,
        max_retry_seconds=params.max_retry_seconds,
        remaining_time_ms=context.remaining_time_ms,
        logger=context.logger,
    )


def crawl_spot(source: SpotSource[SpotParamsT], params: SpotParamsT, context: TaskContext) -> TaskOutcome:
    """Snapshot a whole list (one akshare call, paginated inside it) at the run's slot."""
    day, detail = require_trading_day(context)
    if params.trading_hours_only:
        require_trading_session(context, detail)
    if source.probes_session:
        require_current_session(day, params, context, detail)
    retrier = retrier_for(source.label, params, context)
    try:
        with upstream_requests(proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds):
            rows = retrier.call(partial(source.fetch, params), what="spot quotes")
    except (SourceUnavailable, SourceRejected) as failure:
        failure.detail = detail | failure.detail
        raise
    fetched_at = datetime.now(UTC)
    detail |= {"source": source.label, "rows_received": len(rows), "retries": retrier.retries}
    if params.symbols:
        wanted = set(params.symbols)
        rows = [row for row in rows if str(row.get(source.schema.symbol_column or "")) in wanted]
        found = {str(row.get(source.schema.symbol_column or "")) for row in rows}
        missing = sorted(wanted - found)
        detail |= {"symbols_missing": missing[:DETAIL_SYMBOLS], "symbols_missing_count": len(missing)}
    batch = normalise_rows(source.schema, rows, fresh_since=session_opens(day))
    detail |= batch.detail()
    if not batch.quotes and batch.rejections and all(each.reason is Reason.STALE_QUOTE for each in batch.rejections):
        raise TaskSkipped(
            f"{source.label} serves an earlier session (every quote is from before {day.isoformat()} "
            f"{SESSION_OPENS:%H:%M} Shanghai time): the exchange is closed",
            detail=detail,
        )
    if batch.valid == 0:
        among = "the requested symbols" if params.symbols else "them"
        raise NoValidRows(
            f"{source.label} sent {detail['rows_received']} row(s) and none of {among} had a valid price",
            detail=detail,
        )
    provenance = Provenance(source=source.label, fetched_at=fetched_at)
    ttl = timedelta(days=context.settings.spot_ttl_days)
    slot = context.event.scheduled_time
    items = [
        item
        for quote in batch.quotes
        for item in snapshot_items(source.asset_class, quote, slot=slot, provenance=provenance, ttl=ttl)
    ]
    result = write_items(context.clients.table(TableId.MARKET_DATA), items)
    return TaskOutcome(
        items_written=result.written,
        items_rejected=len(batch.rejections),
        detail=detail | result.detail(),
    )


def fetch_start(
    table: Table,
    pk: str,
    kind: BarKind,
    day: date,
    lookback_days: int,
    *,
    calendar: TradingCalendar | None = None,
) -> date:
    """The first date to fetch for a symbol: its oldest gap in the lookback window, else the day
    after its newest stored bar, else the start of the lookback window (:meth:`StoredBars.start`)."""
    return stored_bars(table, pk, kind, day, lookback_days).start(table, calendar=calendar)


@dataclass(frozen=True, slots=True)
class StoredBars:
    """What a symbol's partition holds of one bar kind, as far as its next fetch needs to know."""

    day: date
    window_start: date
    window: frozenset[date]
    """The dates in ``window_start..day`` with a stored bar."""
    newest: date | None
    """The newest stored bar's date, on any day (after ``day`` too)."""

    def start(self, table: Table | None, *, calendar: TradingCalendar | None = None) -> date:
        """The first date to fetch: the oldest gap in the window, else the day after the newest bar,
        else the window's start.

        A gap is a trading day (``calendar``, default the container's :data:`CALENDARS`) between the
        window's first and newest stored bars with no bar: a bar rejected mid-series, or lost to a
        failed run, is asked for again on every run while it is in the window, instead of never (the
        next run would otherwise start after the newest bar). A suspension also shows as a gap (no
        bar is sent for a suspended day), so a suspended symbol's request spans its suspension: still
        one request. Never later than ``day`` itself, so running a slot again fetches (and
        overwrites) its own bar rather than finding nothing to do.
        """
        if not self.window:
            return self.window_start if self.newest is None else min(self.newest + timedelta(days=1), self.day)
        trading = calendar or CALENDARS.get(table)
        first, newest = min(self.window), max(self.window)
        for offset in range(1, (newest - first).days):
            candidate = first + timedelta(days=offset)
            if candidate not in self.window and trading.check(candidate).is_trading_day:
                return candidate
        return min(newest + timedelta(days=1), self.day)


def stored_bars(table: Table, pk: str, kind: BarKind, day: date, lookback_days: int) -> StoredBars:
    """The symbol's bars of ``kind`` in the ``lookback_days`` before ``day`` and its newest bar, from
    one Query (keys only) in the usual case.

    The partition is read newest first, ``lookback_days + 2`` keys a page: the window holds at most
    ``lookback_days + 1`` dates, so one page ends below the window (or the partition ends) unless
    bars after ``day`` are stored too; then it reads on until it passes the window's start.
    """
    window_start = day - timedelta(days=lookback_days)
    query: dict[str, Any] = {
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :kind)",
        "ExpressionAttributeNames": {"#pk": MARKET_DATA.partition_key, "#sk": MARKET_DATA.sort_key},
        "ExpressionAttributeValues": {":pk": pk, ":kind": f"{kind.value}#"},
        "ProjectionExpression": "#sk",
        "ScanIndexForward": False,
        "Limit": lookback_days + 2,
    }
    newest: date | None = None
    window: set[date] = set()
    while True:
        response = table.query(**query)
        dates = [date.fromisoformat(str(item[MARKET_DATA.sort_key]).split("#", 1)[1]) for item in response["Items"]]
        if newest is None and dates:
            newest = dates[0]
        window.update(each for each in dates if window_start <= each <= day)
        if "LastEvaluatedKey" not in response or (dates and dates[-1] < window_start):
            return StoredBars(day=day, window_start=window_start, window=frozenset(window), newest=newest)
        query["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def stored_bars_of_batch(
    table: Table,
    asset_class: AssetClass,
    kind: BarKind,
    symbols: Sequence[str],
    day: date,
    lookback_days: int,
    *,
    calendar: TradingCalendar,
) -> dict[str, StoredBars]:
    """:func:`stored_bars` of many symbols at once, from the ``by_class_date`` index: one Query per
    trading day of the window, bounded to the symbols' code range, instead of one Query per symbol.

    A fan-out batch is a slice of the sorted universe, so the range holds its own symbols (and any
    stored code the universe no longer lists, which is dropped). A symbol with no bar in the window
    falls back to :func:`stored_bars`, since only its partition tells its newest bar before the window
    (or after ``day``). Days the calendar says are closed are not read: a bar stored on one would only
    move the fetch's start a day earlier, never skip a missing bar. The index is eventually
    consistent: a bar written a moment ago may be missing from it, so at worst a symbol is fetched
    (and its bars written) again, never left out.
    """
    wanted = sorted(set(symbols))
    if not wanted:
        return {}
    window_start = day - timedelta(days=lookback_days)
    index = MARKET_DATA.indexes[0]
    windows: dict[str, set[date]] = {symbol: set() for symbol in wanted}
    for offset in range(lookback_days + 1):
        each = window_start + timedelta(days=offset)
        if not calendar.check(each).is_trading_day:
            continue
        query: dict[str, Any] = {
            "IndexName": index.name,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": index.partition_key, "#sk": index.sort_key},
            "ExpressionAttributeValues": {
                ":pk": class_date_pk(asset_class, kind.value, each),
                ":low": wanted[0],
                ":high": wanted[-1],
            },
            "ProjectionExpression": "#sk",
        }
        while True:
            response = table.query(**query)
            for item in response.get("Items", []):
                window = windows.get(str(item[index.sort_key]))
                if window is not None:
                    window.add(each)
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return {
        symbol: (
            # ``newest`` is the window's newest here, which is all StoredBars.start reads of a window with a bar.
            StoredBars(day=day, window_start=window_start, window=frozenset(window), newest=max(window))
            if window
            else stored_bars(table, instrument_pk(asset_class, symbol), kind, day, lookback_days)
        )
        for symbol, window in windows.items()
    }


@dataclass
class _DailyHarvest:
    quotes: list[Quote]
    rejections: list[Rejection]
    ranges: dict[str, str]
    without_data: list[str]
    errors: dict[str, str]

    def detail(self) -> dict[str, Any]:
        """Per-symbol notes, bounded so a long symbol list cannot outgrow the run record's detail."""
        batch = Normalised(self.quotes, self.rejections)
        detail = batch.detail()
        if len(self.ranges) <= DETAIL_SYMBOLS:
            detail["fetched_ranges"] = self.ranges
        else:
            detail["fetched_ranges_by_symbols"] = dict(Counter(self.ranges.values()))
        if self.without_data:
            detail["symbols_without_data"] = self.without_data[:DETAIL_SYMBOLS]
        if self.errors:
            detail["symbol_errors"] = dict(list(self.errors.items())[:DETAIL_SYMBOLS])
            detail["symbols_with_errors"] = len(self.errors)
        return detail


def crawl_daily(
    source: DailySource[DailyParamsT], params: DailyParamsT, context: TaskContext, adjust: Adjust
) -> TaskOutcome:
    """Fetch each symbol's bars from its oldest gap in the lookback window, else the day after its
    newest stored one, up to the slot's trading date (:func:`fetch_start`).

    A symbol the source has nothing for, or answers with an error for, is noted and the others go on.
    When the source is unreachable the crawl stops, keeps what it fetched, and the run fails as
    transient so the delivery is retried.
    """
    day, detail = require_trading_day(context)
    table = context.clients.table(TableId.MARKET_DATA)
    retrier = retrier_for(source.label, params, context)
    harvest = _DailyHarvest([], [], {}, [], {})
    unavailable: SourceUnavailable | None = None
    for symbol in params.symbols:
        pk = instrument_pk(source.asset_class, symbol)
        start = fetch_start(table, pk, adjust.bar_kind, day, params.lookback_days)
        harvest.ranges[symbol] = f"{start.isoformat()}..{day.isoformat()}"
        try:
            with upstream_requests(proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds):
                rows = retrier.call(partial(source.fetch, symbol, start, day, params), what=f"daily bars of {symbol}")
        except SourceRejected as rejected:
            harvest.errors[symbol] = str(rejected)[:300]
            continue
        except SourceUnavailable as error:
            unavailable = error
            break
        if not rows:
            harvest.without_data.append(symbol)
            continue
        batch = normalise_rows(source.schema, rows, symbol=symbol)
        harvest.quotes.extend(batch.quotes)
        harvest.rejections.extend(batch.rejections)
    detail |= {"source": source.label, "retries": retrier.retries} | harvest.detail()
    provenance = Provenance(source=source.label, fetched_at=datetime.now(UTC), attributes={"adjust": adjust.value})
    items = [bar_item(source.asset_class, adjust.bar_kind, quote, provenance=provenance) for quote in harvest.quotes]
    result = write_items(table, items)
    detail |= result.detail() | {"items_written": result.written}
    if unavailable is not None:
        raise SourceUnavailable(str(unavailable), detail=detail | unavailable.detail)
    if not harvest.quotes:
        raise NoValidRows(
            f"{source.label} returned no valid daily bars for {len(params.symbols)} symbol(s)", detail=detail
        )
    return TaskOutcome(items_written=result.written, items_rejected=len(harvest.rejections), detail=detail)


def _own_class_and_calendar(asset_class: AssetClass, *, query_indexes: bool = False) -> Partitions:
    """A crawler writes only its own class's items; it also reads the trading calendar the
    ``trading_calendar`` task keeps. ``query_indexes``: it also queries the ``by_class_date`` index."""
    own = partition_prefix(asset_class)
    return Partitions(read=(own, partition_prefix(CALENDAR)), write=(own,), query_indexes=query_indexes)


@registry.task(
    "stock_spot",
    params=StockSpotParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    partitions={TableId.MARKET_DATA: _own_class_and_calendar(STOCK_SPOT_SOURCE.asset_class)},
    group=DependencyGroup.CRAWLER,
)
def stock_spot(params: StockSpotParams, context: TaskContext) -> TaskOutcome:
    """Snapshot every A-share quote (akshare.stock_zh_a_spot_em), optionally only some codes."""
    return crawl_spot(STOCK_SPOT_SOURCE, params, context)


@registry.task(
    "etf_spot",
    params=EtfSpotParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    partitions={TableId.MARKET_DATA: _own_class_and_calendar(ETF_SPOT_SOURCE.asset_class)},
    group=DependencyGroup.CRAWLER,
)
def etf_spot(params: EtfSpotParams, context: TaskContext) -> TaskOutcome:
    """Snapshot every exchange-traded fund quote (akshare.fund_etf_spot_em)."""
    return crawl_spot(ETF_SPOT_SOURCE, params, context)


@registry.task(
    "index_spot",
    params=IndexSpotParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    partitions={TableId.MARKET_DATA: _own_class_and_calendar(INDEX_SPOT_SOURCE.asset_class)},
    group=DependencyGroup.CRAWLER,
)
def index_spot(params: IndexSpotParams, context: TaskContext) -> TaskOutcome:
    """Snapshot one of Eastmoney's index lists (akshare.stock_zh_index_spot_em)."""
    return crawl_spot(INDEX_SPOT_SOURCE, params, context)


@registry.task(
    "stock_daily",
    params=StockDailyParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    partitions={TableId.MARKET_DATA: _own_class_and_calendar(STOCK_DAILY_SOURCE.asset_class)},
    group=DependencyGroup.CRAWLER,
    # A daily bar is the settled figure of its own trading date: the source serves any past date.
    backfill=True,
)
def stock_daily(params: StockDailyParams, context: TaskContext) -> TaskOutcome:
    """Store new daily bars of some A-shares (akshare.stock_zh_a_hist), incrementally."""
    return crawl_daily(STOCK_DAILY_SOURCE, params, context, params.adjust)


@registry.task(
    "etf_daily",
    params=EtfDailyParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    partitions={TableId.MARKET_DATA: _own_class_and_calendar(ETF_DAILY_SOURCE.asset_class)},
    group=DependencyGroup.CRAWLER,
    # A daily bar is the settled figure of its own trading date: the source serves any past date.
    backfill=True,
)
def etf_daily(params: EtfDailyParams, context: TaskContext) -> TaskOutcome:
    """Store new daily bars of some ETFs (akshare.fund_etf_hist_em), incrementally."""
    return crawl_daily(ETF_DAILY_SOURCE, params, context, params.adjust)


@registry.task(
    "index_daily",
    params=IndexDailyParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    partitions={TableId.MARKET_DATA: _own_class_and_calendar(INDEX_DAILY_SOURCE.asset_class)},
    group=DependencyGroup.CRAWLER,
    # A daily bar is the settled figure of its own trading date: the source serves any past date.
    backfill=True,
)
def index_daily(params: IndexDailyParams, context: TaskContext) -> TaskOutcome:
    """Store new daily bars of some indices (akshare.index_zh_a_hist), incrementally."""
    return crawl_daily(INDEX_DAILY_SOURCE, params, context, Adjust.NONE)
