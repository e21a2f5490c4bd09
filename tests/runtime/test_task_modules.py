"""Every task module is reachable from ``TASK_MODULES``, so no task type is silently left unregistered."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import kairos_runtime.tasks
from kairos_runtime.registry import TaskRegistry

TASKS_DIR = Path(kairos_runtime.tasks.__file__).parent


def _task_module_names() -> list[str]:
    names = []
    for path in sorted(TASKS_DIR.rglob("*.py")):
        parts = path.relative_to(TASKS_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("kairos_runtime.tasks", *parts)))
    return names


def test_building_the_default_registry_imports_every_module_under_tasks() -> None:
    # A fresh interpreter: this test process has long since imported whatever other tests touched.
    script = (
        "import json, sys\n"
        "from kairos_runtime.tasks import default_registry\n"
        "default_registry()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('kairos_runtime.tasks'))))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True).stdout)
    assert sorted(set(_task_module_names()) - set(loaded)) == []


def test_every_registry_under_tasks_is_merged_into_the_default_registry() -> None:
    merged = set(kairos_runtime.tasks.default_registry().names())
    found = 0
    for name in _task_module_names():
        registry = getattr(importlib.import_module(name), "registry", None)
        if isinstance(registry, TaskRegistry):
            found += 1
            assert set(registry.names()) <= merged, f"{name}.registry is not reachable from TASK_MODULES"
    assert found >= 2
