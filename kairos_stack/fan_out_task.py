"""One fan-out task of tasks.yaml: three functions and the Step Functions state machine that runs them.

plan ─▶ planned? ─no─▶ done (the plan's record is final: skipped, or failed before any batch)
          │ yes, batches inline                 │ yes, batches in S3 ($.plan.items)
          ▼                                     ▼
        Map over the plan's batches           Distributed Map: ItemReader s3:getObject (JSON), each
        (inline, MaxConcurrency)              batch a STANDARD child execution, ResultWriter to S3
          └─ batch worker (Retry: transient errors, exponential backoff, full jitter;
                           Catch: every other error ─▶ "batch failed" {index, error}, the others go on)
          ▼                                     ▼
        summarize (writes the slot's final run record; reads a Distributed Map's results from S3)

The planner chooses the Map per slot (``kairos_runtime.fan_out.choose_map``; docs/adr/0164).

The schedule starts the state machine with the same event a function would get. Roles: each
function its own (its log group, X-Ray, and the shard stack's grants by step); the state machine's may
invoke only these three functions; the schedule's own Scheduler role may start only this state
machine (not the stage's shared role, which invokes functions only: docs/adr/0162-fan-out-in-shards.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as sfn_tasks
from constructs import Construct

from kairos.plan import FanOutPlan, FunctionPlan, ResourceDimension, RetryPlan, TaskPlan
from kairos_runtime.fan_out_objects import results_prefix
from kairos_runtime.tables import TableId
from kairos_stack.alarms import PlannedAlarm
from kairos_stack.scheduled_task import ARCHITECTURES, LAMBDA_RUNTIMES

RESULT_WRITER_V2_FLAG = "@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2"
STEP_IDS = {"plan": "PlanFunction", "batch": "BatchFunction", "summarize": "SummarizeFunction"}


class FanOutFunction(Construct):
    """One step's function, with its own role and log group (as a ``ScheduledTask``'s, without the
    asynchronous invoke config: the state machine invokes it synchronously and retries itself)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        task: TaskPlan,
        step: FunctionPlan,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        table_names: Mapping[TableId, str],
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.step = step
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Kairos task {task.name}, {step.step}: its own logs, traces and granted data"[:1000],
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"{task.function_description} ({step.step})"[:256],
            runtime=LAMBDA_RUNTIMES[task.runtime],
            architecture=ARCHITECTURES[task.architecture],
            handler=step.handler,
            code=code,
            role=self.role,
            layers=list(layers),
            memory_size=step.memory,
            timeout=cdk.Duration.seconds(step.timeout),
            environment=task.function_environment(table_names) | dict(environment or {}),
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
        )


def _retry(state: sfn_tasks.LambdaInvoke, retry: RetryPlan) -> None:
    state.add_retry(
        errors=list(retry.errors),
        interval=cdk.Duration.seconds(retry.interval_seconds),
        max_attempts=retry.max_attempts,
        backoff_rate=retry.backoff_rate,
        max_delay=cdk.Duration.seconds(retry.max_delay_seconds),
        jitter_strategy=sfn.JitterType.FULL,
    )


class _PrefixResultWriter(sfn.ResultWriterV2):
    """ResultWriter to the stage's bucket, granted by the shard stack on the task's own results prefix:
    CDK would grant ``s3:PutObject`` on the whole bucket."""

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        return []


class _PrefixResultWriterV1(sfn.ResultWriter):
    """The same writer for an app without ``useDistributedMapResultWriterV2`` (CDK then renders this
    one): the Distributed Map writes its results whichever flags the app has."""

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        return []


def _batch_states(
    scope: Construct, fan_out: FanOutPlan, function: lambda_.IFunction, *, prefix: str = ""
) -> sfn.IChainable:
    """The batch step with its Retry and its Catch, as one Map's item processor."""
    batch = sfn_tasks.LambdaInvoke(
        scope,
        f"{prefix}Batch",
        lambda_function=function,
        payload_response_only=True,
        retry_on_service_exceptions=False,
    )
    _retry(batch, fan_out.batch_retry)
    failed = sfn.Pass(
        scope,
        f"{prefix}Batch failed",
        parameters={"index.$": "$.batch.index", "error.$": "$.failure.Error"},
        comment="The batch's symbols count as failed in the summary; the other batches go on",
    )
    batch.add_catch(failed, errors=["States.ALL"], result_path="$.failure")
    return batch


ITEM_SELECTOR = {
    "event.$": "$$.Execution.Input",
    "batch.$": "$$.Map.Item.Value",
    "shared.$": "$.plan.shared",
    "rate_per_batch.$": "$.plan.rate_per_batch",
}
"""What each batch is handed: the execution's event, its item, the shared values and its rate."""


def definition(
    scope: Construct,
    fan_out: FanOutPlan,
    functions: Mapping[str, lambda_.IFunction],
    *,
    task: str,
    results_bucket: s3.IBucket,
) -> sfn.IChainable:
    """The machine's states, from the plan: plan, a choice, the inline or the Distributed Map of
    batches, and the summary."""
    plan = sfn_tasks.LambdaInvoke(
        scope,
        "Plan",
        lambda_function=functions["plan"],
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path="$.plan",
    )
    _retry(plan, fan_out.plan_retry)
    batches = sfn.Map(
        scope,
        "Batches",
        items_path="$.plan.batches",
        max_concurrency=fan_out.max_concurrency,
        item_selector=ITEM_SELECTOR,
        result_path="$.results",
    )
    batches.item_processor(_batch_states(scope, fan_out, functions["batch"]))
    distributed = sfn.DistributedMap(
        scope,
        "Distributed batches",
        comment="Past an inline Map's payload or history limits: batches from S3, each a child execution",
        item_reader=sfn.S3JsonItemReader(
            bucket_name_path=sfn.JsonPath.string_at("$.plan.items.bucket"),
            key=sfn.JsonPath.string_at("$.plan.items.key"),
        ),
        # STANDARD: a batch may run 15 minutes and retry for more; an EXPRESS child stops at 5.
        map_execution_type=sfn.StateMachineType.STANDARD,
        max_concurrency=fan_out.max_concurrency,
        item_selector=ITEM_SELECTOR,
        # A child that fails outright is counted by the summary as a failed batch, as a caught one is.
        tolerated_failure_percentage=100,
        # The stage's bucket by name (ResultWriter's paths would be read against the results, not the input).
        result_writer_v2=_PrefixResultWriter(bucket=results_bucket, prefix=results_prefix(task)),
        # Only where the app lacks the flag (CDK then renders this one; it warns it is deprecated).
        result_writer=None
        if cdk.FeatureFlags.of(scope).is_enabled(RESULT_WRITER_V2_FLAG)
        else _PrefixResultWriterV1(bucket=results_bucket, prefix=results_prefix(task)),
        result_path="$.results",
    )
    distributed.item_processor(_batch_states(scope, fan_out, functions["batch"], prefix="Distributed "))
    summarize = sfn_tasks.LambdaInvoke(
        scope,
        "Summarize",
        lambda_function=functions["summarize"],
        payload=sfn.TaskInput.from_object(
            {"event.$": "$$.Execution.Input", "plan.$": "$.plan", "results.$": "$.results"}
        ),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path="$.summary",
    )
    _retry(summarize, fan_out.summary_retry)
    batches.next(summarize)
    distributed.next(summarize)
    ended = sfn.Succeed(scope, "Ended at plan", comment="Skipped, or failed before any batch: the record is final")
    planned = (
        sfn.Choice(scope, "Planned?")
        .when(sfn.Condition.is_present("$.plan.items"), distributed, comment="The batches are in S3")
        .when(sfn.Condition.boolean_equals("$.plan.planned", True), batches)
        .otherwise(ended)
    )
    return plan.next(planned)


class FanOutTask(Construct):
    """A fan-out task: its functions, state machine (with log group and alarm) and schedule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: TaskPlan,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion] = (),
        schedule_group: scheduler.IScheduleGroup,
        dead_letter_queue: sqs.IQueue,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        alarm_action_arn: str,
        table_names: Mapping[TableId, str],
        bucket_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        if plan.fan_out is None:
            raise ValueError(f"task {plan.name} is not a fan-out task")
        self.plan = plan
        fan_out = plan.fan_out
        self.steps = {
            name: FanOutFunction(
                self,
                STEP_IDS[name],
                task=plan,
                step=step,
                code=code,
                layers=layers,
                log_retention=log_retention,
                removal_policy=removal_policy,
                table_names=table_names,
                # The planner writes a distributed plan's batches there, the summary reads its results.
                environment=fan_out.step_environment(name, bucket_name),
            )
            for name, step in fan_out.functions.items()
        }
        functions = {name: step.function for name, step in self.steps.items()}
        self.log_group = logs.LogGroup(self, "StateMachineLogs", retention=log_retention, removal_policy=removal_policy)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=fan_out.state_machine_name,
            comment=f"Kairos task {plan.name}: plan, {fan_out.max_concurrency} batches at a time, summarize",
            definition_body=sfn.DefinitionBody.from_chainable(
                definition(
                    self,
                    fan_out,
                    functions,
                    task=plan.name,
                    results_bucket=s3.Bucket.from_bucket_name(self, "FanOutBucket", bucket_name),
                )
            ),
            timeout=cdk.Duration.seconds(fan_out.execution_timeout_seconds),
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description=f"{plan.name}: {plan.schedule_expression} ({plan.timezone}), starts its state machine",
            schedule=scheduler.ScheduleExpression.expression(
                plan.schedule_expression, time_zone=cdk.TimeZone.of(plan.timezone)
            ),
            schedule_group=schedule_group,
            enabled=plan.enabled,
            target=targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object(dict(plan.input_template)),
                dead_letter_queue=dead_letter_queue,
                retry_attempts=plan.scheduler_retry_attempts,
                max_event_age=cdk.Duration.seconds(plan.max_event_age_seconds),
            ),
        )
        resource_names: dict[ResourceDimension, str] = {"StateMachineArn": self.state_machine.state_machine_arn}
        self.alarms: dict[str, PlannedAlarm] = {
            alarm.construct_id: PlannedAlarm(
                self, alarm.construct_id, plan=alarm, alarm_action_arn=alarm_action_arn, resource_names=resource_names
            )
            for alarm in plan.alarms
        }
        self.failure_alarm = self.alarms[plan.failure_alarm.construct_id]
        freshness = plan.freshness.alarm
        self.freshness_alarm = self.alarms[freshness.construct_id] if freshness is not None else None
