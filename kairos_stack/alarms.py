"""Maps an :class:`~kairos.plan.AlarmPlan` onto a CloudWatch alarm: the one place alarms are built.

Every alarm (a task's, a shared function's, a fan-out's, the dead-letter queue's) is an
``AWS::CloudWatch::Alarm`` rendered here from the plan (:class:`PlannedAlarm`), not
``cloudwatch.Alarm`` over ``cloudwatch.Metric`` objects: each of those is a round trip to CDK's
Node.js process, three to five per alarm, and they were a fifth of a 1,000-task synth. The rendering
is CDK's own, property for property (``tests/infra/test_planned_alarm.py`` builds each planned
alarm with ``cloudwatch.Alarm`` too and compares), so the templates did not change
(docs/adr/0185-synth-speed-round-trips.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from kairos.plan import AlarmPlan, MetricPlan, ResourceDimension

SIMPLE_STATISTICS = frozenset({"SampleCount", "Average", "Sum", "Minimum", "Maximum"})
"""CloudWatch's statistics by name; any other (``p95``, ``tm99``, ...) is an extended statistic."""


@cache
def seconds(value: int) -> cdk.Duration:
    """One ``Duration`` a value per synth: a duration is immutable, and each is a round trip to make."""
    return cdk.Duration.seconds(value)


class PlannedAlarm(Construct):
    """The alarm ``plan`` describes, notifying the topic ``alarm_action_arn`` names.

    Rendered as CDK's ``cloudwatch.Alarm`` renders it (under a ``Resource`` child, so the logical ID
    and path are the same), from plain values: one round trip to CDK instead of one per metric.
    ``resource_names`` gives the deployed name (a token) of each resource dimension its metrics name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: AlarmPlan,
        alarm_action_arn: str,
        resource_names: Mapping[ResourceDimension, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.plan = plan
        if plan.expression is None:
            metric = plan.only_metric
            watched: dict[str, object] = {
                "namespace": metric.namespace,
                "metric_name": metric.metric_name,
                "dimensions": _dimensions(metric, resource_names),
                "period": plan.period_seconds,
                **_statistic_fields(metric.statistic),
            }
        else:
            # CDK's order: the expression (the one that returns data, id expr_1), then its metrics.
            queries = [
                cloudwatch.CfnAlarm.MetricDataQueryProperty(
                    id="expr_1", expression=plan.expression, label=plan.label, return_data=True
                ),
                *(
                    cloudwatch.CfnAlarm.MetricDataQueryProperty(
                        id=metric_id,
                        metric_stat=cloudwatch.CfnAlarm.MetricStatProperty(
                            metric=cloudwatch.CfnAlarm.MetricProperty(
                                metric_name=metric.metric_name,
                                namespace=metric.namespace,
                                dimensions=_dimensions(metric, resource_names),
                            ),
                            period=plan.period_seconds,
                            stat=metric.statistic,
                        ),
                        return_data=False,
                    )
                    for metric_id, metric in plan.metrics.items()
                ),
            ]
            watched = {"metrics": queries}
        self.resource = cloudwatch.CfnAlarm(
            self,
            "Resource",
            alarm_name=plan.alarm_name,
            alarm_description=plan.description,
            comparison_operator=plan.comparison,
            threshold=plan.threshold,
            evaluation_periods=plan.evaluation_periods,
            datapoints_to_alarm=plan.datapoints_to_alarm,
            treat_missing_data=plan.treat_missing_data,
            alarm_actions=[alarm_action_arn],
            **watched,  # type: ignore[arg-type]
        )
        self.alarm_name = plan.alarm_name


def _dimensions(
    metric: MetricPlan, resource_names: Mapping[ResourceDimension, str]
) -> list[cloudwatch.CfnAlarm.DimensionProperty]:
    dimensions = dict(metric.dimensions)
    if metric.resource_dimension is not None:
        dimensions[metric.resource_dimension] = resource_names[metric.resource_dimension]
    return [cloudwatch.CfnAlarm.DimensionProperty(name=name, value=value) for name, value in dimensions.items()]


def _statistic_fields(statistic: str) -> dict[str, str]:
    return {"statistic": statistic} if statistic in SIMPLE_STATISTICS else {"extended_statistic": statistic}
