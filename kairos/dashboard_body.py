"""A dashboard page's body, as the plan decides it: CloudWatch's dashboard body structure, written
as the one ``Fn::Sub`` string the stack deploys (docs/adr/0186-dashboard-body-as-one-substitution.md).

Pure: the plan measures the core stack's template with it (``StagePlan.core_template_bytes``), and
``kairos_stack/stage_dashboard.py`` deploys exactly this text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kairos.plan import DashboardPlan, GraphPlan, MetricPlan

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


def dashboard_body(page: DashboardPlan, resource_dimensions: Iterable[str]) -> str:
    """The ``Fn::Sub`` text of ``page``: ``${AWS::Region}`` and the like, and ``${<dimension>}`` for
    each deployed resource name the stack passes (the dead-letter queue's ``QueueName``)."""
    dimensions = sorted(resource_dimensions)
    text = json.dumps(page_body(page, dimensions), separators=(",", ":"))
    text = text.replace("${", "${!")  # Fn::Sub's escape for a literal ${ (none is expected)
    for name in (*PSEUDO_PARAMETERS, *dimensions):
        text = text.replace(_placeholder(name), "${" + name + "}")
    return text


def page_body(page: DashboardPlan, resource_dimensions: list[str]) -> dict[str, Any]:
    """The page's body, with ``_placeholder`` markers for the region, account, partition and the
    deployed resource names (``resource_dimensions``)."""
    widgets: list[dict[str, Any]] = [
        _widget("text", 0, 0, GRID_WIDTH, HEADER_HEIGHT, {"markdown": page.header}),
    ]
    y = HEADER_HEIGHT
    for index, names in enumerate(page.alarm_names, start=1):
        title = "Alarms" if len(page.alarm_names) == 1 else f"Alarms ({index} of {len(page.alarm_names)})"
        arns = [
            f"arn:{_placeholder('AWS::Partition')}:cloudwatch:{_placeholder('AWS::Region')}:"
            f"{_placeholder('AWS::AccountId')}:alarm:{name}"
            for name in names
        ]
        widgets.append(_widget("alarm", 0, y, GRID_WIDTH, ALARM_ROWS_HEIGHT, {"title": title, "alarms": arns}))
        y += ALARM_ROWS_HEIGHT
    per_row = GRID_WIDTH // GRAPH_WIDTH
    for position, graph in enumerate(page.graphs):
        x = (position % per_row) * GRAPH_WIDTH
        row_y = y + (position // per_row) * GRAPH_HEIGHT
        widgets.append(_widget("metric", x, row_y, GRAPH_WIDTH, GRAPH_HEIGHT, _graph(graph, resource_dimensions)))
    return {"periodOverride": "auto", "widgets": widgets}


def _widget(kind: str, x: int, y: int, width: int, height: int, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "width": width, "height": height, "x": x, "y": y, "properties": properties}


def _graph(graph: GraphPlan, resource_dimensions: list[str]) -> dict[str, Any]:
    return {
        "view": "timeSeries",
        "title": graph.title,
        "region": _placeholder("AWS::Region"),
        "metrics": [_metric(metric, label, graph.period_seconds, resource_dimensions) for label, metric in graph.lines],
        "yAxis": {},
    }


def _metric(metric: MetricPlan, label: str, period_seconds: int, resource_dimensions: list[str]) -> list[Any]:
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
