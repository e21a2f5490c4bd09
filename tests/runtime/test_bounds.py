"""The bounds both runtimes apply are the same numbers: ``kairos_runtime/bounds.py`` and
``lambdas/node/src/bounds.mjs`` are compared name by name, as Node reads its own file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from kairos import config
from kairos_runtime import bounds
from kairos_runtime.events import full_match
from tests.conftest import PROJECT_ROOT

NODE_BOUNDS = PROJECT_ROOT / "lambdas" / "node" / "src" / "bounds.mjs"


def python_bounds() -> dict[str, object]:
    return {name: value for name, value in vars(bounds).items() if name.isupper()}


def node_bounds() -> dict[str, object]:
    node = shutil.which("node")
    assert node, "the Node runtime's tests need node on PATH"
    script = f"import({json.dumps(NODE_BOUNDS.as_uri())}).then((m) => console.log(JSON.stringify(m)))"
    completed = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    exported: dict[str, object] = json.loads(completed.stdout)
    return {name: value for name, value in exported.items() if name.isupper()}


def test_both_runtimes_hold_the_same_bounds() -> None:
    assert node_bounds() == python_bounds()


def test_the_node_runtime_reads_its_bounds_from_the_contract() -> None:
    # No number retyped in the .mjs: the values come from lambdas/node/contract.json, generated from bounds.py.
    text = NODE_BOUNDS.read_text(encoding="utf-8")
    assert "CONTRACT.bounds" in text
    assert not re.search(r"=\s*[0-9]{2,}", text), "a bound is written out in bounds.mjs"


@pytest.mark.parametrize(
    "name", ["a", "python-task-1", "a" * 48, "a" * 49, "", "A", "1a", "a_b", "a-", "é", "a\n", "nightly\n"]
)
def test_an_event_takes_exactly_the_task_names_tasks_yaml_allows(name: str) -> None:
    # kairos/config.py has the pattern for tasks.yaml; the runtime has its own copy (it ships alone).
    allowed_by_tasks_yaml = re.fullmatch(config.TASK_NAME_PATTERN.removeprefix("^").removesuffix("$"), name)
    assert bool(full_match(bounds.TASK_NAME_PATTERN).match(name)) == bool(allowed_by_tasks_yaml)
