"""The stock-daily-all fan-out on the synthesized dev template: its state machine's states, Map,
Retry and Catch, roles and schedule; then the very definition executed by moto's Step Functions
interpreter, with moto's Lambda answering each step through the real fan-out code."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

import aws_cdk as cdk
import pytest
import responses
from aws_cdk.assertions import Template

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import BATCH_RETRY, PLAN_RETRY, StagePlan, plan_stage
from kairos_runtime.tasks.market.universe import UNIVERSES
from kairos_stack.app_builder import add_checks, build_stage
from tests.conftest import CDK_FEATURE_FLAGS, PROJECT_ROOT, FakeLambdaContext, scheduled_event
from tests.infra.stage_template import stage_template
from tests.market.conftest import fresh_calendar_cache, waits

__all__ = ["fresh_calendar_cache", "waits"]  # the market tests' fixtures: no sleeps, a cold calendar

TASK = "stock-daily-all"
FAN_OUT_BUCKET = "kairos-test-fan-out"
"""The stage's fan-out bucket, as moto's tests name it (the template's weak reference in its place)."""


def _dev_plan() -> StagePlan:
    catalog = load_catalog()
    return plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, "dev")


DEV_PLAN = _dev_plan()
PATH = f"{DEV_PLAN.task_stack_name(DEV_PLAN.task(TASK))}/{TASK}"
"""Where the fan-out's constructs are: its shard stack, then the task (docs/adr/0162)."""


@pytest.fixture(scope="module")
def dev() -> tuple[StagePlan, Template]:
    plan = DEV_PLAN
    app = cdk.App(context={**CDK_FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True})
    stacks = build_stage(app, plan)
    add_checks(app)
    app.synth()  # cdk-nag runs: an unacknowledged finding fails here
    return plan, stage_template(stacks)


def test_the_fan_out_lives_in_its_shard_stack_and_the_core_names_none_of_it(dev: tuple[StagePlan, Template]) -> None:
    plan, template = dev
    assert PATH.startswith(f"{plan.stack_name}-Shard")
    core = [
        resource
        for resource in template.to_json()["Resources"].values()
        if resource.get("Metadata", {}).get("aws:cdk:path", "").startswith(f"{plan.stack_name}/")
    ]
    assert core, "the core stack's resources are in the stage template"
    assert "StateMachine" not in json.dumps(core), "the core stack names no state machine (no cycle)"


def under(template: Template, resource_type: str, path: str) -> dict[str, Mapping[str, Any]]:
    return {
        name: resource
        for name, resource in template.find_resources(resource_type).items()
        if resource.get("Metadata", {}).get("aws:cdk:path", "").startswith(path + "/")
    }


def the(template: Template, resource_type: str, path: str) -> tuple[str, Mapping[str, Any]]:
    [(name, resource)] = under(template, resource_type, path).items()
    return name, resource


def definition_parts(template: Template) -> list[Any]:
    _, machine = the(template, "AWS::StepFunctions::StateMachine", f"{PATH}/StateMachine")
    return list(machine["Properties"]["DefinitionString"]["Fn::Join"][1])


def rendered(template: Template, arns: dict[str, str]) -> dict[str, Any]:
    """The definition with each function's ARN (by logical id) in place of its GetAtt."""

    def value(part: Any) -> str:
        if isinstance(part, str):
            return part
        if part.get("Ref", "").startswith("FanOutObjectsBucket"):  # the core's one value in the definition
            return FAN_OUT_BUCKET
        if "Ref" in part:
            return {"AWS::Partition": "aws"}[part["Ref"]]
        return arns[part["Fn::GetAtt"][0]]

    text = "".join(value(part) for part in definition_parts(template))
    return json.loads(text)  # type: ignore[no-any-return]


def function_ids(template: Template) -> dict[str, str]:
    return {
        step: the(template, "AWS::Lambda::Function", f"{PATH}/{step.capitalize()}Function")[0]
        for step in ("plan", "batch", "summarize")
    }


def test_the_state_machine_plans_maps_batches_with_retry_and_catch_and_summarizes(
    dev: tuple[StagePlan, Template],
) -> None:
    plan, template = dev
    fan_out = plan.task(TASK).fan_out
    assert fan_out is not None
    ids = function_ids(template)
    machine = rendered(template, {logical: f"arn:{step}" for step, logical in ids.items()})
    states = machine["States"]
    assert machine["StartAt"] == "Plan"
    assert set(states) == {"Plan", "Planned?", "Ended at plan", "Batches", "Distributed batches", "Summarize"}
    assert (states["Plan"]["Resource"], states["Plan"]["ResultPath"], states["Plan"]["Next"]) == (
        "arn:plan",
        "$.plan",
        "Planned?",
    )
    assert [
        {key: value for key, value in choice.items() if key != "Comment"} for choice in states["Planned?"]["Choices"]
    ] == [
        {"Variable": "$.plan.items", "IsPresent": True, "Next": "Distributed batches"},
        {"Variable": "$.plan.planned", "BooleanEquals": True, "Next": "Batches"},
    ]
    assert states["Planned?"]["Default"] == "Ended at plan"
    batches = states["Batches"]
    assert batches["MaxConcurrency"] == fan_out.max_concurrency == 4
    assert batches["ItemsPath"] == "$.plan.batches"
    assert batches["ItemSelector"]["batch.$"] == "$$.Map.Item.Value"
    assert batches["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert batches["Next"] == "Summarize"
    batch = batches["ItemProcessor"]["States"]["Batch"]
    assert batch["Resource"] == "arn:batch"
    assert batch["Retry"] == [
        {
            "ErrorEquals": list(BATCH_RETRY.errors),
            "IntervalSeconds": 10,
            "MaxAttempts": 3,
            "BackoffRate": 3,
            "MaxDelaySeconds": 300,
            "JitterStrategy": "FULL",
        }
    ]
    assert "BatchTransientError" in batch["Retry"][0]["ErrorEquals"]
    assert batch["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Batch failed"}]
    caught = batches["ItemProcessor"]["States"]["Batch failed"]
    assert (caught["Type"], caught["Parameters"]) == (
        "Pass",
        {"index.$": "$.batch.index", "error.$": "$.failure.Error"},
    )
    assert states["Plan"]["Retry"][0]["ErrorEquals"] == list(PLAN_RETRY.errors)
    distributed = states["Distributed batches"]
    assert distributed["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket.$": "$.plan.items.bucket", "Key.$": "$.plan.items.key"},
    }
    assert distributed["ResultWriter"] == {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": FAN_OUT_BUCKET, "Prefix": f"fan-out/{TASK}/results"},
    }
    assert distributed["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert (distributed["MaxConcurrency"], distributed["ToleratedFailurePercentage"]) == (fan_out.max_concurrency, 100)
    assert distributed["ItemSelector"] == batches["ItemSelector"]
    assert (distributed["ResultPath"], distributed["Next"]) == ("$.results", "Summarize")
    child = distributed["ItemProcessor"]["States"]
    assert child["Distributed Batch"]["Resource"] == "arn:batch"
    assert child["Distributed Batch"]["Retry"] == batch["Retry"]
    assert child["Distributed Batch"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Distributed Batch failed"}
    ]
    assert child["Distributed Batch failed"]["Parameters"] == caught["Parameters"]
    summarize = states["Summarize"]
    assert summarize["Resource"] == "arn:summarize"
    assert summarize["Parameters"] == {"event.$": "$$.Execution.Input", "plan.$": "$.plan", "results.$": "$.results"}
    assert summarize["End"] is True


def test_the_machine_logs_traces_times_out_at_the_next_slot_and_alarms_on_failed_executions(
    dev: tuple[StagePlan, Template],
) -> None:
    plan, template = dev
    fan_out = plan.task(TASK).fan_out
    assert fan_out is not None
    machine_id, machine = the(template, "AWS::StepFunctions::StateMachine", f"{PATH}/StateMachine")
    properties = machine["Properties"]
    assert properties["StateMachineName"] == "kairos-dev-stock-daily-all"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    log_group, _ = the(template, "AWS::Logs::LogGroup", f"{PATH}/StateMachineLogs")
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": [log_group, "Arn"]
    }
    definition = json.dumps(definition_parts(template))
    assert f'\\"TimeoutSeconds\\":{fan_out.execution_timeout_seconds}' in definition
    _, alarm = the(template, "AWS::CloudWatch::Alarm", f"{PATH}/FailureAlarm")
    metrics = {each["Id"]: each for each in alarm["Properties"]["Metrics"]}
    assert metrics["executions"]["MetricStat"]["Metric"]["MetricName"] == "ExecutionsFailed"
    assert metrics["executions"]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "StateMachineArn", "Value": {"Ref": machine_id}}
    ]
    assert metrics["failed"]["MetricStat"]["Metric"]["MetricName"] == "RunsFailed"


def statements_of(template: Template, role_id: str) -> list[dict[str, Any]]:
    found = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_the_state_machine_may_invoke_only_its_own_three_functions(dev: tuple[StagePlan, Template]) -> None:
    _, template = dev
    _, machine = the(template, "AWS::StepFunctions::StateMachine", f"{PATH}/StateMachine")
    role_id = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    invokes = [
        each for each in statements_of(template, role_id) if "lambda:InvokeFunction" in json.dumps(each["Action"])
    ]
    reached = {json.dumps(resource) for statement in invokes for resource in statement["Resource"]}
    expected = set()
    for logical in function_ids(template).values():
        expected.add(json.dumps({"Fn::GetAtt": [logical, "Arn"]}))
        expected.add(json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [logical, "Arn"]}, ":*"]]}))
    assert reached == expected
    actions = {action for each in statements_of(template, role_id) for action in _list(each["Action"])}
    assert not {action for action in actions if action.startswith(("dynamodb:", "sqs:"))}


def _bucket_objects(template: Template, role_id: str) -> dict[str, list[str]]:
    """Each S3 statement of the role, as its key pattern (after the core bucket's ARN) → its actions."""
    found = {}
    for statement in statements_of(template, role_id):
        actions = _list(statement["Action"])
        if not any(action.startswith("s3:") for action in actions):
            continue
        [bucket_arn, pattern] = statement["Resource"]["Fn::Join"][1]
        assert "FanOutObjectsBucket" in json.dumps(bucket_arn), "the stage's fan-out bucket, from the core stack"
        found[pattern] = sorted(actions)
    return found


def test_the_distributed_map_may_read_and_write_only_its_tasks_prefix_and_run_only_its_own_children(
    dev: tuple[StagePlan, Template],
) -> None:
    _, template = dev
    machine_id, machine = the(template, "AWS::StepFunctions::StateMachine", f"{PATH}/StateMachine")
    role_id = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    assert _bucket_objects(template, role_id) == {
        f"/fan-out/{TASK}/*": ["s3:GetObject"],
        f"/fan-out/{TASK}/results/*": ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"],
    }
    states = {
        json.dumps(sorted(_list(statement["Action"]))): statement["Resource"]
        for statement in statements_of(template, role_id)
        if any(action.startswith("states:") for action in _list(statement["Action"]))
    }
    name = {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": machine_id}]}]}
    executions = ["arn:", {"Ref": "AWS::Partition"}, ":states:", {"Ref": "AWS::Region"}, ":"]
    executions += [{"Ref": "AWS::AccountId"}, ":execution:", name]
    assert states == {
        '["states:StartExecution"]': {"Ref": machine_id},
        '["states:DescribeExecution", "states:StopExecution"]': {"Fn::Join": ["", [*executions, ":*"]]},
        '["states:RedriveExecution"]': {"Fn::Join": ["", [*executions, "/*:*"]]},
    }
    roles = {}
    for step in ("plan", "batch", "summarize"):
        _, function = the(template, "AWS::Lambda::Function", f"{PATH}/{step.capitalize()}Function")
        roles[step] = _bucket_objects(template, function["Properties"]["Role"]["Fn::GetAtt"][0])
    assert roles == {
        "plan": {f"/fan-out/{TASK}/batches/*": ["s3:PutObject"]},
        "batch": {},
        "summarize": {f"/fan-out/{TASK}/*": ["s3:GetObject"]},
    }


def test_the_core_stacks_fan_out_bucket_is_private_encrypted_ssl_only_and_expires_its_objects(
    dev: tuple[StagePlan, Template],
) -> None:
    from kairos.plan import FAN_OUT_OBJECT_EXPIRY_DAYS

    plan, template = dev
    bucket_id, bucket = the(template, "AWS::S3::Bucket", f"{plan.stack_name}/FanOutObjects")
    properties = bucket["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    [rule] = properties["LifecycleConfiguration"]["Rules"]
    assert (rule["Prefix"], rule["ExpirationInDays"], rule["Status"]) == (
        "fan-out/",
        FAN_OUT_OBJECT_EXPIRY_DAYS,
        "Enabled",
    )
    assert bucket["DeletionPolicy"] == "Delete", "the dev stage keeps no data"
    [(_, policy)] = template.find_resources("AWS::S3::BucketPolicy").items()
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    _, planner = the(template, "AWS::Lambda::Function", f"{PATH}/PlanFunction")
    _, batch = the(template, "AWS::Lambda::Function", f"{PATH}/BatchFunction")
    assert "FanOutObjectsBucket" in json.dumps(
        planner["Properties"]["Environment"]["Variables"]["KAIROS_FAN_OUT_BUCKET"]
    )
    assert "KAIROS_FAN_OUT_BUCKET" not in batch["Properties"]["Environment"]["Variables"]
    assert bucket_id.startswith("FanOutObjectsBucket")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_schedule_starts_only_this_state_machine_with_the_tasks_event(dev: tuple[StagePlan, Template]) -> None:
    plan, template = dev
    machine_id, _ = the(template, "AWS::StepFunctions::StateMachine", f"{PATH}/StateMachine")
    _, schedule = the(template, "AWS::Scheduler::Schedule", f"{PATH}/Schedule")
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Ref": machine_id}
    assert json.loads(target["Input"]) == dict(plan.task(TASK).input_template)
    assert schedule["Properties"]["State"] == "DISABLED"
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    statements = statements_of(template, role_id)
    starts = [each for each in statements if "states:StartExecution" in _list(each["Action"])]
    assert [each["Resource"] for each in starts] == [{"Ref": machine_id}]
    actions = {action for each in statements for action in _list(each["Action"])}
    assert actions <= {"states:StartExecution", "sqs:SendMessage"}


def test_only_the_batch_workers_write_market_data_and_only_plan_and_summary_write_run_records(
    dev: tuple[StagePlan, Template],
) -> None:
    _, template = dev
    grants: dict[str, set[str]] = {}
    for step in ("plan", "batch", "summarize"):
        _, function = the(template, "AWS::Lambda::Function", f"{PATH}/{step.capitalize()}Function")
        role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
        grants[step] = {
            f"{action} {json.dumps(statement.get('Condition', {}))}"
            for statement in statements_of(template, role_id)
            for action in _list(statement["Action"])
            if action.startswith("dynamodb:")
        }
    writes = {step: {grant for grant in granted if "BatchWriteItem" in grant} for step, granted in grants.items()}
    assert writes["plan"] == writes["summarize"] == set()
    assert writes["batch"] == {
        'dynamodb:BatchWriteItem {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["STOCK#*"]}}'
    }
    runs = {step: {grant for grant in granted if "TASK#" in grant} for step, granted in grants.items()}
    assert runs["batch"] == set()
    assert runs["plan"] == runs["summarize"] != set()
    assert all(f"TASK#{TASK}" in grant for grant in runs["plan"])


def test_the_plan_counts_the_fan_outs_resources(dev: tuple[StagePlan, Template]) -> None:
    plan, template = dev
    resources = template.to_json()["Resources"]
    mine = {
        name
        for name, resource in resources.items()
        if resource.get("Metadata", {}).get("aws:cdk:path", "").startswith(PATH + "/")
    }
    # CDK puts the role Scheduler starts the machine with (and its policy) at the stack's root.
    _, schedule = the(template, "AWS::Scheduler::Schedule", f"{PATH}/Schedule")
    scheduler_role = schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
    mine |= {scheduler_role} | {
        name
        for name, policy in template.find_resources("AWS::IAM::Policy").items()
        if {"Ref": scheduler_role} in policy["Properties"]["Roles"]
    }
    assert len(mine) == plan.task(TASK).resource_count == 21


# -- the definition, executed by moto -----------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_universe_cache() -> Iterator[None]:
    UNIVERSES.clear()
    yield
    UNIVERSES.clear()


SLOT = "2026-11-27T08:00:00Z"


@pytest.fixture
def aws(table_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto with Step Functions executing definitions and Lambda answering without Docker."""
    import boto3
    from moto import mock_aws

    from kairos.local.tables import ensure_tables, tables_from_designs

    for name, value in table_names.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        ensure_tables(resource.meta.client, tables_from_designs("test"))
        yield resource


def answer_with(runner: Any, functions: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """moto's Lambda answers each step's function with the fan-out runner; an exception becomes a
    function error (``errorType`` the exception's class), as Lambda reports one. Returns the calls."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    calls: list[str] = []

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any) -> bytes:
        step = functions[function_name.rsplit(":", 1)[-1]]
        calls.append(step)
        payload = json.loads(body or "{}")
        try:
            answer = getattr(runner, step)(payload, FakeLambdaContext(900_000))
        except Exception as error:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()
        return json.dumps(answer, default=str).encode()

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    return calls


def runs_and_slots(aws: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run records and the slot claims of the TaskRuns table."""
    items = aws.Table("kairos-test-TaskRuns").scan()["Items"]
    return (
        [item for item in items if item["sk"].startswith("RUN#")],
        [item for item in items if item["sk"].startswith("SLOT#")],
    )


def create_machine(template: Template, *, fast_retries: bool) -> str:
    import boto3

    client = boto3.client("lambda", region_name="us-east-1")
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="fan-out", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("handler.py", "def handler(event, context):\n    return event\n")
    arns = {}
    for step, logical in function_ids(template).items():
        arns[logical] = client.create_function(
            FunctionName=f"kairos-test-{step}",
            Runtime="python3.13",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": archive.getvalue()},
        )["FunctionArn"]
    definition = json.dumps(rendered(template, arns))
    # moto's ASL grammar reads ToleratedFailurePercentage as a decimal only (AWS takes 100 as deployed).
    definition = definition.replace('"ToleratedFailurePercentage": 100,', '"ToleratedFailurePercentage": 100.0,')
    if fast_retries:  # the shape as deployed; moto would otherwise wait 10 s, 30 s, 90 s
        definition = re.sub(r'"IntervalSeconds": \d+', '"IntervalSeconds": 1', definition)
        definition = re.sub(r'"BackoffRate": [\d.]+', '"BackoffRate": 1', definition)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(name="kairos-test-stock-daily-all", definition=definition, roleArn=role)
    return str(machine["stateMachineArn"])


def execute(aws: Any, template: Template, event: dict[str, Any], *, fast_retries: bool = True) -> dict[str, Any]:
    """Start an execution of the template's definition (created in moto on the first call) with ``event``."""
    import boto3

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machines = sfn.list_state_machines()["stateMachines"]
    machine_arn = machines[0]["stateMachineArn"] if machines else create_machine(template, fast_retries=fast_retries)
    execution = sfn.start_execution(
        stateMachineArn=machine_arn, name=f"execution-{uuid.uuid4().hex}", input=json.dumps(event)
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            return described  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError("the execution did not finish in 120 s")


@pytest.fixture
def fan_out(aws: Any) -> Any:
    import logging

    from kairos.local.tables import tables_from_designs
    from kairos_runtime.context import Clients
    from kairos_runtime.fan_out_runner import FanOutRunner
    from kairos_runtime.settings import RuntimeSettings
    from kairos_runtime.tasks import default_registry
    from kairos_runtime.validation import parse

    settings = parse(
        {
            "stage": "test",
            "runtime": "python3.13",
            "task": TASK,
            "task_type": "stock_daily_all",
            "table_names": {table.table_id: table.name for table in tables_from_designs("test")},
            "fan_out_bucket": FAN_OUT_BUCKET,
        },
        RuntimeSettings,
    )
    return FanOutRunner(
        registry=default_registry(),
        settings=settings,
        clients=Clients(settings, resource_factory=lambda: aws),
        logger=logging.getLogger("kairos.test"),
    )


STEPS = {"kairos-test-plan": "plan", "kairos-test-batch": "batch", "kairos-test-summarize": "summarize"}


def test_moto_runs_the_definition_plan_batches_summary_and_the_record_succeeds(
    dev: tuple[StagePlan, Template], aws: Any, fan_out: Any, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    from tests.market.synthetic_market import serve, store_spot_universe, universe

    _, template = dev
    codes = universe(60)
    store_spot_universe(aws, codes)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        serve(http)
        calls = answer_with(fan_out, STEPS, monkeypatch)
        event = scheduled_event(
            TASK, "stock_daily_all", {"batch_size": 25, "requests_per_second": 1000}, scheduled_time=SLOT
        )
        described = execute(aws, template, event)

    assert described["status"] == "SUCCEEDED", described
    assert calls.count("plan") == 1
    assert calls.count("batch") == 3
    assert calls[-1] == "summarize"
    [record], [slot] = runs_and_slots(aws)
    assert (record["status"], record["items_written"]) == ("SUCCEEDED", 60 * 5)
    assert record["detail"]["coverage"]["with_bar"] == 60
    assert (slot["status"], slot["run_id"]) == ("SUCCEEDED", record["sk"]), "the summary settled the claim"
    output = json.loads(described["output"])
    assert [result["index"] for result in output["results"]] == [0, 1, 2]

    # A duplicate delivery of the done slot: the planner declines it, no batch runs, nothing is recorded.
    calls.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        serve(http)
        again = execute(aws, template, {**event, "execution_id": "duplicate-delivery"})
    assert again["status"] == "SUCCEEDED", again
    assert calls == ["plan"]
    assert json.loads(again["output"])["plan"]["response"]["declined"] == "done"
    [_], [slot] = runs_and_slots(aws)
    assert slot["deliveries"] == 2


def test_moto_retries_a_transient_batch_catches_a_failing_one_and_the_record_says_partial_failure(
    dev: tuple[StagePlan, Template], aws: Any, fan_out: Any, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    from tests.market.synthetic_market import serve, store_spot_universe, universe

    _, template = dev
    codes = universe(75)
    store_spot_universe(aws, codes)
    codes.sort()  # the planner's order: batches of 25 in code order
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        market = serve(http)
        market.transient[codes[5]] = 1  # batch 0: its first attempt fails (no retry budget), the second succeeds
        market.transient[codes[40]] = 10_000  # batch 1: unreachable on every attempt
        calls = answer_with(fan_out, STEPS, monkeypatch)
        event = scheduled_event(
            TASK,
            "stock_daily_all",
            {"batch_size": 25, "requests_per_second": 1000, "max_retry_seconds": 0},
            scheduled_time=SLOT,
        )
        described = execute(aws, template, event)

    assert described["status"] == "SUCCEEDED", described
    assert calls.count("batch") == 3 + 1 + BATCH_RETRY.max_attempts
    output = json.loads(described["output"])
    assert output["results"][1] == {"index": 1, "error": "BatchTransientError"}
    [record], [slot] = runs_and_slots(aws)
    assert (record["status"], record["error_type"]) == ("FAILED", "PartialFailure")
    assert slot["status"] == "FAILED", "a failed slot may run again"
    assert record["detail"]["batches_failed"] == [1]
    assert record["detail"]["symbols_failed_count"] == 25
    # Batch 0's retry found its first five symbols stored by the failed attempt: up to date, not fetched again.
    assert (record["detail"]["symbols_done"], record["detail"]["symbols_up_to_date"]) == (45, 5)
    # The caught batch kept the bars it fetched before the outage (a rerun resumes after them).
    stored = {
        item["pk"] for item in aws.Table("kairos-test-MarketData").scan()["Items"] if item["sk"].startswith("DAY#")
    }
    assert stored == {f"STOCK#{code}" for code in codes[:40] + codes[50:]}


def test_the_planners_claim_outlives_any_execution_of_its_slot(dev: tuple[StagePlan, Template]) -> None:
    """The planner claims the slot for the late-delivery limit (docs/adr/0162): never shorter than the
    machine's execution timeout, so a duplicate delivery while batches run is declined, not restarted."""
    plan, template = dev
    fan_out = plan.task(TASK).fan_out
    assert fan_out is not None
    _, function = the(template, "AWS::Lambda::Function", f"{PATH}/PlanFunction")
    limit = int(function["Properties"]["Environment"]["Variables"]["KAIROS_LATE_DELIVERY_LIMIT_SECONDS"])
    assert limit >= fan_out.execution_timeout_seconds
    assert plan.task(TASK).backfill, "daily bars are computed for the slot's own dates"


# -- kairos invoke (and backfill, redrive) of a fan-out task: an execution, not the planner alone --


def deployed_over_moto(template: Template, machine_arn: str) -> Any:
    import boto3

    from kairos.local.tables import tables_from_designs
    from kairos.operations.deployed import DeployedStage, DeployedTask

    return DeployedStage(
        plan=DEV_PLAN,
        tasks={TASK: DeployedTask(TASK, "kairos-test-plan", "planner-logs", "schedule", machine_arn)},
        table_names={table.table_id: table.name for table in tables_from_designs("test")},
        dead_letter_queue_url="",
        session=boto3.Session(region_name="us-east-1"),
    )


def test_invoking_a_fan_out_task_runs_its_state_machine_and_reads_the_slots_record(
    dev: tuple[StagePlan, Template], aws: Any, fan_out: Any, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    from datetime import datetime

    from kairos.operations.invoke import invoke_deployed
    from tests.market.synthetic_market import serve, store_spot_universe, universe

    _, template = dev
    codes = universe(30)
    store_spot_universe(aws, codes)
    stage = deployed_over_moto(template, create_machine(template, fast_retries=True))
    task = DEV_PLAN.task(TASK)
    slot = datetime.fromisoformat(SLOT)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        market = serve(http)
        calls = answer_with(fan_out, STEPS, monkeypatch)
        first = invoke_deployed(stage, task, scheduled_time=slot)
        again = invoke_deployed(stage, task, scheduled_time=slot)

    assert first.function_error is None, first.response
    assert first.record is not None
    assert (first.record["status"], first.record["items_written"]) == ("SUCCEEDED", 30 * 5)
    assert first.record["sk"].startswith(f"RUN#{first.event['scheduled_time']}#{first.event['execution_id']}#")
    assert first.response["status"] == "SUCCEEDED", "the summary's answer"
    assert len(market.requests_per_symbol()) == 30
    # The second invoke of the done slot ends at the plan: declined, and the slot's first run is read.
    assert again.function_error is None
    assert again.response["declined"] == "done"
    assert again.record is not None
    assert again.record["sk"] == first.record["sk"]
    assert calls == ["plan", "batch", "summarize", "plan"], "30 symbols: one batch of the task's 100"


def test_a_fan_out_execution_that_fails_is_the_invokes_error(
    dev: tuple[StagePlan, Template], aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime

    from kairos.operations.invoke import invoke_deployed

    _, template = dev
    stage = deployed_over_moto(template, create_machine(template, fast_retries=True))

    class Broken:
        def plan(self, payload: Any, context: Any) -> Any:
            raise ValueError("the planner crashed")

    answer_with(Broken(), STEPS, monkeypatch)
    result = invoke_deployed(stage, DEV_PLAN.task(TASK), scheduled_time=datetime.fromisoformat(SLOT))
    assert result.function_error == "execution FAILED"
    assert result.response["error"] == "ValueError"
    assert result.record is None


def test_an_execution_name_is_unique_valid_and_names_the_event() -> None:
    from kairos.operations.invoke import execution_name

    event = {"execution_id": "kairos-backfill-2026/11:27 " + "x" * 90}
    first, second = execution_name(event), execution_name(event)
    assert first != second
    for name in (first, second):
        assert len(name) <= 80
        assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
        assert name.startswith("kairos-backfill-2026-11-27-x")


def moto_result_writer_in_aws_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2's ResultWriter writes a manifest listing no result file (its own TODO) and drops the
    children's outputs. This completes it as AWS documents it: a SUCCEEDED_0.json of the executions
    (Status, Output as a JSON string) named by the manifest, under <Prefix>/<map run id>/."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3,
    )

    original = resource_eval_s3.ResourceEvalS3._handle_put_object

    def put_object(env: Any, runtime_part: Any, credentials: Any) -> None:
        import boto3

        parameters, outputs = env.stack[-1], env.stack[-2]
        original(env, runtime_part, credentials)
        details = env.stack[-1]["ResultWriterDetails"]
        s3 = boto3.client("s3", region_name="us-east-1")
        folder = details["Key"].rsplit("/", 1)[0]
        executions = [{"Status": "SUCCEEDED", "Output": json.dumps(output)} for output in outputs]
        s3.put_object(Bucket=parameters["Bucket"], Key=f"{folder}/SUCCEEDED_0.json", Body=json.dumps(executions))
        manifest = json.loads(s3.get_object(Bucket=parameters["Bucket"], Key=details["Key"])["Body"].read())
        manifest["ResultFiles"]["SUCCEEDED"] = [{"Key": f"{folder}/SUCCEEDED_0.json", "Size": 1}]
        s3.put_object(Bucket=parameters["Bucket"], Key=details["Key"], Body=json.dumps(manifest))

    monkeypatch.setattr(resource_eval_s3.ResourceEvalS3, "_handle_put_object", staticmethod(put_object))


def test_moto_runs_the_distributed_map_past_the_switch_from_s3_and_the_record_succeeds(
    dev: tuple[StagePlan, Template], aws: Any, fan_out: Any, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    """Past the switch (lowered to 2 batches, so 3 cross it) the planner writes the batches to S3, moto's
    Distributed Map reads them with its ItemReader, runs each as a child, and the summary reads the
    ResultWriter's manifest and result file (moto's writer completed in AWS's shape, see above)."""
    import boto3

    from kairos_runtime import fan_out as fan_out_module
    from tests.market.synthetic_market import serve, store_spot_universe, universe

    _, template = dev
    monkeypatch.setattr(fan_out_module, "MAX_INLINE_BATCHES", 2)
    moto_result_writer_in_aws_shape(monkeypatch)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=FAN_OUT_BUCKET)
    store_spot_universe(aws, universe(60))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        serve(http)
        calls = answer_with(fan_out, STEPS, monkeypatch)
        event = scheduled_event(
            TASK, "stock_daily_all", {"batch_size": 25, "requests_per_second": 1000}, scheduled_time=SLOT
        )
        described = execute(aws, template, event)

    assert described["status"] == "SUCCEEDED", described
    assert calls.count("batch") == 3
    assert calls[-1] == "summarize"
    output = json.loads(described["output"])
    assert "batches" not in output["plan"]
    assert output["plan"]["items"]["bucket"] == FAN_OUT_BUCKET
    assert output["plan"]["items"]["key"].startswith(f"fan-out/{TASK}/batches/")
    assert output["results"]["ResultWriterDetails"]["Key"].startswith(f"fan-out/{TASK}/results/")
    batches = json.loads(s3.get_object(Bucket=FAN_OUT_BUCKET, Key=output["plan"]["items"]["key"])["Body"].read())
    assert [len(batch["items"]) for batch in batches] == [25, 25, 10]
    [record], [slot] = runs_and_slots(aws)
    assert (record["status"], record["items_written"]) == ("SUCCEEDED", 60 * 5)
    assert record["detail"]["fan_out"]["map"] == "distributed"
    assert record["detail"]["symbols_done"] == 60
    assert slot["status"] == "SUCCEEDED"
