"""The MarketData table's item shapes and the key builders every market task shares.

One table holds every asset class; keys are strings (design in ``kairos_runtime.tables.MARKET_DATA``).
Asset classes are ``STOCK``, ``ETF``, ``INDEX``, ``CRYPTO`` and ``FUND`` (open-end funds' NAVs).

Items::

    item           pk              sk                              gsi1pk (by_class_date)    gsi1sk       TTL
    -------------  --------------  ------------------------------  ------------------------  -----------  ---
    spot snapshot  STOCK#600519    SPOT#2026-11-27T07:15:00Z       -                         -            yes
    latest quote   STOCK#600519    LATEST                          STOCK#LATEST#2026-11-27   600519       no
    daily bar      STOCK#600519    DAY#2026-11-27                  STOCK#DAY#2026-11-27      600519       no
    adjusted bar   STOCK#600519    DAYQFQ#2026-11-27 (or DAYHFQ#)  STOCK#DAYQFQ#2026-11-27   600519       no
    crypto spot    CRYPTO#bitcoin  SPOT#2026-11-27T07:10:00Z#USD   -                         -            yes
    crypto latest  CRYPTO#bitcoin  LATEST#USD                      CRYPTO#LATEST#2026-11-27  bitcoin#USD  no
    fund NAV       FUND#000001     NAV#2026-11-26                  FUND#NAV#2026-11-26       000001       no
    summary        SUMMARY#STOCK   DAY#2026-11-27                  SUMMARY#DAY#2026-11-27    STOCK        no
    calendar year  CALENDAR#XSHG   YEAR#2027                       -                         -            no
    calendar meta  CALENDAR#XSHG   META                            -                         -            no

Snapshots are keyed by the run's scheduled time, so running the same slot again overwrites them
instead of adding a copy. A crypto quote only means something in its quote currency, so the currency
ends its sort keys. Adjusted bars are a series of their own, so they never overwrite the raw ones.
The index holds latest quotes, daily bars, fund NAVs and summaries, never snapshots (that would be an
index entry per symbol per slot).

A fund NAV is keyed by the NAV's own date, not the slot's: funds publish in the evening, often for
the previous trading day, so a run on the 27th may store NAVs of the 26th (and of the 25th for a
fund that publishes late). A snapshot expires ``spot_ttl_days`` after the later of its slot and the
time it was written, so a slot run late (a redrive, a backfill) is not written already expired.

The trading calendar (``trading_calendar`` task) is one partition per exchange calendar: a year item
holds that year's trade dates (about 250 ISO dates, ~3 KB, far below the 400 KB item limit), and the
meta item says how far the calendar is known (``last_known_date``), where it came from and when.
One Query of the partition reads it all (under 40 years, ~120 KB); the tasks cache it per container.

Trading dates are Asia/Shanghai dates. China has kept UTC+8 without daylight saving since 1991, so
a fixed offset is exact for every date the data covers, and the core package needs no time zone
database for it.

Access patterns::

    access pattern                                  key condition
    ----------------------------------------------  ----------------------------------------------------
    latest quote of a symbol                        GetItem pk=STOCK#600519, sk=LATEST
                                                    (crypto: sk=LATEST#USD)
    latest quotes of many symbols                   BatchGetItem of those keys (100 a request)
    a symbol's snapshots on a trading date          Query pk=STOCK#600519, sk BETWEEN
                                                    SPOT#2026-11-26T16:00 AND SPOT#2026-11-27T16:00
                                                    (the Shanghai day in UTC)
    a symbol's daily bars over a date range         Query pk=STOCK#600519,
                                                    sk BETWEEN DAY#2026-11-01 AND DAY#2026-11-30
    a symbol's newest stored bar (incremental)      Query pk=STOCK#600519, begins_with(sk, "DAY#"),
                                                    ScanIndexForward=false, Limit=1
    a symbol's bars in the lookback window (gaps)   Query pk=STOCK#600519, sk BETWEEN DAY#<start> AND
                                                    DAY#<date>, ProjectionExpression=sk
    a fund's NAVs over a date range                 Query pk=FUND#000001,
                                                    sk BETWEEN NAV#2026-11-01 AND NAV#2026-11-30
    every fund's NAV of a date                      Query by_class_date gsi1pk=FUND#NAV#2026-11-26
    every symbol's daily bar of a class on a date   Query by_class_date gsi1pk=STOCK#DAY#2026-11-27
    every symbol of a class quoted on a date        Query by_class_date gsi1pk=STOCK#LATEST#2026-11-27
    a class's summary of a date                     GetItem pk=SUMMARY#STOCK, sk=DAY#2026-11-27
    a class's summaries over a date range           Query pk=SUMMARY#STOCK,
                                                    sk BETWEEN DAY#2026-11-01 AND DAY#2026-11-30
    every summary of a date                         Query by_class_date gsi1pk=SUMMARY#DAY#2026-11-27
    the whole trading calendar (years and meta)     Query pk=CALENDAR#XSHG

A ``LATEST`` item's index entry moves to the new trading date each time the quote is written, so
``<CLASS>#LATEST#<date>`` answers "quoted on that date" for the current day; earlier days are
answered by the daily bars. ``LATEST`` is overwritten by whichever run writes last: re-running an
older slot by hand rewinds it until the next scheduled run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from msgspec import Meta

from kairos_runtime.events import iso_seconds
from kairos_runtime.tables import MARKET_DATA

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")

ItemValue = Decimal | str | int | bool
Item = dict[str, Any]


QuoteCurrency = Annotated[str, Meta(pattern=r"^[a-z]{3,6}\Z", description="a lower-case currency code such as usd")]
"""A crypto quote currency as CoinGecko names it (``vs_currency``); keys store it upper-case."""


class AssetClass(StrEnum):
    STOCK = "STOCK"
    ETF = "ETF"
    INDEX = "INDEX"
    CRYPTO = "CRYPTO"
    FUND = "FUND"


class BarKind(StrEnum):
    """Which daily series a bar belongs to: raw, forward-adjusted or backward-adjusted prices."""

    RAW = "DAY"
    FORWARD_ADJUSTED = "DAYQFQ"
    BACKWARD_ADJUSTED = "DAYHFQ"


LATEST = "LATEST"
SPOT = "SPOT"
NAV = "NAV"
"""The sort-key prefix (and ``by_class_date`` kind) of a fund's NAV of one date."""
SUMMARY = "SUMMARY"
CALENDAR = "CALENDAR"
CALENDAR_META = "META"
CALENDAR_YEAR = "YEAR"


@dataclass(frozen=True, slots=True)
class Quote:
    """One validated upstream row in English fields with explicit units (``volume_shares``, ``_cny``)."""

    symbol: str
    name: str | None
    values: Mapping[str, ItemValue]
    suspended: bool = False
    trading_date: date | None = None
    """The row's own trading date (daily bars); snapshots take theirs from the run's slot."""
    quote_currency: str | None = None
    """Crypto only: the currency prices are quoted in."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where and when a batch of quotes came from; stored on every item."""

    source: str
    fetched_at: datetime
    attributes: Mapping[str, ItemValue] = field(default_factory=dict)


def trading_date_of(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def shanghai_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants a Shanghai calendar day starts and ends (exclusive)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=SHANGHAI).astimezone(UTC)
    return start, start + timedelta(days=1)


def partition_prefix(kind: AssetClass | str) -> str:
    """What every partition key of a class's items (or of the summaries) starts with: ``STOCK#``.

    Task types declare these prefixes as their ``partitions=``: the stack scopes their grants to
    them and the runtime refuses writes outside them.
    """
    return f"{kind}#"


def instrument_pk(asset_class: AssetClass, symbol: str) -> str:
    return f"{partition_prefix(asset_class)}{symbol}"


def _currency_suffix(quote_currency: str | None) -> str:
    return f"#{quote_currency.upper()}" if quote_currency else ""


def spot_sk(slot: datetime, quote_currency: str | None = None) -> str:
    return f"{SPOT}#{iso_seconds(slot)}{_currency_suffix(quote_currency)}"


def latest_sk(quote_currency: str | None = None) -> str:
    return f"{LATEST}{_currency_suffix(quote_currency)}"


def bar_sk(kind: BarKind, day: date) -> str:
    return f"{kind.value}#{day.isoformat()}"


def class_date_pk(asset_class: AssetClass | str, kind: str, day: date) -> str:
    """The ``by_class_date`` partition: every symbol of a class (or summary) of one kind on one date."""
    return f"{asset_class}#{kind}#{day.isoformat()}"


def index_symbol(quote: Quote) -> str:
    return f"{quote.symbol}{_currency_suffix(quote.quote_currency)}"


def summary_key(asset_class: AssetClass, day: date) -> dict[str, str]:
    return {
        MARKET_DATA.partition_key: f"{partition_prefix(SUMMARY)}{asset_class.value}",
        MARKET_DATA.sort_key: bar_sk(BarKind.RAW, day),
        MARKET_DATA.indexes[0].partition_key: class_date_pk(SUMMARY, BarKind.RAW.value, day),
        MARKET_DATA.indexes[0].sort_key: asset_class.value,
    }


def calendar_pk(calendar: str) -> str:
    """The partition of one exchange calendar (``XSHG``: Shanghai, which Shenzhen's sessions follow)."""
    return f"{CALENDAR}#{calendar}"


def calendar_year_sk(year: int) -> str:
    return f"{CALENDAR_YEAR}#{year:04d}"


def calendar_year_item(calendar: str, year: int, trade_dates: list[date], *, provenance: Provenance) -> Item:
    """One year's trade dates, sorted, as ISO dates."""
    return {
        MARKET_DATA.partition_key: calendar_pk(calendar),
        MARKET_DATA.sort_key: calendar_year_sk(year),
        "record_type": "calendar_year",
        "calendar": calendar,
        "year": year,
        "trade_dates": [day.isoformat() for day in sorted(trade_dates)],
        "trade_date_count": len(trade_dates),
        "source": provenance.source,
        "fetched_at": iso_seconds(provenance.fetched_at),
    }


def calendar_meta_item(calendar: str, first: date, last: date, *, count: int, provenance: Provenance) -> Item:
    """How far the stored calendar reaches, and where and when it was fetched."""
    return {
        MARKET_DATA.partition_key: calendar_pk(calendar),
        MARKET_DATA.sort_key: CALENDAR_META,
        "record_type": "calendar_meta",
        "calendar": calendar,
        "first_known_date": first.isoformat(),
        "last_known_date": last.isoformat(),
        "trade_date_count": count,
        "source": provenance.source,
        "fetched_at": iso_seconds(provenance.fetched_at),
    }


def exchange_of(asset_class: AssetClass, symbol: str) -> str | None:
    """The listing exchange a mainland code belongs to, from its leading digits.

    Shanghai: stocks 60/68/90, ETFs 5, indices 000/880. Shenzhen: stocks 00/20/30, ETFs 1, indices
    399. Beijing: stocks 4/8/92, indices 899. ``CSI``: indices China Securities Index Co. publishes
    under its own numbering (93xxxx, Hxxxxx); a CSI index with an exchange code (000300) keeps that
    exchange. Crypto and open-end funds have none.
    """
    if asset_class in (AssetClass.CRYPTO, AssetClass.FUND):
        return None  # crypto trades everywhere; an open-end fund is bought from its manager, not listed
    if asset_class is AssetClass.INDEX:
        if symbol.startswith("399"):
            return "SZ"
        if symbol.startswith("899"):
            return "BJ"
        if symbol.startswith(("93", "H")):
            return "CSI"
        return "SH"
    if asset_class is AssetClass.ETF:
        return "SH" if symbol.startswith("5") else "SZ"
    if symbol.startswith(("60", "68", "90")):
        return "SH"
    if symbol.startswith(("4", "8", "92")):
        return "BJ"
    return "SZ"


def _common(asset_class: AssetClass, quote: Quote, provenance: Provenance, trading_date: date) -> Item:
    item: Item = {
        "asset_class": asset_class.value,
        "symbol": quote.symbol,
        "trading_date": trading_date.isoformat(),
        "status": "suspended" if quote.suspended else "trading",
        "source": provenance.source,
        "fetched_at": iso_seconds(provenance.fetched_at),
        **provenance.attributes,
        **quote.values,
    }
    if quote.name:
        item["name"] = quote.name
    exchange = exchange_of(asset_class, quote.symbol)
    if exchange:
        item["exchange"] = exchange
    if quote.quote_currency:
        item["quote_currency"] = quote.quote_currency.upper()
    else:
        item["currency"] = "CNY"
    return item


def snapshot_items(
    asset_class: AssetClass,
    quote: Quote,
    *,
    slot: datetime,
    provenance: Provenance,
    ttl: timedelta,
) -> tuple[Item, Item]:
    """The slot's snapshot and the symbol's ``LATEST`` item (kept).

    The snapshot expires ``ttl`` after the later of its slot and ``provenance.fetched_at``: a slot run
    days late (a redrive, a backfill) still lives ``ttl`` from its write instead of being written
    already expired, and never lives less than ``ttl`` from its slot.
    """
    trading_date = trading_date_of(slot)
    common = _common(asset_class, quote, provenance, trading_date) | {"snapshot_time": iso_seconds(slot)}
    pk = instrument_pk(asset_class, quote.symbol)
    snapshot = {
        MARKET_DATA.partition_key: pk,
        MARKET_DATA.sort_key: spot_sk(slot, quote.quote_currency),
        "record_type": "spot",
        **common,
        MARKET_DATA.ttl_attribute: int((max(slot, provenance.fetched_at) + ttl).timestamp()),
    }
    latest = {
        MARKET_DATA.partition_key: pk,
        MARKET_DATA.sort_key: latest_sk(quote.quote_currency),
        MARKET_DATA.indexes[0].partition_key: class_date_pk(asset_class, LATEST, trading_date),
        MARKET_DATA.indexes[0].sort_key: index_symbol(quote),
        "record_type": "latest",
        **common,
    }
    return snapshot, latest


def bar_item(asset_class: AssetClass, kind: BarKind, quote: Quote, *, provenance: Provenance) -> Item:
    if quote.trading_date is None:
        raise ValueError(f"daily bar of {quote.symbol} has no trading date")
    return {
        MARKET_DATA.partition_key: instrument_pk(asset_class, quote.symbol),
        MARKET_DATA.sort_key: bar_sk(kind, quote.trading_date),
        MARKET_DATA.indexes[0].partition_key: class_date_pk(asset_class, kind.value, quote.trading_date),
        MARKET_DATA.indexes[0].sort_key: index_symbol(quote),
        "record_type": "day",
        **_common(asset_class, quote, provenance, quote.trading_date),
    }


def nav_sk(day: date) -> str:
    return f"{NAV}#{day.isoformat()}"


def nav_item(quote: Quote, *, provenance: Provenance) -> Item:
    """A fund's NAV of ``quote.trading_date`` (the NAV's own date, which may precede the slot's)."""
    if quote.trading_date is None:
        raise ValueError(f"NAV of fund {quote.symbol} has no date")
    item = {
        MARKET_DATA.partition_key: instrument_pk(AssetClass.FUND, quote.symbol),
        MARKET_DATA.sort_key: nav_sk(quote.trading_date),
        MARKET_DATA.indexes[0].partition_key: class_date_pk(AssetClass.FUND, NAV, quote.trading_date),
        MARKET_DATA.indexes[0].sort_key: quote.symbol,
        "record_type": "nav",
        **_common(AssetClass.FUND, quote, provenance, quote.trading_date),
        "nav_date": quote.trading_date.isoformat(),
    }
    item.pop("status")  # a fund's dealing state is its subscription and redemption status, not trading/suspended
    return item


def item_key(item: Mapping[str, Any]) -> tuple[str, str]:
    return str(item[MARKET_DATA.partition_key]), str(item[MARKET_DATA.sort_key])
