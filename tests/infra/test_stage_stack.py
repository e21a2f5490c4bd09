"""The synthesized dev and prod templates: one function and one schedule per task, each with the
expression, timezone, state, memory, timeout and least-privilege grants the plan decided."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.local.tables import tables_from_designs, tables_from_template
from kairos.plan import StagePlan, plan_stage
from kairos_stack.app_builder import StageStacks, add_checks, build_stage
from tests.conftest import CDK_FEATURE_FLAGS, PROJECT_ROOT
from tests.infra.stage_template import stage_template


def synth(stage: str) -> tuple[StagePlan, Template]:
    plan, stacks = synth_stacks(stage)
    return plan, stage_template(stacks)


def synth_stacks(stage: str) -> tuple[StagePlan, StageStacks]:
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, stage)
    # Bundling is skipped here for speed; tests/packaging builds the real assets.
    app = cdk.App(context={**CDK_FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True})
    stack = build_stage(app, plan)
    add_checks(app)
    app.synth()  # runs cdk-nag: an unacknowledged finding fails here
    return plan, stack


@pytest.fixture(scope="module")
def dev() -> tuple[StagePlan, Template]:
    return synth("dev")


@pytest.fixture(scope="module")
def prod() -> tuple[StagePlan, Template]:
    return synth("prod")


def function_tasks(plan: StagePlan) -> list[Any]:
    """The tasks built as one scheduled function (``ScheduledTask``); fan-out tasks are asserted in
    tests/infra/test_fan_out_task.py."""
    return [task for task in plan.tasks if task.fan_out is None]


def resource_at(template: Template, resource_type: str, path: str) -> Mapping[str, Any]:
    """The resource whose CDK construct path is ``path`` (e.g. ``kairos-dev/python-task-1/Function``)."""
    matches = [
        resource
        for resource in template.find_resources(resource_type).values()
        if resource.get("Metadata", {}).get("aws:cdk:path", "").startswith(path + "/")
    ]
    assert len(matches) == 1, f"{len(matches)} {resource_type} under {path}"
    return matches[0]


def logical_id(template: Template, resource_type: str, path: str) -> str:
    for key, resource in template.find_resources(resource_type).items():
        if resource.get("Metadata", {}).get("aws:cdk:path", "").startswith(path + "/"):
            return key
    raise AssertionError(path)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_one_function_and_one_schedule_per_task(
    stage: str, dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    plan, template = dev if stage == "dev" else prod

    for task in function_tasks(plan):
        resource_at(template, "AWS::Lambda::Function", f"{plan.task_stack_name(task)}/{task.name}/Function")
    for task in plan.tasks:
        resource_at(template, "AWS::Scheduler::Schedule", f"{plan.task_stack_name(task)}/{task.name}/Schedule")
    assert len(template.find_resources("AWS::Scheduler::Schedule")) == len(plan.tasks)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_function_is_built_as_its_task_says(
    stage: str, dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    plan, template = dev if stage == "dev" else prod

    for task in function_tasks(plan):
        properties = resource_at(
            template, "AWS::Lambda::Function", f"{plan.task_stack_name(task)}/{task.name}/Function"
        )["Properties"]
        assert properties["Runtime"] == task.runtime
        assert properties["MemorySize"] == task.memory
        assert properties["Timeout"] == task.timeout
        assert properties["Architectures"] == [task.architecture]
        assert properties["Handler"] == task.handler
        assert properties["TracingConfig"] == {"Mode": "Active"}
        environment = properties["Environment"]["Variables"]
        assert environment["KAIROS_STAGE"] == stage
        assert environment["KAIROS_RUNTIME"] == task.runtime
        runs_table = logical_id(template, "AWS::DynamoDB::Table", f"{plan.stack_name}/Tables/TaskRuns")
        assert environment["KAIROS_TASK_RUNS_TABLE"] == {"Ref": runs_table}


def test_the_python_and_node_tasks_have_their_own_runtimes(dev: tuple[StagePlan, Template]) -> None:
    plan, template = dev
    runtimes = {
        name: resource_at(
            template, "AWS::Lambda::Function", f"{plan.task_stack_name(plan.task(name))}/{name}/Function"
        )["Properties"]["Runtime"]
        for name in ("python-task-1", "nodejs-task-1")
    }
    assert runtimes == {"python-task-1": "python3.13", "nodejs-task-1": "nodejs22.x"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_schedule_has_its_expression_timezone_state_and_input(
    stage: str, dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    plan, template = dev if stage == "dev" else prod
    queue = logical_id(template, "AWS::SQS::Queue", f"{plan.stack_name}/DeadLetters/Queue")

    for task in function_tasks(plan):
        properties = resource_at(
            template, "AWS::Scheduler::Schedule", f"{plan.task_stack_name(task)}/{task.name}/Schedule"
        )["Properties"]
        function = logical_id(template, "AWS::Lambda::Function", f"{plan.task_stack_name(task)}/{task.name}/Function")
        assert properties["ScheduleExpression"] == task.schedule_expression
        assert properties["ScheduleExpressionTimezone"] == task.timezone
        assert properties["State"] == ("ENABLED" if task.enabled else "DISABLED")
        assert properties["GroupName"] == f"kairos-{stage}"
        target = properties["Target"]
        assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": task.scheduler_retry_attempts,
            "MaximumEventAgeInSeconds": task.max_event_age_seconds,
        }
        assert json.loads(target["Input"]) == {
            "task": task.name,
            "task_type": task.task_type,
            "params": task.input_template["params"],
            "scheduled_time": "<aws.scheduler.scheduled-time>",
            "execution_id": "<aws.scheduler.execution-id>",
            "attempt": "<aws.scheduler.attempt-number>",
        }


def test_stage_enabled_lists_decide_schedule_states(
    dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    def states(plan: StagePlan, template: Template) -> dict[str, str]:
        return {
            task.name: resource_at(
                template, "AWS::Scheduler::Schedule", f"{plan.task_stack_name(task)}/{task.name}/Schedule"
            )["Properties"]["State"]
            for task in plan.tasks
        }

    dev_states, prod_states = states(*dev), states(*prod)
    # dev's list enables the demo task; prod has no list, and nothing enables it there.
    assert (dev_states["python-task-1"], prod_states["python-task-1"]) == ("ENABLED", "DISABLED")
    assert dev_states["daily-summary"] == prod_states["daily-summary"] == "DISABLED"


def test_the_five_original_tasks_keep_their_schedules(dev: tuple[StagePlan, Template]) -> None:
    plan, template = dev
    expressions = {
        name: resource_at(
            template, "AWS::Scheduler::Schedule", f"{plan.task_stack_name(plan.task(name))}/{name}/Schedule"
        )["Properties"]["ScheduleExpression"]
        for name in ("python-task-1", "python-task-2", "nodejs-task-1", "nodejs-task-2", "daily-summary")
    }
    assert expressions == {
        "python-task-1": "rate(5 minutes)",
        "python-task-2": "rate(10 minutes)",
        "nodejs-task-1": "rate(3 minutes)",
        "nodejs-task-2": "rate(7 minutes)",
        "daily-summary": "cron(0 18 * * ? *)",
    }


def policy_statements(template: Template, plan: StagePlan, task: str) -> list[dict[str, Any]]:
    policy = resource_at(template, "AWS::IAM::Policy", f"{plan.task_stack_name(plan.task(task))}/{task}/Role")
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


Permission = tuple[str, str, str, str]
"""Effect, action, resource and condition (the last two as JSON) of one thing a policy allows or denies."""


def permissions(statements: list[dict[str, Any]], resource_part: str = "") -> set[Permission]:
    """What ``statements`` allow, one action on one resource at a time, on resources whose JSON contains
    ``resource_part``: the same set whether or not CDK's policy minimisation
    (``@aws-cdk/aws-iam:minimizePolicies`` in cdk.json) merged statements sharing actions or resources."""

    def as_list(value: Any) -> list[Any]:
        return value if isinstance(value, list) else [value]

    return {
        (statement["Effect"], action, json.dumps(resource, sort_keys=True), json.dumps(condition, sort_keys=True))
        for statement in statements
        for condition in [statement.get("Condition")]
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
        if resource_part in json.dumps(resource)
    }


def test_a_simple_task_may_write_only_its_own_run_records(dev: tuple[StagePlan, Template]) -> None:
    plan, template = dev
    runs_table = logical_id(template, "AWS::DynamoDB::Table", "kairos-dev/Tables/TaskRuns")
    market_table = logical_id(template, "AWS::DynamoDB::Table", "kairos-dev/Tables/MarketData")

    statements = policy_statements(template, plan, "python-task-1")

    dynamodb = [statement for statement in statements if "dynamodb" in json.dumps(statement["Action"])]
    assert dynamodb == [
        {
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["TASK#python-task-1"]}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [runs_table, "Arn"]},
        }
    ]
    assert market_table not in json.dumps(statements)


def test_the_daily_summary_may_query_the_run_index_but_read_no_other_tasks_records(
    dev: tuple[StagePlan, Template],
) -> None:
    plan, template = dev
    runs_table = logical_id(template, "AWS::DynamoDB::Table", "kairos-dev/Tables/TaskRuns")
    market_table = logical_id(template, "AWS::DynamoDB::Table", "kairos-dev/Tables/MarketData")

    statements = policy_statements(template, plan, "daily-summary")

    assert permissions(statements, runs_table) == permissions(
        [
            {
                "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["TASK#daily-summary"]}},
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [runs_table, "Arn"]},
            },
            {
                "Action": "dynamodb:Query",
                "Effect": "Allow",
                "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [runs_table, "Arn"]}, "/index/by_date"]]},
            },
        ]
    )
    summaries = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["SUMMARY#*"]}}
    assert permissions(statements, market_table) == permissions(
        [
            {
                "Action": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
                "Condition": summaries,
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [market_table, "Arn"]},
            },
            {
                "Action": ["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"],
                "Condition": summaries,
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [market_table, "Arn"]},
            },
            {
                "Action": "dynamodb:Query",
                "Effect": "Allow",
                "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [market_table, "Arn"]}, "/index/by_class_date"]]},
            },
        ]
    )


def test_tasks_share_no_grants(dev: tuple[StagePlan, Template]) -> None:
    plan, template = dev

    one = json.dumps(policy_statements(template, plan, "python-task-1"))
    two = json.dumps(policy_statements(template, plan, "nodejs-task-2"))

    assert "TASK#python-task-1" in one
    assert "TASK#python-task-1" not in two
    assert "TASK#nodejs-task-2" in two


def test_dev_tables_are_destroyed_and_prod_tables_retained_and_deletion_protected(
    dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    for (plan, template), policy, kept in ((dev, "Delete", False), (prod, "Retain", True)):
        tables = template.find_resources("AWS::DynamoDB::Table")
        assert len(tables) == 2
        for table in tables.values():
            assert table["DeletionPolicy"] == policy, plan.stage
            properties = table["Properties"]
            assert properties["BillingMode"] == "PAY_PER_REQUEST"
            assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
            assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": kept}
            assert properties.get("DeletionProtectionEnabled", False) is kept, plan.stage


def test_the_dead_letter_queue_is_kept_where_the_stage_keeps_its_data(
    dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    for (plan, template), policy in ((dev, "Delete"), (prod, "Retain")):
        queue = resource_at(template, "AWS::SQS::Queue", f"{plan.stack_name}/DeadLetters/Queue")
        assert (queue["DeletionPolicy"], queue["UpdateReplacePolicy"]) == (policy, policy), plan.stage


def test_log_groups_keep_the_stages_retention(
    dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    for (plan, template), days in ((dev, 7), (prod, 90)):
        for task in function_tasks(plan):
            log_group = resource_at(template, "AWS::Logs::LogGroup", f"{plan.task_stack_name(task)}/{task.name}/Logs")
            assert log_group["Properties"]["RetentionInDays"] == days
            function = resource_at(
                template, "AWS::Lambda::Function", f"{plan.task_stack_name(task)}/{task.name}/Function"
            )
            group_id = logical_id(template, "AWS::Logs::LogGroup", f"{plan.task_stack_name(task)}/{task.name}/Logs")
            assert function["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": group_id}


def test_the_dead_letter_queue_refuses_plain_http(dev: tuple[StagePlan, Template]) -> None:
    _, template = dev

    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
    template.has_resource_properties(
        "AWS::SQS::Queue", {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 1209600}
    )


def metric_math(expression: str, values: dict[str, float | None]) -> float:
    """Evaluates the CloudWatch metric math the alarms use (FILL, IF, + - >), which is also Python
    syntax; a metric with no data point in the period is None."""

    def fill(value: float | None, default: float) -> float:
        return default if value is None else value

    def if_(condition: bool, then: float, otherwise: float) -> float:
        return then if condition else otherwise

    names: dict[str, object] = {"__builtins__": {}, "FILL": fill, "IF": if_, **values}
    return float(eval(expression, names))  # noqa: S307 - the expression comes from our own template


@pytest.mark.parametrize(
    ("failed", "dropped", "fires"),
    [
        (None, None, False),  # no final failure in the period (a retried blip publishes neither)
        (1, None, True),  # a recorded failure: permanent, or the last attempt's transient one
        (None, 1, True),  # Lambda gave up: a timeout or crash on the last attempt, or a too old event
        (1, 1, True),
    ],
)
def test_the_failure_alarm_fires_on_final_failures_only(
    dev: tuple[StagePlan, Template], failed: float | None, dropped: float | None, fires: bool
) -> None:
    plan, template = dev
    task = plan.tasks[0]
    alarm = resource_at(template, "AWS::CloudWatch::Alarm", f"{plan.task_stack_name(task)}/{task.name}/FailureAlarm")[
        "Properties"
    ]
    [expression] = [metric["Expression"] for metric in alarm["Metrics"] if "Expression" in metric]

    value = metric_math(expression, {"failed": failed, "dropped": dropped})

    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (value >= alarm["Threshold"]) is fires


def test_each_task_has_a_failure_alarm_on_its_run_metric_and_lambdas_dropped_events(
    dev: tuple[StagePlan, Template],
) -> None:
    plan, template = dev

    for task in function_tasks(plan):
        alarm = resource_at(
            template, "AWS::CloudWatch::Alarm", f"{plan.task_stack_name(task)}/{task.name}/FailureAlarm"
        )["Properties"]
        metrics = {metric["Id"]: metric for metric in alarm["Metrics"]}
        assert len(metrics) == 3, "the expression, RunsFailed and AsyncEventsDropped"
        failed = metrics["failed"]["MetricStat"]
        assert (failed["Metric"]["Namespace"], failed["Metric"]["MetricName"], failed["Stat"]) == (
            "Kairos",
            "RunsFailed",
            "Sum",
        )
        assert sorted(failed["Metric"]["Dimensions"], key=lambda d: d["Name"]) == [
            {"Name": "service", "Value": "kairos"},
            {"Name": "stage", "Value": plan.stage},
            {"Name": "task", "Value": task.name},
        ]
        dropped = metrics["dropped"]["MetricStat"]
        assert (dropped["Metric"]["Namespace"], dropped["Metric"]["MetricName"], dropped["Stat"]) == (
            "AWS/Lambda",
            "AsyncEventsDropped",
            "Sum",
        )
        function = logical_id(template, "AWS::Lambda::Function", f"{plan.task_stack_name(task)}/{task.name}/Function")
        assert dropped["Metric"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]


def test_each_function_knows_how_often_lambda_redelivers_its_events(dev: tuple[StagePlan, Template]) -> None:
    """The runtime counts a failure as retried when Lambda will invoke again: the attempts and the
    event age it reckons with must be the ones the function's asynchronous invocation config gives Lambda."""
    plan, template = dev

    for task in function_tasks(plan):
        function = resource_at(template, "AWS::Lambda::Function", f"{plan.task_stack_name(task)}/{task.name}/Function")
        config = resource_at(
            template, "AWS::Lambda::EventInvokeConfig", f"{plan.task_stack_name(task)}/{task.name}/Function"
        )
        environment = function["Properties"]["Environment"]["Variables"]
        assert environment["KAIROS_LAMBDA_RETRY_ATTEMPTS"] == str(config["Properties"]["MaximumRetryAttempts"])
        assert environment["KAIROS_MAX_EVENT_AGE_SECONDS"] == str(config["Properties"]["MaximumEventAgeInSeconds"])


def test_local_tables_are_created_exactly_as_the_template_declares(dev: tuple[StagePlan, Template]) -> None:
    _, template = dev

    from_template = {table.name: table for table in tables_from_template("dev", template.to_json())}
    from_designs = {table.name: table for table in tables_from_designs("dev")}

    assert from_template.keys() == from_designs.keys()
    for name, table in from_designs.items():
        declared = from_template[name]
        assert declared.ttl_attribute == table.ttl_attribute
        for key in ("KeySchema", "BillingMode"):
            assert declared.definition[key] == table.definition[key]
        assert sorted(map(json.dumps, declared.definition["AttributeDefinitions"])) == sorted(
            map(json.dumps, table.definition["AttributeDefinitions"])
        )
        assert [index["IndexName"] for index in declared.definition["GlobalSecondaryIndexes"]] == [
            index["IndexName"] for index in table.definition["GlobalSecondaryIndexes"]
        ]


def test_every_runtime_tasks_yaml_accepts_is_one_cdk_knows() -> None:
    from kairos.config import RUNTIMES
    from kairos_stack.scheduled_task import LAMBDA_RUNTIMES

    assert set(LAMBDA_RUNTIMES) == set(RUNTIMES)
    assert all(LAMBDA_RUNTIMES[name].name == name for name in RUNTIMES)


def test_an_unacknowledged_cdk_nag_finding_fails_the_synth() -> None:
    from aws_cdk import aws_sqs as sqs

    app = cdk.App()
    stack = cdk.Stack(app, "careless")
    sqs.Queue(stack, "PlainQueue")  # no SSL enforcement, no dead-letter queue
    add_checks(app)

    with pytest.raises(RuntimeError, match="AwsSolutions-SQS4"):
        app.synth()


def test_log_retention_choices_and_their_cdk_values_agree() -> None:
    from kairos.config import LOG_RETENTION_DAYS
    from kairos_stack.stage_stack import LOG_RETENTION

    assert set(LOG_RETENTION) == set(LOG_RETENTION_DAYS)


def test_only_this_accounts_alarms_may_use_the_alarm_topic(tmp_path: Any) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "stages:\n  ops: {alarm_email: ops@example.com, account: '111122223333', region: eu-west-1}\n"
        "tasks:\n  - {name: tick, task_type: simple_task_1, schedule: rate(1 hour)}\n"
    )
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(path, catalog), catalog, "ops")
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    template = stage_template(build_stage(app, plan))

    conditions = {
        "StringEquals": {"aws:SourceAccount": "111122223333"},
        "ArnLike": {
            "aws:SourceArn": {
                "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:eu-west-1:111122223333:alarm:*"]]
            }
        },
    }
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with([Match.object_like({"Action": "sns:Publish", "Condition": conditions})])
            }
        },
    )
    template.has_resource_properties(
        "AWS::KMS::Key",
        {"KeyPolicy": {"Statement": Match.array_with([Match.object_like({"Condition": conditions})])}},
    )
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"})


# What each market task type may touch in MarketData, written out rather than read from the registry,
# so a declaration that drifts fails here.
MARKET_PARTITIONS = {
    "stock_spot": (("STOCK#*", "CALENDAR#*"), ("STOCK#*",)),
    "etf_spot": (("ETF#*", "CALENDAR#*"), ("ETF#*",)),
    "index_spot": (("INDEX#*", "CALENDAR#*"), ("INDEX#*",)),
    "crypto_markets": ((), ("CRYPTO#*",)),
    "stock_daily": (("STOCK#*", "CALENDAR#*"), ("STOCK#*",)),
    "etf_daily": (("ETF#*", "CALENDAR#*"), ("ETF#*",)),
    "index_daily": (("INDEX#*", "CALENDAR#*"), ("INDEX#*",)),
    "fund_nav": (("FUND#*", "CALENDAR#*"), ("FUND#*",)),
    "daily_summary": (("SUMMARY#*",), ("SUMMARY#*",)),
    "trading_calendar": (("CALENDAR#*",), ("CALENDAR#*",)),
}


MARKET_INDEX_QUERIES = {"fund_nav", "daily_summary"}
"""The market task types that query MarketData's by_class_date index (funds_with_nav_on, the summary's
day of every class); the others read only their own partitions, by key."""


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_market_task_reads_and_writes_only_its_own_partitions(
    stage: str, dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    from kairos_stack.stage_stack import READ_ACTIONS, WRITE_ACTIONS

    plan, template = dev if stage == "dev" else prod
    market = {
        "Fn::GetAtt": [logical_id(template, "AWS::DynamoDB::Table", f"{plan.stack_name}/Tables/MarketData"), "Arn"]
    }
    market_indexes = {"Fn::Join": ["", [market, "/index/by_class_date"]]}
    market_tasks = [task for task in plan.tasks if task.task_type in MARKET_PARTITIONS]
    assert {task.task_type for task in market_tasks} == set(MARKET_PARTITIONS)
    for task in market_tasks:
        reads, writes = MARKET_PARTITIONS[task.task_type]
        statements = policy_statements(template, plan, task.name)
        expected = [
            {
                "Action": list(actions),
                "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(prefixes)}},
                "Effect": "Allow",
                "Resource": market,
            }
            for actions, prefixes in ((READ_ACTIONS, reads), (WRITE_ACTIONS, writes))
            if prefixes
        ]
        on_market = {grant for grant in permissions(statements) if grant[2] == json.dumps(market, sort_keys=True)}
        assert on_market == permissions(expected), task.name
        # An index can only be queried, and not within partitions: only a task type that says it
        # queries the index gets that (ADR 0203).
        index_grants = {
            grant for grant in permissions(statements) if grant[2] == json.dumps(market_indexes, sort_keys=True)
        }
        assert index_grants == (
            permissions([{"Action": "dynamodb:Query", "Effect": "Allow", "Resource": market_indexes}])
            if task.task_type in MARKET_INDEX_QUERIES
            else set()
        ), task.name
    everything = json.dumps(template.find_resources("AWS::IAM::Policy"))
    assert "dynamodb:Scan" not in everything
    assert "dynamodb:DeleteItem" not in everything


def every_policy_statement(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every IAM policy and every role's inline policies, with the owner's id."""
    found = []
    for name, policy in template.find_resources("AWS::IAM::Policy").items():
        found += [(name, statement) for statement in policy["Properties"]["PolicyDocument"]["Statement"]]
    for name, role in template.find_resources("AWS::IAM::Role").items():
        for inline in role["Properties"].get("Policies", []):
            found += [(name, statement) for statement in inline["PolicyDocument"]["Statement"]]
    return found


# Actions on data or on delivery: each must name the resources it reaches.
DATA_PLANE_ACTION_PREFIXES = (
    "dynamodb:", "sqs:Send", "sqs:Receive", "sqs:Delete", "sns:Publish", "ssm:GetParameter", "lambda:Invoke",
    "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "s3:Get", "s3:Put", "logs:", "secretsmanager:Get",
)  # fmt: skip
WILDCARD_ALLOWED = {
    "xray:PutTraceSegments": "X-Ray's segment and telemetry APIs support no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray's segment and telemetry APIs support no resource-level permissions",
    "xray:GetSamplingRules": "X-Ray's sampling APIs (a state machine's tracing) support no resource-level permission",
    "xray:GetSamplingTargets": "X-Ray's sampling APIs (a state machine's tracing) support no resource-level permission",
}
LOG_DELIVERY_ACTIONS = {
    action: "CloudWatch Logs' vended-log delivery actions a state machine's logging needs support no resource-level "
    "permissions (Step Functions guide, 'IAM policies for logging to CloudWatch Logs'); they configure delivery, "
    "they write no log event"
    for action in (
        "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    )
}  # fmt: skip


@pytest.mark.parametrize("stage", ["dev", "prod", "ops"])
def test_no_policy_grants_a_data_plane_or_logs_action_on_every_resource(
    stage: str, dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template], ops: Template
) -> None:
    template = {"dev": dev[1], "prod": prod[1], "ops": ops}[stage]
    statements = every_policy_statement(template)
    assert statements
    for owner, statement in statements:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "*" not in resources:
            continue
        for action in actions:
            if action in LOG_DELIVERY_ACTIONS:
                assert "StateMachine" in owner, f"{owner}: {action} on '*' (only a state machine's role needs it)"
                continue
            assert action in WILDCARD_ALLOWED, f"{owner}: {action} on '*'"
            assert not action.startswith(DATA_PLANE_ACTION_PREFIXES), f"{owner}: {action} on '*'"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_function_writes_only_its_own_log_groups_streams(
    stage: str, dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    plan, template = dev if stage == "dev" else prod
    roles = template.find_resources("AWS::IAM::Role")
    assert not [name for name, role in roles.items() if role["Properties"].get("ManagedPolicyArns")], (
        "no managed policy (AWSLambdaBasicExecutionRole may write to every log group)"
    )
    for task in function_tasks(plan):
        group = logical_id(template, "AWS::Logs::LogGroup", f"{plan.task_stack_name(task)}/{task.name}/Logs")
        logs = [
            statement
            for statement in policy_statements(template, plan, task.name)
            if "logs:" in json.dumps(statement["Action"])
        ]
        # A log group's Arn attribute is "arn:...:log-group:<name>:*": the group's streams, nothing else.
        assert logs == [
            {
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [group, "Arn"]},
            }
        ], task.name
        function = resource_at(template, "AWS::Lambda::Function", f"{plan.task_stack_name(task)}/{task.name}/Function")
        role = logical_id(template, "AWS::IAM::Role", f"{plan.task_stack_name(task)}/{task.name}/Role")
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
        assert function["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": group}


def synth_file(tmp_path: Any, stages: str, stage: str) -> tuple[StagePlan, StageStacks]:
    path = tmp_path / "tasks.yaml"
    path.write_text(
        f"stages:\n{stages}\ntasks:\n  - {{name: tick, task_type: simple_task_1, schedule: rate(1 hour)}}\n"
    )
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(path, catalog), catalog, stage)
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = build_stage(app, plan)
    add_checks(app)
    app.synth()
    return plan, stack


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A stage with two alarm addresses, retained data and a pinned environment."""
    _, stack = synth_file(
        tmp_path_factory.mktemp("ops"),
        "  ops: {alarm_email: [ops@example.com, pager@example.com], retain_data: true,"
        " account: '111122223333', region: eu-west-1}",
        "ops",
    )
    return stage_template(stack)


def alarm_actions(template: Template) -> list[Any]:
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert alarms
    return [alarm["Properties"].get("AlarmActions") for alarm in alarms.values()]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_alarm_notifies_the_stages_topic_even_with_nobody_subscribed(
    stage: str, dev: tuple[StagePlan, Template], prod: tuple[StagePlan, Template]
) -> None:
    plan, template = dev if stage == "dev" else prod
    topic = logical_id(template, "AWS::SNS::Topic", f"{plan.stack_name}/Alarms/Topic")

    alarms = len(plan.tasks) + sum(len(task.gauge_alarms) for task in plan.tasks) + 1
    alarms += sum(task.freshness.alarm is not None for task in plan.tasks)
    assert alarm_actions(template) == [[{"Ref": topic}]] * alarms, "each task's, gauge, freshness; the queue's"
    assert template.find_resources("AWS::SNS::Subscription") == {}
    properties = template.find_resources("AWS::SNS::Topic")[topic]["Properties"]
    assert "KmsMasterKeyId" in properties
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
    template.has_output("AlarmTopicArn", {"Value": {"Ref": topic}})


def test_each_alarm_address_is_subscribed(ops: Template) -> None:
    endpoints = sorted(
        subscription["Properties"]["Endpoint"] for subscription in ops.find_resources("AWS::SNS::Subscription").values()
    )
    assert endpoints == ["ops@example.com", "pager@example.com"]


def test_alarms_can_notify_an_existing_topic_instead(tmp_path: Any) -> None:
    arn = "arn:aws:sns:eu-west-1:111122223333:ops-paging"
    _, stack = synth_file(tmp_path, f"  ops: {{retain_data: true, alarm_topic_arn: '{arn}'}}", "ops")
    template = stage_template(stack)

    assert template.find_resources("AWS::SNS::Topic") == {}
    assert template.find_resources("AWS::KMS::Key") == {}
    assert alarm_actions(template) == [[arn], [arn]]
    cdk.assertions.Annotations.from_stack(stack.core).has_no_warning("*", Match.any_value())


def test_a_stage_that_keeps_data_with_no_alarm_subscriber_warns_at_synth(tmp_path: Any) -> None:
    _, kept = synth_file(tmp_path, "  prod: {retain_data: true}", "prod")
    _, scratch = synth_file(tmp_path, "  dev: {}", "dev")

    cdk.assertions.Annotations.from_stack(kept.core).has_warning(
        "/kairos-prod", Match.string_like_regexp("nobody is subscribed to its alarms: set alarm_email")
    )
    cdk.assertions.Annotations.from_stack(scratch.core).has_no_warning("*", Match.any_value())


def test_the_calendar_refresh_alarms_when_the_calendar_ends_within_30_days(prod: tuple[StagePlan, Template]) -> None:
    plan, template = prod
    stack = plan.task_stack_name(plan.task("trading-calendar"))
    alarm = resource_at(template, "AWS::CloudWatch::Alarm", f"{stack}/trading-calendar/TradingCalendarDaysLeftAlarm")[
        "Properties"
    ]

    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "Kairos",
        "TradingCalendarDaysLeft",
        "Minimum",
    )
    assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == [
        {"Name": "service", "Value": "kairos"},
        {"Name": "stage", "Value": "prod"},
        {"Name": "task", "Value": "trading-calendar"},
    ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanOrEqualToThreshold", 30)
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (86400, 1, "ignore")
    calendar_alarms = [
        resource
        for resource in template.find_resources("AWS::CloudWatch::Alarm").values()
        if resource["Properties"].get("MetricName") == "TradingCalendarDaysLeft"
    ]
    assert len(calendar_alarms) == 1, "only the refresh task's construct carries the calendar alarm"


def test_each_function_refuses_past_slots_after_the_schedule_and_lambda_have_given_up(
    dev: tuple[StagePlan, Template],
) -> None:
    """The late-delivery limit a non-backfillable task is held to is the latest its own slot's delivery
    can come: the schedule's retry window plus Lambda's, both as deployed."""
    plan, template = dev

    for task in function_tasks(plan):
        stack = plan.task_stack_name(task)
        function = resource_at(template, "AWS::Lambda::Function", f"{stack}/{task.name}/Function")
        config = resource_at(template, "AWS::Lambda::EventInvokeConfig", f"{stack}/{task.name}/Function")
        schedule = resource_at(template, "AWS::Scheduler::Schedule", f"{stack}/{task.name}/Schedule")
        scheduler_age = schedule["Properties"]["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"]
        lambda_age = config["Properties"]["MaximumEventAgeInSeconds"]
        environment = function["Properties"]["Environment"]["Variables"]
        assert environment["KAIROS_LATE_DELIVERY_LIMIT_SECONDS"] == str(scheduler_age + lambda_age), task.name


def test_a_partition_scoped_read_queries_an_index_only_when_its_task_type_declares_it() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as dynamodb

    from kairos_runtime.registry import Access, Partitions
    from kairos_stack.stage_stack import table_statements

    stack = cdk.Stack(cdk.App(context={"aws:cdk:bundling-stacks": []}), "Probe")
    table = dynamodb.Table(stack, "T", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING))

    def index_resources(access: Access, partitions: Partitions | None) -> list[list[str]]:
        statements = [s.to_statement_json() for s in table_statements(table, access, partitions, indexes=["by_x"])]
        return [s["Resource"] for s in statements if "/index/" in json.dumps(s["Resource"])]

    scoped = Partitions(read=("INDEX#", "CALENDAR#"), write=("INDEX#",))
    assert index_resources(Access.READ_WRITE, scoped) == []
    assert (
        len(index_resources(Access.READ_WRITE, Partitions(read=("FUND#",), write=("FUND#",), query_indexes=True))) == 1
    )
    assert len(index_resources(Access.READ, None)) == 1, "a whole-table read reaches the indexes as it did"
    assert len(index_resources(Access.QUERY_INDEXES, None)) == 1
    assert index_resources(Access.WRITE, Partitions(write=("INDEX#",))) == []
