"""One shard stack of a stage: a ``ScheduledTask`` per task the plan assigns to it, and the grants
between them and the core stack's tables, queue and parameters (docs/adr/0180-stage-shards.md).

References go from here to the core stack only (CloudFormation imports of its exports); nothing in
the core stack names a shard's resource, so the stacks deploy core first, then shards, without a cycle.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from kairos.plan import ShardPlan, StagePlan
from kairos_runtime.tables import TABLE_DESIGNS, TableId
from kairos_stack.code_assets import CodeAssets
from kairos_stack.scheduled_task import ScheduledTask
from kairos_stack.stage_stack import LOG_RETENTION, NEWEST_RUNTIMES, STAGE_TAG, KairosStageStack, table_statements

TASK_TAG = "kairos:task"


class KairosShardStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: StagePlan,
        shard: ShardPlan,
        core: KairosStageStack,
        code_assets: CodeAssets,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, tags={STAGE_TAG: plan.stage}, **kwargs)  # type: ignore[arg-type]
        self.plan = plan
        self.shard = shard
        self.core = core
        cdk.Tags.of(self).add(STAGE_TAG, plan.stage)
        # Deployed after the core, even when empty (an empty shard references nothing of it).
        self.add_stack_dependency(core, "a shard's tasks use the core stack's tables, queue, topic and role")
        removal_policy = cdk.RemovalPolicy.RETAIN if plan.retain_data else cdk.RemovalPolicy.DESTROY
        # Imported immutable: CDK's LambdaInvoke would otherwise add each function's ARN to the role's
        # policy in the core stack, which would then depend on every shard (the core grants by pattern).
        schedule_role = iam.Role.from_role_arn(self, "SchedulerRole", core.scheduler_role.role.role_arn, mutable=False)
        table_names = core.table_names
        self.tasks: dict[str, ScheduledTask] = {}
        for task_plan in shard.tasks:
            task = ScheduledTask(
                self,
                task_plan.name,
                plan=task_plan,
                code=code_assets.code_for(self, task_plan),
                layers=code_assets.layers_for(self, task_plan),
                schedule_group=core.schedule_group,
                schedule_role=schedule_role,
                dead_letter_queue=core.dead_letter_queue.queue,
                log_retention=LOG_RETENTION[plan.log_retention_days],
                removal_policy=removal_policy,
                alarm_action=core.alarm_topic.action,
                table_names=table_names,
            )
            cdk.Tags.of(task).add(TASK_TAG, task_plan.name)
            self._grant_tables(task)
            self._grant_parameters(task)
            self._acknowledge_findings(task)
            self.tasks[task_plan.name] = task
        if not shard.tasks:
            # A stack needs a resource; an empty shard stays deployed, so a task hashed here later
            # finds its stack, and none is left behind when its last task goes.
            cdk.CfnWaitConditionHandle(self, "Empty")

    def _acknowledge_findings(self, task: ScheduledTask) -> None:
        """The cdk-nag findings a task's constructs carry, acknowledged on those constructs only.

        Scoped to the task (not the stack), each acknowledgement walks one task's subtree: linear in
        the number of tasks (docs/adr/0182-synth-speed.md).
        """
        role = cdk.Validations.of(task.role)
        # Scoped to the function's role, so a wildcard added anywhere else still fails the synth.
        role.acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions",
            )
        )
        if task.plan.runtime not in NEWEST_RUNTIMES:
            cdk.Validations.of(task.function).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions::AwsSolutions-L1",
                    reason=f"{task.plan.name} pins {task.plan.runtime} in tasks.yaml, where its runtime is chosen",
                )
            )

    def _grant_parameters(self, task: ScheduledTask) -> None:
        for index, name in enumerate(task.plan.ssm_parameters):
            parameter = ssm.StringParameter.from_secure_string_parameter_attributes(
                task, f"Parameter{index}", parameter_name=name
            )
            parameter.grant_read(task.function)

    def _grant_tables(self, task: ScheduledTask) -> None:
        function = task.function
        runs = self.core.tables.table(TableId.TASK_RUNS)
        # A task may read and write its own run records and no one else's: the partition key is TASK#<name>.
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            resource_arns=[runs.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"TASK#{task.plan.name}"]}},
        )
        for table_id, access in task.plan.tables.items():
            table = self.core.tables.table(table_id)
            indexes = [index.name for index in TABLE_DESIGNS[table_id].indexes]
            for statement in table_statements(table, access, task.plan.partitions.get(table_id), indexes=indexes):
                function.add_to_role_policy(statement)
