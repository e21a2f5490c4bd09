"""Each Python function's code asset holds the shared runtime and its own task module only (ADR 0191)."""

from __future__ import annotations

import shutil
from pathlib import Path

from kairos_build.builder import iter_source_files
from kairos_stack.lambda_bundling import files_fingerprint, runtime_files
from tests.conftest import PROJECT_ROOT

RUNTIME = PROJECT_ROOT / "lambdas" / "python" / "kairos_runtime"


def relative(files: tuple[Path, ...], root: Path = RUNTIME) -> set[str]:
    return {file.relative_to(root).as_posix() for file in files}


def test_a_module_s_asset_ships_the_shared_runtime_and_that_module_only() -> None:
    simple = relative(runtime_files(RUNTIME, "kairos_runtime.tasks.simple"))
    market = relative(runtime_files(RUNTIME, "kairos_runtime.tasks.market"))
    everything = relative(tuple(iter_source_files(RUNTIME)))

    shared = {"handler.py", "runner.py", "tasks/__init__.py"}
    assert shared <= simple
    assert shared <= market
    assert "tasks/simple.py" in simple
    assert not any(path.startswith("tasks/market/") for path in simple)
    assert "tasks/market/coverage.py" in market
    assert "tasks/simple.py" not in market
    assert relative(runtime_files(RUNTIME, None)) == everything, "no module named: the whole package"
    assert simple | market == everything


def test_adding_a_task_module_leaves_the_other_modules_fingerprints_alone(tmp_path: Path) -> None:
    runtime = tmp_path / "kairos_runtime"
    shutil.copytree(RUNTIME, runtime, ignore=shutil.ignore_patterns("__pycache__"))

    def fingerprint(module: str) -> str:
        return files_fingerprint(runtime, runtime_files(runtime, module))

    before = {module: fingerprint(module) for module in ("kairos_runtime.tasks.simple", "kairos_runtime.tasks.market")}
    (runtime / "tasks" / "reports.py").write_text("registry = None\n")
    after = {module: fingerprint(module) for module in before}
    (runtime / "errors.py").write_text((runtime / "errors.py").read_text() + "\n# shared\n")
    shared_edit = {module: fingerprint(module) for module in before}

    assert after == before
    assert all(shared_edit[module] != before[module] for module in before), "a shared file is every asset's"
