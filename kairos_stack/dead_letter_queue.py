"""Where deliveries go that neither Scheduler nor Lambda's asynchronous retries could complete."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kairos.plan import AlarmPlan
from kairos_stack.alarms import PlannedAlarm


class DeadLetterQueue(Construct):
    """An SSL-only, encrypted queue keeping messages 14 days (SQS's maximum), alarming as the plan says."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alarm: AlarmPlan,
        alarm_action_arn: str,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "Queue",
            # Retained where the stage retains data: its messages are the failed deliveries.
            removal_policy=removal_policy,
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            retention_period=cdk.Duration.days(14),
        )
        cdk.Validations.of(self.queue).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions::AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue of the schedules and of failed invocations",
            )
        )
        self.alarm = PlannedAlarm(
            self,
            alarm.construct_id,
            plan=alarm,
            alarm_action_arn=alarm_action_arn,
            resource_names={"QueueName": self.queue.queue_name},
        )
