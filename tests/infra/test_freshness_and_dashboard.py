"""A stage's template: a freshness alarm per enabled task with a window CloudWatch can hold (none for
a disabled task or a weekly one), and one dashboard that graphs every task and shows every alarm."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from kairos.catalog import load_catalog
from kairos.limits import DASHBOARD_MAX_METRICS, DASHBOARD_MAX_WIDGETS, DASHBOARD_WIDGET_MAX_METRICS
from kairos.loading import load_tasks_file
from kairos.plan import (
    ALARMS_PER_STATUS_WIDGET,
    TASKS_PER_DASHBOARD,
    StagePlan,
    failure_alarm,
    freshness_plan,
    plan_stage,
)
from kairos.schedule import parse_schedule
from kairos_runtime import metrics
from kairos_stack.app_builder import build_stage
from kairos_stack.stage_dashboard import StageDashboard
from tests.conftest import CDK_FEATURE_FLAGS
from tests.infra.stage_template import stage_template
from tests.infra.test_stage_stack import resource_at

NO_BUNDLING = {**CDK_FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True}
TASKS = """\
stages:
  ops:
    alarm_email: null
tasks:
  - {name: every-5, task_type: simple_task_1, schedule: rate(5 minutes), enabled: true}
  - {name: nightly, task_type: simple_task_1, schedule: cron(0 9 * * ? *), timezone: Europe/London,
     timeout: 300, enabled: true}
  - {name: quotes, task_type: simple_task_2, schedule: "cron(0/15 9-11,13-14 ? * MON-FRI *)",
     timezone: Asia/Shanghai, timeout: 300, enabled: true}
  - {name: weekly, task_type: simple_task_1, schedule: cron(0 6 ? * MON *), enabled: true}
  - {name: paused, task_type: simple_task_1, schedule: rate(5 minutes)}
"""
# Window: the longest two gaps, 3 attempts of the timeout, 3 minutes of retry waits, 5 of metric delay.
EXPECTED = {
    "every-5": (60, 22),  # 10 + 3 + 3 + 5 = 21 min
    "nightly": (3600, 51),  # 49 h (the night London falls back) + 15 + 3 + 5 min
    "quotes": (3600, 68),  # 66 h 30 min (Friday 14:45 to Monday 09:15) + 15 + 3 + 5 min
}


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> tuple[StagePlan, Template]:
    path: Path = tmp_path_factory.mktemp("ops") / "tasks.yaml"
    path.write_text(TASKS, encoding="utf-8")
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(path, catalog), catalog, "ops")
    app = cdk.App(context=NO_BUNDLING)
    return plan, stage_template(build_stage(app, plan))


def freshness_alarms(template: Template) -> dict[str, dict[str, Any]]:
    """By task, the properties of its freshness alarm."""
    return {
        resource["Metadata"]["aws:cdk:path"].split("/")[1]: resource["Properties"]
        for resource in template.find_resources("AWS::CloudWatch::Alarm").values()
        if resource["Metadata"]["aws:cdk:path"].endswith("/FreshnessAlarm/Resource")
    }


def test_each_enabled_task_with_a_rhythm_has_a_freshness_alarm(ops: tuple[StagePlan, Template]) -> None:
    plan, template = ops
    alarms = freshness_alarms(template)
    assert set(alarms) == set(EXPECTED), "none for the weekly task (14 days) nor the disabled one"
    for task, (period, count) in EXPECTED.items():
        properties = alarms[task]
        function = resource_at(
            template, "AWS::Lambda::Function", f"{plan.task_stack_name(plan.task(task))}/{task}/Function"
        )
        assert function  # the alarm's task is deployed here
        assert properties["AlarmName"] == f"kairos-ops-{task}-late"
        assert (properties["Period"], properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == (
            period,
            count,
            count,
        ), task
        assert properties["Namespace"] == metrics.NAMESPACE
        assert properties["MetricName"] == metrics.RUNS_ALIVE
        assert properties["Statistic"] == "Sum"
        assert sorted((d["Name"], d["Value"]) for d in properties["Dimensions"]) == [
            (metrics.SERVICE_DIMENSION, metrics.SERVICE),
            (metrics.STAGE_DIMENSION, "ops"),
            (metrics.TASK_DIMENSION, task),
        ]
        assert properties["Threshold"] == 1
        assert properties["ComparisonOperator"] == "LessThanThreshold"
        assert properties["TreatMissingData"] == "breaching"
        assert len(properties["AlarmActions"]) == 1
        assert "kairos status --stage ops" in properties["AlarmDescription"]
        assert f"kairos logs {task} --stage ops" in properties["AlarmDescription"]


def test_the_plan_counts_the_freshness_alarms_and_the_dashboard(ops: tuple[StagePlan, Template]) -> None:
    plan, template = ops
    assert plan.resource_count == len(template.to_json()["Resources"])
    assert [task.resource_count for task in plan.tasks] == [8, 8, 8, 7, 7]


def test_every_alarm_has_its_name_from_the_plan(ops: tuple[StagePlan, Template]) -> None:
    plan, template = ops
    deployed = sorted(
        properties["Properties"]["AlarmName"]
        for properties in template.find_resources("AWS::CloudWatch::Alarm").values()
    )
    assert deployed == sorted(alarm.alarm_name for alarm in plan.alarms)
    assert "kairos-ops-dead-letters" in deployed
    assert "kairos-ops-paused-failed" in deployed


def dashboard_body(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The body's JSON, with each CloudFormation token (queue name, region, account) as ``TOKEN``."""
    body = resource["Properties"]["DashboardBody"]
    if isinstance(body, str):
        return json.loads(body)  # type: ignore[no-any-return]
    if "Fn::Sub" in body:
        text = body["Fn::Sub"] if isinstance(body["Fn::Sub"], str) else body["Fn::Sub"][0]
        return json.loads(re.sub(r"\$\{[^!][^}]*\}", "TOKEN", text))  # type: ignore[no-any-return]
    [separator, parts] = body["Fn::Join"]
    return json.loads(separator.join(part if isinstance(part, str) else "TOKEN" for part in parts))  # type: ignore[no-any-return]


def test_one_dashboard_graphs_every_task_and_shows_every_alarm(ops: tuple[StagePlan, Template]) -> None:
    plan, template = ops
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == {"Fn::Join": ["", ["kairos-ops-", {"Ref": "AWS::Region"}]]}
    widgets = dashboard_body(dashboard)["widgets"]
    assert [widget["type"] for widget in widgets] == ["text", "alarm"] + ["metric"] * 6
    assert "kairos status --stage ops" in widgets[0]["properties"]["markdown"]
    alarm_arns = widgets[1]["properties"]["alarms"]
    assert len(alarm_arns) == len(plan.alarms) == 1 + 5 + 3
    assert all(arn.endswith(f":alarm:{alarm.alarm_name}") for arn, alarm in zip(alarm_arns, plan.alarms, strict=True))
    graphs = {widget["properties"]["title"]: widget["properties"]["metrics"] for widget in widgets[2:]}
    names = [task.name for task in plan.tasks]
    for title, metric_name, statistic in [
        ("Succeeded runs", metrics.RUNS_SUCCEEDED, "Sum"),
        ("Failed runs", metrics.RUNS_FAILED, "Sum"),
        ("Skipped runs", metrics.RUNS_SKIPPED, "Sum"),
        ("Run duration p95 (ms)", metrics.RUN_DURATION, "p95"),
        ("Items written", metrics.ITEMS_WRITTEN, "Sum"),
    ]:
        lines = graphs[title]
        assert [line[-1]["label"] for line in lines] == names, title
        assert {(line[0], line[1], line[-1]["stat"]) for line in lines} == {(metrics.NAMESPACE, metric_name, statistic)}
        assert [line[line.index(metrics.TASK_DIMENSION) + 1] for line in lines] == names
        assert {line[line.index(metrics.STAGE_DIMENSION) + 1] for line in lines} == {"ops"}
    [queue] = graphs["Dead-letter queue: messages waiting"]
    assert queue[:2] == [metrics.SQS_NAMESPACE, metrics.SQS_MESSAGES_VISIBLE]


def many_tasks(plan: StagePlan, count: int) -> StagePlan:
    template = plan.tasks[0]
    tasks = tuple(
        replace(
            template,
            name=f"t-{index}",
            failure_alarm=failure_alarm(plan.stage, f"t-{index}"),
            freshness=freshness_plan(
                plan.stage,
                f"t-{index}",
                schedule=parse_schedule(template.schedule_expression),
                timezone=template.timezone,
                enabled=True,
                timeout_s=template.timeout,
                async_retries=template.async_retry_attempts,
            ),
        )
        for index in range(count)
    )
    return replace(plan, tasks=tasks)


def test_a_large_stage_is_paged_within_cloudwatchs_dashboard_limits(ops: tuple[StagePlan, Template]) -> None:
    plan = many_tasks(ops[0], 2 * TASKS_PER_DASHBOARD + 7)
    pages = plan.dashboards
    assert [page.name for page in pages] == ["kairos-ops", "kairos-ops-2", "kairos-ops-3"]
    graphed = [label for page in pages for label, _ in page.graphs[0].lines]
    assert graphed == [task.name for task in plan.tasks], "each task on exactly one page, in order"
    for page in pages:
        assert page.widget_count <= DASHBOARD_MAX_WIDGETS
        assert page.metric_count <= DASHBOARD_MAX_METRICS
        assert all(len(graph.lines) <= DASHBOARD_WIDGET_MAX_METRICS for graph in page.graphs)
        assert all(len(names) <= ALARMS_PER_STATUS_WIDGET for names in page.alarm_names)
        assert plan.dead_letter_alarm.alarm_name in page.alarm_names[0]
    assert "page 3 of 3: t-200 to t-206" in pages[2].header
    assert sum(len(names) for page in pages for names in page.alarm_names) == len(plan.alarms) + 2
    assert plan.shared_resource_count - ops[0].shared_resource_count == 2


def test_a_full_page_synthesizes_as_planned(ops: tuple[StagePlan, Template]) -> None:
    """Every metric of a full page reaches the body: a widget per graph, a line per planned metric."""
    page = many_tasks(ops[0], TASKS_PER_DASHBOARD).dashboards[0]
    app = cdk.App(context=NO_BUNDLING)
    stack = cdk.Stack(app, "page")
    StageDashboard(stack, "Dashboard", plan=page, resource_names={"QueueName": "queue"})
    [dashboard] = Template.from_stack(stack).find_resources("AWS::CloudWatch::Dashboard").values()
    widgets = dashboard_body(dashboard)["widgets"]
    lines = [len(widget["properties"]["metrics"]) for widget in widgets if widget["type"] == "metric"]
    assert lines == [len(graph.lines) for graph in page.graphs]
    assert sum(lines) == page.metric_count <= DASHBOARD_MAX_METRICS
    assert len(widgets) == page.widget_count <= DASHBOARD_MAX_WIDGETS
    # The body is written into the stack's template (1 MB in all): a full page, as the template file
    # holds it, stays under 90 KB (CDK's rendering took 98.7 KB: docs/adr/0186; 76.2 KB before each
    # line named its stage, 85.2 KB since: docs/adr/0206).
    assert len(json.dumps(dashboard, indent=1)) < 90_000
    sub = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^!}][^}]*)\}", sub[0]))
    assert names == {"AWS::Partition", "AWS::Region", "AWS::AccountId", "QueueName"}
    assert sub[1] == {"QueueName": "queue"}
    alarms = [arn for widget in widgets if widget["type"] == "alarm" for arn in widget["properties"]["alarms"]]
    assert alarms == [
        f"arn:TOKEN:cloudwatch:TOKEN:TOKEN:alarm:{name}" for names_ in page.alarm_names for name in names_
    ]
