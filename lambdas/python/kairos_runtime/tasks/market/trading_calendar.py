"""Is a date a trading day on the Shanghai and Shenzhen exchanges?

akshare ships the exchanges' calendar as ``akshare/file_fold/calendar.json`` (trade dates as
``YYYYMMDD``, up to the end of its release year). It is read straight from the installed package:
no network, and no ``import akshare`` (half a second and a hundred megabytes) on days that are
skipped anyway. Beyond the file's range the weekday rule stands in, and the result says so.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path


class CalendarUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class TradingCalendar:
    trade_dates: frozenset[date]
    first: date
    last: date

    def check(self, day: date) -> TradingDayCheck:
        if self.first <= day <= self.last:
            return TradingDayCheck(
                day=day,
                is_trading_day=day in self.trade_dates,
                basis=f"akshare calendar ({self.first.isoformat()} to {self.last.isoformat()})",
            )
        return TradingDayCheck(
            day=day,
            is_trading_day=day.weekday() < 5,
            basis=(
                f"weekday rule: {day.isoformat()} is outside akshare's calendar "
                f"({self.first.isoformat()} to {self.last.isoformat()}), so holidays are not known"
            ),
        )


@dataclass(frozen=True, slots=True)
class TradingDayCheck:
    day: date
    is_trading_day: bool
    basis: str
    """How it was decided: the calendar, or the weekday fallback beyond its range."""


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
    return load_calendar(akshare_calendar_path())
