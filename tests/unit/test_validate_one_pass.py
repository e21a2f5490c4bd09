"""``kairos validate`` reports every problem of a broken file in one run, each at the line at fault."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kairos import cli
from kairos.catalog import TaskCatalog, load_catalog
from kairos.config import PATTERN_HINTS
from kairos.json_schema import tasks_file_schema
from kairos.loading import check_tasks_file, load_tasks_file
from tests.conftest import PROJECT_ROOT

BROKEN = PROJECT_ROOT / "tests" / "fixtures" / "tasks_files" / "thirteen_mistakes.yaml"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> TaskCatalog:
    return load_catalog()


@pytest.fixture
def validate(catalog: TaskCatalog, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(cli.services, "_catalog", catalog)
    monkeypatch.setattr(cli.services, "clock", lambda: NOW)

    def run(path: Path) -> tuple[int, list[tuple[int, str]]]:
        result = CliRunner().invoke(cli.app, ["validate", "--file", str(path)])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        found = []
        for line in result.output.splitlines():
            if (
                line.endswith(": valid")
                or re.fullmatch(r"  [a-z0-9-]+: core \+ \d+ shards; resources: .*", line)
                or re.fullmatch(r"  [a-z0-9-]+: [\d,]+ functions for [\d,]+ tasks.*", line)
            ):
                continue  # the verdict, each valid stage's stacks and functions (docs/adr/0180, 0183)
            located = re.fullmatch(rf"{re.escape(str(path))}:(\d+): (.*)", line)
            assert located, line
            found.append((int(located[1]), located[2]))
        return result.exit_code, found

    return run


def test_every_mistake_of_a_broken_file_is_reported_once_at_its_line(validate: Any) -> None:
    code, found = validate(BROKEN)

    assert code == 1
    assert found == sorted(found, key=lambda report: report[0]), "in the order of the file"
    assert set(found) == {
        (10, "stage 'dev', field 'enabled.1': unknown task 'pyhton-task-2' (did you mean 'python-task-2'?)"),
        (16, "stage 'prod', field 'overrides.crypto-markts': unknown task 'crypto-markts' (did you mean 'crypto'?)"),
        # No "field 'schedule': Field required" after its typo.
        (20, "task 'python-task-1', field 'shedule': unknown field (did you mean 'schedule'?)"),
        (21, "task 'python-task-1', field 'memory': Input should be less than or equal to 10240 (got 99999)"),
        (25, "task 'python-task-2', field 'timezone': unknown timezone 'Asia/Shangai' (did you mean 'Asia/Shanghai'?)"),
        (26, "task 'python-task-1', field 'name': task #1 (line 18) has this name already: names must be unique"),
        (30, "task 'spot', field 'task_type': 'stock_spotty' is not registered for runtime python3.13 "
             "(did you mean 'stock_spot'?)"),
        (35, "task 'index', field 'runtime': Input should be 'python3.12', 'python3.13', 'python3.14', 'nodejs20.x', "
             "'nodejs22.x' or 'nodejs24.x' (got 'pyhton3.13') (did you mean 'python3.13'?)"),
        # The entry's runtime is wrong, and its params are still checked (against the default runtime's type).
        (38, "task 'index', field 'params.group': Invalid enum value 'majr': expected one of major, shanghai, "
             "shenzhen, constituent, csi (did you mean 'major'?)"),
        (43, "task 'crypto', field 'params.vs_currency': expected a lower-case currency code such as usd (got 'USD')"),
        (44, "task 'crypto', field 'params.top_n': Expected `int` >= 1 (got 0)"),
        (47, "task 'once', field 'schedule': at(2026-06-01T09:00:00) in UTC (2026-06-01T09:00:00Z) has passed, and "
             "Scheduler never fires a one-time schedule late: give a future time, or disable the task in prod"),
        (51, "warning: task 'done-once', field 'schedule': at(2026-01-01T00:00:00) in Asia/Shanghai "
             "(2025-12-31T16:00:00Z) has passed, and Scheduler never fires a one-time schedule late "
             "(disabled in every stage: remove it when done)"),
    }  # fmt: skip
    assert len(found) == len(set(found)), "each problem once"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


ONE_TIME = """\
    stages:
      dev: {}
      prod: {overrides: {later: {schedule: "at(2026-11-30T23:00:00)"}}}
    tasks:
      - name: soon
        task_type: simple_task_1
        schedule: at(2026-12-01T08:30:00)
        timezone: Asia/Shanghai
        enabled: true
      - name: later
        task_type: simple_task_1
        schedule: at(2027-01-01T00:00:00)
        enabled: true
"""


def test_a_passed_one_time_schedule_is_judged_in_its_zone_and_where_the_override_sets_it(
    tmp_path: Path, catalog: TaskCatalog
) -> None:
    # 08:30 in Shanghai is 00:30 UTC, after NOW: it still fires. prod's override moved `later` into the past.
    checked = check_tasks_file(write(tmp_path, ONE_TIME), catalog, now=NOW)

    assert checked.problems == (
        f"{tmp_path / 'tasks.yaml'}:3: task 'later' (stage 'prod'), field 'schedule': at(2026-11-30T23:00:00) in UTC "
        "(2026-11-30T23:00:00Z) has passed, and Scheduler never fires a one-time schedule late: give a future "
        "time, or disable the task in prod",
    )


def test_only_validate_checks_the_clock(tmp_path: Path, catalog: TaskCatalog) -> None:
    # A file must not stop loading (for kairos disable, list or a synth) because time passed.
    path = write(tmp_path, ONE_TIME)

    assert [task.name for task in load_tasks_file(path, catalog).tasks] == ["soon", "later"]
    assert check_tasks_file(path, catalog, now=datetime(2026, 11, 1, tzinfo=UTC)).problems == ()


def test_cross_entry_and_catalog_checks_run_while_other_fields_are_wrong(tmp_path: Path, catalog: TaskCatalog) -> None:
    text = """\
        stages:
          dev: {enabled: [one, two], log_retention_days: 8}
        tasks:
          - name: one
            task_type: simple_task_1
            memory: 1
          - name: two
            task_type: simple_task_3
            schedule: rate(1 hour)
            params: {lable: x}
          - name: three
            task_type: simple_task_1
            schedule: rate(2 hours)
            params: {lable: x}
    """

    checked = check_tasks_file(write(tmp_path, text), catalog)

    assert [problem.split(": ", 1)[1] for problem in checked.problems] == [
        "stage 'dev', field 'log_retention_days': CloudWatch Logs accepts one of 1, 3, 5, 7, 14, 30, 60, 90, 120, "
        "150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 (got 8)",
        "task 'one', field 'schedule': Field required",
        "task 'one', field 'memory': Input should be greater than or equal to 128 (got 1)",
        "task 'two', field 'task_type': 'simple_task_3' is not registered for runtime python3.13 "
        "(did you mean 'simple_task_2'?)",
        "task 'three', field 'params.lable': unknown field (did you mean 'label'?)",
    ]
    assert checked.tasks_file is None


def _patterns(schema: object) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            yield schema["pattern"]
        for value in schema.values():
            yield from _patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _patterns(value)


def test_every_pattern_of_the_tasks_file_has_words_for_its_message() -> None:
    patterns = set(_patterns(tasks_file_schema()))

    assert patterns, "the schema declares patterns"
    assert patterns <= set(PATTERN_HINTS), patterns - set(PATTERN_HINTS)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{region: eu-west}", "stage 'dev', field 'region': expected an AWS region such as eu-west-1 (got 'eu-west')"),
        ("{account: '1234'}", "stage 'dev', field 'account': expected a 12-digit AWS account id (got '1234')"),
        ("{enabled: [Two]}", "stage 'dev', field 'enabled.0': expected a task name: a lower-case letter, then up to "
         "47 lower-case letters, digits and - (got 'Two')"),
    ],
)  # fmt: skip
def test_a_pattern_failure_says_what_would_fit(tmp_path: Path, catalog: TaskCatalog, value: str, message: str) -> None:
    text = f"stages:\n  dev: {value}\ntasks:\n  - {{name: two, task_type: simple_task_1, schedule: rate(1 hour)}}\n"

    checked = check_tasks_file(write(tmp_path, text), catalog)

    assert checked.problems == (f"{tmp_path / 'tasks.yaml'}:2: {message}",)


def test_a_passed_one_time_schedule_of_a_task_no_stage_enables_is_a_warning(validate: Any, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        stages: {dev: {}}
        tasks:
          - {name: ran, task_type: simple_task_1, schedule: "at(2026-11-01T00:00:00)"}
        """,
    )

    code, found = validate(path)

    assert code == 0
    assert found == [
        (3, "warning: task 'ran', field 'schedule': at(2026-11-01T00:00:00) in UTC (2026-11-01T00:00:00Z) has "
            "passed, and Scheduler never fires a one-time schedule late (disabled in every stage: remove it when done)")
    ]  # fmt: skip
