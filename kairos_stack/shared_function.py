"""A function several tasks of a shard run on (``shared_function`` in tasks.yaml): its role, log group,
event invoke config and the alarm on events Lambda dropped (docs/adr/0183-shared-functions.md).

The tasks keep their own schedules and alarms (:mod:`kairos_stack.shared_task`); the stack grants the
function what its tasks declare (equal by the grouping rule) and each task's run records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kairos.plan import ResourceDimension, SharedFunctionPlan
from kairos_runtime.tables import TableId
from kairos_stack.alarms import PlannedAlarm, seconds
from kairos_stack.scheduled_task import ARCHITECTURES, LAMBDA_RUNTIMES, failure_destination, lambda_principal


class SharedFunction(Construct):
    """The Lambda function, role and log group of a :class:`~kairos.plan.SharedFunctionPlan`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: SharedFunctionPlan,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion] = (),
        dead_letter_queue: sqs.IQueue,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        alarm_action_arn: str,
        table_names: Mapping[TableId, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.plan = plan
        # One log group for its tasks: each line names its task (Powertools' and the Node logger's
        # `task` key), which `kairos logs NAME` filters on.
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=lambda_principal(),
            description=f"Kairos shared function {plan.function_name}: its logs, traces and its tasks' data"[:1000],
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=plan.description,
            # Under the stage's prefix, so the stage's one Scheduler role invokes it (docs/adr/0181).
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
            max_event_age=seconds(plan.lambda_max_event_age_seconds),
            on_failure=failure_destination(dead_letter_queue),
        )
        resource_names: dict[ResourceDimension, str] = {"FunctionName": self.function.function_name}
        self.alarms: dict[str, PlannedAlarm] = {
            alarm.construct_id: PlannedAlarm(
                self, alarm.construct_id, plan=alarm, alarm_action_arn=alarm_action_arn, resource_names=resource_names
            )
            for alarm in plan.alarms
        }
