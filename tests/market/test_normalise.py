"""Normalisation and validation of upstream rows, on plain records (what the crawlers hand over)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from kairos_runtime.tasks.market.model import Quote
from kairos_runtime.tasks.market.normalise import (
    CRYPTO_MARKET,
    DAILY_BAR,
    ETF_SPOT,
    INDEX_SPOT,
    STOCK_SPOT,
    Reason,
    Rejection,
    normalise_rows,
    to_decimal,
)

NAN = math.nan


def spot_row(**changes: Any) -> dict[str, Any]:
    """A stock_zh_a_spot_em record as akshare returns it (after its to_numeric coercion)."""
    row: dict[str, Any] = {
        "序号": 1, "代码": "600519", "名称": "贵州茅台", "最新价": 1712.5, "涨跌幅": 0.74, "涨跌额": 12.6,
        "成交量": 23456.0, "成交额": 4012345678.0, "振幅": 1.19, "最高": 1720.0, "最低": 1699.8, "今开": 1700.0,
        "昨收": 1699.9, "量比": 0.88, "换手率": 0.19, "市盈率-动态": 24.51, "市净率": 8.1,
        "总市值": 2151234567890.0, "流通市值": 2151234567890.0, "涨速": 0.02, "5分钟涨跌": 0.01,
        "60日涨跌幅": 3.2, "年初至今涨跌幅": 12.5,
    }  # fmt: skip
    return row | changes


def test_a_spot_row_becomes_typed_english_fields_with_units() -> None:
    quote = STOCK_SPOT.normalise(spot_row())

    assert isinstance(quote, Quote)
    assert (quote.symbol, quote.name, quote.suspended) == ("600519", "贵州茅台", False)
    assert quote.values == {
        "price": Decimal("1712.5"),
        "change_pct": Decimal("0.74"),
        "change": Decimal("12.6"),
        "volume_shares": Decimal(2345600),
        "turnover_cny": Decimal(4012345678),
        "amplitude_pct": Decimal("1.19"),
        "high": Decimal(1720),
        "low": Decimal("1699.8"),
        "open": Decimal(1700),
        "prev_close": Decimal("1699.9"),
        "volume_ratio": Decimal("0.88"),
        "turnover_rate_pct": Decimal("0.19"),
        "pe_dynamic": Decimal("24.51"),
        "pb": Decimal("8.1"),
        "market_cap_cny": Decimal(2151234567890),
        "float_market_cap_cny": Decimal(2151234567890),
    }
    assert all(type(value) is Decimal for value in quote.values.values())


def test_a_suspended_stock_is_kept_flagged_without_prices() -> None:
    blank = {
        column: NAN
        for column in ("最新价", "涨跌幅", "涨跌额", "成交量", "成交额", "振幅", "最高", "最低", "今开", "昨收")
    }

    quote = STOCK_SPOT.normalise(spot_row(**blank))

    assert isinstance(quote, Quote)
    assert quote.suspended
    assert "price" not in quote.values
    assert "high" not in quote.values
    assert quote.values["market_cap_cny"] == Decimal(2151234567890)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"成交量": -5.0}, Reason.NEGATIVE_VOLUME),
        ({"成交额": -1.0}, Reason.NEGATIVE_TURNOVER),
        ({"最高": 1690.0}, Reason.HIGH_BELOW_LOW),
        ({"最新价": 1730.0}, Reason.PRICE_OUTSIDE_RANGE),
        ({"今开": 0.0}, Reason.NON_POSITIVE_PRICE),
        ({"代码": "60051"}, Reason.INVALID_SYMBOL),
        ({"代码": None}, Reason.INVALID_SYMBOL),
    ],
)
def test_impossible_rows_are_rejected_with_a_reason(changes: dict[str, Any], reason: Reason) -> None:
    result = STOCK_SPOT.normalise(spot_row(**changes))

    assert isinstance(result, Rejection)
    assert result.reason is reason


def test_a_batch_counts_valid_suspended_and_rejected_rows() -> None:
    rows = [spot_row(), spot_row(代码="000002", 最新价=NAN), spot_row(代码="000003", 最高=1.0), spot_row(代码="x")]

    batch = normalise_rows(STOCK_SPOT, rows)

    assert (batch.valid, batch.suspended) == (1, 1)
    assert batch.rejected_by_reason() == {"high_below_low": 1, "invalid_symbol": 1}
    assert batch.detail() == {
        "valid": 1,
        "suspended": 1,
        "rejected": {"high_below_low": 1, "invalid_symbol": 1},
        "rejected_examples": [
            {"symbol": "000003", "reason": "high_below_low"},
            {"symbol": "x", "reason": "invalid_symbol"},
        ],
    }


def test_an_index_without_a_price_is_rejected_not_suspended() -> None:
    row = {"代码": "930050", "名称": "中证A50", "最新价": NAN, "成交量": NAN}

    result = INDEX_SPOT.normalise(row)

    assert result == Rejection("930050", Reason.MISSING_PRICE)


def bar_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "日期": date(2026, 11, 27), "开盘": 1700.0, "收盘": 1712.5, "最高": 1720.0, "最低": 1699.8, "成交量": 23456,
        "成交额": 4012345678.0, "振幅": 1.19, "涨跌幅": 0.74, "涨跌额": 12.6, "换手率": 0.19,
    }  # fmt: skip
    return row | changes


def test_a_daily_bar_takes_its_date_from_the_row_and_its_symbol_from_the_request() -> None:
    quote = DAILY_BAR.normalise(bar_row(), symbol="600519")
    from_text = DAILY_BAR.normalise(bar_row(日期="2026-11-26"), symbol="600519")

    assert isinstance(quote, Quote)
    assert isinstance(from_text, Quote)
    assert (quote.symbol, quote.trading_date, quote.values["volume_shares"]) == ("600519", date(2026, 11, 27), 2345600)
    assert from_text.trading_date == date(2026, 11, 26)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"收盘": NAN}, Reason.MISSING_PRICE), ({"日期": "27/11/2026"}, Reason.INVALID_DATE)],
)
def test_a_bar_without_a_close_or_a_date_is_rejected(changes: dict[str, Any], reason: Reason) -> None:
    result = DAILY_BAR.normalise(bar_row(**changes), symbol="600519")

    assert result == Rejection("600519", reason)


def test_etf_dates_and_update_times_are_kept_as_text() -> None:
    shanghai = timezone(timedelta(hours=8))
    row = {
        "代码": "510300", "名称": "沪深300ETF", "最新价": 3.988, "IOPV实时估值": 3.9871, "基金折价率": -0.03,
        "成交量": 9234567.0, "最高价": 3.99, "最低价": 3.955, "开盘价": 3.96, "数据日期": datetime(2026, 11, 27),
        "更新时间": datetime(2026, 11, 27, 15, 0, tzinfo=shanghai),
    }  # fmt: skip

    quote = ETF_SPOT.normalise(row)

    assert isinstance(quote, Quote)
    assert quote.values["data_date"] == "2026-11-27"
    assert quote.values["quote_time"] == "2026-11-27T07:00:00Z"
    assert (quote.values["iopv"], quote.values["discount_rate_pct"]) == (Decimal("3.9871"), Decimal("-0.03"))
    assert quote.values["volume_shares"] == Decimal(923456700)


def test_a_crypto_market_row_keeps_its_ticker_and_update_time() -> None:
    row = {
        "id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "current_price": 98123.45, "high_24h": 99000,
        "low_24h": 96500.5, "total_volume": 45123456789.12, "max_supply": None,
        "last_updated": "2026-11-27T07:09:41.123Z",
    }  # fmt: skip

    quote = CRYPTO_MARKET.normalise(row)

    assert isinstance(quote, Quote)
    assert quote.values["ticker"] == "btc"
    assert quote.values["last_updated"] == "2026-11-27T07:09:41.123Z"
    assert quote.values["volume_24h"] == Decimal("45123456789.12")
    assert "max_supply" not in quote.values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.1")),
        (1234567.0, Decimal(1234567)),
        (25000, Decimal(25000)),
        ("12.50", Decimal("12.50")),
        (1e16, Decimal(10**16)),
        (NAN, None),
        (math.inf, None),
        ("-", None),
        ("", None),
        (None, None),
        (True, None),
        (datetime(2026, 1, 1, tzinfo=UTC), None),
    ],
)
def test_numbers_become_decimals_from_their_text(value: object, expected: Decimal | None) -> None:
    assert to_decimal(value) == expected


def test_numpy_scalars_are_numbers_too() -> None:
    import numpy as np

    assert to_decimal(np.float64(1712.5)) == Decimal("1712.5")
    assert to_decimal(np.int64(23456)) == Decimal(23456)
    assert to_decimal(np.float64("nan")) is None


@pytest.mark.parametrize(("prev_close", "kept"), [(1699.9, Decimal("1699.9")), (0.0, None), (NAN, None)])
def test_a_suspended_row_keeps_its_previous_close_and_no_other_price(prev_close: float, kept: Decimal | None) -> None:
    row = spot_row(代码="000002", 最新价=NAN, 最高=NAN, 最低=NAN, 今开=NAN, 昨收=prev_close)

    quote = STOCK_SPOT.normalise(row)

    assert isinstance(quote, Quote)
    assert quote.suspended
    assert quote.values.get("prev_close") == kept
    assert {"price", "high", "low", "open"}.isdisjoint(quote.values)
    assert quote.values["market_cap_cny"] == Decimal(2151234567890)
