"""The one role EventBridge Scheduler assumes for every schedule of a stage (docs/adr/0181).

Only this stage's schedules may assume it (the trust policy's source account and schedule-group ARN),
and the stack grants it exactly two things: invoking the stage's functions, by the name pattern the
plan gives them (:attr:`~kairos.plan.StagePlan.function_name_pattern`), and sending to the stage's
dead-letter queue. CDK's ``LambdaInvoke`` would otherwise create a role and a policy per schedule.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct


class SchedulerRole(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: str, schedule_group_arn: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com").with_conditions(
                # As CDK's own per-target roles: Scheduler names the schedule group as the source.
                {"StringEquals": {"aws:SourceAccount": stack.account, "aws:SourceArn": schedule_group_arn}}
            ),
            description=f"Kairos stage {stage}: EventBridge Scheduler invokes the stage's task functions",
        )
