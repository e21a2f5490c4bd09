"""Whether a task runs in a stage, and which layer decided it: the shipped file, then each rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kairos.catalog import load_catalog
from kairos.config import EnabledBy, EnabledState, TasksFile
from kairos.loading import load_tasks_file
from kairos.plan import plan_stage
from tests.conftest import PROJECT_ROOT

DEMO_TASKS = ("python-task-1", "python-task-2", "nodejs-task-1", "nodejs-task-2")
OFF_BY_ENTRY = (
    "stock-spot", "etf-spot", "index-spot", "stock-daily", "stock-daily-all", "etf-daily", "index-daily",
    "daily-summary", "trading-calendar", "fund-nav",
)  # fmt: skip

# What the README's "Stages" section says the shipped tasks.yaml runs.
SHIPPED: dict[str, dict[str, EnabledState]] = {
    **{
        name: {
            "dev": EnabledState(True, EnabledBy.STAGE_LIST),
            "prod": EnabledState(False, EnabledBy.BUILT_IN),
        }
        for name in DEMO_TASKS
    },
    "crypto-markets": {
        "dev": EnabledState(False, EnabledBy.STAGE_LIST),
        "prod": EnabledState(False, EnabledBy.BUILT_IN),
    },
    **{
        name: {
            "dev": EnabledState(False, EnabledBy.STAGE_LIST),
            "prod": EnabledState(False, EnabledBy.TASK_ENTRY),
        }
        for name in OFF_BY_ENTRY
    },
}


def test_every_shipped_task_has_the_state_the_readme_gives_it_in_every_stage() -> None:
    catalog = load_catalog()
    tasks_file = load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog)

    states = {
        entry.name: {stage: tasks_file.enabled_state(entry.name, stage) for stage in tasks_file.stages}
        for entry in tasks_file.tasks
    }
    assert states == SHIPPED
    # The deployed schedule states come from the same decision.
    for stage in tasks_file.stages:
        plan = plan_stage(tasks_file, catalog, stage)
        assert {task.name: task.enabled for task in plan.tasks} == {
            name: by_stage[stage].enabled for name, by_stage in SHIPPED.items()
        }


def test_nothing_runs_in_prod_as_shipped() -> None:
    catalog = load_catalog()

    prod = plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, "prod")

    assert prod.enabled_tasks == ()


def load(tmp_path: Path, text: str) -> TasksFile:
    path = tmp_path / "tasks.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_tasks_file(path)


BASE = """\
    {defaults}
    stages:
      listed: {{enabled: [a]}}
      overriding: {{overrides: {{a: {{enabled: true}}, b: {{enabled: false}}}}}}
      plain: {{}}
    tasks:
      - {{name: a, task_type: simple_task_1, schedule: rate(5 minutes)}}
      - {{name: b, task_type: simple_task_1, schedule: rate(5 minutes), enabled: true}}
"""


@pytest.mark.parametrize(
    ("defaults", "stage", "expected"),
    [
        pytest.param("", None, {"a": (False, EnabledBy.BUILT_IN), "b": (True, EnabledBy.TASK_ENTRY)}, id="no-stage"),
        pytest.param(
            "", "plain", {"a": (False, EnabledBy.BUILT_IN), "b": (True, EnabledBy.TASK_ENTRY)}, id="new-task-is-off"
        ),
        pytest.param(
            "defaults: {enabled: true}",
            "plain",
            {"a": (True, EnabledBy.DEFAULTS), "b": (True, EnabledBy.TASK_ENTRY)},
            id="file-defaults-beat-built-in",
        ),
        pytest.param(
            "defaults: {enabled: true}",
            "listed",
            {"a": (True, EnabledBy.STAGE_LIST), "b": (False, EnabledBy.STAGE_LIST)},
            id="list-beats-entry",
        ),
        pytest.param(
            "",
            "overriding",
            {"a": (True, EnabledBy.OVERRIDE), "b": (False, EnabledBy.OVERRIDE)},
            id="override-beats-entry",
        ),
    ],
)
def test_the_most_specific_layer_decides(
    tmp_path: Path, defaults: str, stage: str | None, expected: dict[str, tuple[bool, EnabledBy]]
) -> None:
    tasks_file = load(tmp_path, BASE.format(defaults=defaults))

    assert {name: tuple(tasks_file.enabled_state(name, stage)) for name in ("a", "b")} == expected
    assert {task.name: task.enabled for task in tasks_file.resolved_tasks(stage)} == {
        name: enabled for name, (enabled, _) in expected.items()
    }
