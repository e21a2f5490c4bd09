"""The daily summary: one item per asset class from what the market tasks stored that day.

It reads the ``by_class_date`` index (the day's daily bars, fund NAVs and latest quotes of each
class) and the TaskRuns ``by_date`` index (the day's failed and skipped runs), so it needs no market
data library at all and runs in the core package. A daily bar is the settled figure for its day, so
it wins over the latest intraday quote of the same symbol.

For the classes with both spot quotes and daily bars (stocks, ETFs, indices) it also reports:

* **coverage** (:mod:`.coverage`): the universe is every symbol with a ``LATEST`` quote on the day
  (the day's last spot snapshot of each symbol the spot task stored), and a symbol is covered when it
  has a daily bar of the day; the missing symbols are listed;
* **close vs spot**: a daily bar whose close differs from the symbol's last spot price of the day by
  more than ``close_tolerance_pct`` is flagged. The bar's close is what is stored and what the figures
  use; the flag only says where the two disagree (an upstream revision, or a last snapshot taken
  before the close: the shipped spot crons stop at 14:45).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from kairos_runtime.context import TaskContext
from kairos_runtime.events import iso_seconds
from kairos_runtime.registry import Access, Partitions, TaskOutcome, TaskParams, TaskRegistry, TaskSkipped
from kairos_runtime.runs import RunHistory, RunStatus
from kairos_runtime.tables import MARKET_DATA, TableId, query_index
from kairos_runtime.tasks.market.coverage import coverage
from kairos_runtime.tasks.market.model import (
    LATEST,
    NAV,
    SUMMARY,
    AssetClass,
    BarKind,
    Item,
    QuoteCurrency,
    class_date_pk,
    partition_prefix,
    shanghai_day_bounds,
    summary_key,
    trading_date_of,
)
from kairos_runtime.tasks.market.writer import write_items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

registry = TaskRegistry()

MAX_RUNS_LISTED = 20
RUN_MESSAGE_LENGTH = 200
MAX_FLAGS_LISTED = 100
"""Close-vs-spot flags listed in a summary (largest differences first); the count is always exact."""
DEFAULT_CLOSE_TOLERANCE_PCT = 2.0
"""A close more than 2 % away from the last spot price is flagged: above what the last quarter hour
before the close usually moves a stock, well below a daily limit (10 %, 20 % on ChiNext and STAR)."""


@dataclass(frozen=True, slots=True)
class ClassFields:
    """Where a class keeps the figures a summary needs."""

    task_types: tuple[str, ...]
    change: str = "change_pct"
    turnover: str | None = "turnover_cny"
    """None where a sum means nothing: index turnovers overlap (the same trades count in many)."""
    day_kind: str | None = BarKind.RAW.value
    """The ``by_class_date`` kind of the day's settled figures (daily bars, fund NAVs), if any."""
    has_spot: bool = True
    """The class has ``LATEST`` spot quotes (its universe for coverage)."""
    last: tuple[str, ...] = ("close", "price")
    """Where a mover's last value is, in order of preference."""

    @property
    def measures_coverage(self) -> bool:
        return self.has_spot and self.day_kind is not None


CLASS_FIELDS: Mapping[AssetClass, ClassFields] = {
    AssetClass.STOCK: ClassFields(("stock_spot", "stock_daily")),
    AssetClass.ETF: ClassFields(("etf_spot", "etf_daily")),
    AssetClass.INDEX: ClassFields(("index_spot", "index_daily"), turnover=None),
    AssetClass.CRYPTO: ClassFields(("crypto_markets",), change="change_pct_24h", turnover="volume_24h", day_kind=None),
    # A fund's figures of a day are its NAV of that date (funds publish in the evening).
    AssetClass.FUND: ClassFields(("fund_nav",), turnover=None, day_kind=NAV, has_spot=False, last=("unit_nav",)),
}


class DailySummaryParams(TaskParams, frozen=True):
    trading_date: (
        Annotated[date, Meta(description="the date to summarise (default: the slot's date in Asia/Shanghai)")] | None
    ) = None
    asset_classes: Annotated[tuple[AssetClass, ...], Meta(min_length=1)] = tuple(AssetClass)
    crypto_quote_currency: QuoteCurrency = "usd"
    top: Annotated[int, Meta(ge=1, le=50, description="how many gainers and losers to list")] = 5
    close_tolerance_pct: Annotated[
        float,
        Meta(
            ge=0,
            le=100,
            description=(
                "flag a daily bar whose close differs from the day's last spot price by more than this "
                f"many percent of that price (default {DEFAULT_CLOSE_TOLERANCE_PCT})"
            ),
        ),
    ] = DEFAULT_CLOSE_TOLERANCE_PCT


@dataclass(frozen=True, slots=True)
class DayQuotes:
    """A class's stored figures of one day, by symbol."""

    quoted: Mapping[str, Item]
    """``LATEST`` quotes whose trading date is the day (the day's last spot snapshot of each symbol)."""
    settled: Mapping[str, Item]
    """The day's settled figures: daily bars, or fund NAVs."""

    def items(self) -> list[Item]:
        """Each symbol's figures: its settled item over its latest quote."""
        symbols = sorted(set(self.quoted) | set(self.settled))
        return [dict(self.quoted.get(symbol, {})) | dict(self.settled.get(symbol, {})) for symbol in symbols]

    def counts(self, fields: ClassFields) -> dict[str, int]:
        counts = {"latest_quotes": len(self.quoted)} if fields.has_spot else {}
        if fields.day_kind == NAV:
            counts["navs"] = len(self.settled)
        elif fields.day_kind is not None:
            counts["daily_bars"] = len(self.settled)
        return counts


def day_quotes(table: Table, asset_class: AssetClass, fields: ClassFields, day: date, quote_currency: str) -> DayQuotes:
    """The day's latest quotes and settled figures of a class (one index partition each, paged)."""
    quoted: dict[str, Item] = {}
    if fields.has_spot:
        for item in query_index(table, MARKET_DATA.indexes[0], class_date_pk(asset_class, LATEST, day)):
            if asset_class is AssetClass.CRYPTO and item.get("quote_currency") != quote_currency.upper():
                continue
            quoted[str(item["symbol"])] = dict(item)
    settled: dict[str, Item] = {}
    if fields.day_kind is not None:
        for item in query_index(table, MARKET_DATA.indexes[0], class_date_pk(asset_class, fields.day_kind, day)):
            settled[str(item["symbol"])] = dict(item)
    return DayQuotes(quoted, settled)


def close_vs_spot(quotes: DayQuotes, tolerance_pct: Decimal) -> dict[str, Any]:
    """Daily bars whose close is more than ``tolerance_pct`` away from the day's last spot price."""
    flagged: list[dict[str, Any]] = []
    compared = 0
    for symbol, bar in sorted(quotes.settled.items()):
        spot = quotes.quoted.get(symbol, {})
        close, price = bar.get("close"), spot.get("price")
        if not isinstance(close, Decimal) or not isinstance(price, Decimal) or price <= 0:
            continue
        compared += 1
        difference = (close - price) / price * 100
        if abs(difference) > tolerance_pct:
            flagged.append(
                {
                    "symbol": symbol,
                    "close": close,
                    "spot_price": price,
                    "spot_time": spot.get("snapshot_time"),
                    "difference_pct": difference.quantize(Decimal("0.01")),
                }
            )
    flagged.sort(key=lambda flag: (-abs(flag["difference_pct"]), flag["symbol"]))
    return {
        "tolerance_pct": tolerance_pct,
        "compared": compared,
        "flagged_count": len(flagged),
        "flagged": flagged[:MAX_FLAGS_LISTED],
        "stored": "the daily bar's close",
    }


def _mover(item: Item, change: Decimal, fields: ClassFields) -> dict[str, Any]:
    mover: dict[str, Any] = {"symbol": item["symbol"], fields.change: change}
    if "name" in item:
        mover["name"] = item["name"]
    last = next((item[name] for name in fields.last if name in item), None)
    if last is not None:
        mover["last"] = last
    return mover


def figures(items: list[Item], fields: ClassFields, top: int) -> dict[str, Any]:
    trading = [item for item in items if item.get("status") != "suspended"]
    changes = [(item, Decimal(item[fields.change])) for item in trading if fields.change in item]
    result: dict[str, Any] = {
        "symbols": len(items),
        "suspended": len(items) - len(trading),
        "advancers": sum(1 for _, change in changes if change > 0),
        "decliners": sum(1 for _, change in changes if change < 0),
        "unchanged": sum(1 for _, change in changes if change == 0),
        "top_gainers": [
            _mover(item, change, fields)
            for item, change in sorted(changes, key=lambda pair: (-pair[1], pair[0]["symbol"]))[:top]
        ],
        "top_losers": [
            _mover(item, change, fields)
            for item, change in sorted(changes, key=lambda pair: (pair[1], pair[0]["symbol"]))[:top]
        ],
    }
    if fields.turnover is not None:
        result["total_turnover"] = sum(
            (Decimal(item[fields.turnover]) for item in trading if fields.turnover in item), Decimal(0)
        )
    return result


def runs_of_day(runs: Table, day: date) -> list[dict[str, Any]]:
    """The day's failed and skipped runs (by scheduled time in Asia/Shanghai), oldest first.

    The ``by_date`` index is partitioned by the UTC date a run started; a Shanghai day spans two.
    """
    start, end = shanghai_day_bounds(day)
    first, last = iso_seconds(start), iso_seconds(end)
    history = RunHistory(runs)
    found = []
    for utc_day in sorted({start.date(), (end - timedelta(seconds=1)).date()}):
        for record in history.on_date(utc_day.isoformat()):
            if record.get("status") not in (RunStatus.FAILED, RunStatus.SKIPPED):
                continue
            if first <= str(record.get("scheduled_time", "")) < last:
                found.append(_run_entry(record))
    return sorted(found, key=lambda run: (run["scheduled_time"], run["task"]))


def _run_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    entry = {name: record[name] for name in ("task", "task_type", "status", "scheduled_time") if name in record}
    if record.get("error_type"):
        entry["error"] = f"{record['error_type']}: {record.get('error_message', '')}"[:RUN_MESSAGE_LENGTH]
        entry["error_kind"] = record.get("error_kind")
    detail = record.get("detail")
    if isinstance(detail, Mapping) and detail.get("reason"):
        entry["reason"] = str(detail["reason"])[:RUN_MESSAGE_LENGTH]
    return entry


def _runs_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [run for run in runs if run["status"] == RunStatus.FAILED]
    skipped = [run for run in runs if run["status"] == RunStatus.SKIPPED]
    return {
        "runs_failed": len(failed),
        "runs_skipped": len(skipped),
        "failed_runs": failed[:MAX_RUNS_LISTED],
        "skipped_runs": skipped[:MAX_RUNS_LISTED],
    }


@registry.task(
    "daily_summary",
    params=DailySummaryParams,
    # The runs of the day come from the by_date index: no need to read any task's records by key.
    tables={TableId.MARKET_DATA: Access.READ_WRITE, TableId.TASK_RUNS: Access.QUERY_INDEXES},
    # Quotes of every class come from the by_class_date index; by key it reads and writes summaries only.
    # It reads every class's day through the by_class_date index; it writes only summaries.
    partitions={
        TableId.MARKET_DATA: Partitions(
            read=(partition_prefix(SUMMARY),), write=(partition_prefix(SUMMARY),), query_indexes=True
        )
    },
    # It summarises the slot's trading date from what the tables stored for it: a past day's too.
    backfill=True,
)
def daily_summary(params: DailySummaryParams, context: TaskContext) -> TaskOutcome:
    """Summarise each asset class's day: breadth, top movers, turnover and the runs that failed or skipped."""
    day = params.trading_date or trading_date_of(context.event.scheduled_time)
    market = context.clients.table(TableId.MARKET_DATA)
    runs = runs_of_day(context.clients.table(TableId.TASK_RUNS), day)
    generated_at = iso_seconds(datetime.now(UTC))
    items: list[Item] = []
    overview: dict[str, Any] = {}
    for asset_class in params.asset_classes:
        fields = CLASS_FIELDS[asset_class]
        day_figures = day_quotes(market, asset_class, fields, day, params.crypto_quote_currency)
        quotes = day_figures.items()
        class_runs = [run for run in runs if run.get("task_type") in fields.task_types]
        if not quotes and not class_runs:
            continue
        summary = (
            figures(quotes, fields, params.top) | _runs_figures(class_runs) | {"sources": day_figures.counts(fields)}
        )
        if fields.measures_coverage:
            summary["coverage"] = coverage(day_figures.quoted, day_figures.settled).as_detail()
            summary["close_vs_spot"] = close_vs_spot(day_figures, Decimal(str(params.close_tolerance_pct)))
        if fields.turnover is not None:
            currency = params.crypto_quote_currency.upper() if asset_class is AssetClass.CRYPTO else "CNY"
            summary["turnover_currency"] = currency
        items.append(
            summary_key(asset_class, day)
            | {
                "record_type": "summary",
                "asset_class": asset_class.value,
                "trading_date": day.isoformat(),
                "generated_at": generated_at,
                "source": "kairos daily_summary",
            }
            | summary
        )
        overview[asset_class.value] = {
            name: summary[name] for name in ("symbols", "advancers", "decliners", "runs_failed", "runs_skipped")
        }
        if fields.measures_coverage:
            overview[asset_class.value] |= {
                "with_bar": summary["coverage"]["with_bar"],
                "missing": summary["coverage"]["missing_count"],
                "close_flags": summary["close_vs_spot"]["flagged_count"],
            }
    if not items:
        raise TaskSkipped(f"nothing was stored or run for {day.isoformat()}", detail={"trading_date": day.isoformat()})
    result = write_items(market, items)
    return TaskOutcome(items_written=result.written, detail={"trading_date": day.isoformat(), "classes": overview})
