"""The task-type registry: decorators record and return, duplicates raise, registries merge."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kairos.catalog import python_entries
from kairos_runtime.context import TaskContext
from kairos_runtime.registry import (
    Access,
    Architecture,
    DependencyGroup,
    DuplicateTaskTypeError,
    InvalidDeclarationError,
    Partitions,
    TaskParams,
    TaskRegistry,
    UnknownTaskTypeError,
)
from kairos_runtime.tables import TableId
from kairos_runtime.tasks import default_registry
from kairos_runtime.validation import InvalidInputError
from tests.conftest import PROJECT_ROOT


class Params(TaskParams, frozen=True):
    symbols: tuple[str, ...] = ()


def noop(params: Params, context: TaskContext) -> None:
    """Do nothing, slowly."""


def test_the_decorator_records_the_task_type_and_returns_the_function_unchanged() -> None:
    registry = TaskRegistry()

    decorated = registry.task(
        "probe", params=Params, tables={TableId.MARKET_DATA: Access.WRITE}, partitions={TableId.MARKET_DATA: ("X#",)}
    )(noop)

    assert decorated is noop
    task_type = registry.get("probe")
    assert task_type.function is noop
    assert task_type.params_model is Params
    assert dict(task_type.tables) == {TableId.MARKET_DATA: Access.WRITE}
    assert task_type.description == "Do nothing, slowly."
    # The default architecture is the group's, a build setting the catalog applies.
    (entry,) = python_entries(registry)
    assert (task_type.group, entry.architecture) == (DependencyGroup.CORE, Architecture.ARM_64)


def test_crawler_task_types_default_to_x86_64() -> None:
    registry = TaskRegistry()
    registry.task("crawl", params=Params, group=DependencyGroup.CRAWLER)(noop)

    (entry,) = python_entries(registry)
    assert entry.architecture is Architecture.X86_64


def test_a_duplicate_registration_raises() -> None:
    registry = TaskRegistry()
    registry.task("probe", params=Params)(noop)

    with pytest.raises(DuplicateTaskTypeError, match="'probe' is registered twice"):
        registry.task("probe", params=Params)(noop)


def test_merging_registries_refuses_a_name_both_define() -> None:
    first, second, merged = TaskRegistry(), TaskRegistry(), TaskRegistry()
    first.task("a", params=Params)(noop)
    second.task("b", params=Params)(noop)
    merged.include(first)
    merged.include(second)

    assert merged.names() == ["a", "b"]
    with pytest.raises(DuplicateTaskTypeError):
        merged.include(first)


def test_an_unknown_task_type_names_the_known_ones() -> None:
    registry = TaskRegistry()
    registry.task("a", params=Params)(noop)

    with pytest.raises(UnknownTaskTypeError, match="unknown task_type 'zzz'; registered: a"):
        registry.get("zzz")


def test_params_models_forbid_unknown_fields_and_are_frozen() -> None:
    registry = TaskRegistry()
    registry.task("probe", params=Params)(noop)

    with pytest.raises(InvalidInputError, match=r"symbolz: unknown field \(did you mean 'symbols'\?\)"):
        registry.get("probe").parse_params({"symbolz": []})
    params: Params = registry.get("probe").parse_params({"symbols": ["600519"]})
    with pytest.raises(AttributeError, match="immutable"):
        params.symbols = ()  # type: ignore[misc]


def test_the_default_registry_holds_the_simple_tasks() -> None:
    registry = default_registry()

    assert {"simple_task_1", "simple_task_2"} <= set(registry.names())
    assert dict(registry.get("simple_task_1").tables) == {}


def test_a_prefix_tuple_is_the_same_partitions_for_every_declared_access() -> None:
    registry = TaskRegistry()
    registry.task(
        "both",
        params=Params,
        tables={TableId.MARKET_DATA: Access.READ_WRITE},
        partitions={TableId.MARKET_DATA: ("STOCK#", "ETF#")},
    )(noop)
    registry.task(
        "writer",
        params=Params,
        tables={TableId.MARKET_DATA: Access.WRITE},
        partitions={TableId.MARKET_DATA: ("STOCK#",)},
    )(noop)

    assert registry.get("both").partitions[TableId.MARKET_DATA] == Partitions(
        read=("STOCK#", "ETF#"), write=("STOCK#", "ETF#")
    )
    assert registry.get("writer").partitions[TableId.MARKET_DATA] == Partitions(read=(), write=("STOCK#",))


def test_reads_and_writes_may_name_different_partitions() -> None:
    registry = TaskRegistry()
    scope = Partitions(read=("STOCK#", "CALENDAR#"), write=("STOCK#",))
    registry.task(
        "daily", params=Params, tables={TableId.MARKET_DATA: Access.READ_WRITE}, partitions={TableId.MARKET_DATA: scope}
    )(noop)

    partitions = registry.get("daily").partitions[TableId.MARKET_DATA]
    assert partitions.read == ("STOCK#", "CALENDAR#")
    assert partitions.allows_write("STOCK#600519")
    assert not partitions.allows_write("CALENDAR#XSHG")


@pytest.mark.parametrize(
    ("tables", "partitions", "problem"),
    [
        ({TableId.MARKET_DATA: Access.WRITE}, {}, "a write access needs partitions="),
        ({TableId.MARKET_DATA: Access.READ_WRITE}, {}, "a write access needs partitions="),
        ({}, {TableId.MARKET_DATA: ("STOCK#",)}, "partitions are declared for a table missing from tables="),
        (
            {TableId.MARKET_DATA: Access.WRITE},
            {TableId.MARKET_DATA: Partitions(read=("STOCK#",), write=("STOCK#",))},
            "read prefixes given, but access is write",
        ),
        (
            {TableId.MARKET_DATA: Access.READ_WRITE},
            {TableId.MARKET_DATA: Partitions(write=("STOCK#",))},
            "access read_write needs read prefixes",
        ),
        (
            {TableId.TASK_RUNS: Access.QUERY_INDEXES},
            {TableId.TASK_RUNS: ("TASK#",)},
            "index queries cannot be scoped by partition",
        ),
        (
            {TableId.MARKET_DATA: Access.WRITE},
            {TableId.MARKET_DATA: Partitions(write=("STOCK#",), query_indexes=True)},
            "query_indexes needs a read access, but access is write",
        ),
    ],
)
def test_an_inconsistent_partitions_declaration_fails_at_registration(
    tables: dict[TableId, Access], partitions: dict[TableId, object], problem: str
) -> None:
    registry = TaskRegistry()

    with pytest.raises(InvalidDeclarationError, match=problem):
        registry.task("probe", params=Params, tables=tables, partitions=partitions)  # type: ignore[arg-type]
    assert "probe" not in registry


@pytest.mark.parametrize("prefix", ["", "STOCK#*", "ST?CK#"])
def test_a_prefix_may_not_widen_itself_with_an_iam_wildcard(prefix: str) -> None:
    with pytest.raises(InvalidDeclarationError, match="without '\\*' or '\\?'"):
        Partitions(write=(prefix,))


def test_a_whole_table_read_needs_no_partitions() -> None:
    registry = TaskRegistry()
    registry.task("report", params=Params, tables={TableId.TASK_RUNS: Access.READ})(noop)

    assert dict(registry.get("report").partitions) == {}


def test_node_task_types_declare_partitions_through_the_manifest(tmp_path: Path) -> None:
    from kairos.catalog import load_catalog

    def task_type(partitions: object) -> dict[str, object]:
        schema = {"type": "object", "properties": {}, "additionalProperties": False}
        return {
            "description": "",
            "params_schema": schema,
            "tables": {"market_data": "write"},
            "partitions": partitions,
        }

    manifest = tmp_path / "task-types.json"
    manifest.write_text(
        json.dumps({"task_types": {"node_spot": task_type({"market_data": {"read": [], "write": ["ETF#"]}})}})
    )

    entry = load_catalog(registry=TaskRegistry(), node_manifest=manifest).lookup("nodejs", "node_spot")

    assert entry is not None
    assert dict(entry.partitions) == {TableId.MARKET_DATA: Partitions(read=(), write=("ETF#",))}
    manifest.write_text(json.dumps({"task_types": {"node_spot": task_type({})}}))
    with pytest.raises(InvalidDeclarationError, match="a write access needs partitions="):
        load_catalog(registry=TaskRegistry(), node_manifest=manifest)


NODE_QUERY_INDEXES_MANIFEST = """
const { TaskRegistry, manifestJson } = await import(process.argv[1]);
const params = { type: "object", properties: {}, additionalProperties: false };
const registry = new TaskRegistry();
registry.task("runs_of_day", { params, tables: { task_runs: "query_indexes" } }, async () => {});
registry.task(
  "stocks_of_day",
  { params, tables: { market_data: "read" }, partitions: { market_data: { read: ["STOCK#"], query_indexes: true } } },
  async () => {},
);
process.stdout.write(manifestJson(registry));
"""


def test_node_task_types_declare_index_queries_as_python_ones_do(tmp_path: Path) -> None:
    # The manifest as the Node registry writes it, read by the catalog the stack grants from.
    from kairos.catalog import load_catalog

    registry_module = PROJECT_ROOT / "lambdas" / "node" / "src" / "registry.mjs"
    written = subprocess.run(
        [
            shutil.which("node") or "node",
            "--input-type=module",
            "-e",
            NODE_QUERY_INDEXES_MANIFEST,
            registry_module.as_uri(),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    manifest = tmp_path / "task-types.json"
    manifest.write_text(written.stdout, encoding="utf-8")

    catalog = load_catalog(registry=TaskRegistry(), node_manifest=manifest)

    runs_of_day = catalog.lookup("nodejs", "runs_of_day")
    stocks_of_day = catalog.lookup("nodejs", "stocks_of_day")
    assert runs_of_day is not None
    assert stocks_of_day is not None
    assert dict(runs_of_day.tables) == {TableId.TASK_RUNS: Access.QUERY_INDEXES}
    assert dict(runs_of_day.partitions) == {}
    assert dict(stocks_of_day.partitions) == {
        TableId.MARKET_DATA: Partitions(read=("STOCK#",), write=(), query_indexes=True)
    }
