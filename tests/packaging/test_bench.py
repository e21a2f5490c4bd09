"""The packaging benchmark's own helpers (``make bench`` runs the measurements; these run in ``make test``)."""

from __future__ import annotations

import os
import sys
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


def test_a_child_reports_wall_and_cpu_time_around_the_statement_only(bench: ModuleType) -> None:
    idle = bench.time_import(sys.executable, "time.sleep(0.2)", [], dict(os.environ))
    busy = bench.time_import(sys.executable, "sum(range(3_000_000))", [], dict(os.environ))

    assert idle.wall >= 0.2
    assert idle.cpu < 0.1, "sleeping is wall time, not CPU time"
    assert busy.cpu > 0
    assert busy.cpu <= busy.wall * 1.05 + 0.005  # one thread: CPU cannot outrun the clock


def test_a_failing_statement_is_an_error_naming_it(bench: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="import not_a_module_anywhere"):
        bench.time_import(sys.executable, "import not_a_module_anywhere", [], dict(os.environ))


def test_the_spread_is_the_median_and_the_quartiles(bench: ModuleType) -> None:
    spread = bench.Spread.of([0.5, 0.1, 0.3, 0.2, 0.4])

    assert (spread.median, spread.low, spread.high) == pytest.approx((0.3, 0.2, 0.4))
    assert spread.ms() == "300 ms (200–400)"
    assert bench.Spread.of([0.25]).times() == "0.25× (0.25–0.25)"
    with pytest.raises(ValueError, match="no values"):
        bench.Spread.of([])


def samples(bench: ModuleType, floor: list[tuple[float, float]], handler: list[tuple[float, float]]) -> object:
    return {
        "floor": [bench.Sample(wall=wall, cpu=cpu) for wall, cpu in floor],
        "core handler + boto3": [bench.Sample(wall=wall, cpu=cpu) for wall, cpu in handler],
    }


def test_ratios_pair_the_samples_of_one_round(bench: ModuleType) -> None:
    # The machine slows down in round 2: each round's own ratio is 1.05, whatever the medians say.
    measured = samples(bench, [(1.0, 0.2), (3.0, 0.6), (1.0, 0.2)], [(1.05, 0.21), (3.15, 0.63), (1.05, 0.21)])

    assert bench.ratio(measured, "core handler + boto3", "floor", bench.CPU).median == pytest.approx(1.05)
    assert bench.ratio(measured, "core handler + boto3", "floor", bench.WALL).high == pytest.approx(1.05)


def test_the_budget_line_judges_cpu_time_and_shows_wall_time_beside_it(bench: ModuleType) -> None:
    # Wall time says 1.50× (a neighbour's load in the handler's turns); CPU time says 1.05×.
    within = samples(bench, [(1.0, 0.2)] * 3, [(1.5, 0.21)] * 3)
    over = samples(bench, [(1.0, 0.2)] * 3, [(1.0, 0.23)] * 3)

    line = bench.budget_line(within)
    assert line.startswith("core handler + boto3 ≤ 1.10× the floor: 1.05× (ok) on CPU time")
    assert "median of 3 side-by-side rounds" in line
    assert "wall time 1.50×" in line
    assert bench.budget_line(over).startswith("core handler + boto3 ≤ 1.10× the floor: 1.15× (OVER)")


def test_rounds_alternate_their_order_and_measure_each_statement_once(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def timed(_interpreter: str, statement: str, _path: object, environment: dict[str, str]) -> object:
        seen.append(f"{statement}:{environment['WHO']}")
        return bench.Sample(wall=1.0, cpu=0.5)

    monkeypatch.setattr(bench, "time_import", timed)
    measures = [bench.Measure("a", "A", (), {"WHO": "a"}), bench.Measure("b", "B", (), {"WHO": "b"})]

    measured = bench.measure_imports("python", measures, {"WHO": "base"}, 3)

    assert seen == ["A:a", "B:b", "B:b", "A:a", "A:a", "B:b"]
    assert {label: len(values) for label, values in measured.items()} == {"a": 3, "b": 3}


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:      2500 |       2600 | kairos_runtime.runs
import time:       900 |       3500 | kairos_runtime
import time:      1500 |       1500 | msgspec._core
"""


def test_import_profiles_are_read_per_module_and_compared_with_the_floor(bench: ModuleType) -> None:
    handler = bench.parse_importtime(IMPORTTIME)
    floor = bench.parse_importtime(
        "import time: self [us] | cumulative | imported package\nimport time:       100 |        100 |   _io\n"
    )

    assert handler == {"_io": 120, "kairos_runtime.runs": 2500, "kairos_runtime": 900, "msgspec._core": 1500}
    assert bench.median_profile([{"a": 1}, {"a": 3, "b": 4}, {"a": 2}]) == {"a": 2, "b": 0}
    title, packages, modules = bench.extra_lines("handler over the floor", handler, floor)
    assert title.startswith("- handler over the floor: 4.9 ms of self time in modules the other does not import (3;")
    assert "all self time: +4.9 ms" in title
    assert packages == "  - by package: kairos_runtime 3.4 ms, msgspec 1.5 ms"
    assert modules.startswith("  - slowest of those modules (ms): kairos_runtime.runs 2.5, msgspec._core 1.5")


def test_busy_loops_run_for_the_block_and_are_stopped_after_it(bench: ModuleType) -> None:
    with bench.busy_loops(2) as pids:
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, 0)  # alive: no error
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_floor_runs_in_the_simple_task_functions_environment(bench: ModuleType) -> None:
    assets = {
        "core-x86_64": PROJECT_ROOT / "core",
        "crawler-code": PROJECT_ROOT / "crawler",
        "crawler-layer": PROJECT_ROOT / "layer",
    }
    measures = {measure.label: measure for measure in bench.import_measures(assets, PROJECT_ROOT / "runtime", "")}

    assert measures["floor"].task_environment == measures["core handler + boto3"].task_environment
    assert measures["floor"].path == measures["core handler + boto3"].path
    assert set(bench.BUDGET_LABELS) <= set(measures)
