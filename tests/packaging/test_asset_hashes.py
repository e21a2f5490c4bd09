"""A synth computes each dependency group's key once per platform, however many functions share it."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from kairos_build import builder as builder_module
from kairos_build.builder import DependencyBuilder, tree_name
from kairos_build.groups import DependencyGroupSpec
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import dependency_groups
from kairos_runtime.registry import DependencyGroup
from tests.conftest import PROJECT_ROOT

GROUPS = dependency_groups(PROJECT_ROOT)
PLATFORMS = {
    DependencyGroup.CORE: [LambdaPlatform("arm64", "3.13"), LambdaPlatform("x86_64", "3.12")],
    DependencyGroup.CRAWLER: [LambdaPlatform("x86_64", "3.13")],
}
FUNCTIONS_PER_PLATFORM = 15


def cached_tree(deps: Path, spec: DependencyGroupSpec, target: LambdaPlatform) -> None:
    """A finished tree in the cache, as a build leaves it (sources only: this builder compiles nothing)."""
    name = tree_name(spec, target) + "-sources"
    (deps / name).mkdir(parents=True)
    (deps / name / f"{spec.name}_marker.py").write_text("")
    report = {"kept": {}, "bytecode": {"layout": "sources"}}
    (deps / f"{name}.json").write_text(json.dumps(report), encoding="utf-8")


def test_a_bundled_synth_reads_each_group_once_per_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import aws_cdk as cdk

    from kairos_stack.app_builder import build_stage, stage_plan
    from kairos_stack.code_assets import CodeAssets

    cache = tmp_path / "cache"
    needed = {(GROUPS[DependencyGroup.CORE], target) for targets in PLATFORMS.values() for target in targets}
    needed |= {(GROUPS[DependencyGroup.CRAWLER], target) for target in PLATFORMS[DependencyGroup.CRAWLER]}
    for spec, target in needed:
        cached_tree(cache / "deps", spec, target)

    keyed: Counter[tuple[str, str]] = Counter()
    real_key = builder_module.group_key

    def counting_key(spec: DependencyGroupSpec, target: LambdaPlatform) -> str:
        keyed[spec.name, target.label] += 1
        return real_key(spec, target)

    monkeypatch.setattr(builder_module, "group_key", counting_key)
    plan = stage_plan(PROJECT_ROOT / "tasks.yaml", "dev")
    python_task = next(task for task in plan.tasks if task.family == "python")
    tasks = tuple(
        dataclasses.replace(
            python_task,
            name=f"{group.value}-{target.architecture.replace('_', '')}-{target.python_version.replace('.', '')}-{n}",
            group=group,
            runtime=target.runtime,
            architecture=target.architecture,
            shard=0,
        )
        for group, targets in PLATFORMS.items()
        for target in targets
        for n in range(FUNCTIONS_PER_PLATFORM)
    )
    app = cdk.App(outdir=str(tmp_path / "out"))
    assets = CodeAssets(builder=DependencyBuilder(cache, bytecode=False))
    tasks = tuple(dataclasses.replace(task, function_name=f"kairos_dev_{task.name}") for task in tasks)
    many = dataclasses.replace(plan, stack_name="kairos-many", shard_count=1, tasks=tasks)
    build_stage(app, many, code_assets=assets)
    app.synth()

    assert len(tasks) == 45
    assert keyed == Counter({(spec.name, target.label): 1 for spec, target in needed})
    staged = list((tmp_path / "out").glob("asset.*/crawler_marker.py")) + list(
        (tmp_path / "out").glob("asset.*/python/crawler_marker.py")
    )
    assert staged, "the layer was bundled from the cached tree"
