"""A stage's CloudWatch dashboard, one page as :class:`~kairos.plan.DashboardPlan` describes it.

Runs by outcome, duration p95 and items written with a line per task, the dead-letter queue's depth,
and the state of every alarm of the page's tasks. Alarms are referenced by the names the plan gave
them, so the page needs no handle on the constructs that build them.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from kairos.plan import DashboardPlan, GraphPlan, ResourceDimension
from kairos_stack.alarms import planned_metric

GRID_WIDTH = 24
GRAPH_WIDTH = 12
GRAPH_HEIGHT = 6
HEADER_HEIGHT = 2
ALARM_ROWS_HEIGHT = 4


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
        # Dashboards are global to an account: the region keeps a stage deployed in two regions apart.
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{plan.name}-{cdk.Stack.of(self).region}",
            period_override=cloudwatch.PeriodOverride.AUTO,
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown=plan.header, width=GRID_WIDTH, height=HEADER_HEIGHT))
        for index, names in enumerate(plan.alarm_names, start=1):
            alarms = [
                cloudwatch.Alarm.from_alarm_name(self, f"Alarm{index}.{position}", name)
                for position, name in enumerate(names, start=1)
            ]
            self.dashboard.add_widgets(
                cloudwatch.AlarmStatusWidget(
                    title="Alarms" if len(plan.alarm_names) == 1 else f"Alarms ({index} of {len(plan.alarm_names)})",
                    alarms=alarms,
                    width=GRID_WIDTH,
                    height=ALARM_ROWS_HEIGHT,
                )
            )
        graphs = [_graph(graph, resource_names) for graph in plan.graphs]
        for start in range(0, len(graphs), GRID_WIDTH // GRAPH_WIDTH):
            self.dashboard.add_widgets(*graphs[start : start + GRID_WIDTH // GRAPH_WIDTH])


def _graph(plan: GraphPlan, resource_names: Mapping[ResourceDimension, str]) -> cloudwatch.GraphWidget:
    period = cdk.Duration.seconds(plan.period_seconds)
    return cloudwatch.GraphWidget(
        title=plan.title,
        left=[planned_metric(metric, period, resource_names, label=label) for label, metric in plan.lines],
        width=GRAPH_WIDTH,
        height=GRAPH_HEIGHT,
    )
