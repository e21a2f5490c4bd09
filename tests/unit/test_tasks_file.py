"""tasks.yaml parsing: the real file loads, and every bad entry fails naming the line, task and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kairos.catalog import TaskCatalog, load_catalog
from kairos.loading import ConfigError, load_tasks_file
from kairos.plan import plan_stage
from tests.conftest import PROJECT_ROOT

VALID = """\
    defaults:
      runtime: python3.13
      memory: 256
      timeout: 60
      timezone: UTC
    stages:
      dev: {enabled: [one], log_retention_days: 7}
      prod: {log_retention_days: 90, retain_data: true}
    tasks:
      - name: one
        task_type: simple_task_1
        schedule: rate(5 minutes)
      - name: two
        task_type: simple_task_2
        runtime: nodejs22.x
        schedule: cron(0 18 ? * MON-FRI *)
        timezone: Asia/Shanghai
        enabled: false
        memory: 1024
        params: {payload: {a: 1}}
"""


@pytest.fixture(scope="module")
def catalog() -> TaskCatalog:
    return load_catalog()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, catalog: TaskCatalog) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_tasks_file(write(tmp_path, text), catalog)
    return raised.value.problems


def test_the_projects_tasks_file_is_valid(catalog: TaskCatalog) -> None:
    tasks_file = load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog)

    names = [task.name for task in tasks_file.tasks]
    assert {"python-task-1", "python-task-2", "nodejs-task-1", "nodejs-task-2", "daily-summary"} <= set(names)
    assert tasks_file.task("daily-summary").schedule == "cron(0 18 * * ? *)"
    assert tasks_file.task("daily-summary").enabled is False


def test_defaults_then_entry_then_stage_layers_apply(tmp_path: Path, catalog: TaskCatalog) -> None:
    tasks_file = load_tasks_file(write(tmp_path, VALID), catalog)

    base = {task.name: task for task in tasks_file.resolved_tasks()}
    assert (base["one"].memory, base["one"].timeout, base["one"].runtime) == (256, 60, "python3.13")
    assert (base["two"].memory, base["two"].timezone, base["two"].enabled) == (1024, "Asia/Shanghai", False)

    dev = {task.name: task for task in tasks_file.resolved_tasks("dev")}
    assert dev["one"].enabled is True
    assert dev["two"].enabled is False
    prod = {task.name: task for task in tasks_file.resolved_tasks("prod")}
    assert prod["two"].enabled is False, "without an enabled list a stage keeps each task's own flag"


def test_a_stage_override_changes_one_task_in_that_stage_only(tmp_path: Path, catalog: TaskCatalog) -> None:
    text = VALID.replace(
        "prod: {log_retention_days: 90, retain_data: true}",
        "prod: {log_retention_days: 90, overrides: {two: {enabled: true, memory: 2048}}}",
    )
    tasks_file = load_tasks_file(write(tmp_path, text), catalog)

    prod = {task.name: task for task in tasks_file.resolved_tasks("prod")}
    dev = {task.name: task for task in tasks_file.resolved_tasks("dev")}
    assert (prod["two"].enabled, prod["two"].memory) == (True, 2048)
    assert dev["two"].memory == 1024


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "name: two",
            "name: one",
            "task 'one', field 'name': task #1 (line 10) has this name already",
            id="duplicate-name",
        ),
        pytest.param(
            "name: two",
            "name: Two_Task",
            "task 'Two_Task', field 'name': expected a task name: a lower-case letter",
            id="bad-name",
        ),
        pytest.param(
            "schedule: rate(5 minutes)",
            "shedule: rate(5 minutes)",
            "task 'one', field 'shedule': unknown field (did you mean 'schedule'?)",
            id="typo",
        ),
        pytest.param(
            "memory: 1024",
            "memory: 20000",
            "task 'two', field 'memory': Input should be less than or equal to 10240",
            id="memory-too-large",
        ),
        pytest.param(
            "memory: 1024",
            "memory: 64",
            "task 'two', field 'memory': Input should be greater than or equal to 128",
            id="memory-too-small",
        ),
        pytest.param(
            "enabled: false",
            "timeout: 901",
            "task 'two', field 'timeout': Input should be less than or equal to 900",
            id="timeout",
        ),
        pytest.param(
            "runtime: nodejs22.x",
            "runtime: nodejs16.x",
            "task 'two', field 'runtime': Input should be",
            id="unknown-runtime",
        ),
        pytest.param(
            "timezone: Asia/Shanghai",
            "timezone: Mars/Olympus",
            "task 'two', field 'timezone': unknown timezone",
            id="unknown-timezone",
        ),
        pytest.param(
            "schedule: rate(5 minutes)",
            "schedule: rate(1 minutes)",
            "task 'one', field 'schedule': rate: use 'minute'",
            id="rate-plural",
        ),
        pytest.param(
            "schedule: rate(5 minutes)",
            "schedule: cron(0 18 * * * *)",
            "task 'one', field 'schedule': cron: day-of-month and day-of-week cannot both be set",
            id="cron-both-days",
        ),
        pytest.param(
            "schedule: rate(5 minutes)",
            "schedule: cron(0 18 * * ?)",
            "task 'one', field 'schedule': cron",
            id="cron-five-fields",
        ),
        pytest.param(
            "schedule: rate(5 minutes)",
            "schedule: every 5 minutes",
            "task 'one', field 'schedule'",
            id="free-text",
        ),
        pytest.param(
            "dev: {enabled: [one]",
            "dev: {enabled: [one, ghost]",
            "stage 'dev', field 'enabled.1': unknown task 'ghost'",
            id="stage-unknown-task",
        ),
        pytest.param(
            "log_retention_days: 7",
            'log_retention_days: 7, https_proxy: "http://me:secret@proxy.example:3128"',
            "stage 'dev', field 'https_proxy': credentials do not belong in tasks.yaml",
            id="proxy-credentials",
        ),
        pytest.param(
            "dev: {enabled: [one],",
            "dev: {enabled: [one], overrides: {two: {enabled: true}},",
            "stage 'dev': overrides of two set 'enabled', but the stage's 'enabled' list already decides",
            id="two-ways-to-enable",
        ),
        pytest.param(
            "log_retention_days: 7",
            "log_retention_days: 8",
            "stage 'dev', field 'log_retention_days': CloudWatch Logs accepts one of",
            id="retention",
        ),
        # The file's own booleans and whole numbers are what YAML writes, not what lax coercion makes
        # of a string or a number (params are strict the same way).
        pytest.param(
            "enabled: false",
            "enabled: no",
            "task 'two', field 'enabled': expected true or false, not a string: write true or false unquoted "
            "(YAML 1.2 reads yes, no, on and off as strings) (got 'no')",
            id="bool-yaml-1.1-no",
        ),
        pytest.param(
            "enabled: false",
            'enabled: "false"',
            "task 'two', field 'enabled': expected true or false, not a string",
            id="bool-quoted",
        ),
        pytest.param(
            "enabled: false",
            "enabled: 0",
            "task 'two', field 'enabled': expected true or false, not a number (got 0)",
            id="bool-number",
        ),
        pytest.param(
            "retain_data: true",
            "retain_data: 1",
            "stage 'prod', field 'retain_data': expected true or false, not a number (got 1)",
            id="stage-bool-number",
        ),
        pytest.param(
            "memory: 1024",
            'memory: "1024"',
            "task 'two', field 'memory': expected a whole number, not a string: write it unquoted (got '1024')",
            id="int-quoted",
        ),
        pytest.param(
            "memory: 1024",
            "memory: 1024.0",
            "task 'two', field 'memory': expected a whole number: write it without a decimal point (got 1024.0)",
            id="int-float",
        ),
        pytest.param(
            "timeout: 60",
            "timeout: true",
            "tasks file, field 'defaults.timeout': expected a whole number, not true or false (got true)",
            id="int-bool",
        ),
        pytest.param(
            "log_retention_days: 7",
            'log_retention_days: "7"',
            "stage 'dev', field 'log_retention_days': expected a whole number, not a string",
            id="stage-int-quoted",
        ),
        pytest.param(
            "retain_data: true",
            "retain_data: &yes true, shards: *yes",
            "stage 'prod', field 'shards': expected a whole number, not true or false",
            id="int-anchored-bool",
        ),
    ],
)
def test_bad_entries_are_rejected_naming_task_and_field(
    tmp_path: Path, catalog: TaskCatalog, old: str, new: str, expected: str
) -> None:
    assert old in VALID
    problems = problems_of(tmp_path, VALID.replace(old, new, 1), catalog)

    assert any(expected in problem for problem in problems), problems
    assert all(problem.startswith(str(tmp_path / "tasks.yaml") + ":") for problem in problems)


def test_yaml_booleans_and_integers_are_taken_anchored_or_not(tmp_path: Path, catalog: TaskCatalog) -> None:
    text = VALID.replace("memory: 256", "memory: &size 256").replace("enabled: false", "enabled: &off false")
    text += "      - {name: three, task_type: simple_task_1, schedule: rate(1 hour), memory: *size, enabled: *off}\n"

    tasks_file = load_tasks_file(write(tmp_path, text), catalog)

    three = tasks_file.task("three")
    assert (three.memory, three.enabled) == (256, False)
    assert type(three.memory) is int
    assert type(three.enabled) is bool


def test_problems_point_at_the_line_of_the_field(tmp_path: Path, catalog: TaskCatalog) -> None:
    problems = problems_of(tmp_path, VALID.replace("memory: 1024", "memory: 20000"), catalog)

    line = textwrap.dedent(VALID).splitlines().index("    memory: 1024") + 1
    assert problems == [
        f"{tmp_path / 'tasks.yaml'}:{line}: task 'two', field 'memory': "
        "Input should be less than or equal to 10240 (got 20000)"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path, catalog: TaskCatalog) -> None:
    text = VALID.replace("memory: 1024", "memory: 1").replace("rate(5 minutes)", "rate(0 minutes)")

    problems = problems_of(tmp_path, text, catalog)

    assert len(problems) == 2
    assert any("task 'one', field 'schedule'" in problem for problem in problems)
    assert any("task 'two', field 'memory'" in problem for problem in problems)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "task_type: simple_task_1",
            "task_type: stock_spotty",
            "task 'one', field 'task_type': 'stock_spotty' is not registered for runtime python3.13",
            id="unknown-type",
        ),
        pytest.param(
            "runtime: nodejs22.x",
            "runtime: nodejs22.x\n        architecture: x86_64",
            "task 'two', field 'architecture': task_type 'simple_task_2' needs arm64",
            id="wrong-architecture",
        ),
        pytest.param(
            "params: {payload: {a: 1}}",
            "params: {payload: 3}",
            "task 'two', field 'params.payload': 3 is not of type 'object'",
            id="node-params-type",
        ),
        pytest.param(
            "params: {payload: {a: 1}}",
            "params: {paylaod: {a: 1}}",
            "task 'two', field 'params': Additional properties are not allowed",
            id="node-params-typo",
        ),
        pytest.param(
            "schedule: rate(5 minutes)",
            "schedule: rate(5 minutes)\n        params: {label: [1]}",
            "task 'one', field 'params.label': Expected `str`, got `array`",
            id="python-params-type",
        ),
        pytest.param(
            "schedule: rate(5 minutes)",
            "schedule: rate(5 minutes)\n        params: {lable: x}",
            "task 'one', field 'params.lable': unknown field (did you mean 'label'?)",
            id="python-params-typo",
        ),
    ],
)
def test_task_types_and_params_are_checked_against_the_registry(
    tmp_path: Path, catalog: TaskCatalog, old: str, new: str, expected: str
) -> None:
    problems = problems_of(tmp_path, VALID.replace(old, new, 1), catalog)

    assert any(expected in problem for problem in problems), problems


def test_a_task_type_of_the_other_runtime_is_not_accepted(tmp_path: Path, catalog: TaskCatalog) -> None:
    # simple_task_2 exists for both runtimes; a Python-only type on Node must be refused.
    problems = problems_of(tmp_path, VALID.replace("task_type: simple_task_2", "task_type: python_only"), catalog)

    assert any("'python_only' is not registered for runtime nodejs22.x" in problem for problem in problems)


def test_a_stage_override_is_checked_in_its_stage(tmp_path: Path, catalog: TaskCatalog) -> None:
    text = VALID.replace("retain_data: true}", "overrides: {one: {params: {label: [x]}}}}")

    problems = problems_of(tmp_path, text, catalog)

    assert any("task 'one' (stage 'prod'), field 'params.label'" in problem for problem in problems), problems


def test_yaml_syntax_errors_report_the_line(tmp_path: Path, catalog: TaskCatalog) -> None:
    text = VALID.replace("task_type: simple_task_1", "task_type: [simple_task_1")

    problems = problems_of(tmp_path, text, catalog)

    assert len(problems) == 1
    assert "YAML syntax error" in problems[0]
    line = int(problems[0].split(":")[1])
    assert 10 <= line <= 13


def test_a_missing_file_is_a_clear_error(tmp_path: Path, catalog: TaskCatalog) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_tasks_file(tmp_path / "absent.yaml", catalog)


def test_models_are_frozen(tmp_path: Path, catalog: TaskCatalog) -> None:
    tasks_file = load_tasks_file(write(tmp_path, VALID), catalog)

    with pytest.raises(ValueError, match="frozen"):
        tasks_file.tasks[0].memory = 512  # type: ignore[misc]


def test_yaml_scalars_reach_the_params_checks_and_the_schedule_as_plain_json(
    tmp_path: Path, catalog: TaskCatalog
) -> None:
    # ruamel loads 20.5 as a float subclass, an anchored boolean as an int subclass and a !!str value
    # as a tagged scalar: the schedule sends JSON, so the checks and the plan must see float, bool, str.
    text = VALID.replace(
        "retain_data: true}", "retain_data: true, overrides: {spot: {params: {max_retry_seconds: 2.5}}}}"
    )
    text += (
        "      - name: spot\n"
        "        task_type: stock_spot\n"
        "        schedule: rate(5 minutes)\n"
        "        params: {request_timeout_seconds: 20.5, trading_hours_only: &hours false, symbols: [!!str 600519]}\n"
        "      - name: spot-again\n"
        "        task_type: stock_spot\n"
        "        schedule: rate(5 minutes)\n"
        "        params: {trading_hours_only: *hours}\n"
    )

    tasks_file = load_tasks_file(write(tmp_path, text), catalog)

    spot = plan_stage(tasks_file, catalog, "dev").task("spot").input_template["params"]
    assert spot == {"request_timeout_seconds": 20.5, "trading_hours_only": False, "symbols": ["600519"]}
    assert [type(value) for value in spot.values()] == [float, bool, list]
    assert type(spot["symbols"][0]) is str
    again = plan_stage(tasks_file, catalog, "dev").task("spot-again").input_template["params"]
    assert again["trading_hours_only"] is False
    in_prod = plan_stage(tasks_file, catalog, "prod").task("spot").input_template["params"]
    assert in_prod == {"max_retry_seconds": 2.5}, "an override's params replace the entry's"
    assert type(in_prod["max_retry_seconds"]) is float


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-11-27", "a date, which the schedule's JSON input cannot carry: write it as a quoted string"),
        ("9007199254740993", "too large to stay exact in the schedule's JSON input: quote it"),
        ("!thing x", "the tag !thing has no meaning in JSON: remove it"),
        (".nan", "nan, which JSON cannot carry"),
        ("!!set {a, b}", "a YAML set, which JSON cannot carry: write it as a list"),
        ("{1: x}", "the key 1 is not a string, as JSON keys are: quote it"),
    ],
)
def test_a_param_json_cannot_carry_is_refused_at_its_line(
    tmp_path: Path, catalog: TaskCatalog, value: str, problem: str
) -> None:
    summary = (
        "      - name: summary\n"
        "        task_type: simple_task_2\n"
        "        schedule: cron(0 18 * * ? *)\n"
        "        params:\n"
        "          payload:\n"
        "            fine: 1\n"
        f"            bad: {value}\n"
    )

    problems = problems_of(tmp_path, VALID + summary, catalog)

    assert problems == [f"{tmp_path / 'tasks.yaml'}:27: task 'summary', field 'params.payload.bad': {problem}"]


def test_a_params_model_problem_points_at_the_value_in_the_entry_or_the_stage_override(
    tmp_path: Path, catalog: TaskCatalog
) -> None:
    spot = (
        "      - name: spot\n"
        "        task_type: stock_spot\n"
        "        schedule: rate(5 minutes)\n"
        "        params:\n"
        "          symbols:\n"
        "            - '600519'\n"
        "            - '60051'\n"
    )
    override = "overrides: {one: {params: {lable: x}}}}"

    problems = problems_of(tmp_path, VALID.replace("retain_data: true}", override) + spot, catalog)

    assert sorted(problems) == [
        f"{tmp_path / 'tasks.yaml'}:27: task 'spot', field 'params.symbols.1': "
        "expected a six-digit exchange code such as 600519 (got '60051')",
        f"{tmp_path / 'tasks.yaml'}:8: task 'one' (stage 'prod'), field 'params.lable': "
        "unknown field (did you mean 'label'?)",
    ]


def test_a_non_string_key_right_under_params_gets_the_same_advice(tmp_path: Path, catalog: TaskCatalog) -> None:
    text = VALID.replace("params: {payload: {a: 1}}", "params:\n          1: x")

    problems = problems_of(tmp_path, text, catalog)

    assert problems == [
        f"{tmp_path / 'tasks.yaml'}:20: task 'two', field 'params': "
        "the key 1 is not a string, as JSON keys are: quote it"
    ]
