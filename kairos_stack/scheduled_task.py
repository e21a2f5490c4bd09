"""One task of tasks.yaml: its function, log group, schedule and alarms (failure, freshness, gauges).

The schedule runs as the stage's one Scheduler role (:mod:`kairos_stack.scheduler_role`), not a role
of its own: seven resources a task, plus an alarm per gauge and its freshness alarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kairos.plan import ResourceDimension, TaskPlan
from kairos_runtime.tables import TableId
from kairos_stack.alarms import PlannedAlarm, seconds

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


# Values every task of a synth shares, made once: each is a round trip to CDK's Node.js process, and
# none is bound to a construct (docs/adr/0185-synth-speed-round-trips.md).
@cache
def lambda_principal() -> iam.ServicePrincipal:
    return iam.ServicePrincipal("lambda.amazonaws.com")


@cache
def schedule_expression(expression: str, timezone: str) -> scheduler.ScheduleExpression:
    return scheduler.ScheduleExpression.expression(expression, time_zone=cdk.TimeZone.of(timezone))


_DESTINATIONS: dict[int, tuple[sqs.IQueue, destinations.SqsDestination]] = {}
"""By the queue's identity; the queue is kept with its destination, so the identity stays its own."""


def failure_destination(queue: sqs.IQueue) -> destinations.SqsDestination:
    if id(queue) not in _DESTINATIONS:
        _DESTINATIONS[id(queue)] = (queue, destinations.SqsDestination(queue))
    return _DESTINATIONS[id(queue)][1]


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
        schedule_role: iam.IRole,
        dead_letter_queue: sqs.IQueue,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        alarm_action_arn: str,
        table_names: Mapping[TableId, str],
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
            assumed_by=lambda_principal(),
            description=f"Kairos task {plan.name}: its own logs, traces and declared data"[:1000],
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=plan.function_description,
            # Named, so the stage's one Scheduler role can invoke it by pattern (docs/adr/0181).
            function_name=plan.function_name,
            runtime=LAMBDA_RUNTIMES[plan.runtime],
            architecture=ARCHITECTURES[plan.architecture],
            handler=plan.handler,
            code=code,
            role=self.role,
            layers=list(layers),
            memory_size=plan.memory,
            timeout=seconds(plan.timeout),
            environment=plan.function_environment(table_names),
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            retry_attempts=plan.async_retry_attempts,
            # A queued invocation is as stale as a late delivery: same limit as the schedule's.
            max_event_age=seconds(plan.lambda_max_event_age_seconds),
            on_failure=failure_destination(dead_letter_queue),
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description=f"{plan.name}: {plan.schedule_expression} ({plan.timezone})",
            schedule=schedule_expression(plan.schedule_expression, plan.timezone),
            schedule_group=schedule_group,
            enabled=plan.enabled,
            target=targets.LambdaInvoke(
                self.function,
                role=schedule_role,
                input=scheduler.ScheduleTargetInput.from_object(dict(plan.input_template)),
                dead_letter_queue=dead_letter_queue,
                retry_attempts=plan.scheduler_retry_attempts,
                max_event_age=seconds(plan.max_event_age_seconds),
            ),
        )
        resource_names: dict[ResourceDimension, str] = {"FunctionName": self.function.function_name}
        self.alarms: dict[str, PlannedAlarm] = {
            alarm.construct_id: PlannedAlarm(
                self, alarm.construct_id, plan=alarm, alarm_action_arn=alarm_action_arn, resource_names=resource_names
            )
            for alarm in plan.alarms
        }
        self.failure_alarm = self.alarms[plan.failure_alarm.construct_id]
        freshness = plan.freshness.alarm
        self.freshness_alarm = self.alarms[freshness.construct_id] if freshness is not None else None
