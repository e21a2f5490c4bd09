"""Is a date a trading day on the Shanghai and Shenzhen exchanges, and how far ahead is that known?

The calendar the tasks use, in order of preference:

1. the one the ``trading_calendar`` task keeps in the MarketData table (``pk=CALENDAR#XSHG``: one
   item per year and a meta item, see :mod:`.model`), refreshed from Sina's trade-date history
   without a redeploy; read once per container and kept for :data:`CACHE_SECONDS`;
2. akshare's bundled ``akshare/file_fold/calendar.json`` (trade dates as ``YYYYMMDD``, up to the end
   of its release year), read straight from the installed package: no network and no
   ``import akshare`` (half a second and a hundred megabytes) on days that are skipped anyway. It
   stands in when the table holds no calendar or cannot be read, and the basis says so.

Beyond the chosen calendar's last date the weekday rule stands in, and the result says so too. Every
check reports the calendar's last known date and the days left to it, so a calendar about to run out
shows in the run record and in the ``TradingCalendarDaysLeft`` metric before it decides anything wrong.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kairos_runtime.gauges import gauges_detail
from kairos_runtime.metrics import TRADING_CALENDAR_DAYS_LEFT
from kairos_runtime.tables import MARKET_DATA
from kairos_runtime.tasks.market.model import CALENDAR_META, CALENDAR_YEAR, calendar_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

CALENDAR_ID = "XSHG"
"""The exchange calendar kept (Shanghai; Shenzhen and Beijing keep the same sessions)."""
CALENDAR_WARNING_DAYS = 30
"""A calendar that ends within this many days of a slot's trading date warns, and alarms."""
CACHE_SECONDS = 6 * 3600
"""How long a container keeps the calendar it read from the table (a refresh is monthly)."""
FALLBACK_CACHE_SECONDS = 600
"""How long a container keeps the bundled fallback before it tries the table again."""
BUNDLED_SOURCE = "akshare's bundled calendar"


class CalendarUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class TradingCalendar:
    trade_dates: frozenset[date]
    first: date
    last: date
    source: str = BUNDLED_SOURCE
    """Which calendar this is, for the run record: the stored one (with its origin) or the bundled file."""

    def check(self, day: date) -> TradingDayCheck:
        known = f"{self.source} ({self.first.isoformat()} to {self.last.isoformat()})"
        if self.first <= day <= self.last:
            return TradingDayCheck(day=day, is_trading_day=day in self.trade_dates, basis=known, last=self.last)
        return TradingDayCheck(
            day=day,
            is_trading_day=day.weekday() < 5,
            basis=f"weekday rule: {day.isoformat()} is outside {known}, so holidays are not known",
            last=self.last,
        )


@dataclass(frozen=True, slots=True)
class TradingDayCheck:
    day: date
    is_trading_day: bool
    basis: str
    """How it was decided: which calendar, or the weekday fallback beyond its range."""
    last: date
    """The calendar's last known date."""

    @property
    def days_left(self) -> int:
        """Days from the checked trading date to the calendar's last known date (negative once past it)."""
        return (self.last - self.day).days

    @property
    def ends_soon(self) -> bool:
        return self.days_left <= CALENDAR_WARNING_DAYS

    def detail(self) -> dict[str, Any]:
        """What the run record says about the calendar, and the days-left gauge."""
        detail: dict[str, Any] = {
            "calendar": self.basis,
            "calendar_last_known_date": self.last.isoformat(),
            "calendar_days_left": self.days_left,
        }
        if self.ends_soon:
            detail["calendar_warning"] = calendar_warning(self.last, self.days_left)
        return detail | gauges_detail({TRADING_CALENDAR_DAYS_LEFT: self.days_left})


def calendar_warning(last: date, days_left: int) -> str:
    if days_left < 0:
        return f"the trading calendar ended on {last.isoformat()}: holidays after it are not known"
    return (
        f"the trading calendar ends on {last.isoformat()}, in {days_left} day(s) (warning at "
        f"{CALENDAR_WARNING_DAYS}): run the trading_calendar task to refresh it"
    )


def akshare_calendar_path() -> Path:
    # find_spec locates the package without executing its heavy __init__.
    spec = importlib.util.find_spec("akshare")
    if spec is None or spec.origin is None:
        raise CalendarUnavailableError("akshare is not installed, so its trading calendar cannot be read")
    return Path(spec.origin).parent / "file_fold" / "calendar.json"


def load_calendar(path: Path) -> TradingCalendar:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        dates = frozenset(datetime.strptime(str(value), "%Y%m%d").date() for value in raw)
    except (OSError, ValueError, TypeError) as error:
        raise CalendarUnavailableError(f"cannot read the trading calendar {path}: {error}") from None
    if not dates:
        raise CalendarUnavailableError(f"the trading calendar {path} is empty")
    return TradingCalendar(trade_dates=dates, first=min(dates), last=max(dates))


@lru_cache(maxsize=1)
def default_calendar() -> TradingCalendar:
    """akshare's bundled calendar (read once per process)."""
    return load_calendar(akshare_calendar_path())


def calendar_from_items(items: Iterable[Mapping[str, Any]]) -> TradingCalendar | None:
    """The stored calendar from its partition's items, or None when it holds no complete calendar.

    The meta item is written last by the refresh, so a calendar without one (a refresh cut short the
    first time) is not used; dates past its ``last_known_date`` are ignored for the same reason.
    """
    meta: Mapping[str, Any] | None = None
    dates: set[date] = set()
    for item in items:
        sort_key = str(item.get(MARKET_DATA.sort_key, ""))
        if sort_key == CALENDAR_META:
            meta = item
        elif sort_key.startswith(f"{CALENDAR_YEAR}#"):
            dates.update(date.fromisoformat(str(value)) for value in item.get("trade_dates", []))
    if meta is None or not dates:
        return None
    last = date.fromisoformat(str(meta["last_known_date"]))
    kept = frozenset(day for day in dates if day <= last)
    if not kept:
        return None
    source = (
        f"MarketData calendar from {meta.get('source', 'an unknown source')}, fetched {meta.get('fetched_at', '?')}"
    )
    return TradingCalendar(trade_dates=kept, first=min(kept), last=last, source=source)


def read_calendar_items(table: Table, calendar: str = CALENDAR_ID) -> list[dict[str, Any]]:
    """Every item of the calendar's partition (a Query, paged)."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": MARKET_DATA.partition_key},
        "ExpressionAttributeValues": {":pk": calendar_pk(calendar)},
    }
    while True:
        response = table.query(**query)
        items.extend(response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        query["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class CalendarCache:
    """The calendar a container uses: the stored one for :data:`CACHE_SECONDS`, else the bundled file.

    Module level on purpose: a warm Lambda container keeps it across invocations, so the spot tasks
    (every 15 minutes) read the table about four times a day.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calendar: TradingCalendar | None = None
        self._expires = 0.0

    def get(self, table: Table | None) -> TradingCalendar:
        now = self._clock()
        if self._calendar is not None and now < self._expires:
            return self._calendar
        calendar, keep_for = self._load(table)
        self._calendar, self._expires = calendar, now + keep_for
        return calendar

    def put(self, calendar: TradingCalendar) -> None:
        """Use a calendar just written (the refresh task's own container)."""
        self._calendar, self._expires = calendar, self._clock() + CACHE_SECONDS

    def clear(self) -> None:
        self._calendar, self._expires = None, 0.0

    @staticmethod
    def _load(table: Table | None) -> tuple[TradingCalendar, float]:
        bundled = default_calendar()
        if table is None:
            return bundled, FALLBACK_CACHE_SECONDS
        try:
            stored = calendar_from_items(read_calendar_items(table))
        except Exception as error:  # any failed read falls back, and the basis says why
            why = type(error).__name__
            response = getattr(error, "response", None)
            if isinstance(response, dict):
                why = str(response.get("Error", {}).get("Code", why))
            return _fallback(bundled, f"the MarketData calendar could not be read: {why}"), FALLBACK_CACHE_SECONDS
        if stored is None:
            return _fallback(bundled, "no calendar stored in MarketData yet"), FALLBACK_CACHE_SECONDS
        return stored, CACHE_SECONDS


def _fallback(bundled: TradingCalendar, why: str) -> TradingCalendar:
    return TradingCalendar(
        trade_dates=bundled.trade_dates, first=bundled.first, last=bundled.last, source=f"{BUNDLED_SOURCE}, {why}"
    )


CALENDARS = CalendarCache()
