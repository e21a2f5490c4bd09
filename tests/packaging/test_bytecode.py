"""Bytecode compiled at build time: sourceless dependencies, checked-hash bytecode beside our sources.

The "target" interpreter here is the one running the tests, so these run on any machine; the real
asset build (``test_packaging.py``) uses the Lambda runtime's CPython version.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kairos_build import builder
from kairos_build.builder import group_key
from kairos_build.bytecode import BytecodeError, bytecode_flavour, compile_tree, compiling_interpreter, find_cpython
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import dependency_groups
from kairos_runtime.registry import DependencyGroup
from tests.conftest import PROJECT_ROOT

GROUPS = dependency_groups(PROJECT_ROOT)
CORE, CRAWLER = GROUPS[DependencyGroup.CORE], GROUPS[DependencyGroup.CRAWLER]


# PEP 552 flags in a .pyc header: bit 0 = hash-based, bit 1 = check the source.
UNCHECKED_HASH_FLAGS = 0b01
CHECKED_HASH_FLAGS = 0b11


def pyc_flags(path: Path) -> int:
    header = path.read_bytes()[:8]
    assert header[:4] == importlib.util.MAGIC_NUMBER, f"{path} was not compiled for this interpreter"
    return int.from_bytes(header[4:8], "little")


def run_python(tree: Path, code: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter with only ``tree`` added to its path and bytecode writing off, as on Lambda."""
    return subprocess.run(
        [sys.executable, "-S", "-B", "-c", f"import sys\nsys.path.insert(0, {str(tree)!r})\n{code}"],
        capture_output=True,
        text=True,
        check=False,
    )


def write_package(root: Path) -> Path:
    package = root / "pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "mod.py").write_text("def boom():\n    raise ValueError('from inside')\n")
    return package


def test_dependencies_become_sourceless_bytecode_that_imports_and_names_its_lambda_path(tmp_path: Path) -> None:
    write_package(tmp_path)

    report = compile_tree(sys.executable, tmp_path, site="/var/task", layout="sourceless")

    assert report.compiled == 3
    assert report.not_compiled == ()
    assert not list(tmp_path.rglob("*.py")), "sources are replaced, not kept beside the bytecode"
    assert not list(tmp_path.rglob("__pycache__"))
    for pyc in tmp_path.rglob("*.pyc"):
        assert pyc_flags(pyc) == UNCHECKED_HASH_FLAGS, pyc
    result = run_python(tmp_path, "import pkg, pkg.inner.mod\nprint(pkg.VALUE)\npkg.inner.mod.boom()")
    assert result.stdout.strip() == "1"
    assert 'File "/var/task/pkg/inner/mod.py", line 2, in boom' in result.stderr
    assert "ValueError: from inside" in result.stderr


def test_our_own_package_keeps_its_sources_and_an_edited_source_wins_over_stale_bytecode(tmp_path: Path) -> None:
    package = write_package(tmp_path)

    compile_tree(sys.executable, package, site="/var/task/pkg", layout="beside_source")

    cached = package / "__pycache__" / Path(importlib.util.cache_from_source(str(package / "__init__.py"))).name
    assert (package / "__init__.py").is_file()
    assert pyc_flags(cached) == CHECKED_HASH_FLAGS
    assert run_python(tmp_path, "import pkg; print(pkg.VALUE, pkg.__cached__)").stdout.split()[0] == "1"
    # Someone edits the deployed source (the Lambda console does this): the bytecode must not win.
    (package / "__init__.py").write_text("VALUE = 2\n")
    assert run_python(tmp_path, "import pkg; print(pkg.VALUE)").stdout.strip() == "2"


def test_a_file_that_does_not_compile_for_the_target_stays_as_source_and_is_reported(tmp_path: Path) -> None:
    (tmp_path / "legacy.py").write_text('print "python 2"\n')
    (tmp_path / "fine.py").write_text("x = 1\n")

    report = compile_tree(sys.executable, tmp_path, site="/opt/python", layout="sourceless")

    assert report.compiled == 1
    (failure,) = report.not_compiled
    assert failure.startswith("legacy.py: ")
    assert (tmp_path / "legacy.py").is_file()
    assert (tmp_path / "fine.pyc").is_file()


def test_an_interpreter_that_cannot_run_is_a_bytecode_error(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("x = 1\n")
    with pytest.raises(BytecodeError, match=r"cannot run /nonexistent/python3\.13"):
        compile_tree("/nonexistent/python3.13", tmp_path, site="/var/task", layout="sourceless")
    assert (tmp_path / "mod.py").is_file()


def test_a_missing_target_cpython_means_sources_only() -> None:
    assert find_cpython("3.99") is None
    assert bytecode_flavour("3.99") == "sources-only"
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert bytecode_flavour(running) == f"cpython{running}-magic-{importlib.util.MAGIC_NUMBER.hex()}-hash-pyc"


def test_the_bytecode_flavour_is_part_of_every_tree_key(monkeypatch: pytest.MonkeyPatch) -> None:
    x86 = LambdaPlatform("x86_64", "3.13")
    keys = {}
    for flavour in ("sources-only", "cpython3.13-magic-f30d0d0a-hash-pyc", "cpython3.13-magic-f40d0d0a-hash-pyc"):
        monkeypatch.setattr(builder, "bytecode_flavour", lambda version, flavour=flavour: flavour)
        keys[flavour] = group_key(CORE, x86)
    assert len(set(keys.values())) == 3, "sources, and bytecode of another magic number, never share a tree"


@pytest.fixture
def fake_interpreters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Interpreters under a fake pyenv root that answer the probe as told; nothing else on PATH."""
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    compiling_interpreter.cache_clear()

    def add(version_dir: str, answer: str) -> None:
        minor = ".".join(version_dir.split(".")[:2])
        script = tmp_path / "pyenv" / "versions" / version_dir / "bin" / f"python{minor}"
        script.parent.mkdir(parents=True)
        script.write_text(f"#!/bin/sh\necho '{answer}'\n")
        script.chmod(0o755)

    yield add
    compiling_interpreter.cache_clear()


def test_a_pre_release_or_another_implementation_never_compiles(fake_interpreters: Callable[[str, str], None]) -> None:
    fake_interpreters("3.97.0b1", "cpython 3.97 beta 0b0d0d0a")
    fake_interpreters("3.97.1", "pypy 3.97 final 0c0d0d0a")
    assert compiling_interpreter("3.97") is None
    assert bytecode_flavour("3.97") == "sources-only"


def test_a_final_cpython_compiles_and_its_magic_number_names_the_flavour(
    fake_interpreters: Callable[[str, str], None],
) -> None:
    fake_interpreters("3.97.0b1", "cpython 3.97 beta 0b0d0d0a")
    fake_interpreters("3.97.2", "cpython 3.97 final 0a0d0d0a")
    found = compiling_interpreter("3.97")
    assert found is not None
    assert found.path.endswith("versions/3.97.2/bin/python3.97")
    assert bytecode_flavour("3.97") == "cpython3.97-magic-0a0d0d0a-hash-pyc"


def test_trees_know_where_they_sit_on_lambda() -> None:
    assert CORE.site == "/var/task"
    assert CRAWLER.site == "/opt/python"
