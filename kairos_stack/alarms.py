"""Maps an :class:`~kairos.plan.AlarmPlan` onto a CloudWatch alarm: the one place alarms are built.

A task's alarms are ``AWS::CloudWatch::Alarm`` resources rendered here from the plan
(:class:`PlannedAlarm`), not ``cloudwatch.Alarm`` over ``cloudwatch.Metric`` objects: each of those
is a round trip to CDK's Node.js process, three to five per alarm, and they were a fifth of a
1,000-task synth. The rendering is CDK's own, property for property (the infra tests compare the
two), so the templates did not change (docs/adr/0185-synth-speed-round-trips.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from kairos.plan import AlarmPlan, Comparison, MetricPlan, MissingData, ResourceDimension

COMPARISONS: dict[Comparison, cloudwatch.ComparisonOperator] = {
    "GreaterThanOrEqualToThreshold": cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    "LessThanOrEqualToThreshold": cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
    "LessThanThreshold": cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
}
MISSING_DATA: dict[MissingData, cloudwatch.TreatMissingData] = {
    "notBreaching": cloudwatch.TreatMissingData.NOT_BREACHING,
    "ignore": cloudwatch.TreatMissingData.IGNORE,
    "breaching": cloudwatch.TreatMissingData.BREACHING,
}


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


def planned_alarm(
    scope: Construct,
    plan: AlarmPlan,
    *,
    alarm_action: cloudwatch.IAlarmAction,
    resource_names: Mapping[ResourceDimension, str],
) -> cloudwatch.Alarm:
    """The alarm ``plan`` describes, notifying ``alarm_action``.

    ``resource_names`` gives the deployed name (a token) for each resource dimension the plan's
    metrics name, such as the task's function.
    """
    period = seconds(plan.period_seconds)
    metrics = {metric_id: planned_metric(metric, period, resource_names) for metric_id, metric in plan.metrics.items()}
    if plan.expression is None:
        [metric] = metrics.values()
        watched: cloudwatch.IMetric = metric
    else:
        watched = cloudwatch.MathExpression(
            expression=plan.expression, using_metrics=metrics, period=period, label=plan.label
        )
    alarm = cloudwatch.Alarm(
        scope,
        plan.construct_id,
        alarm_name=plan.alarm_name,
        alarm_description=plan.description,
        metric=watched,
        threshold=plan.threshold,
        evaluation_periods=plan.evaluation_periods,
        datapoints_to_alarm=plan.datapoints_to_alarm,
        comparison_operator=COMPARISONS[plan.comparison],
        treat_missing_data=MISSING_DATA[plan.treat_missing_data],
    )
    alarm.add_alarm_action(alarm_action)
    return alarm


def planned_metric(
    metric: MetricPlan,
    period: cdk.Duration,
    resource_names: Mapping[ResourceDimension, str],
    *,
    label: str | None = None,
) -> cloudwatch.Metric:
    """The metric ``metric`` names, over ``period``; alarms and the stage's dashboard both read it."""
    dimensions = dict(metric.dimensions)
    if metric.resource_dimension is not None:
        dimensions[metric.resource_dimension] = resource_names[metric.resource_dimension]
    return cloudwatch.Metric(
        namespace=metric.namespace,
        metric_name=metric.metric_name,
        dimensions_map=dimensions,
        statistic=metric.statistic,
        period=period,
        label=label,
    )
