"""The synth benchmark's generated stages (``bench/synth_bench.py``): valid tasks files of the mix it
says, each given the fewest shards that fit CloudFormation's limits with headroom."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from kairos.catalog import load_catalog
from kairos.config import DEFAULT_SHARDS
from kairos.loading import load_tasks_file
from kairos.plan import MAX_STACK_RESOURCES, MAX_TEMPLATE_BYTES, PlanError, plan_stage
from tests.bench_scripts import load_bench_script


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_bench_script("synth_bench", monkeypatch)


@pytest.mark.parametrize("count", [10, 100, 400])
def test_a_generated_stage_is_the_mix_and_fits_its_shards(bench: ModuleType, tmp_path: Path, count: int) -> None:
    shards = bench.fitting_shards(count, tmp_path)
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(tmp_path / f"tasks-{count}.yaml", catalog), catalog, bench.STAGE)

    assert plan.shard_count == shards >= DEFAULT_SHARDS
    assert len(plan.tasks) == count
    kinds = Counter("crawler" if task.group.value == "crawler" else task.family for task in plan.tasks)
    assert kinds == {"python": count * 6 // 10, "nodejs": count * 3 // 10, "crawler": count // 10}
    for shard in plan.shards:
        assert shard.resource_count <= MAX_STACK_RESOURCES
        assert shard.template_bytes <= MAX_TEMPLATE_BYTES
    if shards > DEFAULT_SHARDS:
        # One shard fewer does not fit: the count is the fewest.
        fewer = tmp_path / "fewer.yaml"
        fewer.write_text(bench.tasks_text(count, shards - 1), encoding="utf-8")
        with pytest.raises(PlanError):
            plan_stage(load_tasks_file(fewer, catalog), catalog, bench.STAGE)
