"""The task-type registry: decorators record and return, duplicates raise, registries merge."""

from __future__ import annotations

import pytest

from kairos.catalog import python_entries
from kairos_runtime.context import TaskContext
from kairos_runtime.registry import (
    Access,
    Architecture,
    DependencyGroup,
    DuplicateTaskTypeError,
    TaskParams,
    TaskRegistry,
    UnknownTaskTypeError,
)
from kairos_runtime.tables import TableId
from kairos_runtime.tasks import default_registry
from kairos_runtime.validation import InvalidInputError


class Params(TaskParams, frozen=True):
    symbols: tuple[str, ...] = ()


def noop(params: Params, context: TaskContext) -> None:
    """Do nothing, slowly."""


def test_the_decorator_records_the_task_type_and_returns_the_function_unchanged() -> None:
    registry = TaskRegistry()

    decorated = registry.task("probe", params=Params, tables={TableId.MARKET_DATA: Access.WRITE})(noop)

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
    params = registry.get("probe").parse_params({"symbols": ["600519"]})
    with pytest.raises(AttributeError, match="immutable"):
        params.symbols = ()  # type: ignore[misc]


def test_the_default_registry_holds_the_simple_tasks() -> None:
    registry = default_registry()

    assert {"simple_task_1", "simple_task_2"} <= set(registry.names())
    assert dict(registry.get("simple_task_1").tables) == {}
