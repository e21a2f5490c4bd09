"""One stage's stack: composes the tables, the dead-letter queue, the schedule group and a
``ScheduledTask`` per task, and owns the grants between them."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from kairos.config import NODE_RUNTIMES, PYTHON_RUNTIMES
from kairos.plan import StagePlan
from kairos_runtime.registry import Access, Partitions
from kairos_runtime.tables import TableId
from kairos_stack.alarm_topic import AlarmTopic
from kairos_stack.code_assets import CodeAssets
from kairos_stack.data_tables import DataTables
from kairos_stack.dead_letter_queue import DeadLetterQueue
from kairos_stack.fan_out_task import FanOutTask
from kairos_stack.scheduled_task import ScheduledTask

STAGE_TAG = "kairos:stage"
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
    table: dynamodb.ITable, access: Access, partitions: Partitions | None
) -> list[iam.PolicyStatement]:
    """One statement per access on the table, each with its own partitions, and Query on the indexes.

    Index queries carry no LeadingKeys condition: AWS defines that key as the table's partition key,
    and an index query names the index's partition key (``gsi1pk``) instead; see the README's Security
    section.
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
    if access.allows_read() or access is Access.QUERY_INDEXES:
        statements.append(iam.PolicyStatement(actions=list(INDEX_ACTIONS), resources=[f"{table.table_arn}/index/*"]))
    return statements


class KairosStageStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: StagePlan,
        code_assets: CodeAssets | None = None,
        **kwargs: object,
    ) -> None:
        # The stack's own tag is given here: with @aws-cdk/core:explicitStackTags (cdk.json), Tags.of(stack)
        # tags only the resources in its template, no longer the CloudFormation stack itself.
        super().__init__(scope, construct_id, tags={STAGE_TAG: plan.stage}, **kwargs)  # type: ignore[arg-type]
        self.plan = plan
        cdk.Tags.of(self).add(STAGE_TAG, plan.stage)
        removal_policy = cdk.RemovalPolicy.RETAIN if plan.retain_data else cdk.RemovalPolicy.DESTROY
        code_assets = code_assets or CodeAssets()

        self.tables = DataTables(self, "Tables", designs=plan.tables, retain_data=plan.retain_data)
        # Every alarm has a destination in every stage, so subscribing later needs no redeploy.
        self.alarm_topic = AlarmTopic(self, "Alarms", emails=plan.alarm_emails, existing_topic_arn=plan.alarm_topic_arn)
        alarm_action = self.alarm_topic.action
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic.topic_arn, description="Subscribe here")
        self.dead_letter_queue = DeadLetterQueue(
            self, "DeadLetters", alarm=plan.dead_letter_alarm, alarm_action=alarm_action, removal_policy=removal_policy
        )
        self.schedule_group = scheduler.ScheduleGroup(
            self, "ScheduleGroup", schedule_group_name=plan.schedule_group_name, removal_policy=removal_policy
        )
        table_names = {table_id: table.table_name for table_id, table in self.tables.items()}
        self.tasks: dict[str, ScheduledTask] = {}
        self.fan_out_tasks: dict[str, FanOutTask] = {}
        for task_plan in plan.tasks:
            if task_plan.fan_out is not None:
                fan_out = FanOutTask(
                    self,
                    task_plan.name,
                    plan=task_plan,
                    code=code_assets.code_for(task_plan),
                    layers=code_assets.layers_for(self, task_plan),
                    schedule_group=self.schedule_group,
                    dead_letter_queue=self.dead_letter_queue.queue,
                    log_retention=LOG_RETENTION[plan.log_retention_days],
                    removal_policy=removal_policy,
                    alarm_action=alarm_action,
                    table_names=table_names,
                )
                cdk.Tags.of(fan_out).add("kairos:task", task_plan.name)
                self._grant_fan_out(fan_out)
                self.fan_out_tasks[task_plan.name] = fan_out
                continue
            task = ScheduledTask(
                self,
                task_plan.name,
                plan=task_plan,
                code=code_assets.code_for(task_plan),
                layers=code_assets.layers_for(self, task_plan),
                schedule_group=self.schedule_group,
                dead_letter_queue=self.dead_letter_queue.queue,
                log_retention=LOG_RETENTION[plan.log_retention_days],
                removal_policy=removal_policy,
                alarm_action=alarm_action,
                table_names=table_names,
            )
            cdk.Tags.of(task).add("kairos:task", task_plan.name)
            self._grant_tables(task)
            self._grant_parameters(task)
            self.tasks[task_plan.name] = task
        self._acknowledge_findings()
        warning = plan.alarm_warning()
        if warning:
            # A warning, not an error: cdk synth (and cdk-nag) go on, and the template is the same.
            cdk.Annotations.of(self).add_warning_v2("kairos:alarms-unsubscribed", warning)

    def _acknowledge(self, finding: str, reason: str) -> None:
        cdk.Validations.of(self).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions::{finding}", reason=reason))

    def _acknowledge_findings(self) -> None:
        """The cdk-nag AwsSolutions findings this design accepts, each with its reason."""
        for task in self.tasks.values():
            # Scoped to the function's role, so a wildcard added anywhere else still fails the synth.
            cdk.Validations.of(task.role).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    reason="X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions",
                )
            )
            if task.plan.runtime not in NEWEST_RUNTIMES:
                cdk.Validations.of(task).acknowledge(
                    cdk.Acknowledgment(
                        id="AwsSolutions::AwsSolutions-L1",
                        reason=f"{task.plan.name} pins {task.plan.runtime} in tasks.yaml, where its runtime is chosen",
                    )
                )
            function_id = self.get_logical_id(task.function.node.default_child)  # type: ignore[arg-type]
            self._acknowledge(
                f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
                f"The schedule of {task.plan.name} may invoke its own function's versions and aliases only",
            )
        for fan_out in self.fan_out_tasks.values():
            self._acknowledge_fan_out(fan_out)
        for _, table in self.tables.items():
            table_id = self.get_logical_id(table.node.default_child)  # type: ignore[arg-type]
            self._acknowledge(
                f"AwsSolutions-IAM5[Resource::<{table_id}.Arn>/index/*]",
                "A table grant covers that table's own secondary indexes",
            )
        if not self.plan.retain_data:
            self._acknowledge(
                "AwsSolutions-DDB3",
                f"Stage {self.plan.stage} keeps no data worth restoring: its tables are destroyed with the stack",
            )

    def _acknowledge_fan_out(self, fan_out: FanOutTask) -> None:
        name = fan_out.plan.name
        for step in fan_out.steps.values():
            cdk.Validations.of(step.role).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    reason="X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions",
                )
            )
            function_id = self.get_logical_id(step.function.node.default_child)  # type: ignore[arg-type]
            cdk.Validations.of(fan_out.state_machine.role).acknowledge(
                cdk.Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
                    reason=f"The state machine of {name} may invoke its own functions' versions and aliases only",
                )
            )
        cdk.Validations.of(fan_out.state_machine.role).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason=(
                    "X-Ray and the CloudWatch Logs delivery actions a state machine's logging needs "
                    "(CreateLogDelivery and the like) support no resource-level permissions"
                ),
            )
        )
        if fan_out.plan.runtime not in NEWEST_RUNTIMES:
            cdk.Validations.of(fan_out).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions::AwsSolutions-L1",
                    reason=f"{name} pins {fan_out.plan.runtime} in tasks.yaml, where its runtime is chosen",
                )
            )

    def _grant_fan_out(self, fan_out: FanOutTask) -> None:
        """By step: the planner and the summary own the run record and read the declared tables; only
        the batch workers write them (and read SSM parameters the params name, as the planner may)."""
        plan = fan_out.plan
        for name, step in fan_out.steps.items():
            if name in ("plan", "summarize"):
                self._grant_runs(step.function, plan.name)
            for table_id, access in plan.tables.items():
                granted = access if name == "batch" or not access.allows_read() else Access.READ
                table = self.tables.table(table_id)
                for statement in table_statements(table, granted, plan.partitions.get(table_id)):
                    step.function.add_to_role_policy(statement)
            if name in ("plan", "batch"):
                for index, parameter_name in enumerate(plan.ssm_parameters):
                    ssm.StringParameter.from_secure_string_parameter_attributes(
                        step, f"Parameter{index}", parameter_name=parameter_name
                    ).grant_read(step.function)

    def _grant_runs(self, function: iam.IGrantable, task: str) -> None:
        runs = self.tables.table(TableId.TASK_RUNS)
        # A task may read and write its own run records and no one else's: the partition key is TASK#<name>.
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            resource_arns=[runs.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"TASK#{task}"]}},
        )

    def _grant_parameters(self, task: ScheduledTask) -> None:
        for index, name in enumerate(task.plan.ssm_parameters):
            parameter = ssm.StringParameter.from_secure_string_parameter_attributes(
                task, f"Parameter{index}", parameter_name=name
            )
            parameter.grant_read(task.function)

    def _grant_tables(self, task: ScheduledTask) -> None:
        function = task.function
        self._grant_runs(function, task.plan.name)
        for table_id, access in task.plan.tables.items():
            table = self.tables.table(table_id)
            for statement in table_statements(table, access, task.plan.partitions.get(table_id)):
                function.add_to_role_policy(statement)
