"""Every metric an alarm watches is one something emits: a misspelt name fails here, not in production
as an alarm that never fires. Both runtimes publish the names :mod:`kairos_runtime.metrics` holds."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace

import pytest

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import GAUGE_ALARMS, AlarmPlan, MetricPlan, StagePlan, failure_alarm, freshness_plan, plan_stage
from kairos.schedule import parse_schedule
from kairos_runtime import metrics
from kairos_runtime.runner import RunResult
from kairos_runtime.runs import RunStatus
from tests.conftest import PROJECT_ROOT

LOG_MODULE = PROJECT_ROOT / "lambdas" / "node" / "src" / "log.mjs"


def stage_plans() -> list[StagePlan]:
    catalog = load_catalog()
    tasks_file = load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog)
    return [plan_stage(tasks_file, catalog, stage) for stage in tasks_file.stages]


def every_alarm() -> list[tuple[str, AlarmPlan]]:
    """Each alarm of every stage (and of each kind), with its stage."""
    planned = [(plan.stage, alarm) for plan in stage_plans() for alarm in plan.alarms]
    freshness = freshness_plan(
        "dev",
        "some-task",
        schedule=parse_schedule("cron(0/15 9-11,13-14 ? * MON-FRI *)"),
        timezone="Asia/Shanghai",
        enabled=True,
        timeout_s=300,
        async_retries=2,
    ).alarm
    assert freshness is not None
    return [
        *planned,
        ("dev", freshness),
        *(("dev", alarm_for("dev", "some-task")) for alarm_for in GAUGE_ALARMS.values()),
    ]


def every_dashboard_metric() -> list[tuple[str, str, MetricPlan]]:
    return [
        (f"{page.name}: {graph.title}", plan.stage, metric)
        for plan in stage_plans()
        for page in plan.dashboards
        for graph in page.graphs
        for _, metric in graph.lines
    ]


def unemitted(metric: MetricPlan, stage: str) -> str | None:
    """Why nothing in ``stage`` would ever publish ``metric``, or None."""
    if metric.namespace == metrics.NAMESPACE:
        if metric.metric_name not in metrics.EMITTED:
            return f"{metric.metric_name} is not a metric the runtime emits"
        published = {metrics.SERVICE_DIMENSION: metrics.SERVICE, metrics.STAGE_DIMENSION: stage}
        if dict(metric.dimensions) != published | {metrics.TASK_DIMENSION: ANY_TASK}:
            return f"{metric.metric_name}: the runtime publishes with dimensions service, stage ({stage}) and task only"
        return None
    if metric.metric_name not in metrics.AWS_METRICS.get(metric.namespace, frozenset()):
        return f"{metric.namespace} {metric.metric_name} is not a metric AWS publishes that Kairos knows"
    return None


ANY_TASK = object()


def normalized(metric: MetricPlan) -> MetricPlan:
    dimensions = {
        key: (ANY_TASK if key == metrics.TASK_DIMENSION else value) for key, value in metric.dimensions.items()
    }
    return replace(metric, dimensions=dimensions)  # type: ignore[arg-type]


def test_every_metric_an_alarm_watches_is_emitted() -> None:
    alarms = every_alarm()
    assert alarms, "no alarms planned"
    problems = [
        f"{alarm.construct_id}: {problem}"
        for stage, alarm in alarms
        for metric in alarm.metrics.values()
        if (problem := unemitted(normalized(metric), stage))
    ]
    assert problems == []


def test_every_alarm_kind_is_checked() -> None:
    """The check above sees a failure, a freshness, a gauge and the dead-letter alarm."""
    assert {alarm.construct_id for _, alarm in every_alarm()} >= {
        "FailureAlarm",
        "FreshnessAlarm",
        "MessagesAlarm",
        f"{metrics.TRADING_CALENDAR_DAYS_LEFT}Alarm",
    }


def test_every_metric_a_dashboard_graphs_is_emitted() -> None:
    graphed = every_dashboard_metric()
    assert graphed, "no dashboard metrics planned"
    problems = [
        f"{where}: {problem}" for where, stage, metric in graphed if (problem := unemitted(normalized(metric), stage))
    ]
    assert problems == []


def test_a_misspelt_metric_is_caught() -> None:
    alarm = failure_alarm("dev", "some-task")
    failed = alarm.metrics["failed"]
    assert unemitted(normalized(failed), "dev") is None
    assert unemitted(normalized(replace(failed, metric_name="RunFailed")), "dev") is not None
    assert unemitted(normalized(replace(failed, namespace="Kairso")), "dev") is not None
    # Another stage's stream (stages may share an account): dev's runs must not answer prod's alarm.
    assert unemitted(normalized(failed), "prod") is not None
    dropped = alarm.metrics["dropped"]
    assert unemitted(normalized(replace(dropped, metric_name="AsyncEventDropped")), "dev") is not None


@pytest.mark.parametrize(
    ("status", "retried", "superseded"),
    [(status, False, False) for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)]
    + [(RunStatus.FAILED, True, False), (RunStatus.SUCCEEDED, False, True)],
)
def test_every_run_counter_the_runner_picks_is_declared(status: RunStatus, retried: bool, superseded: bool) -> None:
    result = RunResult("t", status, "r", 1, retried=retried, superseded=superseded)
    assert result.metric_name in metrics.RUN_METRICS
    assert set(result.counters) <= metrics.RUN_METRICS


@pytest.mark.parametrize(
    ("status", "retried", "superseded", "alive"),
    [
        (RunStatus.SUCCEEDED, False, False, True),
        (RunStatus.SKIPPED, False, False, True),
        (RunStatus.SUCCEEDED, False, True, True),
        (RunStatus.FAILED, False, False, False),
        (RunStatus.FAILED, True, False, False),
    ],
)
def test_a_success_or_skip_also_counts_as_alive(
    status: RunStatus, retried: bool, superseded: bool, alive: bool
) -> None:
    result = RunResult("t", status, "r", 1, retried=retried, superseded=superseded)
    assert result.counters[0] == result.metric_name
    assert (metrics.RUNS_ALIVE in result.counters) is alive


NODE_RUN_METRICS = """
const { runMetricsLine } = await import(process.argv[1]);
const runs = [["SUCCEEDED"], ["FAILED"], ["SKIPPED"], ["FAILED", true], ["SUCCEEDED", false, true]];
const lines = runs.map(([status, retried = false, superseded = false]) => JSON.parse(runMetricsLine({
  task: "t", stage: "dev", status, retried, superseded,
  durationMs: 1, itemsWritten: 0, itemsRejected: 0, timestamp: new Date(0),
})));
console.log(JSON.stringify(lines.map((line) => line._aws.CloudWatchMetrics[0])));
"""


def test_the_node_runtime_publishes_the_same_names() -> None:
    completed = subprocess.run(
        [shutil.which("node") or "node", "--input-type=module", "-e", NODE_RUN_METRICS, LOG_MODULE.as_uri()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    directives = json.loads(completed.stdout)
    assert {directive["Namespace"] for directive in directives} == {metrics.NAMESPACE}
    assert {tuple(sorted(dims)) for directive in directives for dims in directive["Dimensions"]} == {
        tuple(sorted(metrics.RUN_DIMENSIONS))
    }
    published = {metric["Name"] for directive in directives for metric in directive["Metrics"]}
    assert published == metrics.RUN_METRICS
    # RunsAlive with a success or skip, as the Python runner counts it; never with a failure.
    alive = [metrics.RUNS_ALIVE in {metric["Name"] for metric in directive["Metrics"]} for directive in directives]
    assert alive == [True, False, True, False, True]
