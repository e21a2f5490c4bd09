"""Fast tests of the dependency builder's decisions: no pip, no network, no real asset build."""

from __future__ import annotations

import dataclasses
import inspect
import struct
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from kairos_build.builder import group_key, source_fingerprint
from kairos_build.distributions import InstalledDist, needed_dists, remove_dists
from kairos_build.elf import is_foreign_binary, read_elf
from kairos_build.errors import MissingWheelError
from kairos_build.pip import parse_missing_distribution
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import RUNTIME_PROVIDED, dependency_groups
from kairos_build.trimming import strippable
from kairos_runtime.registry import DependencyGroup
from tests.conftest import PROJECT_ROOT

GROUPS = dependency_groups(PROJECT_ROOT)
CORE, CRAWLER = GROUPS[DependencyGroup.CORE], GROUPS[DependencyGroup.CRAWLER]


X86 = LambdaPlatform("x86_64", "3.13")
ARM = LambdaPlatform("arm64", "3.13")


def test_platform_tags_follow_the_function_architecture_and_runtime() -> None:
    platform = LambdaPlatform.for_runtime("python3.12", "arm64")
    assert platform == LambdaPlatform("arm64", "3.12")
    assert platform.pip_platforms == ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
    with pytest.raises(ValueError, match=r"nodejs22\.x"):
        LambdaPlatform.for_runtime("nodejs22.x", "arm64")


def test_pip_no_matching_distribution_becomes_an_error_naming_package_and_platform() -> None:
    output = (
        "ERROR: Could not find a version that satisfies the requirement py-mini-racer>=0.6.0; "
        'platform_system == "Linux" (from akshare) (from versions: none)\n'
        'ERROR: No matching distribution found for py-mini-racer>=0.6.0; platform_system == "Linux"\n'
    )
    missing = parse_missing_distribution(output)
    assert missing is not None
    assert missing.required_by == "akshare"
    error = MissingWheelError(
        package="py-mini-racer", requirement=missing.requirement, required_by=missing.required_by, target=ARM
    )
    message = str(error)
    assert "py-mini-racer (required by akshare)" in message
    assert "python3.13 on arm64" in message
    assert "manylinux2014_aarch64" in message


def test_a_top_level_requirement_without_wheel_is_parsed_too() -> None:
    missing = parse_missing_distribution(
        "ERROR: Could not find a version that satisfies the requirement nothing-here==1.0 (from versions: none)\n"
    )
    assert missing is not None
    assert (missing.requirement, missing.required_by) == ("nothing-here==1.0", None)
    assert parse_missing_distribution("ERROR: HTTP error 503") is None


def dist(tree: Path, name: str, *requires: str, files: tuple[str, ...] = ()) -> InstalledDist:
    return InstalledDist(name, "1.0", tree / f"{name}-1.0.dist-info", tuple(Requirement(r) for r in requires), files)


def test_runtime_provided_packages_and_what_only_they_need_are_left_out(tmp_path: Path) -> None:
    dists = {
        d.name: d
        for d in (
            dist(tmp_path, "aws-lambda-powertools", "jmespath", 'aws-xray-sdk; extra == "tracer"'),
            dist(tmp_path, "aws-xray-sdk", "botocore", "wrapt"),
            dist(tmp_path, "botocore", "urllib3", "python-dateutil"),
            dist(tmp_path, "jmespath"),
            dist(tmp_path, "wrapt"),
            dist(tmp_path, "urllib3"),
            dist(tmp_path, "python-dateutil", "six"),
            dist(tmp_path, "six"),
            dist(tmp_path, "tomli", 'typing-extensions; python_version < "3.11"'),
            dist(tmp_path, "typing-extensions"),
        )
    }
    roots = [Requirement("aws-lambda-powertools[tracer]==1.0"), Requirement("tomli")]
    assert needed_dists(roots, dists, X86, provided=RUNTIME_PROVIDED) == {
        "aws-lambda-powertools",
        "aws-xray-sdk",
        "wrapt",
        "tomli",
    }


def test_a_lock_that_misses_or_mismatches_a_dependency_is_caught_after_a_no_deps_install(tmp_path: Path) -> None:
    dists = {
        d.name: d
        for d in (
            dist(tmp_path, "akshare", "pandas>=1", "requests"),
            dist(tmp_path, "pandas", "numpy>=3"),  # numpy 1.0 is installed: too old
            dist(tmp_path, "numpy"),
            dist(tmp_path, "pydantic", "annotated-types", 'tzdata; sys_platform == "win32"'),
        )
    }
    unsatisfied: list[str] = []
    roots = [Requirement("akshare"), Requirement("pydantic")]

    needed = needed_dists(roots, dists, X86, provided=frozenset(), unsatisfied=unsatisfied)

    assert sorted(unsatisfied) == [
        "annotated-types (required by pydantic): not installed",
        "numpy>=3 (required by pandas): 1.0 is installed",
        "requests (required by akshare): not installed",
    ]
    assert needed == {"akshare", "pandas", "pydantic"}, "a Windows-only dependency is not missing on Lambda"


def test_a_layer_leaves_out_what_the_function_code_provides(tmp_path: Path) -> None:
    dists = {
        d.name: d
        for d in (
            dist(tmp_path, "akshare", "requests", "pydantic"),
            dist(tmp_path, "requests", "urllib3"),
            dist(tmp_path, "urllib3"),
            dist(tmp_path, "pydantic"),
        )
    }
    needed = needed_dists([Requirement("akshare")], dists, X86, provided=RUNTIME_PROVIDED | {"pydantic"})
    assert needed == {"akshare", "requests", "urllib3"}


def test_removing_a_distribution_spares_files_a_kept_one_also_installed(tmp_path: Path) -> None:
    for file in ("shared/__init__.py", "shared/x86.so", "shared/arm.so"):
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text("")
    kept = dist(tmp_path, "py-mini-racer", files=("shared/__init__.py", "shared/x86.so"))
    dropped = dist(tmp_path, "akracer", files=("shared/__init__.py", "shared/arm.so"))
    remove_dists(tmp_path, {"py-mini-racer": kept, "akracer": dropped}, {"akracer"})
    assert sorted(path.name for path in (tmp_path / "shared").iterdir()) == ["__init__.py", "x86.so"]


def elf_header(machine: int) -> bytes:
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1
    struct.pack_into("<H", header, 18, machine)
    return bytes(header)


def test_libraries_for_another_platform_are_recognised(tmp_path: Path) -> None:
    (tmp_path / "arm.so").write_bytes(elf_header(183))
    (tmp_path / "x86.so").write_bytes(elf_header(62))
    (tmp_path / "mac.dylib").write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))
    (tmp_path / "data.json").write_bytes(elf_header(183))
    assert is_foreign_binary(tmp_path / "arm.so", X86)
    assert not is_foreign_binary(tmp_path / "x86.so", X86)
    assert is_foreign_binary(tmp_path / "x86.so", ARM)
    assert is_foreign_binary(tmp_path / "mac.dylib", X86)
    assert not is_foreign_binary(tmp_path / "data.json", X86), "only native library names are judged"


def test_an_extension_module_of_this_interpreter_reads_as_elf() -> None:
    import _ctypes

    elf = read_elf(Path(_ctypes.__file__))
    assert elf is not None
    assert elf.machine in (62, 183)


def test_vendored_and_patched_libraries_are_never_stripped(tmp_path: Path) -> None:
    (tmp_path / "numpy.libs").mkdir()
    (tmp_path / "numpy.libs" / "libopenblas.so").write_bytes(elf_header(62))
    assert not strippable(tmp_path / "numpy.libs" / "libopenblas.so", tmp_path, X86)
    (tmp_path / "plain.so").write_bytes(elf_header(62))
    assert not strippable(tmp_path / "plain.so", tmp_path, X86), "no symbol table: nothing to strip"


def test_build_keys_change_with_requirements_platform_and_python_only(tmp_path: Path) -> None:
    assert group_key(CORE, X86) == group_key(CORE, X86)
    assert len({group_key(CORE, X86), group_key(CORE, ARM), group_key(CORE, LambdaPlatform("x86_64", "3.12"))}) == 3
    assert group_key(CRAWLER, X86) != group_key(CORE, X86)
    assert CRAWLER.requirement_files() == (CORE.requirements, CRAWLER.requirements)
    assert CRAWLER.group is DependencyGroup.CRAWLER


def test_source_fingerprints_ignore_bytecode_and_location(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "pkg", tmp_path / "b" / "pkg"
    for root in (first, second):
        (root / "__pycache__").mkdir(parents=True)
        (root / "mod.py").write_text("x = 1\n")
    (second / "__pycache__" / "mod.cpython-313.pyc").write_bytes(b"\0")
    assert source_fingerprint(first) == source_fingerprint(second)
    (second / "mod.py").write_text("x = 2\n")
    assert source_fingerprint(first) != source_fingerprint(second)


def test_the_local_bundler_keeps_the_signature_jsii_calls() -> None:
    from kairos_stack.lambda_bundling import LocalBundling

    parameters = inspect.signature(LocalBundling.try_bundle).parameters
    assert parameters["image"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["output_dir"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def test_stacks_cdk_does_not_bundle_never_reach_the_bundler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import aws_cdk as cdk

    from kairos_stack import lambda_bundling
    from kairos_stack.app_builder import build_stage, stage_plan

    def refuse(self: object, output_dir: Path) -> None:
        raise AssertionError("bundled although the stack is not in aws:cdk:bundling-stacks")

    monkeypatch.setattr(lambda_bundling.LocalBundling, "bundle", refuse)
    app = cdk.App(outdir=str(tmp_path), context={"aws:cdk:bundling-stacks": []})
    plan = stage_plan(Path(__file__).resolve().parents[2] / "tasks.yaml", "dev")
    python_tasks = [task for task in plan.tasks if task.family == "python"]
    one_per_group = {task.group: task for task in reversed(python_tasks)}
    tasks = tuple(dataclasses.replace(task, shard=0) for task in one_per_group.values())
    build_stage(app, dataclasses.replace(plan, stack_name="kairos-unbundled", shard_count=1, tasks=tasks))
    app.synth()
    assert not list(tmp_path.glob("asset.*"))
