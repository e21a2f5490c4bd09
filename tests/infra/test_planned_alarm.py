"""A task's alarm is rendered from the plan as CDK's ``cloudwatch.Alarm`` renders it (ADR 0185).

Given every alarm the shipped stages plan (failure, fan-out failure, freshness, gauges, the
dead-letter queue's) and alarms on an extended statistic, when each is built both ways, then the two
resources are the same, property for property.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from constructs import Construct

from kairos.catalog import PROJECT_ROOT
from kairos.plan import AlarmPlan, Comparison, MetricPlan, MissingData, ResourceDimension
from kairos_stack.alarms import PlannedAlarm
from kairos_stack.app_builder import stage_plan

SHIPPED = PROJECT_ROOT / "tasks.yaml"
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
TOPIC_ARN = "arn:aws:sns:eu-west-1:111111111111:alarms"


def shipped_alarms() -> list[AlarmPlan]:
    alarms: dict[str, AlarmPlan] = {}
    for stage in ("dev", "prod"):
        for alarm in stage_plan(SHIPPED, stage).alarms:
            alarms.setdefault(alarm.alarm_name, alarm)
    return list(alarms.values())


def extended_statistic_alarms() -> list[AlarmPlan]:
    p95 = MetricPlan("Kairos", "RunDuration", "p95", {"service": "kairos", "task": "t"})
    dropped = MetricPlan("AWS/Lambda", "AsyncEventsDropped", "Sum", {}, resource_dimension="FunctionName")
    common: dict[str, Any] = {
        "description": "d",
        "period_seconds": 60,
        "threshold": 2.5,
        "comparison": "GreaterThanOrEqualToThreshold",
        "evaluation_periods": 3,
        "treat_missing_data": "ignore",
    }
    return [
        AlarmPlan("SlowAlarm", "kairos-x-t-slow", metrics={"slow": p95}, datapoints_to_alarm=2, **common),
        AlarmPlan(
            "MixedAlarm",
            "kairos-x-t-mixed",
            metrics={"slow": p95, "dropped": dropped},
            expression="slow + dropped",
            label="slow or dropped",
            **common,
        ),
    ]


def cdk_alarm(scope: Construct, plan: AlarmPlan, topic: sns.ITopic, names: dict[ResourceDimension, str]) -> None:
    """The alarm ``plan`` describes as CDK's own ``cloudwatch.Alarm`` builds it: the oracle."""
    period = cdk.Duration.seconds(plan.period_seconds)
    metrics: dict[str, cloudwatch.IMetric] = {}
    for metric_id, metric in plan.metrics.items():
        dimensions = dict(metric.dimensions)
        if metric.resource_dimension is not None:
            dimensions[metric.resource_dimension] = names[metric.resource_dimension]
        metrics[metric_id] = cloudwatch.Metric(
            namespace=metric.namespace,
            metric_name=metric.metric_name,
            dimensions_map=dimensions,
            statistic=metric.statistic,
            period=period,
        )
    watched: cloudwatch.IMetric
    if plan.expression is None:
        [watched] = metrics.values()
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
    alarm.add_alarm_action(actions.SnsAction(topic))


def rendered(alarm: AlarmPlan) -> tuple[dict[str, Any], dict[str, Any]]:
    """The alarm resource as ``cloudwatch.Alarm`` renders it, and as :class:`PlannedAlarm` does."""
    app = cdk.App()
    names: dict[ResourceDimension, str] = {
        "FunctionName": cdk.Fn.ref("Function"),
        "QueueName": "the-queue",
        "StateMachineArn": "arn:aws:states:eu-west-1:111111111111:stateMachine:m",
    }
    expected_stack = cdk.Stack(app, "Expected")
    topic = sns.Topic.from_topic_arn(expected_stack, "Topic", TOPIC_ARN)
    cdk_alarm(expected_stack, alarm, topic, names)
    actual_stack = cdk.Stack(app, "Actual")
    PlannedAlarm(actual_stack, alarm.construct_id, plan=alarm, alarm_action_arn=TOPIC_ARN, resource_names=names)
    return _only(expected_stack), _only(actual_stack)


def _only(stack: cdk.Stack) -> dict[str, Any]:
    resources = Template.from_stack(stack).to_json()["Resources"]
    [(logical_id, resource)] = resources.items()
    return {"logical_id": logical_id, **resource}


@pytest.mark.parametrize("alarm", [*shipped_alarms(), *extended_statistic_alarms()], ids=lambda alarm: alarm.alarm_name)
def test_planned_alarm_is_rendered_as_cdk_renders_it(alarm: AlarmPlan) -> None:
    expected, actual = rendered(alarm)

    assert actual == expected
    assert actual["Properties"]["AlarmName"] == alarm.alarm_name
    assert actual["Properties"]["AlarmActions"] == [TOPIC_ARN]


def test_shipped_plans_cover_both_shapes() -> None:
    alarms = shipped_alarms()

    assert any(alarm.expression is None for alarm in alarms)
    assert any(alarm.expression is not None for alarm in alarms)
    assert any(alarm.datapoints_to_alarm is not None for alarm in alarms)
    dimensions = {metric.resource_dimension for alarm in alarms for metric in alarm.metrics.values()}
    assert {"FunctionName", "QueueName", "StateMachineArn"} <= dimensions
