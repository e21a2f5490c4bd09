"""One shard stack of a stage: a ``ScheduledTask`` per task the plan assigns to it, and the grants
between them and the core stack's tables, queue and parameters (docs/adr/0180-stage-shards.md).

References go from here to the core stack only (CloudFormation imports of its exports); nothing in
the core stack names a shard's resource, so the stacks deploy core first, then shards, without a cycle.
"""

from __future__ import annotations

import hashlib
import json
import re

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from kairos.plan import SHARED_FUNCTION_TAG, STAGE_TAG, TASK_TAG, ShardPlan, StagePlan, TaskPlan
from kairos_runtime.fan_out_objects import batches_prefix, fan_out_prefix, results_prefix
from kairos_runtime.registry import Access
from kairos_runtime.tables import TABLE_DESIGNS, TableId
from kairos_stack.code_assets import CodeAssets
from kairos_stack.fan_out_task import FanOutTask
from kairos_stack.scheduled_task import ScheduledTask
from kairos_stack.shared_function import SharedFunction
from kairos_stack.shared_task import SharedTask
from kairos_stack.stage_stack import LOG_RETENTION, NEWEST_RUNTIMES, KairosStageStack, table_statements


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
        alarm_topic_arn = core.alarm_topic.topic.topic_arn
        self.tasks: dict[str, ScheduledTask] = {}
        self.fan_out_tasks: dict[str, FanOutTask] = {}
        self.shared_functions: dict[str, SharedFunction] = {}
        self.shared_tasks: dict[str, SharedTask] = {}
        self._add_shared_functions(code_assets, removal_policy)
        for task_plan in shard.tasks:
            if task_plan.shared_function is not None:
                self._add_shared_task(task_plan, schedule_role)
                continue
            if task_plan.fan_out is not None:
                # Its schedule keeps its own Scheduler role, which may start this state machine only
                # (docs/adr/0162-fan-out-in-shards.md); the stage's role invokes functions only.
                if core.fan_out_bucket is None:
                    raise ValueError(f"stage {plan.stage} has fan-out task {task_plan.name} but no fan-out bucket")
                fan_out = FanOutTask(
                    self,
                    task_plan.name,
                    plan=task_plan,
                    code=code_assets.code_for(self, task_plan),
                    layers=code_assets.layers_for(self, task_plan),
                    schedule_group=core.schedule_group,
                    dead_letter_queue=core.dead_letter_queue.queue,
                    log_retention=LOG_RETENTION[plan.log_retention_days],
                    removal_policy=removal_policy,
                    alarm_action_arn=alarm_topic_arn,
                    table_names=table_names,
                    bucket_name=core.fan_out_bucket.bucket.bucket_name,
                )
                cdk.Tags.of(fan_out).add(TASK_TAG, task_plan.name)
                self._grant_fan_out(fan_out)
                self._grant_fan_out_objects(fan_out, core.fan_out_bucket.bucket)
                self._acknowledge_fan_out(fan_out)
                self.fan_out_tasks[task_plan.name] = fan_out
                continue
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
                alarm_action_arn=alarm_topic_arn,
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

    # Shared functions (docs/adr/0183-shared-functions.md): built before the tasks whose schedules target them.
    def _add_shared_functions(self, code_assets: CodeAssets, removal_policy: cdk.RemovalPolicy) -> None:
        for function_plan in self.shard.shared_functions:
            member = self.plan.task(function_plan.tasks[0])  # the code and layers of every member
            shared = SharedFunction(
                self,
                function_plan.construct_id,
                plan=function_plan,
                code=code_assets.code_for(self, member),
                layers=code_assets.layers_for(self, member),
                dead_letter_queue=self.core.dead_letter_queue.queue,
                log_retention=LOG_RETENTION[self.plan.log_retention_days],
                removal_policy=removal_policy,
                alarm_action_arn=self.core.alarm_topic.topic.topic_arn,
                table_names=self.core.table_names,
            )
            cdk.Tags.of(shared).add(SHARED_FUNCTION_TAG, function_plan.function_name)
            self._grant_shared_function(shared)
            cdk.Validations.of(shared.role).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    reason="X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions",
                )
            )
            if function_plan.runtime not in NEWEST_RUNTIMES:
                cdk.Validations.of(shared.function).acknowledge(
                    cdk.Acknowledgment(
                        id="AwsSolutions::AwsSolutions-L1",
                        reason=f"its tasks pin {function_plan.runtime} in tasks.yaml, where their runtime is chosen",
                    )
                )
            self.shared_functions[function_plan.function_name] = shared

    def _add_shared_task(self, task_plan: TaskPlan, schedule_role: iam.IRole) -> None:
        assert task_plan.shared_function is not None
        task = SharedTask(
            self,
            task_plan.name,
            plan=task_plan,
            function=self.shared_functions[task_plan.shared_function].function,
            schedule_group=self.core.schedule_group,
            schedule_role=schedule_role,
            dead_letter_queue=self.core.dead_letter_queue.queue,
            alarm_action_arn=self.core.alarm_topic.topic.topic_arn,
        )
        cdk.Tags.of(task).add(TASK_TAG, task_plan.name)
        self.shared_tasks[task_plan.name] = task

    def _grant_shared_function(self, shared: SharedFunction) -> None:
        """Each of its tasks' run records (and no other's), and the tables and parameters they declare,
        which are the same for every one of them (they are part of what they share)."""
        plan = shared.plan
        runs = self.core.tables.table(TableId.TASK_RUNS)
        iam.Grant.add_to_principal(
            grantee=shared.function,
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            resource_arns=[runs.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"TASK#{task}" for task in plan.tasks]}},
        )
        for table_id, access in plan.tables.items():
            table = self.core.tables.table(table_id)
            indexes = [index.name for index in TABLE_DESIGNS[table_id].indexes]
            for statement in table_statements(table, access, plan.partitions.get(table_id), indexes=indexes):
                shared.function.add_to_role_policy(statement)
        for index, name in enumerate(plan.ssm_parameters):
            ssm.StringParameter.from_secure_string_parameter_attributes(
                shared, f"Parameter{index}", parameter_name=name
            ).grant_read(shared.function)

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

    def _acknowledge_fan_out(self, fan_out: FanOutTask) -> None:
        name = fan_out.plan.name
        machine_role = cdk.Validations.of(fan_out.state_machine.role)
        for step in fan_out.steps.values():
            cdk.Validations.of(step.role).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                    reason="X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions",
                )
            )
            function_id = self.get_logical_id(step.function.node.default_child)  # type: ignore[arg-type]
            machine_role.acknowledge(
                cdk.Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
                    reason=f"The state machine of {name} may invoke its own functions' versions and aliases only",
                )
            )
        machine_role.acknowledge(
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
                table = self.core.tables.table(table_id)
                indexes = [index.name for index in TABLE_DESIGNS[table_id].indexes]
                for statement in table_statements(table, granted, plan.partitions.get(table_id), indexes=indexes):
                    step.function.add_to_role_policy(statement)
            if name in ("plan", "batch"):
                for index, parameter_name in enumerate(plan.ssm_parameters):
                    ssm.StringParameter.from_secure_string_parameter_attributes(
                        step, f"Parameter{index}", parameter_name=parameter_name
                    ).grant_read(step.function)

    def _grant_fan_out_objects(self, fan_out: FanOutTask, bucket: s3.IBucket) -> None:
        """The task's own prefix of the stage's fan-out bucket, by who needs what (docs/adr/0164): the
        planner writes its batches, the machine's Distributed Map reads them (ItemReader) and writes
        its results (ResultWriter), the summary reads both; no step lists the bucket or reaches
        another task's prefix."""
        task = fan_out.plan.name
        own = bucket.arn_for_objects(f"{fan_out_prefix(task)}*")
        grants: list[tuple[iam.IGrantable, list[str], str]] = [
            (fan_out.steps["plan"].function, ["s3:PutObject"], bucket.arn_for_objects(f"{batches_prefix(task)}/*")),
            (fan_out.steps["summarize"].function, ["s3:GetObject"], own),
            (fan_out.state_machine, ["s3:GetObject"], own),
            (
                fan_out.state_machine,
                ["s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                bucket.arn_for_objects(f"{results_prefix(task)}/*"),
            ),
        ]
        for grantee, actions, resource in grants:
            iam.Grant.add_to_principal(grantee=grantee, actions=actions, resource_arns=[resource])
        # cdk-nag names each wildcard by the ARN as this stack's template writes it: the core's bucket
        # ARN through a weak reference (Fn::GetStackOutput), then the key pattern.
        bucket_arn = self._weak_reference_text(bucket.bucket_arn)
        prefix_reasons = {
            f"{batches_prefix(task)}/*": f"The planner of {task} writes its batches under its own prefix only",
            f"{fan_out_prefix(task)}*": f"{task}'s batches and Map results, under its own prefix only",
            f"{results_prefix(task)}/*": f"{task}'s Distributed Map writes its results under its own prefix only",
        }
        for construct in (fan_out.steps["plan"].role, fan_out.steps["summarize"].role, fan_out.state_machine.role):
            for pattern, reason in prefix_reasons.items():
                cdk.Validations.of(construct).acknowledge(
                    cdk.Acknowledgment(
                        id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/{pattern}]", reason=reason
                    )
                )
        machine_id = self.get_logical_id(fan_out.state_machine.node.default_child)  # type: ignore[arg-type]
        name = '{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"' + machine_id + '"}]}]}'
        executions = "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:" + name
        for pattern in (":*", "/*:*"):
            cdk.Validations.of(fan_out.state_machine).acknowledge(
                cdk.Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{executions}{pattern}]",
                    reason=(
                        f"The Distributed Map of {task} describes, stops and redrives its own child "
                        "executions only (execution:<its machine>:*), whose names Step Functions gives"
                    ),
                )
            )

    def _weak_reference_text(self, value: str) -> str:
        """How a core stack value reads in this stack's template: ``Fn::GetStackOutput`` of the output
        CDK publishes for it (``Publish/Output<the value as the core resolves it>``, ADR 0110)."""
        resolved = json.dumps(self.core.resolve(value), separators=(",", ":"))
        components = ["Publish", f"Output{resolved}"]
        digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()[:8].upper()
        output = "".join(re.sub("[^A-Za-z0-9]", "", component) for component in components) + digest
        reference = {"StackName": self.core.stack_name, "Region": self.resolve(self.core.region), "OutputName": output}
        return json.dumps({"Fn::GetStackOutput": reference}, separators=(",", ":"))

    def _grant_runs(self, function: iam.IGrantable, task: str) -> None:
        runs = self.core.tables.table(TableId.TASK_RUNS)
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
            table = self.core.tables.table(table_id)
            indexes = [index.name for index in TABLE_DESIGNS[table_id].indexes]
            for statement in table_statements(table, access, task.plan.partitions.get(table_id), indexes=indexes):
                function.add_to_role_policy(statement)
