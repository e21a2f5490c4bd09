"""The stage's alarm destination: an encrypted, SSL-only SNS topic of its own, or an existing topic.

Every stage has one and every alarm notifies it, so a subscriber (e-mail, chat, paging) can be added
later without a redeploy; ``alarm_email`` subscribes addresses at deploy time.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class AlarmTopic(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, emails: Sequence[str], existing_topic_arn: str | None
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic: sns.ITopic
        if existing_topic_arn is not None:
            # Its policy, key and subscribers are managed where it lives; this stack only publishes to it.
            self.topic = sns.Topic.from_topic_arn(self, "Topic", existing_topic_arn)
        else:
            self.topic = self._own_topic(emails)
        self.action = cloudwatch_actions.SnsAction(self.topic)

    def _own_topic(self, emails: Sequence[str]) -> sns.Topic:
        # CloudWatch cannot publish to a topic under the AWS-managed SNS key, so the topic gets its own.
        key = kms.Key(self, "Key", enable_key_rotation=True, description="Kairos alarm topic")
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
        key.grant(cloudwatch_principal, "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(self, "Topic", enforce_ssl=True, master_key=key)
        topic.grant_publish(cloudwatch_principal)
        for email in emails:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        self.key = key
        return topic
