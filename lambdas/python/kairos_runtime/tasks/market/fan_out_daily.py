"""``stock_daily_all``: every A-share's daily bars, as a fan-out (:mod:`kairos_runtime.fan_out`).

The planner takes the slot's trading date and the universe (``symbols: all``: :mod:`.universe`, or
an explicit list, uncapped) and lists it; each batch worker does what ``stock_daily`` does for its
symbols, paced by its share of ``requests_per_second``. A symbol's fetch starts after its newest
stored bar, read by the worker as it starts (not by the planner; for the whole batch at once,
:func:`.a_shares.stored_bars_of_batch`): a batch that Step Functions retries, or an execution
redriven, fetches only what is still missing, and a symbol
already holding the slot's bar is not asked for at all, so re-running a finished slot writes
nothing. With ``start_date`` (and optionally ``end_date``) the same fan-out backfills that range:
each symbol from after its newest bar inside the range, else from ``start_date``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

from msgspec import Meta

from kairos_runtime.context import TaskContext
from kairos_runtime.errors import PermanentTaskError
from kairos_runtime.fan_out import Batch, BatchReport, BatchSize, Concurrency, FanOut, RequestsPerSecond, WorkList
from kairos_runtime.rate_limit import EASTMONEY_REQUESTS_PER_SECOND, AdaptiveRateLimiter
from kairos_runtime.registry import Access, DependencyGroup, TaskOutcome, TaskRegistry, TaskSkipped
from kairos_runtime.tables import MARKET_DATA, TableId
from kairos_runtime.tasks.market.a_shares import (
    STOCK_DAILY_SOURCE,
    STOCK_SPOT_SOURCE,
    Adjust,
    Symbol,
    _own_class_and_calendar,
    require_trading_day,
    retrier_for,
    stored_bars,
    stored_bars_of_batch,
)
from kairos_runtime.tasks.market.coverage import coverage
from kairos_runtime.tasks.market.model import (
    AssetClass,
    Provenance,
    bar_item,
    class_date_pk,
    instrument_pk,
    trading_date_of,
)
from kairos_runtime.tasks.market.normalise import normalise_rows
from kairos_runtime.tasks.market.trading_calendar import CALENDARS
from kairos_runtime.tasks.market.universe import UNIVERSES
from kairos_runtime.tasks.market.upstream import CrawlerParams, SourceRejected, SourceUnavailable, upstream_requests
from kairos_runtime.tasks.market.writer import write_items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

registry = TaskRegistry()

IsoDate = Annotated[str, Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z", description="a date such as 2024-01-02")]


class StockDailyAllParams(CrawlerParams, frozen=True, kw_only=True):
    symbols: Literal["all"] | Annotated[tuple[Symbol, ...], Meta(min_length=1)] = "all"
    """``all``: every listed A-share (the stored spot snapshot, else Eastmoney's list); or a list."""
    adjust: Adjust = Adjust.NONE
    lookback_days: Annotated[
        int, Meta(ge=1, le=3650, description="calendar days fetched for a symbol with no stored bars")
    ] = 30
    start_date: IsoDate | None = None
    """Backfill: fetch from this date (each symbol from after its newest bar in the range)."""
    end_date: IsoDate | None = None
    """Backfill: up to this date (default: the slot's trading date)."""
    batch_size: BatchSize = 50
    max_concurrency: Concurrency = 4
    requests_per_second: RequestsPerSecond | None = None

    def __post_init__(self) -> None:
        for name in ("start_date", "end_date"):
            value = getattr(self, name)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    raise ValueError(f"{name} {value!r} is not a calendar date") from None
        if self.end_date is not None and self.start_date is None:
            raise ValueError("end_date needs a start_date (a backfill range)")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")


def _range(params: StockDailyAllParams, context: TaskContext) -> tuple[date, dict[str, Any]]:
    """The last date to fetch: the slot's trading date (a closed day is skipped), or a backfill's end."""
    if params.start_date is None:
        return require_trading_day(context)
    day = trading_date_of(context.event.scheduled_time)
    end = date.fromisoformat(params.end_date) if params.end_date else day
    return end, {"backfill": {"start_date": params.start_date, "end_date": end.isoformat()}}


def _fetch_codes(params: StockDailyAllParams, context: TaskContext) -> tuple[str, ...]:
    retrier = retrier_for(STOCK_SPOT_SOURCE.label, params, context)
    with upstream_requests(proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds):
        rows = retrier.call(partial(_spot_rows), what="the code list")
    codes = (str(row.get(STOCK_SPOT_SOURCE.schema.symbol_column or "")) for row in rows)
    return tuple(code for code in codes if len(code) == 6 and code.isdigit())


def _spot_rows() -> list[dict[str, Any]]:
    import akshare

    frame = akshare.stock_zh_a_spot_em()
    return [{str(key): value for key, value in row.items()} for row in frame.to_dict("records")]


def plan_stock_daily(params: StockDailyAllParams, context: TaskContext) -> WorkList:
    end, detail = _range(params, context)
    if params.symbols == "all":
        universe = UNIVERSES.get(
            context.clients.table(TableId.MARKET_DATA),
            AssetClass.STOCK,
            end,
            fetch_codes=partial(_fetch_codes, params, context),
        )
        symbols = universe.symbols
        detail |= universe.detail(end, UNIVERSES.now())
    else:
        symbols = tuple(sorted(set(params.symbols)))
        detail |= {"universe_size": len(symbols), "universe_source": "params.symbols"}
    if not symbols:
        raise TaskSkipped("the universe is empty: no spot snapshot stored and the code list was empty", detail=detail)
    shared = {"end": end.isoformat(), "start_date": params.start_date, "adjust": params.adjust.value}
    return WorkList(items=symbols, shared=shared, detail=detail)


def newest_bar(table: Table, pk: str, kind: str, floor: str | None, end: date) -> date | None:
    """The newest stored bar's date of ``kind`` on or before ``end`` (and on or after ``floor``)."""
    response = table.query(
        KeyConditionExpression="#pk = :pk AND #sk BETWEEN :low AND :high",
        ExpressionAttributeNames={"#pk": MARKET_DATA.partition_key, "#sk": MARKET_DATA.sort_key},
        ExpressionAttributeValues={":pk": pk, ":low": f"{kind}#{floor or ''}", ":high": f"{kind}#{end.isoformat()}"},
        ProjectionExpression="#sk",
        ScanIndexForward=False,
        Limit=1,
    )
    items = response.get("Items", [])
    return date.fromisoformat(str(items[0][MARKET_DATA.sort_key]).split("#", 1)[1]) if items else None


def crawl_batch(params: StockDailyAllParams, context: TaskContext, batch: Batch) -> BatchReport:
    """``stock_daily`` for one batch: each symbol from after its newest bar, paced, then one write.

    A symbol the source rejects is reported failed and the others go on; when the source stays
    unreachable the batch writes what it fetched and fails as transient, so Step Functions retries
    it (and the retry starts each symbol after what this attempt stored).
    """
    end = date.fromisoformat(str(batch.shared["end"]))
    start_date = batch.shared.get("start_date")
    floor = str(start_date) if start_date else None
    adjust = Adjust(str(batch.shared.get("adjust", params.adjust.value)))
    kind = adjust.bar_kind
    table = context.clients.table(TableId.MARKET_DATA)
    limiter = AdaptiveRateLimiter(batch.rate_per_second)
    retrier = retrier_for(STOCK_DAILY_SOURCE.label, params, context)
    source = STOCK_DAILY_SOURCE
    quotes = []
    rejected: Counter[str] = Counter()
    done = up_to_date = 0
    without: list[str] = []
    failed: dict[str, str] = {}
    unavailable: SourceUnavailable | None = None
    daily = _daily_params(params, adjust)
    calendar = CALENDARS.get(table)
    # As stock_daily: the oldest gap in the lookback window first, else after the newest bar; read
    # as the batch starts, so a retried batch skips what is stored. A batch of the whole market is a
    # contiguous slice of its codes, read from the index at once; an explicit list may spread one
    # batch over the market's whole range, so each of its symbols reads its own partition.
    stored_of = (
        stored_bars_of_batch(table, source.asset_class, kind, batch.items, end, params.lookback_days, calendar=calendar)
        if floor is None and params.symbols == "all"
        else {}
    )
    for symbol in batch.items:
        pk = instrument_pk(source.asset_class, symbol)
        if floor is None:
            stored = stored_of.get(symbol) or stored_bars(table, pk, kind, end, params.lookback_days)
            start = stored.start(table, calendar=calendar)
            if end in stored.window and start >= end:
                up_to_date += 1
                continue
        else:
            newest = newest_bar(table, pk, kind.value, floor, end)
            if newest is not None and newest >= end:
                up_to_date += 1
                continue
            start = newest + timedelta(days=1) if newest is not None else date.fromisoformat(floor)
        try:
            with upstream_requests(
                proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds, gate=limiter
            ):
                rows = retrier.call(partial(source.fetch, symbol, start, end, daily), what=f"daily bars of {symbol}")
        except SourceRejected as rejection:
            failed[symbol] = str(rejection)[:80]
            continue
        except SourceUnavailable as error:
            unavailable = error
            break
        if not rows:
            without.append(symbol)
            continue
        normalised = normalise_rows(source.schema, rows, symbol=symbol)
        quotes.extend(normalised.quotes)
        rejected.update(rejection.reason.value for rejection in normalised.rejections)
        done += 1
    provenance = Provenance(source=source.label, fetched_at=datetime.now(UTC), attributes={"adjust": adjust.value})
    result = write_items(table, [bar_item(source.asset_class, kind, quote, provenance=provenance) for quote in quotes])
    if unavailable is not None:
        raise SourceUnavailable(
            f"{unavailable} (batch {batch.index}: {result.written} bar(s) of {done} symbol(s) stored first)"
        )
    return BatchReport(
        index=batch.index,
        planned=len(batch.items),
        done=done,
        up_to_date=up_to_date,
        without_data=tuple(without),
        failed=failed,
        items_written=result.written,
        rejected=dict(rejected),
        requests=limiter.stats.requests,
        slowdowns=limiter.stats.slowdowns,
        retries=retrier.retries,
        write_requests=result.requests,
    )


def _daily_params(params: StockDailyAllParams, adjust: Adjust) -> Any:
    """What ``stock_daily``'s fetch reads of its params: the adjustment and the request timeout."""
    from kairos_runtime.tasks.market.a_shares import StockDailyParams

    return StockDailyParams(
        symbols=("000001",),
        adjust=adjust,
        request_timeout_seconds=params.request_timeout_seconds,
        max_retry_seconds=params.max_retry_seconds,
    )


def summarize_stock_daily(
    params: StockDailyAllParams, context: TaskContext, shared: Mapping[str, Any], universe: Sequence[str]
) -> dict[str, Any]:
    """Coverage of the universe on the last date of the range, read back from the table's index."""
    end = date.fromisoformat(str(shared["end"]))
    kind = Adjust(str(shared.get("adjust", params.adjust.value))).bar_kind
    table = context.clients.table(TableId.MARKET_DATA)
    index = MARKET_DATA.indexes[0]
    query: dict[str, Any] = {
        "IndexName": index.name,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": index.partition_key, "#sk": index.sort_key},
        "ExpressionAttributeValues": {":pk": class_date_pk(AssetClass.STOCK, kind.value, end)},
        "ProjectionExpression": "#sk",
    }
    with_bar: list[str] = []
    while True:
        response = table.query(**query)
        with_bar.extend(str(item[index.sort_key]) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            break
        query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return {"coverage_date": end.isoformat(), "coverage": coverage(universe, with_bar).as_detail()}


STOCK_DAILY_FAN_OUT: FanOut[StockDailyAllParams] = FanOut(
    planner=plan_stock_daily,
    worker=crawl_batch,
    summarizer=summarize_stock_daily,
    default_requests_per_second=EASTMONEY_REQUESTS_PER_SECOND,
)


@registry.task(
    "stock_daily_all",
    params=StockDailyAllParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    # The by_class_date index: the planner reads the stored universe there (universe.stored_universe),
    # each batch its symbols' bars in the lookback window (a_shares.stored_bars_of_batch), the summary
    # the coverage of the slot's date.
    partitions={TableId.MARKET_DATA: _own_class_and_calendar(AssetClass.STOCK, query_indexes=True)},
    group=DependencyGroup.CRAWLER,
    fan_out=STOCK_DAILY_FAN_OUT,
    backfill=True,
)
def stock_daily_all(params: StockDailyAllParams, context: TaskContext) -> TaskOutcome:
    """Store new daily bars of every A-share (akshare.stock_zh_a_hist), as a Step Functions fan-out."""
    raise PermanentTaskError(
        "stock_daily_all is a fan-out task type: its schedule starts its state machine (plan, batches, summary)"
    )
