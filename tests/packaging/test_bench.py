"""The packaging benchmark's own helpers (``make bench`` runs the measurements; these run in ``make test``)."""

from __future__ import annotations

from importlib.metadata import version
from types import ModuleType

import pytest

from tests.bench_scripts import load_bench_script
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_bench_script("packaging_bench", monkeypatch)


def test_the_pydantic_compared_is_the_one_the_cdk_app_runs(bench: ModuleType) -> None:
    assert bench.pydantic_requirement() == f"pydantic=={version('pydantic')}"


def test_every_import_is_measured_as_shipped_and_from_sources_under_its_own_label(bench: ModuleType) -> None:
    assets = {
        "core-x86_64": PROJECT_ROOT / "core",
        "crawler-code": PROJECT_ROOT / "crawler",
        "crawler-layer": PROJECT_ROOT / "layer",
    }

    shipped = bench.import_measures(assets, PROJECT_ROOT / "runtime", "")
    sources = bench.import_measures(assets, PROJECT_ROOT / "runtime", " (sources)")

    labels = [measure.label for measure in shipped]
    assert len(set(labels)) == len(labels)
    assert {"floor", "core handler", "core handler + boto3", "floor + a msgspec model"} <= set(labels), (
        "the report reads these by label"
    )
    assert [measure.label for measure in sources] == [f"{label} (sources)" for label in labels]
    handler = shipped[labels.index("core handler")]
    assert handler.task_environment["KAIROS_TASK_MODULE"] == "kairos_runtime.tasks.simple"
