"""Where deliveries go that neither Scheduler nor Lambda's asynchronous retries could complete."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct


class DeadLetterQueue(Construct):
    """An SSL-only, encrypted queue keeping messages 14 days (SQS's maximum), alarming as soon as one lands."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alarm_action: cloudwatch.IAlarmAction,
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
        self.alarm = cloudwatch.Alarm(
            self,
            "MessagesAlarm",
            alarm_description="A scheduled delivery could not be completed and is waiting in the dead-letter queue",
            metric=self.queue.metric_approximate_number_of_messages_visible(period=cdk.Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarm.add_alarm_action(alarm_action)
