"""Keys, exchanges, Shanghai dates and the trading calendar: the pure parts of the data model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from kairos_runtime.tasks.market.model import (
    AssetClass,
    BarKind,
    Provenance,
    Quote,
    bar_item,
    class_date_pk,
    exchange_of,
    latest_sk,
    nav_item,
    shanghai_day_bounds,
    snapshot_items,
    spot_sk,
    summary_key,
    trading_date_of,
)
from kairos_runtime.tasks.market.trading_calendar import (
    CalendarUnavailableError,
    akshare_calendar_path,
    default_calendar,
    load_calendar,
)

SLOT = datetime(2026, 11, 27, 7, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("asset_class", "symbol", "exchange"),
    [
        (AssetClass.STOCK, "600519", "SH"),
        (AssetClass.STOCK, "688981", "SH"),
        (AssetClass.STOCK, "000001", "SZ"),
        (AssetClass.STOCK, "300750", "SZ"),
        (AssetClass.STOCK, "830799", "BJ"),
        (AssetClass.STOCK, "430047", "BJ"),
        (AssetClass.STOCK, "920001", "BJ"),
        (AssetClass.ETF, "510300", "SH"),
        (AssetClass.ETF, "159915", "SZ"),
        (AssetClass.INDEX, "000300", "SH"),
        (AssetClass.INDEX, "399006", "SZ"),
        (AssetClass.INDEX, "899050", "BJ"),
        (AssetClass.INDEX, "930050", "CSI"),
        (AssetClass.CRYPTO, "bitcoin", None),
    ],
)
def test_the_exchange_comes_from_the_code(asset_class: AssetClass, symbol: str, exchange: str | None) -> None:
    assert exchange_of(asset_class, symbol) == exchange


def test_trading_dates_are_shanghai_dates() -> None:
    assert trading_date_of(datetime(2026, 11, 27, 15, 59, tzinfo=UTC)) == date(2026, 11, 27)
    assert trading_date_of(datetime(2026, 11, 27, 16, 0, tzinfo=UTC)) == date(2026, 11, 28)
    start, end = shanghai_day_bounds(date(2026, 11, 27))
    assert (start, end) == (datetime(2026, 11, 26, 16, tzinfo=UTC), datetime(2026, 11, 27, 16, tzinfo=UTC))


def test_sort_keys_order_snapshots_by_time_and_keep_currencies_apart() -> None:
    assert spot_sk(SLOT) == "SPOT#2026-11-27T07:15:00Z"
    assert spot_sk(SLOT, "usd") == "SPOT#2026-11-27T07:15:00Z#USD"
    assert latest_sk() == "LATEST"
    assert latest_sk("usd") == "LATEST#USD"
    assert class_date_pk(AssetClass.ETF, BarKind.FORWARD_ADJUSTED.value, date(2026, 11, 27)) == "ETF#DAYQFQ#2026-11-27"
    assert summary_key(AssetClass.STOCK, date(2026, 11, 27)) == {
        "pk": "SUMMARY#STOCK",
        "sk": "DAY#2026-11-27",
        "gsi1pk": "SUMMARY#DAY#2026-11-27",
        "gsi1sk": "STOCK",
    }


def test_a_snapshot_expires_and_its_latest_item_is_indexed_by_class_and_date() -> None:
    quote = Quote(symbol="600519", name="贵州茅台", values={"price": Decimal("1712.5")})
    provenance = Provenance(source="test", fetched_at=SLOT + timedelta(seconds=40))

    snapshot, latest = snapshot_items(AssetClass.STOCK, quote, slot=SLOT, provenance=provenance, ttl=timedelta(days=3))

    assert (snapshot["pk"], snapshot["sk"]) == ("STOCK#600519", "SPOT#2026-11-27T07:15:00Z")
    assert snapshot["expires_at"] == int((SLOT + timedelta(days=3, seconds=40)).timestamp())
    assert "gsi1pk" not in snapshot, "snapshots stay out of the index: one entry per symbol per slot is too many"
    assert (latest["sk"], latest["gsi1pk"], latest["gsi1sk"]) == ("LATEST", "STOCK#LATEST#2026-11-27", "600519")
    assert "expires_at" not in latest
    assert latest["fetched_at"] == "2026-11-27T07:15:40Z"
    assert latest["snapshot_time"] == "2026-11-27T07:15:00Z"
    assert (latest["exchange"], latest["currency"], latest["status"]) == ("SH", "CNY", "trading")


@pytest.mark.parametrize(
    ("fetched_at", "expires"),
    [
        # A slot run ten days late (a redrive, a backfill): it lives the TTL from its write, not 7 days short.
        (SLOT + timedelta(days=10), SLOT + timedelta(days=13)),
        # A clock a little behind the slot: never less than the TTL from the slot.
        (SLOT - timedelta(seconds=5), SLOT + timedelta(days=3)),
    ],
)
def test_a_snapshot_expires_a_ttl_after_the_later_of_its_slot_and_its_write(
    fetched_at: datetime, expires: datetime
) -> None:
    quote = Quote(symbol="600519", name=None, values={"price": Decimal("1712.5")})

    snapshot, _ = snapshot_items(
        AssetClass.STOCK,
        quote,
        slot=SLOT,
        provenance=Provenance(source="test", fetched_at=fetched_at),
        ttl=timedelta(days=3),
    )

    assert snapshot["expires_at"] == int(expires.timestamp())
    assert snapshot["snapshot_time"] == "2026-11-27T07:15:00Z", "the slot stays the snapshot's key and time"


def test_a_fund_nav_is_keyed_by_its_own_date_and_has_no_exchange() -> None:
    quote = Quote(symbol="000041", name="QDII", values={"unit_nav": Decimal("1.052")}, trading_date=date(2026, 11, 25))

    item = nav_item(quote, provenance=Provenance(source="test", fetched_at=SLOT))

    assert (item["pk"], item["sk"]) == ("FUND#000041", "NAV#2026-11-25")
    assert (item["gsi1pk"], item["gsi1sk"]) == ("FUND#NAV#2026-11-25", "000041")
    assert (item["nav_date"], item["record_type"], item["currency"]) == ("2026-11-25", "nav", "CNY")
    assert {"exchange", "status", "expires_at"}.isdisjoint(item)


def test_a_bar_is_keyed_by_its_own_date_and_series() -> None:
    quote = Quote(symbol="510300", name=None, values={"close": Decimal("3.988")}, trading_date=date(2026, 11, 26))
    provenance = Provenance(source="test", fetched_at=SLOT, attributes={"adjust": "qfq"})

    item = bar_item(AssetClass.ETF, BarKind.FORWARD_ADJUSTED, quote, provenance=provenance)

    assert (item["pk"], item["sk"]) == ("ETF#510300", "DAYQFQ#2026-11-26")
    assert (item["gsi1pk"], item["gsi1sk"]) == ("ETF#DAYQFQ#2026-11-26", "510300")
    assert (item["trading_date"], item["adjust"], item["record_type"]) == ("2026-11-26", "qfq", "day")
    assert "expires_at" not in item


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (date(2026, 11, 27), True),  # a Friday
        (date(2026, 11, 28), False),  # a Saturday
        (date(2026, 10, 1), False),  # National Day, a Thursday
        (date(2026, 10, 8), True),  # the first day back
    ],
)
def test_the_calendar_knows_weekends_and_exchange_holidays(day: date, trading: bool) -> None:
    check = default_calendar().check(day)

    assert check.is_trading_day is trading
    assert check.basis == "akshare's bundled calendar (1990-12-19 to 2026-12-31)"


def test_beyond_the_calendar_the_weekday_rule_stands_in_and_says_so() -> None:
    calendar = default_calendar()
    assert calendar.last == date(2026, 12, 31), "akshare 1.19.5 ships dates up to the end of 2026"

    monday, saturday = calendar.check(date(2027, 1, 4)), calendar.check(date(2027, 1, 2))

    assert monday.is_trading_day
    assert not saturday.is_trading_day
    assert "weekday rule" in monday.basis
    assert "outside akshare's bundled calendar" in monday.basis


def test_the_calendar_is_read_from_the_installed_package_without_importing_it() -> None:
    path = akshare_calendar_path()
    assert path.name == "calendar.json"
    assert path.parent.name == "file_fold"


def test_an_unreadable_calendar_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "calendar.json"
    broken.write_text('["2026-13-45"]')
    with pytest.raises(CalendarUnavailableError, match="cannot read"):
        load_calendar(broken)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(CalendarUnavailableError, match="empty"):
        load_calendar(empty)
