"""The stage's alarm notifications: an encrypted, SSL-only SNS topic with an e-mail subscription."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, email: str) -> None:
        super().__init__(scope, construct_id)
        # CloudWatch cannot publish to a topic under the AWS-managed SNS key, so the topic gets its own.
        self.key = kms.Key(self, "Key", enable_key_rotation=True, description="Kairos alarm topic")
        stack = Stack.of(self)
        # Only this account's alarms may use the key and the topic (no confused deputy).
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com").with_conditions(
            {
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {
                    "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
                },
            }
        )
        self.key.grant(cloudwatch_principal, "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "Topic", enforce_ssl=True, master_key=self.key)
        self.topic.grant_publish(cloudwatch_principal)
        self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self.action = cloudwatch_actions.SnsAction(self.topic)
