"""A stage's CloudWatch dashboard, one page as :class:`~kairos.plan.DashboardPlan` describes it.

Runs by outcome, duration p95 and items written with a line per task, the dead-letter queue's depth,
and the state of every alarm of the page's tasks. Alarms are referenced by the names the plan gave
them, so the page needs no handle on the constructs that build them.

The body is written here, in CloudWatch's dashboard body structure, as one ``Fn::Sub`` string: CDK's
``Dashboard`` renders every alarm ARN and metric region as separate ``Fn::Join`` parts (three tokens
an alarm), which made a 100-task page about 86 KB of its stack's 1 MB template and cost a jsii round
trip per metric and alarm (docs/adr/0186-dashboard-body-as-one-substitution.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from kairos.plan import DashboardPlan, GraphPlan, MetricPlan, ResourceDimension

GRID_WIDTH = 24
GRAPH_WIDTH = 12
GRAPH_HEIGHT = 6
HEADER_HEIGHT = 2
ALARM_ROWS_HEIGHT = 4
DEFAULT_PERIOD_SECONDS = 300
"""CloudWatch's period for a metric that names none."""
PSEUDO_PARAMETERS = ("AWS::Partition", "AWS::Region", "AWS::AccountId")


def _placeholder(name: str) -> str:
    """A marker for ``${name}`` that JSON leaves as it is (``${`` in the text is escaped first)."""
    return f"@@kairos:{name}@@"


class StageDashboard(Construct):
    """One dashboard page; ``resource_names`` fills the deployed names (the queue's) into metrics."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: DashboardPlan,
        resource_names: Mapping[ResourceDimension, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.plan = plan
        # The page's resource at <page>/Dashboard/Resource, where CDK's Dashboard put it: the same
        # logical id, so a deployed stage updates its dashboard in place instead of replacing it.
        holder = Construct(self, "Dashboard")
        body = json.dumps(page_body(plan, sorted(resource_names)), separators=(",", ":"))
        body = body.replace("${", "${!")  # Fn::Sub's escape for a literal ${ (none is expected)
        for name in (*PSEUDO_PARAMETERS, *resource_names):
            body = body.replace(_placeholder(name), "${" + name + "}")
        self.dashboard = cloudwatch.CfnDashboard(
            holder,
            "Resource",
            # Dashboards are global to an account: the region keeps a stage deployed in two regions apart.
            dashboard_name=f"{plan.name}-{cdk.Stack.of(self).region}",
            dashboard_body=body,
        )
        # Written as the override CloudFormation reads (CDK would turn an Fn.sub back into a Join).
        self.dashboard.add_property_override(
            "DashboardBody", {"Fn::Sub": [body, dict(resource_names)] if resource_names else body}
        )


def page_body(plan: DashboardPlan, resource_dimensions: list[ResourceDimension]) -> dict[str, Any]:
    """The page's body, with ``_placeholder`` markers for the region, account, partition and the
    deployed resource names (``resource_dimensions``)."""
    widgets: list[dict[str, Any]] = [
        _widget("text", 0, 0, GRID_WIDTH, HEADER_HEIGHT, {"markdown": plan.header}),
    ]
    y = HEADER_HEIGHT
    for index, names in enumerate(plan.alarm_names, start=1):
        title = "Alarms" if len(plan.alarm_names) == 1 else f"Alarms ({index} of {len(plan.alarm_names)})"
        arns = [
            f"arn:{_placeholder('AWS::Partition')}:cloudwatch:{_placeholder('AWS::Region')}:"
            f"{_placeholder('AWS::AccountId')}:alarm:{name}"
            for name in names
        ]
        widgets.append(_widget("alarm", 0, y, GRID_WIDTH, ALARM_ROWS_HEIGHT, {"title": title, "alarms": arns}))
        y += ALARM_ROWS_HEIGHT
    per_row = GRID_WIDTH // GRAPH_WIDTH
    for position, graph in enumerate(plan.graphs):
        x = (position % per_row) * GRAPH_WIDTH
        row_y = y + (position // per_row) * GRAPH_HEIGHT
        widgets.append(_widget("metric", x, row_y, GRAPH_WIDTH, GRAPH_HEIGHT, _graph(graph, resource_dimensions)))
    return {"periodOverride": "auto", "widgets": widgets}


def _widget(kind: str, x: int, y: int, width: int, height: int, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "width": width, "height": height, "x": x, "y": y, "properties": properties}


def _graph(graph: GraphPlan, resource_dimensions: list[ResourceDimension]) -> dict[str, Any]:
    return {
        "view": "timeSeries",
        "title": graph.title,
        "region": _placeholder("AWS::Region"),
        "metrics": [_metric(metric, label, graph.period_seconds, resource_dimensions) for label, metric in graph.lines],
        "yAxis": {},
    }


def _metric(
    metric: MetricPlan, label: str, period_seconds: int, resource_dimensions: list[ResourceDimension]
) -> list[Any]:
    """One line: namespace, metric name, each dimension's name and value, then its rendering."""
    dimensions: dict[str, str] = dict(metric.dimensions)
    if metric.resource_dimension is not None:
        if metric.resource_dimension not in resource_dimensions:
            raise ValueError(f"the page graphs {metric.metric_name} of a {metric.resource_dimension} it was not given")
        dimensions[metric.resource_dimension] = _placeholder(metric.resource_dimension)
    line: list[Any] = [metric.namespace, metric.metric_name]
    for name, value in dimensions.items():
        line += [name, value]
    rendering: dict[str, Any] = {"label": label, "stat": metric.statistic}
    if period_seconds != DEFAULT_PERIOD_SECONDS:
        rendering["period"] = period_seconds
    return [*line, rendering]
