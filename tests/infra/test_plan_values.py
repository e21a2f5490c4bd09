"""The plan is the one place deployed values are decided: every function's environment and every
alarm in the dev and prod templates is exactly what the plan says, and nothing else is deployed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aws_cdk.assertions import Template

from kairos.plan import AlarmPlan, ResourceDimension, StagePlan
from kairos_runtime.tables import TABLE_DESIGNS
from tests.infra.test_stage_stack import logical_id, resource_at, synth

Normalized = dict[str, Any]


@pytest.fixture(scope="module", params=["dev", "prod"])
def stage(request: pytest.FixtureRequest) -> tuple[StagePlan, Template]:
    return synth(request.param)


def _dimensions(dimensions: list[dict[str, object]]) -> list[tuple[str, str]]:
    return sorted((str(dimension["Name"]), repr(dimension["Value"])) for dimension in dimensions)


def from_template(properties: Mapping[str, Any]) -> Normalized:
    """An alarm's values as the template states them, in one shape for single metrics and expressions."""
    values: Normalized = {
        "name": properties["AlarmName"],
        "description": properties["AlarmDescription"],
        "threshold": properties["Threshold"],
        "comparison": properties["ComparisonOperator"],
        "evaluation_periods": properties["EvaluationPeriods"],
        "datapoints_to_alarm": properties.get("DatapointsToAlarm"),
        "treat_missing_data": properties["TreatMissingData"],
        "actions": len(properties["AlarmActions"]),
    }
    if "Metrics" not in properties:
        values |= {
            "period": properties["Period"],
            "expression": None,
            "label": None,
            "metrics": {
                None: (
                    properties["Namespace"],
                    properties["MetricName"],
                    properties["Statistic"],
                    _dimensions(properties["Dimensions"]),
                )
            },
        }
        return values
    [expression] = [query for query in properties["Metrics"] if "Expression" in query]
    values |= {"expression": expression["Expression"], "label": expression.get("Label"), "metrics": {}}
    periods = set()
    for query in properties["Metrics"]:
        if "MetricStat" in query:
            stat = query["MetricStat"]
            periods.add(stat["Period"])
            values["metrics"][query["Id"]] = (
                stat["Metric"]["Namespace"],
                stat["Metric"]["MetricName"],
                stat["Stat"],
                _dimensions(stat["Metric"]["Dimensions"]),
            )
    [values["period"]] = periods
    return values


def from_plan(alarm: AlarmPlan, resource_names: Mapping[ResourceDimension, object]) -> Normalized:
    metrics = {}
    for metric_id, metric in alarm.metrics.items():
        dimensions: list[dict[str, object]] = [
            {"Name": name, "Value": value} for name, value in metric.dimensions.items()
        ]
        if metric.resource_dimension is not None:
            dimensions.append({"Name": metric.resource_dimension, "Value": resource_names[metric.resource_dimension]})
        key = metric_id if alarm.expression is not None else None
        metrics[key] = (metric.namespace, metric.metric_name, metric.statistic, _dimensions(dimensions))
    return {
        "name": alarm.alarm_name,
        "description": alarm.description,
        "threshold": alarm.threshold,
        "comparison": alarm.comparison,
        "evaluation_periods": alarm.evaluation_periods,
        "datapoints_to_alarm": alarm.datapoints_to_alarm,
        "treat_missing_data": alarm.treat_missing_data,
        "actions": 1,
        "period": alarm.period_seconds,
        "expression": alarm.expression,
        "label": alarm.label,
        "metrics": metrics,
    }


def test_every_function_environment_is_the_plans(stage: tuple[StagePlan, Template]) -> None:
    plan, template = stage
    table_refs = {
        design.table_id: {
            "Ref": logical_id(template, "AWS::DynamoDB::Table", f"{plan.stack_name}/Tables/{design.construct_id}")
        }
        for design in TABLE_DESIGNS.values()
    }
    bucket = {"Ref": logical_id(template, "AWS::S3::Bucket", f"{plan.stack_name}/FanOutObjects/Bucket")}
    functions = template.find_resources("AWS::Lambda::Function")
    assert len(functions) == sum(len(task.fan_out.functions) if task.fan_out else 1 for task in plan.tasks)
    for task in plan.tasks:
        # A fan-out task's three functions share the task's environment (their handlers differ).
        # Only the planner and the summary also get the stage's fan-out bucket, as the plan says.
        paths = (
            {
                f"{step.capitalize()}Function/Function": task.fan_out.step_environment(step, bucket)  # type: ignore[arg-type]
                for step in task.fan_out.functions
            }
            if task.fan_out
            else {"Function": {}}
        )
        for path, beside in paths.items():
            function = resource_at(
                template, "AWS::Lambda::Function", f"{plan.task_stack_name(task)}/{task.name}/{path}"
            )
            expected = task.function_environment(table_refs) | beside  # type: ignore[arg-type]
            assert function["Properties"]["Environment"]["Variables"] == expected, task.name


def test_every_alarm_is_one_the_plan_decided(stage: tuple[StagePlan, Template]) -> None:
    plan, template = stage
    expected: dict[str, Normalized] = {}
    queue_id = logical_id(template, "AWS::SQS::Queue", f"{plan.stack_name}/DeadLetters/Queue")
    expected[f"{plan.stack_name}/DeadLetters/{plan.dead_letter_alarm.construct_id}"] = from_plan(
        plan.dead_letter_alarm, {"QueueName": {"Fn::GetAtt": [queue_id, "QueueName"]}}
    )
    for task in plan.tasks:
        stack = plan.task_stack_name(task)
        if task.fan_out is not None:
            machine = logical_id(template, "AWS::StepFunctions::StateMachine", f"{stack}/{task.name}/StateMachine")
            names: dict[ResourceDimension, object] = {"StateMachineArn": {"Ref": machine}}
        else:
            function_id = logical_id(template, "AWS::Lambda::Function", f"{stack}/{task.name}/Function")
            names = {"FunctionName": {"Ref": function_id}}
        for alarm in task.alarms:
            expected[f"{stack}/{task.name}/{alarm.construct_id}"] = from_plan(alarm, names)
    deployed = {
        resource["Metadata"]["aws:cdk:path"].removesuffix("/Resource"): from_template(resource["Properties"])
        for resource in template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert len(expected) == len(plan.alarms)
    assert deployed == expected
