"""A task that runs on a shared function: its own schedule and alarms, no function of its own
(docs/adr/0183-shared-functions.md). The schedule sends the task's event, which names the task; the
function runs it only if the task is one of its own (``KAIROS_TASKS``)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kairos.plan import ResourceDimension, TaskPlan
from kairos_stack.alarms import PlannedAlarm


class SharedTask(Construct):
    """The schedule (targeting the shared ``function``) and the alarms of one task."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: TaskPlan,
        function: lambda_.IFunction,
        schedule_group: scheduler.IScheduleGroup,
        schedule_role: iam.IRole,
        dead_letter_queue: sqs.IQueue,
        alarm_action_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.plan = plan
        self.function = function
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
                function,
                role=schedule_role,
                input=scheduler.ScheduleTargetInput.from_object(dict(plan.input_template)),
                dead_letter_queue=dead_letter_queue,
                retry_attempts=plan.scheduler_retry_attempts,
                max_event_age=cdk.Duration.seconds(plan.max_event_age_seconds),
            ),
        )
        resource_names: dict[ResourceDimension, str] = {"FunctionName": function.function_name}
        self.alarms: dict[str, PlannedAlarm] = {
            alarm.construct_id: PlannedAlarm(
                self, alarm.construct_id, plan=alarm, alarm_action_arn=alarm_action_arn, resource_names=resource_names
            )
            for alarm in plan.alarms
        }
        self.failure_alarm = self.alarms[plan.failure_alarm.construct_id]
        freshness = plan.freshness.alarm
        self.freshness_alarm = self.alarms[freshness.construct_id] if freshness is not None else None
