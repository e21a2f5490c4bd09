"""The one test that builds real Lambda assets (pip, trimming, import check) and inspects them.

Given a stage with a core Python task, a crawler task and a Node.js task, synthesized with bundling
on (CDK's default), the assets hold the right files for the right platform within the size budgets,
and a second synth reuses the cached builds and yields the same hashes and the same bytes.
pip runs in a subprocess (pytest-socket guards only this process) against a warm
``.bundle-cache/`` when there is one.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kairos.plan import StagePlan
from kairos_build.builder import DependencyBuilder, locked_pins, source_fingerprint, tree_name
from kairos_build.bytecode import find_cpython
from kairos_build.elf import read_elf
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import BUNDLE_CACHE, RUNTIME_PROVIDED, dependency_groups
from kairos_build.trimming import strip_tool_flavour, tree_size
from kairos_runtime.registry import DependencyGroup
from kairos_runtime.tables import TABLE_DESIGNS
from kairos_stack.lambda_bundling import RUNTIME_PACKAGE
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

CACHE_ROOT = PROJECT_ROOT / BUNDLE_CACHE
CRAWLER = dependency_groups(PROJECT_ROOT)[DependencyGroup.CRAWLER]
STACK = "kairos-packaging"
SHARD = f"{STACK}-Shard0"
"""The one shard stack the packaging plan's tasks live in (shards: 1)."""
CORE_BUDGET_BYTES = 10_000_000
CRAWLER_BUDGET_BYTES = 200_000_000
ELF_MACHINES = {"arm64": 183, "x86_64": 62}
WHEEL_MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
LAMBDA_PYTHON = "3.13"


@dataclass(frozen=True)
class Synth:
    outdir: Path
    template: Mapping[str, Any]
    assets: Mapping[str, Path]
    """Asset hash to its staged folder."""
    output: str

    def resources(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        return {key: value for key, value in self.template["Resources"].items() if value["Type"] == resource_type}

    def function(self, task: str) -> Mapping[str, Any]:
        for resource in self.resources("AWS::Lambda::Function").values():
            if resource["Metadata"]["aws:cdk:path"] == f"{SHARD}/{task}/Function/Resource":
                properties: Mapping[str, Any] = resource["Properties"]
                return properties
        raise KeyError(task)

    def code_dir(self, task: str) -> Path:
        return self.assets[self.function(task)["Code"]["S3Key"].removesuffix(".zip")]

    def layer_dir(self, task: str) -> Path:
        (layer,) = self.function(task)["Layers"]
        properties = self.template["Resources"][layer["Ref"]]["Properties"]
        return self.assets[properties["Content"]["S3Key"].removesuffix(".zip")]


def packaging_plan() -> StagePlan:
    """The dev stage cut down to one task of each kind, with a crawler task made from a core one so
    the test does not depend on which crawler task types exist."""
    from kairos_stack.app_builder import stage_plan

    plan = stage_plan(PROJECT_ROOT / "tasks.yaml", "dev")
    core = next(task for task in plan.tasks if task.family == "python" and task.group is DependencyGroup.CORE)
    node = next(task for task in plan.tasks if task.family == "nodejs")
    crawler = dataclasses.replace(core, name="crawler-probe", group=DependencyGroup.CRAWLER, architecture="x86_64")
    core = dataclasses.replace(core, name="core-probe", architecture="arm64")
    tasks = (core, crawler, dataclasses.replace(node, name="node-probe"))
    return dataclasses.replace(
        plan,
        stack_name=STACK,
        shard_count=1,
        tasks=tuple(
            dataclasses.replace(task, shard=0, function_name=f"kairos_{plan.stage}_{task.name}") for task in tasks
        ),
    )


def synthesize(outdir: Path, capfd: pytest.CaptureFixture[str], context: Mapping[str, Any] | None = None) -> Synth:
    import aws_cdk as cdk

    from kairos_stack.app_builder import build_stage

    capfd.readouterr()
    # The CDK CLI turns path metadata on; it maps each function back to its task.
    app = cdk.App(outdir=str(outdir), context={"aws:cdk:enable-path-metadata": True, **(context or {})})
    build_stage(app, packaging_plan())
    app.synth()
    captured = capfd.readouterr()
    template = json.loads((outdir / f"{SHARD}.template.json").read_text(encoding="utf-8"))
    manifest = json.loads((outdir / f"{SHARD}.assets.json").read_text(encoding="utf-8"))
    assets = {key: outdir / entry["source"]["path"] for key, entry in manifest["files"].items()}
    return Synth(outdir, template, assets, captured.out + captured.err)


@pytest.fixture(scope="module")
def synths() -> dict[str, Synth]:
    """Holds the first synth for the module; capfd, which it needs, is function-scoped."""
    return {}


@pytest.fixture
def first(
    synths: dict[str, Synth], tmp_path_factory: pytest.TempPathFactory, capfd: pytest.CaptureFixture[str]
) -> Synth:
    if "first" not in synths:
        synths["first"] = synthesize(tmp_path_factory.mktemp("synth-1"), capfd)
    return synths["first"]


def wheel_tags(tree: Path) -> dict[str, list[str]]:
    """Each installed distribution's wheel tags, from its ``*.dist-info/WHEEL``."""
    tags = {}
    for wheel in sorted(tree.glob("*.dist-info/WHEEL")):
        lines = wheel.read_text(encoding="utf-8").splitlines()
        tags[wheel.parent.name] = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
    return tags


def assert_built_for(tree: Path, architecture: str) -> None:
    machine = WHEEL_MACHINES[architecture]
    compiled = {dist: tags for dist, tags in wheel_tags(tree).items() if not all(t.endswith("-any") for t in tags)}
    assert compiled, f"no compiled wheel in {tree}"
    for dist, tags in compiled.items():
        assert all(tag.endswith(machine) and "manylinux" in tag for tag in tags), (dist, tags)
        assert all(tag.split("-")[0] in ("cp313", "cp310", "cp39", "py3", "py2") for tag in tags), (dist, tags)
    for library in [*tree.rglob("*.so"), *tree.rglob("*.so.*")]:
        elf = read_elf(library)
        assert elf is not None, library
        assert elf.machine == ELF_MACHINES[architecture], library


def assert_clean(tree: Path) -> None:
    """No tests, foreign binaries or runtime-provided packages; dependencies as bytecode only."""
    dependencies = [path for path in tree.rglob("*") if RUNTIME_PACKAGE not in path.relative_to(tree).parts]
    names = {path.name for path in dependencies}
    assert "__pycache__" not in names
    assert "tests" not in names
    assert not [name for name in names if name.endswith((".dylib", ".dll"))]
    assert not [path for path in dependencies if path.suffix == ".py"], "dependencies ship compiled"
    top_level = {path.name.split("-")[0].lower() for path in tree.iterdir()}
    assert not top_level & RUNTIME_PROVIDED, "boto3 and friends come with the Lambda runtime"


def pyc_header(path: Path) -> tuple[bytes, int]:
    """(magic number, PEP 552 flags) of a .pyc: flags 1 = hash-based, 3 = hash-based and checked."""
    header = path.read_bytes()[:8]
    return header[:4], int.from_bytes(header[4:8], "little")


def lambda_cpython_magic() -> bytes:
    interpreter = find_cpython(LAMBDA_PYTHON)
    assert interpreter, f"the packaging test needs a CPython {LAMBDA_PYTHON} on this machine to compile with"
    code = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    result = subprocess.run([interpreter, "-S", "-c", code], capture_output=True, text=True, check=True)
    return bytes.fromhex(result.stdout)


def assert_compiled_for_lambda(tree: Path, magic: bytes) -> None:
    """Dependencies: sourceless, unchecked hash-based bytecode for the runtime's CPython."""
    dependencies = [path for path in tree.rglob("*.pyc") if RUNTIME_PACKAGE not in path.relative_to(tree).parts]
    assert len(dependencies) > 100
    for pyc in dependencies:
        assert pyc_header(pyc) == (magic, 0b01), pyc


def test_core_asset_is_arm64_small_and_complete(first: Synth) -> None:
    code = first.code_dir("core-probe")
    assert first.function("core-probe")["Architectures"] == ["arm64"]
    assert "Layers" not in first.function("core-probe")
    for expected in (
        "kairos_runtime/handler.py",
        "kairos_runtime/tasks/__init__.py",
        "aws_lambda_powertools",
        "msgspec",
    ):
        assert (code / expected).exists(), expected
    assert not list(code.glob("pydantic*")), "the runtime validates with msgspec; pydantic stays in the CDK app"
    assert not list(code.glob("akshare*"))
    assert not list(code.glob("pandas*"))
    assert_built_for(code, "arm64")
    assert_clean(code)
    assert_compiled_for_lambda(code, lambda_cpython_magic())
    size, _files = tree_size(code)
    assert size <= CORE_BUDGET_BYTES, f"core asset is {size} bytes"


def test_crawler_function_gets_x86_64_core_code_and_the_shared_layer(first: Synth) -> None:
    function = first.function("crawler-probe")
    assert function["Architectures"] == ["x86_64"]
    code, layer = first.code_dir("crawler-probe"), first.layer_dir("crawler-probe")
    assert (code / "kairos_runtime" / "handler.py").is_file()
    assert_built_for(code, "x86_64")
    (layer_resource,) = first.resources("AWS::Lambda::LayerVersion").values()
    assert layer_resource["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert layer_resource["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert [path.name for path in layer.iterdir()] == ["python"], "Lambda reads a layer's python/ folder"
    site = layer / "python"
    for expected in ("akshare", "pycoingecko", "pandas", "numpy", "requests", "py_mini_racer/libmini_racer.glibc.so"):
        assert (site / expected).exists(), expected
    # What the code asset already provides stays out of the layer.
    assert not list(site.glob("msgspec*"))
    assert not list(site.glob("aws_lambda_powertools*"))
    assert not list(site.rglob("armlibmini_racer*"))
    assert_built_for(site, "x86_64")
    assert_clean(site)
    assert_compiled_for_lambda(site, lambda_cpython_magic())
    for record in site.glob("*.dist-info/RECORD"):
        listed = [line.rsplit(",", 2)[0] for line in record.read_text(encoding="utf-8").splitlines()]
        assert [path for path in listed if not (site / path).is_file()] == [], f"{record} lists missing files"
    total = tree_size(code)[0] + tree_size(layer)[0]
    assert total <= CRAWLER_BUDGET_BYTES, f"crawler code + layer is {total} bytes"


def installed_hashes(site: Path, dist_prefix: str) -> dict[Path, str]:
    """File to its sha256 as the wheel shipped it (RECORD's urlsafe base64 digest)."""
    (record,) = site.glob(f"{dist_prefix}-*.dist-info/RECORD")
    hashes = {}
    for line in record.read_text(encoding="utf-8").splitlines():
        path, digest, _size = line.rsplit(",", 2)
        if digest.startswith("sha256="):
            hashes[site / path] = digest.removeprefix("sha256=")
    return hashes


def sha256_b64(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_debug_symbols_are_stripped_but_patched_libraries_are_not(first: Synth) -> None:
    site = first.layer_dir("crawler-probe") / "python"
    curl = read_elf(next(site.glob("curl_cffi/*.so")))
    assert curl is not None
    assert curl.has_symbols is (strip_tool_flavour() == "none")
    # auditwheel's vendored libraries and the extensions it patched are byte for byte the wheel's.
    numpy_files = installed_hashes(site, "numpy")
    patched = [
        path
        for path in numpy_files
        if ".libs" in path.parent.name or (path.name.startswith("_multiarray_umath") and path.suffix == ".so")
    ]
    assert patched
    for path in patched:
        assert sha256_b64(path) == numpy_files[path], path


def test_our_package_ships_its_sources_with_checked_bytecode(first: Synth) -> None:
    magic = lambda_cpython_magic()
    package = first.code_dir("core-probe") / RUNTIME_PACKAGE
    sources = sorted(package.rglob("*.py"))
    assert package / "handler.py" in sources
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-{LAMBDA_PYTHON.replace('.', '')}.pyc"
        assert pyc_header(cached) == (magic, 0b11), cached


# Runs in the Lambda runtime's CPython with only the asset and the stand-in runtime on its path, and
# records every module compiled from source while the handler imports.
_COUNT_SOURCE_COMPILES = """
import importlib._bootstrap_external as external, json, sys
compiled = []
to_code = external.SourceLoader.source_to_code
def counting(self, data, path, *args, **kwargs):
    compiled.append(path)
    return to_code(self, data, path, *args, **kwargs)
external.SourceLoader.source_to_code = counting
sys.path[:0] = sys.argv[1:]
import kairos_runtime.handler
print(json.dumps({
    "compiled": compiled,
    "logger": sys.modules["aws_lambda_powertools.logging.logger"].__file__,
    "pydantic": sorted(name for name in sys.modules if name.split(".")[0] in ("pydantic", "pydantic_core")),
}))
"""


def test_the_handler_imports_from_the_asset_without_compiling_a_module(first: Synth) -> None:
    code = first.code_dir("crawler-probe")
    interpreter = find_cpython(LAMBDA_PYTHON)
    assert interpreter
    runtime = DependencyBuilder(CACHE_ROOT).runtime_tree(LambdaPlatform("x86_64", LAMBDA_PYTHON))
    plan = packaging_plan()
    environment = {
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": "us-east-1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        **{design.env_var: f"kairos-packaging-{design.table_id.value}" for design in TABLE_DESIGNS.values()},
        **plan.task("crawler-probe").environment,
    }
    result = subprocess.run(
        [interpreter, "-S", "-B", "-c", _COUNT_SOURCE_COMPILES, str(code), str(runtime)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported["logger"] == str(code / "aws_lambda_powertools" / "logging" / "logger.pyc")
    assert imported["pydantic"] == [], "pydantic alone adds about 40 % to the cold-import floor"
    compiled_from_asset = [path for path in imported["compiled"] if path.startswith(str(code))]
    assert compiled_from_asset == [], "every module in the asset must load from its bytecode"


def test_node_asset_ships_sources_only(first: Synth) -> None:
    code = first.code_dir("node-probe")
    assert (code / "src" / "index.mjs").is_file()
    assert not (code / "test").exists()
    assert not (code / "node_modules").exists()


def test_a_second_synth_reuses_the_builds_and_yields_identical_assets(
    first: Synth, tmp_path_factory: pytest.TempPathFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    second = synthesize(tmp_path_factory.mktemp("synth-2"), capfd)
    assert "cache miss" not in second.output, "unchanged requirements must not run pip again"
    assert second.output.count("kairos bundling: bundled") == 3
    assert second.template == first.template, "unchanged inputs must keep every asset hash"
    assert second.assets.keys() == first.assets.keys()
    for key, path in first.assets.items():
        if path.is_dir():
            assert source_fingerprint(second.assets[key]) == source_fingerprint(path), key


def test_a_stack_cdk_does_not_bundle_gets_the_same_asset_hashes_without_building(
    first: Synth, tmp_path_factory: pytest.TempPathFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    skipped = synthesize(tmp_path_factory.mktemp("synth-skip"), capfd, {"aws:cdk:bundling-stacks": []})
    assert "kairos bundling" not in skipped.output
    assert properties(skipped.template) == properties(first.template)


def properties(template: Mapping[str, Any]) -> dict[str, Any]:
    """Resource properties only: CDK's asset metadata says whether the asset was bundled."""
    return {key: resource.get("Properties") for key, resource in template["Resources"].items()}


def test_budget_report_is_recorded_with_the_build(first: Synth) -> None:
    name = tree_name(CRAWLER, LambdaPlatform("x86_64", "3.13"))
    report = json.loads((CACHE_ROOT / "deps" / f"{name}.json").read_text(encoding="utf-8"))
    assert report["trimmed_bytes"]["test folders"] > 0
    assert report["trimmed_bytes"]["binaries for other platforms"] > 0
    assert "akshare" in report["kept"]
    assert "boto3" not in report["kept"]
    assert report["resolved"] == locked_pins(CRAWLER, LambdaPlatform("x86_64", "3.13")), "exactly the locked versions"
