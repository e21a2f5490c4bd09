"""A stage's CloudWatch dashboard, one page as :class:`~kairos.plan.DashboardPlan` describes it.

Runs by outcome, duration p95 and items written with a line per task, the dead-letter queue's depth,
and the state of every alarm of the page's tasks. Alarms are referenced by the names the plan gave
them, so the page needs no handle on the constructs that build them.

The body is the plan's (``kairos.dashboard_body``), deployed as one ``Fn::Sub`` string: CDK's
``Dashboard`` renders every alarm ARN and metric region as separate ``Fn::Join`` parts (three tokens
an alarm), which made a 100-task page about 86 KB of its stack's 1 MB template and cost a jsii round
trip per metric and alarm (docs/adr/0186-dashboard-body-as-one-substitution.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from kairos.dashboard_body import dashboard_body
from kairos.plan import DashboardPlan, ResourceDimension


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
        body = dashboard_body(plan, resource_names)
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
