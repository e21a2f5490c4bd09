"""Maps an :class:`~kairos.plan.AlarmPlan` onto a CloudWatch alarm: the one place alarms are built."""

from __future__ import annotations

from collections.abc import Mapping

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
    period = cdk.Duration.seconds(plan.period_seconds)
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
