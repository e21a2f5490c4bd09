"""What a function's cold start imports: only what every run needs (docs/adr/0193-cold-start-measured.md).

Each case imports the handler in a fresh interpreter of this virtualenv, where every library named
here is installed (the first test checks that), and reads ``sys.modules`` afterwards: a module the
handler must not load is absent because nothing imported it, not because it could not be found.
No timings: ``make bench`` measures those.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from kairos_runtime.settings import SDK_TRACING_ENV, TASK_MODULE_ENV
from kairos_runtime.tasks import task_modules

SIMPLE, MARKET = "kairos_runtime.tasks.simple", "kairos_runtime.tasks.market"
NEVER_AT_IMPORT = ("aws_xray_sdk", "akshare", "pycoingecko", "pandas", "numpy", "pydantic", "requests")
"""Libraries no handler imports when it loads: the X-Ray SDK only with ``sdk_tracing``, the crawler's
libraries inside the task functions, pydantic not in the functions at all."""
DEFERRED = ("boto3", "botocore.client", "kairos_runtime.fan_out", "kairos_runtime.fan_out_runner")
"""Loaded later or never by the simple-task handler: boto3 with its first AWS call (the bench's
budget statement adds it), the fan-out only in a fan-out function."""


def modules_after_import(environment: dict[str, str]) -> set[str]:
    script = "import json, sys\nimport kairos_runtime.handler\nprint(json.dumps(sorted(sys.modules)))\n"
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("KAIROS_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**inherited, "AWS_DEFAULT_REGION": "us-east-1", **environment},
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_libraries_checked_are_installed_here_so_their_absence_means_something() -> None:
    assert [name for name in NEVER_AT_IMPORT if importlib.util.find_spec(name) is None] == []


def test_the_simple_task_handler_imports_its_own_task_module_and_nothing_heavy() -> None:
    loaded = modules_after_import({TASK_MODULE_ENV: SIMPLE})

    assert SIMPLE in loaded
    other_tasks = {module for module in task_modules() if module != SIMPLE}
    assert (
        sorted(module for module in loaded if module.rpartition(".")[0] in other_tasks or module in other_tasks) == []
    )
    assert sorted(name for name in (*NEVER_AT_IMPORT, *DEFERRED) if name in loaded) == []


def test_the_crawler_handler_imports_the_market_module_but_not_its_libraries() -> None:
    loaded = modules_after_import({TASK_MODULE_ENV: MARKET})

    assert MARKET in loaded
    assert SIMPLE not in loaded
    assert sorted(name for name in NEVER_AT_IMPORT if name in loaded) == []


@pytest.mark.parametrize("value", ["true", "TRUE"])
def test_sdk_tracing_is_what_brings_the_x_ray_sdk_in(value: str) -> None:
    loaded = modules_after_import({TASK_MODULE_ENV: SIMPLE, SDK_TRACING_ENV: value})

    assert "aws_xray_sdk" in loaded


def test_the_runtime_value_classes_a_cold_start_creates_are_structs_not_dataclasses() -> None:
    # Creating a frozen slots dataclass runs generated code: about 0.9 ms of CPU each on Python 3.13,
    # against ~0.02 ms for a msgspec struct. RunResult (runner.py) is the one left (ADR 0193).
    script = (
        "import dataclasses, json, sys\n"
        "import kairos_runtime.handler\n"
        "found = sorted(f'{name}.{attr}' for name, module in list(sys.modules.items())\n"
        "    if name.startswith('kairos_runtime') for attr, value in vars(module).items()\n"
        "    if isinstance(value, type) and value.__module__ == name and dataclasses.is_dataclass(value))\n"
        "print(json.dumps(found))\n"
    )
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("KAIROS_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**inherited, TASK_MODULE_ENV: SIMPLE},
    )

    assert json.loads(result.stdout.splitlines()[-1]) == ["kairos_runtime.runner.RunResult"]
