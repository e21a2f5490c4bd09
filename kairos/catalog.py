"""The task types a tasks.yaml entry may name, per runtime family.

Python task types come from the runtime registry (importing it is cheap by design); Node.js task
types from ``lambdas/node/task-types.json``, a manifest the Node tests keep equal to the Node
registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kairos_build.groups import DependencyGroupSpec
from kairos_build.project import dependency_groups
from kairos_runtime.fan_out import FanOut
from kairos_runtime.registry import (
    Access,
    Architecture,
    DependencyGroup,
    Partitions,
    TaskRegistry,
    TaskType,
    resolve_partitions,
)
from kairos_runtime.tables import TableId
from kairos_runtime.validation import InputPath, input_problems

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NODE_MANIFEST = PROJECT_ROOT / "lambdas" / "node" / "task-types.json"

Family = Literal["python", "nodejs"]
ParamsProblem = tuple[InputPath, str]
"""Where in the params (field names and list indices) and what is wrong there."""
ParamsCheck = Callable[[Mapping[str, Any]], list[ParamsProblem]]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    family: Family
    description: str
    tables: Mapping[TableId, Access]
    group: DependencyGroup
    architecture: Architecture
    check_params: ParamsCheck
    """Returns the problems with a params mapping."""
    parameters_for: Callable[[Mapping[str, Any]], list[str]] = lambda params: []
    """The SSM parameter names a task with these (valid) params reads."""
    module: str | None = None
    """The Python module that registers the task type; its function imports only that one."""
    partitions: Mapping[TableId, Partitions] = field(default_factory=dict)
    """The partition-key prefixes each declared table's accesses are limited to (see ``Partitions``)."""
    fan_out: FanOut[Any] | None = None
    """A fan-out task type's declaration (Python only): its schedule starts a state machine."""
    parse_params: Callable[[Mapping[str, Any]], Any] | None = None
    """The params as the runtime's model (Python only), for the values the plan reads from them."""
    backfill: bool = False
    """Whether the task type can run for a past slot (``kairos backfill``; the registry's ``backfill=``)."""


class TaskCatalog:
    def __init__(self, entries: list[CatalogEntry]) -> None:
        self._entries = {(entry.family, entry.name): entry for entry in entries}

    def lookup(self, family: Family, name: str) -> CatalogEntry | None:
        return self._entries.get((family, name))

    def names(self, family: Family) -> list[str]:
        return sorted(name for entry_family, name in self._entries if entry_family == family)


def _params_model_check(task_type: TaskType[Any]) -> ParamsCheck:
    """The runtime's own params model, field by field: the first problem of every field."""

    def check(params: Mapping[str, Any]) -> list[ParamsProblem]:
        return [(problem.path, problem.message) for problem in input_problems(dict(params), task_type.params_model)]

    return check


def _parameters_for(task_type: TaskType[Any]) -> Callable[[Mapping[str, Any]], list[str]]:
    def parameters_for(params: Mapping[str, Any]) -> list[str]:
        if task_type.parameters is None:
            return []
        return list(task_type.parameters(task_type.parse_params(params)))

    return parameters_for


def _json_schema_check(schema: Mapping[str, Any]) -> ParamsCheck:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    def check(params: Mapping[str, Any]) -> list[ParamsProblem]:
        issues = sorted(validator.iter_errors(dict(params)), key=lambda error: [str(part) for part in error.path])
        return [(tuple(issue.path), issue.message) for issue in issues]

    return check


_GROUPS = dependency_groups(PROJECT_ROOT)


def dependency_group(group: DependencyGroup) -> DependencyGroupSpec:
    """The settings of a dependency group (architecture, layer, environment), from its one record."""
    return _GROUPS[group]


def python_entries(registry: TaskRegistry) -> list[CatalogEntry]:
    return [
        CatalogEntry(
            name=task_type.name,
            family="python",
            description=task_type.description,
            tables=task_type.tables,
            group=task_type.group,
            architecture=task_type.architecture or _GROUPS[task_type.group].default_architecture,
            check_params=_params_model_check(task_type),
            parameters_for=_parameters_for(task_type),
            module=task_type.module,
            partitions=task_type.partitions,
            fan_out=task_type.fan_out,
            parse_params=task_type.parse_params,
            backfill=task_type.backfill,
        )
        for task_type in registry
    ]


def node_entries(manifest_path: Path) -> list[CatalogEntry]:
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    entries = []
    for name, spec in manifest["task_types"].items():
        tables = {TableId(table): Access(access) for table, access in spec.get("tables", {}).items()}
        # The Node registry declares partitions as the Python one does: {"read": [...], "write": [...]},
        # with "query_indexes": true where a partition-scoped read also queries the indexes.
        partitions = {
            TableId(table): Partitions(
                read=tuple(scope.get("read", ())),
                write=tuple(scope.get("write", ())),
                query_indexes=scope.get("query_indexes") is True,
            )
            for table, scope in spec.get("partitions", {}).items()
        }
        entries.append(
            CatalogEntry(
                name=name,
                family="nodejs",
                description=spec.get("description", ""),
                tables=tables,
                group=DependencyGroup.CORE,
                architecture=Architecture.ARM_64,
                check_params=_json_schema_check(spec["params_schema"]),
                partitions=resolve_partitions(name, tables, partitions),
                backfill=spec.get("backfill") is True,
            )
        )
    return entries


def load_catalog(*, registry: TaskRegistry | None = None, node_manifest: Path = NODE_MANIFEST) -> TaskCatalog:
    if registry is None:
        from kairos_runtime.tasks import default_registry

        registry = default_registry()
    return TaskCatalog(python_entries(registry) + node_entries(node_manifest))
