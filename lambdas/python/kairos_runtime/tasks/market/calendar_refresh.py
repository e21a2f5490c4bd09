"""The ``trading_calendar`` task: keep the exchanges' trading calendar current in MarketData.

It reads Sina's trade-date history through ``akshare.tool_trade_date_hist_sina`` (every trade date
since 1990-12-19, decoded by Sina's own JavaScript in py_mini_racer), checks it, and stores it as one
item per year plus a meta item (``pk=CALENDAR#XSHG``, see :mod:`.model`). The A-share, ETF and index
tasks read it from there (:mod:`.trading_calendar`). A calendar that fails a check is not written:
the run fails with ``CalendarRejected`` and counts each problem, and the stored one stays.

The checks: dates parse, are sorted and unique, fall on weekdays, every year but the first and the
last has a plausible number of sessions, the dates agree day for day with akshare's bundled calendar
where the two overlap, and the calendar does not end earlier than the one already stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import partial
from itertools import groupby, pairwise
from typing import Any

from kairos_runtime.context import TaskContext
from kairos_runtime.errors import PermanentTaskError
from kairos_runtime.registry import Access, DependencyGroup, TaskOutcome, TaskRegistry
from kairos_runtime.tables import MARKET_DATA, TableId
from kairos_runtime.tasks.market.model import (
    CALENDAR,
    CALENDAR_YEAR,
    Provenance,
    calendar_meta_item,
    calendar_year_item,
    partition_prefix,
    trading_date_of,
)
from kairos_runtime.tasks.market.normalise import to_date
from kairos_runtime.tasks.market.trading_calendar import (
    CALENDAR_ID,
    CALENDARS,
    TradingCalendar,
    calendar_from_items,
    default_calendar,
    read_calendar_items,
)
from kairos_runtime.tasks.market.upstream import (
    CrawlerParams,
    Retrier,
    SourceRejected,
    SourceUnavailable,
    upstream_requests,
)
from kairos_runtime.tasks.market.writer import write_items

registry = TaskRegistry()

SOURCE = "Sina (akshare.tool_trade_date_hist_sina)"
MIN_SESSIONS_PER_YEAR = 230
MAX_SESSIONS_PER_YEAR = 258
"""Bounds for a whole year: 1991-2026 had 237 to 257 sessions; a year without its holidays (the
weekday rule) has 260 or more, one with a month missing fewer than 230."""
EXAMPLES = 10


class TradingCalendarParams(CrawlerParams, frozen=True):
    """Request timeout and retry budget only: the source and the calendar are fixed."""


class Problem(StrEnum):
    """Why a fetched calendar was refused."""

    NO_DATES = "no_dates"
    INVALID_DATE = "invalid_date"
    NOT_SORTED = "not_sorted"
    DUPLICATE_DATE = "duplicate_date"
    WEEKEND_DATE = "weekend_date"
    IMPLAUSIBLE_YEAR = "implausible_year_count"
    DISAGREES_WITH_BUNDLED = "disagrees_with_bundled"
    SHORTER_THAN_STORED = "shorter_than_stored"


class CalendarRejected(PermanentTaskError):  # noqa: N818 - named for the run record
    """The source's calendar failed a check; nothing was written."""

    def __init__(self, message: str, *, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = detail


class _Findings:
    """Problems counted by kind, with the first few as examples for the run record."""

    def __init__(self) -> None:
        self.counts: Counter[Problem] = Counter()
        self.examples: list[dict[str, str]] = []

    def note(self, problem: Problem, what: object) -> None:
        self.counts[problem] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append({"problem": problem.value, "value": str(what)[:40]})


def _check_order(dates: Sequence[date], findings: _Findings) -> None:
    for earlier, later in pairwise(dates):
        if later == earlier:
            findings.note(Problem.DUPLICATE_DATE, later)
        elif later < earlier:
            findings.note(Problem.NOT_SORTED, later)
    for day in dates:
        if day.weekday() >= 5:
            findings.note(Problem.WEEKEND_DATE, day)


def _check_years(dates: set[date], findings: _Findings) -> None:
    """Every year but the first and the last (which may be partial) needs a plausible session count."""
    years = [(year, len(list(days))) for year, days in groupby(sorted(dates), key=lambda day: day.year)]
    for index, (year, count) in enumerate(years):
        whole_year = 0 < index < len(years) - 1
        if count > MAX_SESSIONS_PER_YEAR or (whole_year and count < MIN_SESSIONS_PER_YEAR):
            findings.note(Problem.IMPLAUSIBLE_YEAR, f"{year}: {count} sessions")


def _check_against(fetched: set[date], bundled: TradingCalendar, stored_last: date | None, findings: _Findings) -> None:
    start, end = max(min(fetched), bundled.first), min(max(fetched), bundled.last)
    in_bundled = {day for day in bundled.trade_dates if start <= day <= end}
    for day in sorted(in_bundled ^ {day for day in fetched if start <= day <= end}):
        findings.note(
            Problem.DISAGREES_WITH_BUNDLED, f"{day.isoformat()} {'missing' if day in in_bundled else 'added'}"
        )
    if stored_last is not None and max(fetched) < stored_last:
        findings.note(Problem.SHORTER_THAN_STORED, f"ends {max(fetched).isoformat()}, stored {stored_last.isoformat()}")


def review(
    raw: Sequence[object], *, bundled: TradingCalendar, stored_last: date | None
) -> tuple[list[date], Counter[Problem], list[dict[str, str]]]:
    """The fetched dates, each problem counted, and a few examples of them."""
    findings = _Findings()
    dates: list[date] = []
    for value in raw:
        day = to_date(value)
        if day is None:
            findings.note(Problem.INVALID_DATE, value)
        else:
            dates.append(day)
    if not dates:
        findings.note(Problem.NO_DATES, f"{len(raw)} value(s)")
        return dates, findings.counts, findings.examples
    _check_order(dates, findings)
    _check_years(set(dates), findings)
    _check_against(set(dates), bundled, stored_last, findings)
    return dates, findings.counts, findings.examples


def _fetch_trade_dates(params: TradingCalendarParams) -> list[object]:
    import akshare

    frame = akshare.tool_trade_date_hist_sina()
    return list(frame["trade_date"])


def _stored_years(items: Sequence[Mapping[str, Any]]) -> dict[int, list[str]]:
    return {
        int(item["year"]): [str(day) for day in item.get("trade_dates", [])]
        for item in items
        if str(item.get(MARKET_DATA.sort_key, "")).startswith(f"{CALENDAR_YEAR}#")
    }


@registry.task(
    "trading_calendar",
    params=TradingCalendarParams,
    tables={TableId.MARKET_DATA: Access.READ_WRITE},
    partitions={TableId.MARKET_DATA: (partition_prefix(CALENDAR),)},
    group=DependencyGroup.CRAWLER,
    # It stores the whole trade-date history, keyed by year, never by the slot: a past slot stores
    # the same calendar a present one does.
    backfill=True,
)
def trading_calendar(params: TradingCalendarParams, context: TaskContext) -> TaskOutcome:
    """Refresh the Shanghai/Shenzhen trading calendar in MarketData from Sina's trade-date history."""
    table = context.clients.table(TableId.MARKET_DATA)
    day = trading_date_of(context.event.scheduled_time)
    items = read_calendar_items(table)
    stored = calendar_from_items(items)
    bundled = default_calendar()
    current = (stored or bundled).check(day).detail()
    retrier = Retrier(
        source=SOURCE,
        max_retry_seconds=params.max_retry_seconds,
        remaining_time_ms=context.remaining_time_ms,
        logger=context.logger,
    )
    try:
        with upstream_requests(proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds):
            raw = retrier.call(partial(_fetch_trade_dates, params), what="trade dates")
    except (SourceUnavailable, SourceRejected) as failure:
        failure.detail = current | failure.detail
        raise
    dates, problems, examples = review(raw, bundled=bundled, stored_last=stored.last if stored else None)
    detail: dict[str, Any] = {"source": SOURCE, "dates_received": len(raw), "retries": retrier.retries}
    if problems:
        counts = {problem.value: count for problem, count in sorted(problems.items())}
        raise CalendarRejected(
            f"{SOURCE} sent a calendar that fails {sum(problems.values())} check(s) "
            f"({', '.join(counts)}); the stored calendar was kept",
            detail=current | detail | {"rejected": counts, "rejected_examples": examples},
        )
    unique = sorted(set(dates))
    provenance = Provenance(source=SOURCE, fetched_at=datetime.now(UTC))
    previous = _stored_years(items)
    by_year = {year: list(days) for year, days in groupby(unique, key=lambda each: each.year)}
    year_items = [calendar_year_item(CALENDAR_ID, year, days, provenance=provenance) for year, days in by_year.items()]
    changed = [item for item in year_items if previous.get(int(item["year"])) != item["trade_dates"]]
    # Years first, the meta item last: a reader trusts dates only up to the meta's last_known_date.
    years_written = write_items(table, changed)
    meta = calendar_meta_item(CALENDAR_ID, unique[0], unique[-1], count=len(unique), provenance=provenance)
    write_items(table, [meta])
    refreshed = calendar_from_items([*year_items, meta])
    if refreshed is not None:
        CALENDARS.put(refreshed)
    check = (refreshed or bundled).check(day)
    detail |= check.detail() | {
        "first_known_date": unique[0].isoformat(),
        "last_known_date": unique[-1].isoformat(),
        "trade_dates": len(unique),
        "years_changed": sorted(int(item["year"]) for item in changed),
        "years_unchanged": len(by_year) - len(changed),
        "previous_last_known_date": stored.last.isoformat() if stored else None,
    }
    return TaskOutcome(items_written=years_written.written + 1, detail=detail)
