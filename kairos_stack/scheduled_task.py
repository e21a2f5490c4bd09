"""One task of tasks.yaml: its function, log group, schedule and failure alarm."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kairos.plan import GaugeAlarmPlan, TaskPlan

LAMBDA_RUNTIMES: dict[str, lambda_.Runtime] = {
    runtime.name: runtime
    for runtime in (
        lambda_.Runtime.PYTHON_3_12,
        lambda_.Runtime.PYTHON_3_13,
        lambda_.Runtime.PYTHON_3_14,
        lambda_.Runtime.NODEJS_20_X,
        lambda_.Runtime.NODEJS_22_X,
        lambda_.Runtime.NODEJS_24_X,
    )
}
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}
ALARM_PERIOD = cdk.Duration.minutes(5)
COMPARISONS = {"LessThanOrEqualToThreshold": cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD}
MISSING_DATA = {"ignore": cloudwatch.TreatMissingData.IGNORE}


class ScheduledTask(Construct):
    """A Lambda function invoked by an EventBridge Scheduler schedule, as the plan describes it.

    Grants beyond the function's own execution role are the stack's business: it knows the tables.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: TaskPlan,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion] = (),
        schedule_group: scheduler.IScheduleGroup,
        dead_letter_queue: sqs.IQueue,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        alarm_action: cloudwatch.IAlarmAction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.plan = plan
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        # Not AWSLambdaBasicExecutionRole, which may write to every log group in the account: this
        # function writes streams of its own log group only. The group exists (created above), so no
        # logs:CreateLogGroup; the group's ARN ends in ":*", which covers its streams and nothing else.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Kairos task {plan.name}: its own logs, traces and declared data"[:1000],
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=plan.function_description,
            runtime=LAMBDA_RUNTIMES[plan.runtime],
            architecture=ARCHITECTURES[plan.architecture],
            handler=plan.handler,
            code=code,
            role=self.role,
            layers=list(layers),
            memory_size=plan.memory,
            timeout=cdk.Duration.seconds(plan.timeout),
            environment=dict(plan.environment),
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            retry_attempts=plan.async_retry_attempts,
            # A queued invocation is as stale as a late delivery: same limit as the schedule's.
            max_event_age=cdk.Duration.seconds(plan.lambda_max_event_age_seconds),
            on_failure=destinations.SqsDestination(dead_letter_queue),
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description=f"{plan.name}: {plan.schedule_expression} ({plan.timezone})",
            schedule=scheduler.ScheduleExpression.expression(
                plan.schedule_expression, time_zone=cdk.TimeZone.of(plan.timezone)
            ),
            schedule_group=schedule_group,
            enabled=plan.enabled,
            target=targets.LambdaInvoke(
                self.function,
                input=scheduler.ScheduleTargetInput.from_object(dict(plan.input_template)),
                dead_letter_queue=dead_letter_queue,
                retry_attempts=plan.scheduler_retry_attempts,
                max_event_age=cdk.Duration.seconds(plan.max_event_age_seconds),
            ),
        )
        self.failure_alarm = cloudwatch.Alarm(
            self,
            "FailureAlarm",
            alarm_description=(
                f"Kairos task {plan.name} recorded a FAILED run, or Lambda gave up on one of its events "
                "(retries used up or too old; the event is in the stage's dead-letter queue)"
            ),
            metric=cloudwatch.MathExpression(
                # Both count final outcomes only: a blip that Lambda's retry absorbs is in neither, a
                # timeout or crash on the last attempt is in the second (no run record could say so).
                expression="FILL(failed, 0) + FILL(dropped, 0)",
                using_metrics={
                    "failed": cloudwatch.Metric(
                        namespace="Kairos",
                        metric_name="RunsFailed",
                        dimensions_map={"service": "kairos", "task": plan.name},
                        statistic="Sum",
                        period=ALARM_PERIOD,
                    ),
                    "dropped": self.function.metric("AsyncEventsDropped", statistic="Sum", period=ALARM_PERIOD),
                },
                period=ALARM_PERIOD,
                label="failed runs and events Lambda dropped",
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.failure_alarm.add_alarm_action(alarm_action)
        self.gauge_alarms = [self._gauge_alarm(gauge, alarm_action) for gauge in plan.gauge_alarms]

    def _gauge_alarm(self, gauge: GaugeAlarmPlan, alarm_action: cloudwatch.IAlarmAction) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            f"{gauge.metric_name}Alarm",
            alarm_description=f"Kairos task {self.plan.name}: {gauge.description}",
            metric=cloudwatch.Metric(
                namespace=gauge.namespace,
                metric_name=gauge.metric_name,
                dimensions_map={"service": gauge.service, "task": self.plan.name},
                statistic=gauge.statistic,
                period=cdk.Duration.seconds(gauge.period_seconds),
            ),
            threshold=gauge.threshold,
            evaluation_periods=1,
            comparison_operator=COMPARISONS[gauge.comparison],
            treat_missing_data=MISSING_DATA[gauge.treat_missing_data],
        )
        alarm.add_alarm_action(alarm_action)
        return alarm
