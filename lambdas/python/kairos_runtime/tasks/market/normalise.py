"""Upstream rows (akshare's Chinese columns, CoinGecko's JSON) into validated, typed English fields.

Pure Python on plain mappings: the crawler turns a DataFrame into records before it gets here, so
this module and its tests need no pandas. Units are part of the field name (``volume_shares``,
``turnover_cny``, ``change_pct``). Numbers become ``Decimal(str(x))``; a missing value ("-",
NaN, None) is left out, never stored as a number.
"""

from __future__ import annotations

import numbers
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from kairos_runtime.events import iso_seconds
from kairos_runtime.tasks.market.model import ItemValue, Quote

Records = list[dict[str, object]]
"""Rows as the crawlers hand them over: one plain mapping per row, pandas left behind."""

LOTS_TO_SHARES = 100
"""Eastmoney reports volume in lots (手) of 100 shares (or fund units)."""


class Reason(StrEnum):
    """Why a row was not stored as a quote."""

    INVALID_SYMBOL = "invalid_symbol"
    INVALID_DATE = "invalid_date"
    MISSING_PRICE = "missing_price"
    NON_POSITIVE_PRICE = "non_positive_price"
    NEGATIVE_VOLUME = "negative_volume"
    NEGATIVE_TURNOVER = "negative_turnover"
    HIGH_BELOW_LOW = "high_below_low"
    PRICE_OUTSIDE_RANGE = "price_outside_high_low"
    STALE_QUOTE = "stale_quote"
    """Quoted before the slot's session opened: the last session's quote, not this one's."""
    MISSING_QUOTE_TIME = "missing_quote_time"


@dataclass(frozen=True, slots=True)
class Rejection:
    symbol: str | None
    reason: Reason


class ExtraKind(StrEnum):
    TEXT = "text"
    DATE = "date"
    INSTANT = "instant"


@dataclass(frozen=True, slots=True)
class Column:
    source: str
    """The column (or JSON key) upstream uses."""
    name: str
    scale: int = 1


@dataclass(frozen=True, slots=True)
class Extra:
    """A non-numeric column kept as text: a date, an instant (stored as UTC ISO), or plain text."""

    source: str
    name: str
    kind: ExtraKind = ExtraKind.TEXT


@dataclass(frozen=True, slots=True)
class RowSchema:
    """How one upstream table maps onto our fields, and which fields the checks apply to."""

    columns: tuple[Column, ...]
    price: str
    """The field a row cannot do without: ``price`` for quotes, ``close`` for bars."""
    high: str = "high"
    low: str = "low"
    in_range: tuple[str, ...] = ("price", "open", "close")
    volume: tuple[str, ...] = ("volume_shares", "volume_lots")
    turnover: tuple[str, ...] = ("turnover_cny",)
    positive: tuple[str, ...] = ("price", "open", "close", "high", "low", "prev_close")
    symbol_column: str | None = "代码"
    name_column: str | None = "名称"
    date_column: str | None = None
    symbol_pattern: str = r"\d{6}"
    unpriced_is_suspended: bool = False
    """Spot quotes: a row without a price is a suspended symbol, stored flagged and without prices."""
    kept_when_suspended: tuple[str, ...] = ("prev_close",)
    """Prices a suspended row keeps (Eastmoney still sends the last close a suspended stock had)."""
    extras: tuple[Extra, ...] = ()
    quote_time_column: str | None = None
    """The column with each row's own quote time, when the source sends one (a timezone-aware instant)."""

    def normalise(
        self, row: Mapping[str, object], *, symbol: str | None = None, fresh_since: datetime | None = None
    ) -> Quote | Rejection:
        """A quote, or why not; with ``fresh_since``, a row quoted before it is ``stale_quote``."""
        code = symbol if symbol is not None else _text(row.get(self.symbol_column or ""))
        if code is None or not re.fullmatch(self.symbol_pattern, code):
            return Rejection(code, Reason.INVALID_SYMBOL)
        stale = self.staleness(row, fresh_since)
        if stale is not None:
            return Rejection(code, stale)
        trading_date = None
        if self.date_column is not None:
            trading_date = to_date(row.get(self.date_column))
            if trading_date is None:
                return Rejection(code, Reason.INVALID_DATE)
        values = self.numbers(row)
        suspended = False
        if self.price not in values:
            if not self.unpriced_is_suspended:
                return Rejection(code, Reason.MISSING_PRICE)
            suspended = True
            values = {
                name: value
                for name, value in values.items()
                if name not in self.positive
                or (name in self.kept_when_suspended and isinstance(value, Decimal) and value > 0)
            }
        problem = self.check(values)
        if problem is not None:
            return Rejection(code, problem)
        for extra in self.extras:
            text = _extra_text(row.get(extra.source), extra.kind)
            if text is not None:
                values[extra.name] = text
        name = _text(row.get(self.name_column)) if self.name_column else None
        return Quote(symbol=code, name=name, values=values, suspended=suspended, trading_date=trading_date)

    def staleness(self, row: Mapping[str, object], fresh_since: datetime | None) -> Reason | None:
        """Why a row's own quote time disqualifies it for a slot whose session opened at ``fresh_since``."""
        if fresh_since is None or self.quote_time_column is None:
            return None
        quoted = to_instant(row.get(self.quote_time_column))
        if quoted is None:
            return Reason.MISSING_QUOTE_TIME
        return Reason.STALE_QUOTE if quoted < fresh_since else None

    def numbers(self, row: Mapping[str, object]) -> dict[str, ItemValue]:
        values: dict[str, ItemValue] = {}
        for column in self.columns:
            number = to_decimal(row.get(column.source))
            if number is not None:
                values[column.name] = number * column.scale
        return values

    def check(self, values: Mapping[str, ItemValue]) -> Reason | None:
        numbers_ = {name: value for name, value in values.items() if isinstance(value, Decimal)}
        if any(numbers_.get(name, Decimal(1)) <= 0 for name in self.positive):
            return Reason.NON_POSITIVE_PRICE
        if any(numbers_.get(name, Decimal(0)) < 0 for name in self.volume):
            return Reason.NEGATIVE_VOLUME
        if any(numbers_.get(name, Decimal(0)) < 0 for name in self.turnover):
            return Reason.NEGATIVE_TURNOVER
        high, low = numbers_.get(self.high), numbers_.get(self.low)
        if high is None or low is None:
            return None
        if high < low:
            return Reason.HIGH_BELOW_LOW
        if any(not low <= numbers_[name] <= high for name in self.in_range if name in numbers_):
            return Reason.PRICE_OUTSIDE_RANGE
        return None


@dataclass(frozen=True, slots=True)
class Normalised:
    """A batch of rows after normalisation: what to store and what was turned away, by reason."""

    quotes: list[Quote]
    rejections: list[Rejection]

    @property
    def suspended(self) -> int:
        return sum(1 for quote in self.quotes if quote.suspended)

    @property
    def valid(self) -> int:
        return sum(1 for quote in self.quotes if not quote.suspended)

    def rejected_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(rejection.reason.value for rejection in self.rejections).items()))

    def rejected_examples(self, limit: int = 10) -> list[dict[str, str | None]]:
        return [{"symbol": item.symbol, "reason": item.reason.value} for item in self.rejections[:limit]]

    def detail(self) -> dict[str, Any]:
        """Counts for the run record: valid and suspended rows, rejections by reason, a few examples."""
        detail: dict[str, Any] = {"valid": self.valid, "suspended": self.suspended}
        if self.rejections:
            detail["rejected"] = self.rejected_by_reason()
            detail["rejected_examples"] = self.rejected_examples()
        return detail


def normalise_rows(
    schema: RowSchema,
    rows: Iterable[Mapping[str, object]],
    *,
    symbol: str | None = None,
    fresh_since: datetime | None = None,
) -> Normalised:
    quotes: list[Quote] = []
    rejections: list[Rejection] = []
    for row in rows:
        result = schema.normalise(row, symbol=symbol, fresh_since=fresh_since)
        if isinstance(result, Quote):
            quotes.append(result)
        else:
            rejections.append(result)
    return Normalised(quotes, rejections)


def to_decimal(value: object) -> Decimal | None:
    """A finite number as a Decimal built from its text (so 0.1 stays 0.1), else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, numbers.Real):
        number = Decimal(str(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    if not number.is_finite():
        return None
    # Integral values lose their float-born ".0" (a volume of 1234567.0 lots is 1234567 lots).
    return Decimal(int(number)) if number == number.to_integral_value() else number


def to_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date() if value == value else None  # NaT is a datetime that is not equal to itself
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        for pattern in ("%Y-%m-%d", "%Y%m%d"):
            try:
                return datetime.strptime(value.strip(), pattern).date()
            except ValueError:
                continue
    return None


def to_instant(value: object) -> datetime | None:
    """A timezone-aware instant (pandas' Timestamp is a datetime), else None (NaT, naive, text)."""
    if isinstance(value, datetime) and value == value and value.tzinfo is not None:
        return value
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    return None


def _extra_text(value: object, kind: ExtraKind) -> str | None:
    if kind is ExtraKind.DATE:
        day = to_date(value)
        return day.isoformat() if day else None
    if kind is ExtraKind.INSTANT:
        if isinstance(value, datetime) and value == value and value.tzinfo is not None:
            return iso_seconds(value)
        return _text(value)
    return _text(value)


def _columns(*pairs: tuple[str, str] | tuple[str, str, int]) -> tuple[Column, ...]:
    return tuple(Column(*pair) for pair in pairs)


STOCK_SPOT = RowSchema(
    columns=_columns(
        ("最新价", "price"),
        ("涨跌幅", "change_pct"),
        ("涨跌额", "change"),
        ("成交量", "volume_shares", LOTS_TO_SHARES),
        ("成交额", "turnover_cny"),
        ("振幅", "amplitude_pct"),
        ("最高", "high"),
        ("最低", "low"),
        ("今开", "open"),
        ("昨收", "prev_close"),
        ("量比", "volume_ratio"),
        ("换手率", "turnover_rate_pct"),
        ("市盈率-动态", "pe_dynamic"),
        ("市净率", "pb"),
        ("总市值", "market_cap_cny"),
        ("流通市值", "float_market_cap_cny"),
    ),
    price="price",
    unpriced_is_suspended=True,
)

ETF_SPOT = RowSchema(
    columns=_columns(
        ("最新价", "price"),
        ("IOPV实时估值", "iopv"),
        ("基金折价率", "discount_rate_pct"),
        ("涨跌额", "change"),
        ("涨跌幅", "change_pct"),
        ("成交量", "volume_shares", LOTS_TO_SHARES),
        ("成交额", "turnover_cny"),
        ("开盘价", "open"),
        ("最高价", "high"),
        ("最低价", "low"),
        ("昨收", "prev_close"),
        ("振幅", "amplitude_pct"),
        ("换手率", "turnover_rate_pct"),
        ("量比", "volume_ratio"),
        ("最新份额", "units_outstanding"),
        ("流通市值", "float_market_cap_cny"),
        ("总市值", "market_cap_cny"),
    ),
    price="price",
    unpriced_is_suspended=True,
    extras=(Extra("数据日期", "data_date", ExtraKind.DATE), Extra("更新时间", "quote_time", ExtraKind.INSTANT)),
    quote_time_column="更新时间",
)

# Eastmoney reports index volume in lots as well; an index has no shares of its own, so the field
# keeps the unit it arrives in rather than implying a share count.
INDEX_SPOT = RowSchema(
    columns=_columns(
        ("最新价", "price"),
        ("涨跌幅", "change_pct"),
        ("涨跌额", "change"),
        ("成交量", "volume_lots"),
        ("成交额", "turnover_cny"),
        ("振幅", "amplitude_pct"),
        ("最高", "high"),
        ("最低", "low"),
        ("今开", "open"),
        ("昨收", "prev_close"),
        ("量比", "volume_ratio"),
    ),
    price="price",
    symbol_pattern=r"[0-9A-Z]{6}",
)

_BAR_COLUMNS: Sequence[tuple[str, str] | tuple[str, str, int]] = (
    ("开盘", "open"),
    ("收盘", "close"),
    ("最高", "high"),
    ("最低", "low"),
    ("成交量", "volume_shares", LOTS_TO_SHARES),
    ("成交额", "turnover_cny"),
    ("振幅", "amplitude_pct"),
    ("涨跌幅", "change_pct"),
    ("涨跌额", "change"),
    ("换手率", "turnover_rate_pct"),
)

DAILY_BAR = RowSchema(
    columns=_columns(*_BAR_COLUMNS), price="close", symbol_column=None, name_column=None, date_column="日期"
)

INDEX_DAILY_BAR = RowSchema(
    columns=_columns(*(("成交量", "volume_lots") if pair[0] == "成交量" else pair for pair in _BAR_COLUMNS)),
    price="close",
    symbol_column=None,
    name_column=None,
    date_column="日期",
    symbol_pattern=r"[0-9A-Z]{6}",
)

FUND_NAV = RowSchema(
    columns=_columns(
        ("单位净值", "unit_nav"),
        ("累计净值", "accumulated_nav"),
        ("日增长值", "change"),
        ("日增长率", "change_pct"),
    ),
    price="unit_nav",
    high="-",
    low="-",
    in_range=(),
    volume=(),
    turnover=(),
    positive=("unit_nav", "accumulated_nav"),
    symbol_column="基金代码",
    name_column="基金简称",
    date_column="净值日期",
    extras=(
        Extra("申购状态", "subscription_status"),
        Extra("赎回状态", "redemption_status"),
        Extra("手续费", "purchase_fee"),
    ),
)
"""An open-end fund's NAV of one date: the daily list's columns with the date taken out of their
names (``2026-11-26-单位净值`` → 单位净值, 净值日期 = 2026-11-26), or a NAV history's points
(akshare's own column names). A money-market fund has no unit NAV and is rejected as ``missing_price``."""

# CoinGecko computes the 24 h high and low apart from the current price, so a price just outside
# them is normal and not checked.
CRYPTO_MARKET = RowSchema(
    columns=_columns(
        ("current_price", "price"),
        ("market_cap", "market_cap"),
        ("market_cap_rank", "market_cap_rank"),
        ("fully_diluted_valuation", "fully_diluted_valuation"),
        ("total_volume", "volume_24h"),
        ("high_24h", "high_24h"),
        ("low_24h", "low_24h"),
        ("price_change_24h", "change_24h"),
        ("price_change_percentage_24h", "change_pct_24h"),
        ("circulating_supply", "circulating_supply"),
        ("total_supply", "total_supply"),
        ("max_supply", "max_supply"),
        ("ath", "ath"),
        ("atl", "atl"),
    ),
    price="price",
    high="high_24h",
    low="low_24h",
    in_range=(),
    volume=("volume_24h",),
    turnover=(),
    positive=("price", "high_24h", "low_24h"),
    symbol_column="id",
    name_column="name",
    symbol_pattern=r"[a-z0-9][a-z0-9-]{0,99}",
    extras=(Extra("symbol", "ticker"), Extra("last_updated", "last_updated")),
)
