"""One stage's core stack: the tables, the alarm topic, the dead-letter queue, the schedule group,
the one Scheduler role, which every shard stack (:mod:`kairos_stack.shard_stack`) uses, and the
stage's dashboard pages.

The core stack names no shard resource, so references go one way only (core → shard, as CloudFormation
exports) and no dependency cycle can form: the Scheduler role invokes functions by their name pattern,
the queue and the topic grant by service and source, never by a shard's ARN, and the dashboard names
the shards' alarms by the names the plan gave them (docs/adr/0180).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from kairos.config import NODE_RUNTIMES, PYTHON_RUNTIMES
from kairos.plan import FAN_OUT_OBJECT_EXPIRY_DAYS, STAGE_TAG, StagePlan
from kairos_runtime.registry import Access, Partitions
from kairos_runtime.tables import TableId
from kairos_stack.alarm_topic import AlarmTopic
from kairos_stack.data_tables import DataTables
from kairos_stack.dead_letter_queue import DeadLetterQueue
from kairos_stack.fan_out_bucket import FanOutBucket
from kairos_stack.scheduler_role import SchedulerRole
from kairos_stack.stage_dashboard import StageDashboard

NEWEST_RUNTIMES = {PYTHON_RUNTIMES[-1], NODE_RUNTIMES[-1]}
R = logs.RetentionDays
LOG_RETENTION: dict[int, logs.RetentionDays] = {
    1: R.ONE_DAY, 3: R.THREE_DAYS, 5: R.FIVE_DAYS, 7: R.ONE_WEEK, 14: R.TWO_WEEKS, 30: R.ONE_MONTH,
    60: R.TWO_MONTHS, 90: R.THREE_MONTHS, 120: R.FOUR_MONTHS, 150: R.FIVE_MONTHS, 180: R.SIX_MONTHS,
    365: R.ONE_YEAR, 400: R.THIRTEEN_MONTHS, 545: R.EIGHTEEN_MONTHS, 731: R.TWO_YEARS, 1096: R.THREE_YEARS,
    1827: R.FIVE_YEARS, 2192: R.SIX_YEARS, 2557: R.SEVEN_YEARS, 2922: R.EIGHT_YEARS, 3288: R.NINE_YEARS,
    3653: R.TEN_YEARS,
}  # fmt: skip


# What a declared access allows: the item and query operations tasks use, and nothing that reads a
# whole table (Scan), deletes, or reaches streams. CDK's grant_*_data would allow all of those.
READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem")
INDEX_ACTIONS = ("dynamodb:Query",)
"""An index can only be queried: a write on an index ARN authorizes nothing."""


def table_actions(access: Access) -> tuple[str, ...]:
    if access is Access.QUERY_INDEXES:
        return INDEX_ACTIONS
    return (READ_ACTIONS if access.allows_read() else ()) + (WRITE_ACTIONS if access.allows_write() else ())


def leading_keys(prefixes: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    """The condition limiting item actions to partitions whose key starts with one of ``prefixes``.

    ``ForAllValues``, as DynamoDB requires for ``dynamodb:LeadingKeys``: every key a request touches
    (each item of a batch) must match.
    """
    return {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{prefix}*" for prefix in prefixes]}}


def table_statements(
    table: dynamodb.ITable, access: Access, partitions: Partitions | None, *, indexes: Sequence[str]
) -> list[iam.PolicyStatement]:
    """One statement per access on the table, each with its own partitions, and Query on its indexes.

    The indexes are named one by one (``indexes``, from the table's design), not ``<table>/index/*``:
    no wildcard to acknowledge, and none that a later index would widen.

    Index queries carry no LeadingKeys condition: AWS defines that key as the table's partition key,
    and an index query names the index's partition key (``gsi1pk``) instead; see the README's Security
    section. A partition-scoped read gets that Query only when its task type declares
    ``Partitions.query_indexes`` (ADR 0203).
    """
    statements = []
    for allowed, actions, prefixes in (
        (access.allows_read(), READ_ACTIONS, partitions.read if partitions else ()),
        (access.allows_write(), WRITE_ACTIONS, partitions.write if partitions else ()),
    ):
        if allowed:
            statements.append(
                iam.PolicyStatement(
                    actions=list(actions),
                    resources=[table.table_arn],
                    conditions=leading_keys(prefixes) if prefixes else None,
                )
            )
    # A partition-scoped read reaches the indexes only when declared (Partitions.query_indexes): an
    # index query is not limited to the task's partitions.
    queries_indexes = access is Access.QUERY_INDEXES or (
        access.allows_read() and (partitions is None or partitions.query_indexes)
    )
    if queries_indexes and indexes:
        statements.append(
            iam.PolicyStatement(
                actions=list(INDEX_ACTIONS), resources=[f"{table.table_arn}/index/{index}" for index in indexes]
            )
        )
    return statements


class KairosStageStack(cdk.Stack):
    """The stage's core stack: everything its tasks share, whichever shard stack they live in."""

    def __init__(self, scope: Construct, construct_id: str, *, plan: StagePlan, **kwargs: object) -> None:
        # The stack's own tag is given here: with @aws-cdk/core:explicitStackTags (cdk.json), Tags.of(stack)
        # tags only the resources in its template, no longer the CloudFormation stack itself.
        super().__init__(scope, construct_id, tags={STAGE_TAG: plan.stage}, **kwargs)  # type: ignore[arg-type]
        self.plan = plan
        cdk.Tags.of(self).add(STAGE_TAG, plan.stage)
        removal_policy = cdk.RemovalPolicy.RETAIN if plan.retain_data else cdk.RemovalPolicy.DESTROY

        self.tables = DataTables(self, "Tables", designs=plan.tables, retain_data=plan.retain_data)
        # Every alarm has a destination in every stage, so subscribing later needs no redeploy.
        self.alarm_topic = AlarmTopic(self, "Alarms", emails=plan.alarm_emails, existing_topic_arn=plan.alarm_topic_arn)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic.topic_arn, description="Subscribe here")
        self.dead_letter_queue = DeadLetterQueue(
            self,
            "DeadLetters",
            alarm=plan.dead_letter_alarm,
            alarm_action_arn=self.alarm_topic.topic.topic_arn,
            removal_policy=removal_policy,
        )
        self.schedule_group = scheduler.ScheduleGroup(
            self, "ScheduleGroup", schedule_group_name=plan.schedule_group_name, removal_policy=removal_policy
        )
        self.scheduler_role = SchedulerRole(
            self, "SchedulerRole", stage=plan.stage, schedule_group_arn=self.schedule_group.schedule_group_arn
        )
        self._grant_scheduler()
        # Where a fan-out plan past an inline Map's limits keeps its batches; shards grant by task prefix.
        self.fan_out_bucket = (
            FanOutBucket(self, "FanOutObjects", expiry_days=FAN_OUT_OBJECT_EXPIRY_DAYS, removal_policy=removal_policy)
            if plan.has_fan_out
            else None
        )
        self.dashboards = [
            StageDashboard(
                self,
                page.construct_id,
                plan=page,
                resource_names={"QueueName": self.dead_letter_queue.queue.queue_name},
            )
            for page in plan.dashboards
        ]
        self._acknowledge_findings()
        warning = plan.alarm_warning()
        if warning:
            # A warning, not an error: cdk synth (and cdk-nag) go on, and the template is the same.
            cdk.Annotations.of(self).add_warning_v2("kairos:alarms-unsubscribed", warning)

    @property
    def table_names(self) -> dict[TableId, str]:
        return {table_id: table.table_name for table_id, table in self.tables.items()}

    def _grant_scheduler(self) -> None:
        role = self.scheduler_role.role
        # By name pattern, not by ARN: one role serves every shard, and naming shard functions here would
        # make the core stack depend on its shards (a cycle), and outgrow IAM's policy size at 1,000 tasks.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[
                    self.format_arn(
                        service="lambda",
                        resource="function",
                        resource_name=self.plan.function_name_pattern,
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        # What a schedule's dead-letter delivery needs, and no more (grant_send_messages adds two reads).
        iam.Grant.add_to_principal(
            grantee=role, actions=["sqs:SendMessage"], resource_arns=[self.dead_letter_queue.queue.queue_arn]
        )

    def _acknowledge_findings(self) -> None:
        """The cdk-nag AwsSolutions findings this stack accepts, each on the construct that carries it."""
        # cdk-nag writes a pseudo parameter as <AWS::Region>, a stage's own region and account as they are.
        region = "<AWS::Region>" if cdk.Token.is_unresolved(self.region) else self.region
        account = "<AWS::AccountId>" if cdk.Token.is_unresolved(self.account) else self.account
        cdk.Validations.of(self.scheduler_role).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:lambda:{region}:"
                f"{account}:function:{self.plan.function_name_pattern}]",
                reason=(
                    f"Scheduler invokes the functions of stage {self.plan.stage} only, by the name every one of "
                    "them is given (kairos_<stage>_<task>; neither name has an underscore)"
                ),
            )
        )
        if not self.plan.retain_data:
            cdk.Validations.of(self.tables).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions::AwsSolutions-DDB3",
                    reason=(
                        f"Stage {self.plan.stage} keeps no data worth restoring: "
                        "its tables are destroyed with the stack"
                    ),
                )
            )
