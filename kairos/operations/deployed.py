"""Finding a deployed stage: its physical names, read from CloudFormation.

A stage is its core stack ``kairos-<stage>`` (:attr:`~kairos.plan.StagePlan.stack_name`) and its
shard stacks (:attr:`~kairos.plan.StagePlan.stack_names`, docs/adr/0180-stage-shards.md). Each is read
with two kinds of request, whatever the number of tasks: ``GetTemplate`` (the deployed template, whose
resources carry the construct path CDK records as ``aws:cdk:path`` metadata) and ``ListStackResources``
(logical id to physical id, 100 a page). Each resource is matched by its construct path, stack name
included, which the plan decides (:func:`task_paths`: the task's shard stack, then its construct),
never by one stack output per task: CloudFormation allows 200 outputs a stack.

AWS is reached with the user's own configuration: ``--profile`` / ``--region`` when given, else the
usual chain (environment, shared files, SSO, instance roles); botocore honours ``AWS_ENDPOINT_URL``
and ``AWS_ENDPOINT_URL_<SERVICE>``, so a local emulator (moto) works without code here knowing.

Other commands use it as::

    stage = resolve_stage(plan, AwsAccess(profile=None, region=None))
    stage.task("crypto-markets").function_name
    stage.client("lambda")

Every failure (no credentials, no such stack, a stack deployed from another tasks.yaml) is a
:class:`DeployedStageError` whose message is one line for the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kairos.plan import StagePlan, TaskPlan
from kairos_runtime.tables import TABLE_DESIGNS, TableId

CDK_PATH = "aws:cdk:path"
# Construct ids the stack gives each part (kairos_stack.scheduled_task, .stage_stack, .data_tables,
# .dead_letter_queue); tests/infra/test_deployed_paths.py holds the synthesized template to them.
FUNCTION_PATH = "{task}/Function/Resource"
LOG_GROUP_PATH = "{task}/Logs/Resource"
SCHEDULE_PATH = "{task}/Schedule/Resource"
STATE_MACHINE_PATH = "{task}/StateMachine/Resource"
TABLE_PATH = "Tables/{construct_id}/Resource"
DEAD_LETTER_QUEUE_PATH = "DeadLetters/Queue/Resource"
SHARED_FUNCTION_ID = "SharedFunction"
"""How a shared function's construct id begins (:attr:`kairos.plan.SharedFunctionPlan.construct_id`)."""


class DeployedStageError(RuntimeError):
    """The stage cannot be read as deployed; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class AwsAccess:
    """How to reach AWS: a named profile and a region, each ``None`` for the usual chain."""

    profile: str | None = None
    region: str | None = None

    def session(self, plan: StagePlan) -> Any:
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            # A region from the command line wins over the stage's own (tasks.yaml), then the chain.
            return boto3.Session(profile_name=self.profile, region_name=self.region or plan.region)
        except BotoCoreError as error:
            raise DeployedStageError(f"cannot use the AWS configuration: {error}") from None


@dataclass(frozen=True, slots=True)
class DeployedTask:
    name: str
    function_name: str
    log_group_name: str
    schedule_name: str
    state_machine_arn: str | None = None
    """A fan-out task's state machine (what its schedule starts); None for a task that is one function."""
    shared: bool = False
    """The function (and so its log group) is shared with other tasks (docs/adr/0183-shared-functions.md):
    its lines are the task's where they name it."""


@dataclass(frozen=True, slots=True)
class DeployedStage:
    """A stage as deployed: the plan it was checked against, and the physical name of each part."""

    plan: StagePlan
    tasks: Mapping[str, DeployedTask]
    table_names: Mapping[TableId, str]
    dead_letter_queue_url: str
    session: Any = field(repr=False, compare=False)

    @property
    def stack_name(self) -> str:
        return self.plan.stack_name

    @property
    def schedule_group_name(self) -> str:
        return self.plan.schedule_group_name

    def task(self, name: str) -> DeployedTask:
        return self.tasks[name]

    def client(self, service: str, **options: Any) -> Any:
        """A boto3 client of the stage's session; ``options`` as boto3's (``config=...``)."""
        return self.session.client(service, **options)

    def runs_table(self) -> Any:
        """The TaskRuns table as a boto3 resource."""
        return self.session.resource("dynamodb").Table(self.table_names[TableId.TASK_RUNS])


FAN_OUT_STEP = "PlanFunction"
"""A fan-out task's function and log group, as the operations commands see them: its planner's, which
owns the slot's run record (kairos_stack/fan_out_task.py)."""


def task_paths(plan: StagePlan, task: TaskPlan) -> dict[str, str]:
    """The construct paths (stack name first) of a task's function, log group and schedule (and a
    fan-out task's state machine)."""
    stack = plan.task_stack_name(task)
    within = f"{task.name}/{FAN_OUT_STEP}" if task.fan_out is not None else task.name
    if task.shared_function is not None:
        within = plan.shared_function(task.shared_function).construct_id
    paths = {
        "function": f"{stack}/" + FUNCTION_PATH.format(task=within),
        "log_group": f"{stack}/" + LOG_GROUP_PATH.format(task=within),
        "schedule": f"{stack}/" + SCHEDULE_PATH.format(task=task.name),
    }
    if task.fan_out is not None:
        paths["state_machine"] = f"{stack}/" + STATE_MACHINE_PATH.format(task=task.name)
    return paths


StackContents = tuple[Mapping[str, Any], Mapping[str, str]]
"""A deployed stack's template and its logical-to-physical ids."""


def physical_by_path(stack_name: str, template: Mapping[str, Any], physical: Mapping[str, str]) -> dict[str, str]:
    """Construct path (stack name first) to physical id, for every resource of the deployed template."""
    prefix = f"{stack_name}/"
    by_path = {}
    for logical_id, resource in template.get("Resources", {}).items():
        path = str(resource.get("Metadata", {}).get(CDK_PATH, ""))
        if path.startswith(prefix) and logical_id in physical:
            by_path[path] = physical[logical_id]
    return by_path


def match_stage(plan: StagePlan, stacks: Mapping[str, StackContents], *, session: Any = None) -> DeployedStage:
    """The deployed stage, once every task of the plan is found in its shard and the stage has no other.

    Pure: ``stacks`` maps each of the stage's stack names to its deployed template and physical ids.
    """
    by_path: dict[str, str] = {}
    for stack_name, (template, physical) in stacks.items():
        found = physical_by_path(stack_name, template, physical)
        if not found:
            raise DeployedStageError(
                f"stack {stack_name} has no resource with CDK's construct path ({CDK_PATH} metadata): "
                "it was not deployed by kairos, or with path metadata turned off"
            )
        by_path |= found
    planned = {task.name for task in plan.tasks}
    # A task's function anywhere in the stage, in its own shard or not (a file with another shard count).
    # A shared function's construct is named for no task; its tasks are found by their schedules.
    deployed_tasks = {
        path.split("/")[1]
        for path in by_path
        if path.endswith("/Function/Resource") and not path.split("/")[1].startswith(SHARED_FUNCTION_ID)
    } | {path.split("/")[1] for path in by_path if path.endswith("/Schedule/Resource")}
    missing, extra = sorted(planned - deployed_tasks), sorted(deployed_tasks - planned)
    if missing or extra:
        differences = ([f"not deployed: {', '.join(missing)}"] if missing else []) + (
            [f"deployed but not in the file: {', '.join(extra)}"] if extra else []
        )
        raise DeployedStageError(
            f"stage {plan.stage} was deployed from a different tasks.yaml ({'; '.join(differences)}): "
            "deploy this file, or pass the file it was deployed from (--file)"
        )
    tasks = {}
    for task in plan.tasks:
        paths = task_paths(plan, task)
        absent = [kind for kind, path in paths.items() if path not in by_path]
        if absent:
            raise DeployedStageError(
                f"task {task.name} in stack {plan.task_stack_name(task)} lacks its {', '.join(absent)}: "
                "it was deployed by another version of kairos or another shard count; deploy again"
            )
        tasks[task.name] = DeployedTask(
            task.name,
            by_path[paths["function"]],
            by_path[paths["log_group"]],
            by_path[paths["schedule"]],
            by_path[paths["state_machine"]] if "state_machine" in paths else None,
            shared=task.shared_function is not None,
        )
    tables = {}
    for table_id, design in TABLE_DESIGNS.items():
        path = f"{plan.stack_name}/" + TABLE_PATH.format(construct_id=design.construct_id)
        if path not in by_path:
            raise DeployedStageError(f"stack {plan.stack_name} has no {design.construct_id} table: deploy again")
        tables[table_id] = by_path[path]
    queue = by_path.get(f"{plan.stack_name}/{DEAD_LETTER_QUEUE_PATH}", "")
    return DeployedStage(plan, tasks, tables, queue, session)


def resolve_stage(plan: StagePlan, access: AwsAccess) -> DeployedStage:
    """Read the stage's stacks from CloudFormation and match them to ``plan`` (see the module docstring)."""
    from botocore.exceptions import BotoCoreError

    session = access.session(plan)
    try:
        cloudformation = session.client("cloudformation")
    except BotoCoreError as error:
        raise DeployedStageError(f"cannot reach AWS to read stack {plan.stack_name}: {error}") from None
    stacks = {name: _read_stack(plan, session, cloudformation, name) for name in plan.stack_names}
    return match_stage(plan, stacks, session=session)


def _read_stack(plan: StagePlan, session: Any, cloudformation: Any, stack_name: str) -> StackContents:
    """One deployed stack's template and physical ids; a missing stack is a stage not (fully) deployed."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        template = cloudformation.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
        physical = {
            summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
            for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name)
            for summary in page["StackResourceSummaries"]
        }
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", error))
        if "does not exist" in message:
            region = session.region_name or "the default region"
            raise DeployedStageError(
                f"stage {plan.stage} is not deployed: no stack {stack_name} in {region} "
                f"(deploy it with `npx cdk deploy --all -c stage={plan.stage}`, pick the account with --profile / "
                "--region, or use --local)"
            ) from None
        raise DeployedStageError(f"cannot read stack {stack_name}: {message}") from None
    except BotoCoreError as error:
        raise DeployedStageError(f"cannot reach AWS to read stack {stack_name}: {error}") from None
    if isinstance(template, str):  # a template deployed as YAML; CDK writes JSON, which boto3 decodes
        import json

        try:
            template = json.loads(template)
        except ValueError:
            raise DeployedStageError(f"stack {stack_name} has a template kairos did not write") from None
    return template, physical


def aws_error(error: BaseException) -> str | None:
    """One line for an AWS failure during a command (``None`` when it is not one)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', error)}"
    if isinstance(error, BotoCoreError):
        return str(error)
    return None
