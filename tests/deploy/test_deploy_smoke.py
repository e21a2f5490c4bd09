"""Deploy smoke test: the real CDK CLI deploys the dev stage to moto's server on localhost.

Given a fresh moto server and ``cdk bootstrap``, ``cdk deploy --all -c stage=dev`` creates the
stage's core stack and its shard stacks (docs/adr/0180-stage-shards.md; the dev stage's tasks fill
several of them, which read the core's values through ``Fn::GetStackOutput``): tables, functions
(environment, layers), log groups, the dead-letter queue and, through the Scheduler models of
``moto_server_with_scheduler.py``, the schedules. The first deploy uses the CDK feature flags
cdk.json set before docs/adr/0110-cdk-feature-flags.md; ``cdk diff`` with today's cdk.json then reports
nothing, so adopting the flags changes no deployed resource. A task added to a copy of tasks.yaml
shows up in the diff and deploys as an update, with today's flags.

Everything runs as subprocesses (pytest-socket guards this process only) and talks to loopback
only. CDK bundles the assets during each deploy, from ``.bundle-cache/`` when it is warm. moto's
CloudFormation creates no alarms: those are asserted on the synthesized template.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from kairos.local.processes import free_loopback_port, stop_process, wait_for_port
from kairos.plan import StagePlan, TaskPlan
from kairos_runtime.registry import DependencyGroup
from kairos_runtime.settings import RUN_RECORD_TTL_DAYS_ENV, TASKS_ENV
from kairos_runtime.tables import TABLE_DESIGNS, TableId

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CDK = PROJECT_ROOT / "node_modules" / "aws-cdk" / "bin" / "cdk"
MOTO_SERVER = Path(__file__).with_name("moto_server_with_scheduler.py")
ACCOUNT, REGION = "123456789012", "us-east-1"
STAGE = "dev"
ADDED_TASK = "smoke-added"
SHARED_TASKS = ("smoke-shared-a", "smoke-shared-e")
"""Added with ADDED_TASK, on one shared function: their names hash to its shard, so the update
still touches one shard stack and the core."""
COMMAND_TIMEOUT = 900
KAIROS = Path(sys.executable).with_name("kairos")
PRE_ADOPTION_FLAGS = {
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/core:stackRelativeExports": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
}
"""The only flags cdk.json set before it adopted a new app's (docs/adr/0110-cdk-feature-flags.md)."""
WEAK_REFERENCES = {"@aws-cdk/core:defaultCrossStackReferences": "weak"}
"""Adopted with the others, when a stage was one stack; a stage's shards (docs/adr/0180) read the core
stack with it, so the pre-adoption app gets it too: the comparison is about the other flags."""
STAGE_TAG = {"Key": "kairos:stage", "Value": STAGE}
Service = Literal["cloudformation", "dynamodb", "lambda", "logs", "s3", "scheduler", "sns", "sqs", "stepfunctions"]
"""The AWS services the test reads the local deployment through."""


@dataclass(frozen=True)
class LocalAws:
    endpoint: str
    env: Mapping[str, str]
    workdir: Path

    def client(self, service: Service) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def kairos(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KAIROS), *args],
            cwd=PROJECT_ROOT,
            env={**self.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == expect, f"kairos {' '.join(args)}: {result.stdout}\n{result.stderr}"
        return result

    def cdk(self, *args: str, cwd: Path = PROJECT_ROOT, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(CDK), *args],
            cwd=cwd,
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        if check and result.returncode != 0:
            output = f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
            pytest.fail(f"cdk {' '.join(args)} exited {result.returncode}:\n{output}")
        return result


@pytest.fixture(scope="module")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    workdir = tmp_path_factory.mktemp("deploy-smoke")
    port = free_loopback_port()
    # localhost, not 127.0.0.1: moto mis-parses the template URL the CLI sends otherwise.
    endpoint = f"http://localhost:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_"))}
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            # No profile, no instance metadata: nothing outside this machine is asked for credentials.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "CDK_HOME": str(workdir / "cdk-home"),
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20,22",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "20,22",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    with (workdir / "moto.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        try:
            wait_for_port(port, server, name="moto server", timeout=60)
            # Before any function exists: moto's Lambda without Docker keeps its functions apart and
            # answers an Invoke with the payload it was sent (kairos invoke is asserted on that).
            configure = urllib.request.Request(  # noqa: S310 - the loopback moto server
                f"{endpoint}/moto-api/config",
                data=json.dumps({"lambda": {"use_docker": False}}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            urllib.request.urlopen(configure, timeout=30).close()  # noqa: S310 - the loopback moto server
            aws = LocalAws(endpoint, env, workdir)
            # Outside the project, so the CLI does not synthesize the app just to bootstrap.
            aws.cdk("bootstrap", f"aws://{ACCOUNT}/{REGION}", cwd=workdir)
            yield aws
        finally:
            stop_process(server, timeout=15)


def deploy_args(tasks_file: Path, outdir: Path) -> list[str]:
    return [
        "-c",
        f"stage={STAGE}",
        "-c",
        f"tasks_file={tasks_file}",
        "-c",
        "local_deploy=true",
        "--output",
        str(outdir),
        "--no-notices",
        "--all",
    ]


def pre_adoption_app(directory: Path) -> Path:
    """An app directory whose cdk.json is today's with the feature flags it had before adopting them."""
    config = json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))
    context = {key: value for key, value in config["context"].items() if not key.startswith("@aws-cdk")}
    config["context"] = {**context, **PRE_ADOPTION_FLAGS, **WEAK_REFERENCES}
    config["app"] = f'"{sys.executable}" "{PROJECT_ROOT / "app.py"}"'
    config.pop("watch", None)
    directory.mkdir()
    (directory / "cdk.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def flags_set(outdir: Path) -> set[str]:
    """The feature flags an assembly was synthesized with, from aws-cdk-lib's report in its manifest."""
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    report = manifest["artifacts"]["aws-cdk-lib/feature-flag-report"]["properties"]["flags"]
    return {name for name, flag in report.items() if "userValue" in flag}


def load_plan(tasks_file: Path) -> StagePlan:
    from kairos_stack.app_builder import stage_plan

    return stage_plan(tasks_file, STAGE)


@dataclass(frozen=True)
class Deployed:
    plan: StagePlan
    templates: Mapping[str, Mapping[str, Any]]
    """Each of the stage's stacks (core, then shards) by name, as synthesized."""
    physical: Mapping[str, Mapping[str, str]]
    """Per stack, logical id to physical id, from CloudFormation."""

    def locate(self, path: str) -> tuple[str, str]:
        """(stack, logical id) of the resource at ``path`` below whichever of the stage's stacks holds it."""
        for stack, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                if resource.get("Metadata", {}).get("aws:cdk:path") == f"{stack}/{path}":
                    return stack, str(logical_id)
        raise KeyError(path)

    def resource(self, path: str) -> Mapping[str, Any]:
        stack, logical_id = self.locate(path)
        return dict(self.templates[stack]["Resources"][logical_id])

    def paths(self) -> list[str]:
        """Every resource's construct path, below its stack, in every stack of the stage."""
        return [
            str(resource.get("Metadata", {}).get("aws:cdk:path", "")).removeprefix(f"{stack}/")
            for stack, template in self.templates.items()
            for resource in template["Resources"].values()
        ]

    def physical_id(self, path: str) -> str:
        stack, logical_id = self.locate(path)
        return self.physical[stack][logical_id]

    def of_type(self, resource_type: str) -> list[str]:
        """Physical ids of every resource of a type, in every stack."""
        return [
            self.physical[stack][key]
            for stack, template in self.templates.items()
            for key, value in template["Resources"].items()
            if value["Type"] == resource_type
        ]

    def resolved(self, value: Any, stack: str) -> Any:
        """A template value of ``stack`` with a ``Ref`` (or a core output it reads) replaced by the physical id."""
        if isinstance(value, dict) and set(value) == {"Fn::GetStackOutput"}:
            reference = value["Fn::GetStackOutput"]
            producer = reference["StackName"]
            return self.resolved(self.templates[producer]["Outputs"][reference["OutputName"]]["Value"], producer)
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return self.physical[stack][value["Ref"]]
        return value


def deployed(aws: LocalAws, plan: StagePlan, outdir: Path) -> Deployed:
    paginator = aws.client("cloudformation").get_paginator("list_stack_resources")
    templates, physical = {}, {}
    for name in plan.stack_names:
        templates[name] = json.loads((outdir / f"{name}.template.json").read_text(encoding="utf-8"))
        physical[name] = {
            summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
            for page in paginator.paginate(StackName=name)
            for summary in page["StackResourceSummaries"]
        }
    return Deployed(plan, templates, physical)


def with_added_task(source: Path, target: Path) -> Path:
    text = source.read_text(encoding="utf-8").rstrip("\n")
    text += (
        f"\n\n  - name: {ADDED_TASK}\n"
        "    description: Added by the deploy smoke test\n"
        "    task_type: simple_task_1\n"
        "    schedule: rate(15 minutes)\n"
        "    enabled: true\n"
        "    params:\n"
        "      label: smoke\n"
    )
    for name in SHARED_TASKS:
        text += (
            f"\n  - name: {name}\n"
            "    description: Shares a function, added by the deploy smoke test\n"
            "    task_type: simple_task_1\n"
            "    schedule: rate(30 minutes)\n"
            "    enabled: true\n"
            "    shared_function: true\n"
        )
    target.write_text(text + "\n", encoding="utf-8")
    return target


def zip_digests(outdir: Path) -> dict[str, str]:
    """The zips the CLI packaged for upload (it keeps them in <outdir>/.cache)."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted((outdir / ".cache").glob("*.zip"))
    }


def assert_function(aws: LocalAws, stack: Deployed, task: TaskPlan) -> list[str]:
    """Checks a task's function as Lambda reports it; returns its layer ARNs."""
    function_path = f"{task.name}/Function/Resource"
    configuration = aws.client("lambda").get_function_configuration(FunctionName=stack.physical_id(function_path))
    assert configuration["Runtime"] == task.runtime
    assert configuration["Handler"] == task.handler
    assert configuration["MemorySize"] == task.memory
    assert configuration["Timeout"] == task.timeout
    environment = configuration["Environment"]["Variables"]
    for name, value in task.environment.items():
        assert environment[name] == value, (task.name, name)
    template_environment = stack.resource(function_path)["Properties"]["Environment"]["Variables"]
    shard = stack.plan.task_stack_name(task)
    assert environment == {name: stack.resolved(value, shard) for name, value in template_environment.items()}
    assert environment[TABLE_DESIGNS[TableId.TASK_RUNS].env_var] in stack.of_type("AWS::DynamoDB::Table")
    assert RUN_RECORD_TTL_DAYS_ENV in environment
    layers = configuration.get("Layers", [])
    if task.family == "python" and task.group is DependencyGroup.CRAWLER:
        (layer,) = layers
        assert layer["CodeSize"] > 10_000_000, "the crawler layer carries akshare and pandas"
        name, version = layer["Arn"].rsplit(":", 1)
        published = aws.client("lambda").get_layer_version(LayerName=name, VersionNumber=int(version))
        assert published["CompatibleRuntimes"] == [task.runtime]
        # moto's CloudFormation keeps no CompatibleArchitectures: read them from the template.
        layer_resources = stack.templates[shard]["Resources"].values()
        (layer_resource,) = [item for item in layer_resources if item["Type"] == "AWS::Lambda::LayerVersion"]
        assert layer_resource["Properties"]["CompatibleArchitectures"] == [task.architecture]
    else:
        assert layers == [], task.name
    assert configuration["Architectures"] == [task.architecture]
    return [layer["Arn"] for layer in layers]


def assert_schedules_and_alarms(aws: LocalAws, stack: Deployed) -> None:
    scheduler = aws.client("scheduler")
    for task in stack.plan.tasks:
        schedule = scheduler.get_schedule(
            GroupName=stack.plan.schedule_group_name, Name=stack.physical_id(f"{task.name}/Schedule/Resource")
        )
        assert schedule["ScheduleExpression"] == task.schedule_expression
        assert schedule["State"] == ("ENABLED" if task.enabled else "DISABLED")
        if task.fan_out is not None:  # the schedule starts the task's state machine
            machine = stack.physical_id(f"{task.name}/StateMachine/Resource")
            assert schedule["Target"]["Arn"] == machine
            assert aws.client("stepfunctions").describe_state_machine(stateMachineArn=machine)["name"] == (
                task.fan_out.state_machine_name
            )
        else:
            function_name = (
                task.shared_function
                if task.shared_function is not None
                else stack.physical_id(f"{task.name}/Function/Resource")
            )
            assert schedule["Target"]["Arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        alarm = stack.resource(f"{task.name}/FailureAlarm/Resource")
        assert alarm["Type"] == "AWS::CloudWatch::Alarm"
        assert alarm["Properties"]["Threshold"] == 1
        # moto's CloudFormation skips alarms: the deployed template is checked instead.
        freshness = [path for path in stack.paths() if path.startswith(f"{task.name}/FreshnessAlarm/")]
        expected = task.freshness.alarm
        assert freshness == ([f"{task.name}/FreshnessAlarm/Resource"] if expected else []), task.name
        if expected is not None:
            assert stack.resource(freshness[0])["Properties"]["AlarmName"] == expected.alarm_name
    assert [stack.resource(f"{page.construct_id}/Dashboard/Resource")["Type"] for page in stack.plan.dashboards] == [
        "AWS::CloudWatch::Dashboard"
    ]


def assert_stack(aws: LocalAws, stack: Deployed, updated: frozenset[str] = frozenset()) -> None:
    """Every stack of the stage is deployed; exactly those in ``updated`` were updated since created."""
    for name in stack.plan.stack_names:
        (each,) = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        assert each["StackStatus"] == ("UPDATE_COMPLETE" if name in updated else "CREATE_COMPLETE"), name
        # Each stack carries its stage's tag, under either set of flags (explicitStackTags: ADR 0110).
        assert STAGE_TAG in each.get("Tags", []), name
    (description,) = aws.client("cloudformation").describe_stacks(StackName=stack.plan.stack_name)["Stacks"]
    assert sum(1 for shard in stack.plan.shards if shard.tasks) >= 2, "the smoke deploys several shard stacks"
    dynamodb = aws.client("dynamodb")
    tables = stack.of_type("AWS::DynamoDB::Table")
    assert len(tables) == len(stack.plan.tables)
    for name in tables:
        assert dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    log_groups = {
        group["logGroupName"]
        for page in aws.client("logs").get_paginator("describe_log_groups").paginate()
        for group in page["logGroups"]
    }
    layers = set()
    for task in stack.plan.tasks:
        if task.fan_out is not None:  # three functions and the machine's log group: tests/infra/test_fan_out_task.py
            assert stack.physical_id(f"{task.name}/StateMachineLogs/Resource") in log_groups
            continue
        if task.shared_function is not None:  # its function's, below
            continue
        assert stack.physical_id(f"{task.name}/Logs/Resource") in log_groups
        layers.update(assert_function(aws, stack, task))
    for function in stack.plan.shared_functions:
        assert stack.physical_id(f"{function.construct_id}/Logs/Resource") in log_groups
        configuration = aws.client("lambda").get_function_configuration(FunctionName=function.function_name)
        assert json.loads(configuration["Environment"]["Variables"][TASKS_ENV]) == list(function.tasks)
    crawler_shards = {
        task.shard for task in stack.plan.tasks if task.family == "python" and task.group is DependencyGroup.CRAWLER
    }
    assert len(layers) == len(crawler_shards), f"the crawler functions of a shard share one layer: {layers}"
    queue_url = stack.physical_id("DeadLetters/Queue/Resource")
    assert (
        "QueueArn"
        in aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    )
    assert_schedules_and_alarms(aws, stack)
    # Every stage's alarms notify its topic, which anyone can subscribe to from the stack's output.
    outputs = {output["OutputKey"]: output["OutputValue"] for output in description.get("Outputs", [])}
    topic = outputs["AlarmTopicArn"]
    assert aws.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]["TopicArn"] == topic


def test_dev_stage_deploys_diffs_clean_and_updates(local_aws: LocalAws) -> None:
    workdir = local_aws.workdir
    tasks_file = workdir / "tasks.yaml"
    shutil.copyfile(PROJECT_ROOT / "tasks.yaml", tasks_file)
    plan = load_plan(tasks_file)
    assert any(task.group is DependencyGroup.CRAWLER for task in plan.tasks), "dev must deploy the crawler layer"

    # Given a first deploy of the dev stage, with the feature flags cdk.json had before adopting a new app's
    first_out = workdir / "out-deploy-1"
    local_aws.cdk(
        "deploy",
        *deploy_args(tasks_file, first_out),
        "--require-approval",
        "never",
        "--method=direct",
        cwd=pre_adoption_app(workdir / "pre-adoption-app"),
    )
    assert flags_set(first_out) == set(PRE_ADOPTION_FLAGS) | set(WEAK_REFERENCES)
    assert_stack(local_aws, deployed(local_aws, plan, first_out))

    # Then a diff with today's cdk.json finds nothing, assets included: the adopted flags change no
    # resource, so none is replaced (the ADR lists the diff)
    diff_out = workdir / "out-diff-1"
    clean = local_aws.cdk("diff", *deploy_args(tasks_file, diff_out), "--method=template", "--fail")
    assert "There were no differences" in clean.stdout + clean.stderr
    assert len(flags_set(diff_out)) > len(PRE_ADOPTION_FLAGS)

    # When a task is added to (a copy of) tasks.yaml
    updated_file = with_added_task(tasks_file, workdir / "tasks-updated.yaml")
    updated_plan = load_plan(updated_file)
    assert [function.tasks for function in updated_plan.shared_functions] == [SHARED_TASKS]
    assert {updated_plan.task_stack_name(updated_plan.task(name)) for name in (ADDED_TASK, *SHARED_TASKS)} == {
        updated_plan.task_stack_name(updated_plan.task(ADDED_TASK))
    }, "the added tasks share one shard stack"
    changed = local_aws.cdk(
        "diff", *deploy_args(updated_file, workdir / "out-diff-2"), "--method=template", "--fail", check=False
    )
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert f"[+] AWS::Lambda::Function {ADDED_TASK}/Function" in changed.stdout + changed.stderr

    # Forget the uploaded zips, so the update packages every asset again from a fresh synth.
    s3 = local_aws.client("s3")
    bucket = f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        if item["Key"].endswith(".zip"):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    second_out = workdir / "out-deploy-2"
    local_aws.cdk("deploy", *deploy_args(updated_file, second_out), "--require-approval", "never", "--method=direct")

    # Then it deploys as an update of the added task's shard and of the core stack, whose dashboard
    # graphs every task (no other task moved: the other shards are not touched), and the stacks match
    # the new file
    updated_stack = deployed(local_aws, updated_plan, second_out)
    added_shard = updated_plan.task_stack_name(updated_plan.task(ADDED_TASK))
    assert_stack(local_aws, updated_stack, updated=frozenset({added_shard, updated_plan.stack_name}))
    again = local_aws.cdk("diff", *deploy_args(updated_file, workdir / "out-diff-3"), "--method=template", "--fail")
    assert "There were no differences" in again.stdout + again.stderr
    # And CDK zipped the same asset folders to the same bytes (it normalises mtimes).
    first_zips, second_zips = zip_digests(first_out), zip_digests(second_out)
    assert first_zips
    assert first_zips == second_zips

    # And the deployed stage can be operated from the CLI
    operate_the_stage(local_aws, updated_stack, updated_file)


def operate_the_stage(aws: LocalAws, stack: Deployed, tasks_file: Path) -> None:
    """status, runs, logs, invoke, pause, resume and alive against the deployed stage (issue 11)."""
    task = "python-task-1"
    common = ("--stage", STAGE, "--file", str(tasks_file))
    runs_table = boto3_table(aws, stack.physical_id("Tables/TaskRuns/Resource"))
    slot = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    slot_text, started = slot.strftime("%Y-%m-%dT%H:%M:%SZ"), slot.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    runs_table.put_item(
        Item={
            "pk": f"TASK#{task}",
            "sk": f"RUN#{slot_text}#smoke#1",
            "gsi1pk": f"RUNDATE#{started[:10]}",
            "gsi1sk": f"{started}#{task}",
            "task": task,
            "status": "SUCCEEDED",
            "scheduled_time": slot_text,
            "execution_id": "smoke",
            "request_id": "smoke-request",
            "started_at": started,
            "duration_ms": 42,
        }
    )

    status = {row["name"]: row for row in json.loads(aws.kairos("status", *common, "--json").stdout)["tasks"]}
    assert set(status) == {each.name for each in stack.plan.tasks}
    assert (status[task]["freshness"], status[task]["schedule_state"]) == ("OK", "ENABLED")
    assert status[task]["last_run"]["duration_ms"] == 42
    disabled = next(each.name for each in stack.plan.tasks if not each.enabled)
    assert (status[disabled]["freshness"], status[disabled]["drift"]) == ("PAUSED", False)

    runs = json.loads(aws.kairos("runs", task, *common, "--json").stdout)["runs"]
    assert [(run["scheduled_time"], run["status"]) for run in runs] == [(slot_text, "SUCCEEDED")]

    log_group = stack.physical_id(f"{task}/Logs/Resource")
    logs = aws.client("logs")
    logs.create_log_stream(logGroupName=log_group, logStreamName="smoke")
    line = {"level": "INFO", "message": "smoke line", "timestamp": started, "function_request_id": "smoke-request"}
    logs.put_log_events(
        logGroupName=log_group,
        logStreamName="smoke",
        logEvents=[{"timestamp": int(slot.timestamp() * 1000), "message": json.dumps(line)}],
    )
    printed = aws.kairos("logs", task, *common, "--run", "smoke").stdout
    assert f"{started} INFO    smoke line  [smoke-request]" in printed

    # A slot older than the task type's late-delivery limit is refused before anything is invoked.
    refused = aws.kairos("invoke", task, *common, "--scheduled-time", "2026-11-27T07:15:00Z", "--json", expect=2)
    assert "PastSlotRefused" in refused.stderr
    recent = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:00Z")
    invoked = aws.kairos("invoke", task, *common, "--scheduled-time", recent, "--json", expect=1)
    answer = json.loads(invoked.stdout)
    sent = answer["event"]
    assert sent | {"execution_id": "-"} == {
        **dict(stack.plan.task(task).input_template),
        "scheduled_time": recent,
        "execution_id": "-",
        "attempt": "1",
    }
    assert answer["response"] == sent, "moto's Lambda answers with the event it received"
    assert f"wrote no run record for {recent}" in invoked.stderr
    # A task on a shared function is invoked on that function, with its own event.
    shared = aws.kairos("invoke", SHARED_TASKS[1], *common, "--scheduled-time", recent, "--json", expect=1)
    shared_answer = json.loads(shared.stdout)
    assert shared_answer["event"]["task"] == SHARED_TASKS[1]
    assert shared_answer["response"] == shared_answer["event"]

    scheduler = aws.client("scheduler")
    schedule = {"Name": stack.physical_id(f"{task}/Schedule/Resource"), "GroupName": stack.plan.schedule_group_name}
    before = scheduler.get_schedule(**schedule)
    assert "the next deploy applies tasks.yaml again" in aws.kairos("pause", task, *common).stdout
    paused = scheduler.get_schedule(**schedule)
    assert paused["State"] == "DISABLED"
    assert (paused["Target"], paused["ScheduleExpression"]) == (before["Target"], before["ScheduleExpression"])
    row = next(
        row for row in json.loads(aws.kairos("status", *common, "--json").stdout)["tasks"] if row["name"] == task
    )
    assert (row["freshness"], row["drift"]) == ("PAUSED", True)
    aws.kairos("resume", task, *common)
    assert scheduler.get_schedule(**schedule)["State"] == "ENABLED"

    # Every enabled task's deployed schedule is found ENABLED; moto's CloudFormation makes no
    # alarms, so each with a freshness alarm is said to lack it (tests/cli covers the mark itself).
    marks = json.loads(aws.kairos("alive", *common, "--json").stdout)["tasks"]
    assert {mark["task"]: mark["outcome"] for mark in marks} == {
        enabled.name: "not deployed" if enabled.freshness.alarm is not None else "no alarm"
        for enabled in stack.plan.enabled_tasks
    }

    backfill_dry_run(aws, stack, common)
    redrive_the_queue(aws, stack, common, runs_table)
    estimate_the_cost(aws, stack, common)


def backfill_dry_run(aws: LocalAws, stack: Deployed, common: tuple[str, ...]) -> None:
    """backfill --dry-run of yesterday (UTC) for a backfillable task: every slot of its rate, none run."""
    task = stack.plan.task("python-task-2")
    assert task.backfill, "simple_task_2 echoes its event: any slot gets its own"
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    args = ("backfill", task.name, "--from", yesterday, "--to", yesterday, "--dry-run", "--json")
    document = json.loads(aws.kairos(*args, *common).stdout)
    assert document["deployed"] is True
    assert document["summary"]["slots"] == 24 * 6, "rate(10 minutes) from 00:00 UTC: 144 slots in a day"
    assert document["summary"]["would_run"] == 144
    refused = aws.kairos("backfill", "python-task-1", "--from", yesterday, "--to", yesterday, *common, expect=2)
    assert "python-task-1 cannot be backfilled" in refused.stderr


def redrive_the_queue(aws: LocalAws, stack: Deployed, common: tuple[str, ...], runs_table: Any) -> None:
    """Messages put into the deployed queue: the one whose re-run is recorded goes, the others stay."""
    sqs = aws.client("sqs")
    queue_url = stack.physical_id("DeadLetters/Queue/Resource")
    task = stack.plan.task("python-task-2")
    slot = "2026-11-27T07:20:00Z"
    payload = {**dict(task.input_template), "scheduled_time": slot, "execution_id": "smoke-dlq", "attempt": "1"}
    failure_record = {
        "version": "1.0",
        "timestamp": "2026-11-27T07:29:00.000Z",
        "requestContext": {"requestId": "r", "functionArn": "arn", "condition": "EventAgeExceeded",
                           "approximateInvokeCount": 1},
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": None,
    }  # fmt: skip
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(failure_record))
    sqs.send_message(QueueUrl=queue_url, MessageBody="garbled")
    # moto's Lambda runs nothing: the record the re-run would write is put where the function writes it.
    runs_table.put_item(
        Item={
            "pk": f"TASK#{task.name}",
            "sk": f"RUN#{slot}#smoke-dlq#1",
            "task": task.name,
            "status": "SUCCEEDED",
            "scheduled_time": slot,
            "execution_id": "smoke-dlq",
        }
    )

    listed = json.loads(aws.kairos("redrive", *common, "--dry-run", "--json", expect=1).stdout)["messages"]
    assert sorted((message["source"], message["action"]) for message in listed) == [
        ("lambda", "would_redrive"),
        ("unknown", "kept"),
    ]
    redriven = json.loads(aws.kairos("redrive", *common, "--json", expect=1).stdout)["messages"]
    by_source = {message["source"]: message for message in redriven}
    assert (by_source["lambda"]["task"], by_source["lambda"]["scheduled_time"]) == (task.name, slot)
    assert by_source["lambda"]["action"] == "redriven"
    assert by_source["unknown"]["action"] == "kept"
    left = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in left] == ["garbled"]


def estimate_the_cost(aws: LocalAws, stack: Deployed, common: tuple[str, ...]) -> None:
    """cost of the deployed stage: rate tasks' fires are exact, disabled tasks at zero, durations recorded."""
    document = json.loads(aws.kairos("cost", *common, "--json").stdout)
    tasks = {row["name"]: row for row in document["tasks"]}
    assert set(tasks) == {each.name for each in stack.plan.tasks}
    assert tasks["python-task-1"]["fires_30d"] == 30 * 24 * 12, "rate(5 minutes)"
    assert tasks["python-task-1"]["duration_source"] == "recorded", "the smoke's run of 42 ms"
    for each in stack.plan.tasks:
        if not each.enabled:
            assert tasks[each.name]["total_usd"] == 0, each.name
    assert document["total_usd"] > 0


def boto3_table(aws: LocalAws, name: str) -> Any:
    import boto3

    resource = boto3.resource(
        "dynamodb",
        endpoint_url=aws.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return resource.Table(name)
