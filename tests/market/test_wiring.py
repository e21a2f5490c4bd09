"""How the market tasks are wired: a cheap registry, and tasks.yaml entries that plan as intended."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import StagePlan, plan_stage
from kairos.schedule import next_fire_times, parse_schedule
from kairos_runtime.registry import Access, DependencyGroup
from kairos_runtime.tables import TableId
from kairos_runtime.tasks import default_registry
from tests.conftest import PROJECT_ROOT, run_in_fresh_interpreter

MARKET_TASKS = {
    "stock-spot": ("stock_spot", {TableId.MARKET_DATA: Access.READ_WRITE}),
    "etf-spot": ("etf_spot", {TableId.MARKET_DATA: Access.READ_WRITE}),
    "index-spot": ("index_spot", {TableId.MARKET_DATA: Access.READ_WRITE}),
    "stock-daily": ("stock_daily", {TableId.MARKET_DATA: Access.READ_WRITE}),
    "etf-daily": ("etf_daily", {TableId.MARKET_DATA: Access.READ_WRITE}),
    "index-daily": ("index_daily", {TableId.MARKET_DATA: Access.READ_WRITE}),
    "fund-nav": ("fund_nav", {TableId.MARKET_DATA: Access.READ_WRITE}),
    "crypto-markets": ("crypto_markets", {TableId.MARKET_DATA: Access.WRITE}),
    "trading-calendar": ("trading_calendar", {TableId.MARKET_DATA: Access.READ_WRITE}),
    "daily-summary": (
        "daily_summary",
        {TableId.MARKET_DATA: Access.READ_WRITE, TableId.TASK_RUNS: Access.QUERY_INDEXES},
    ),
}


def test_importing_the_handler_and_building_the_registry_loads_no_crawler_library() -> None:
    probe = (
        "import sys, kairos_runtime.handler\n"
        "from kairos_runtime.tasks import default_registry\n"
        "registry = default_registry()\n"
        "assert {'stock_spot', 'crypto_markets', 'daily_summary'} <= set(registry.names())\n"
        "print(sorted(m for m in ('akshare', 'pandas', 'pycoingecko', 'numpy', 'requests') if m in sys.modules))"
    )
    assert run_in_fresh_interpreter(probe).strip() == "[]"


@pytest.fixture(scope="module")
def plans() -> dict[str, StagePlan]:
    catalog = load_catalog()
    tasks_file = load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog)
    return {stage: plan_stage(tasks_file, catalog, stage) for stage in ("dev", "prod")}


@pytest.mark.parametrize("name", sorted(MARKET_TASKS))
def test_each_market_task_gets_its_package_grants_and_is_off_in_dev(name: str, plans: dict[str, StagePlan]) -> None:
    task_type, tables = MARKET_TASKS[name]
    dev, prod = plans["dev"].task(name), plans["prod"].task(name)
    crawler = task_type != "daily_summary"

    assert dev.task_type == task_type
    assert dict(dev.tables) == tables
    assert dev.group is (DependencyGroup.CRAWLER if crawler else DependencyGroup.CORE)
    assert dev.architecture == ("x86_64" if crawler else "arm64")
    assert ("TQDM_DISABLE" in dev.environment) is crawler
    assert not dev.enabled
    # Eastmoney refuses many cloud IPs: its tasks ship disabled until a stage has a proxy; the
    # crypto crawler ships off in prod too (docs/adr/0070-task-enabled-default.md).
    assert not prod.enabled
    assert dev.ssm_parameters == ()


def test_the_a_share_tasks_follow_the_shanghai_clock(plans: dict[str, StagePlan]) -> None:
    dev = plans["dev"]
    spot, daily = dev.task("stock-spot"), dev.task("stock-daily")

    assert spot.timezone == "Asia/Shanghai"
    week = next_fire_times(
        parse_schedule(spot.schedule_expression),
        timezone=spot.timezone,
        after=datetime(2026, 11, 29, tzinfo=UTC),  # a Sunday
        count=5 * 20,
    )
    local = [moment.astimezone(ZoneInfo("Asia/Shanghai")) for moment in week]
    assert {moment.weekday() for moment in local} == {0, 1, 2, 3, 4}
    assert {moment.hour for moment in local} == {9, 10, 11, 13, 14}, "no slot at lunch or after the close"
    in_session = [moment for moment in local if time(9, 30) <= moment.time() <= time(11, 30) or moment.hour >= 13]
    assert len(in_session) == 5 * 17, "09:30-11:30 and 13:00-14:45 every 15 minutes, each weekday"
    assert spot.max_event_age_seconds == 15 * 60, "a late delivery never overlaps the next slot"
    assert daily.timezone == "Asia/Shanghai"
    assert dev.task("crypto-markets").schedule_expression == "rate(10 minutes)"
    assert dev.task("daily-summary").schedule_expression == "cron(0 18 * * ? *)"
    refresh = dev.task("trading-calendar")
    assert refresh.timezone == "Asia/Shanghai"
    monthly = next_fire_times(
        parse_schedule(refresh.schedule_expression),
        timezone=refresh.timezone,
        after=datetime(2026, 11, 15, tzinfo=UTC),
        count=2,
    )
    assert [moment.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat() for moment in monthly[:2]] == [
        "2026-12-01",
        "2027-01-01",
    ]


def test_only_the_calendar_refresh_gets_the_calendar_alarm(plans: dict[str, StagePlan]) -> None:
    prod = plans["prod"]
    [alarm] = prod.task("trading-calendar").gauge_alarms
    assert (alarm.metric_name, alarm.statistic, alarm.comparison, alarm.threshold) == (
        "TradingCalendarDaysLeft",
        "Minimum",
        "LessThanOrEqualToThreshold",
        30,
    )
    assert alarm.treat_missing_data == "ignore"
    assert alarm.period_seconds <= 604_800, "CloudWatch evaluates at most 7 days"
    assert all(not task.gauge_alarms for task in prod.tasks if task.name != "trading-calendar")


def test_the_registry_declares_what_each_market_task_type_needs() -> None:
    registry = default_registry()
    for task_type, tables in MARKET_TASKS.values():
        assert dict(registry.get(task_type).tables) == tables


def test_the_handler_publishes_the_gauges_a_run_reports_whatever_its_status() -> None:
    probe = """
import json
from datetime import UTC, datetime
import kairos_runtime.handler as h
from kairos_runtime.events import ScheduledEvent
from kairos_runtime.runner import RunResult
from kairos_runtime.runs import RunStatus
event = ScheduledEvent(task="stock-spot", task_type="stock_spot", scheduled_time=datetime(2026, 12, 1, tzinfo=UTC),
                       execution_id="e")
detail = {"reason": "holiday", "gauges": {"TradingCalendarDaysLeft": 30, "Broken": "x"}}
result = RunResult(task="stock-spot", status=RunStatus.SKIPPED, run_id="r", duration_ms=5, detail=detail)
h.PowertoolsObserver().run_started(event)
h.PowertoolsObserver().run_finished(event, result)
print(json.dumps(h.metrics.serialize_metric_set()))
"""
    emf = json.loads(run_in_fresh_interpreter(probe).splitlines()[-1])
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    names = {entry["Name"] for entry in directive["Metrics"]}
    assert {"TradingCalendarDaysLeft", "RunsSkipped"} <= names
    assert "Broken" not in names, "a gauge that is not a number is not published"
    assert emf["TradingCalendarDaysLeft"] == [30.0]
    assert emf["task"] == "stock-spot"
