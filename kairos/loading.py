"""Read tasks.yaml into a :class:`~kairos.config.TasksFile`, or fail with messages a person can act on.

Every problem names the file, the line, the task (or stage) and the field, and all problems are
reported at once, so one run of ``kairos validate`` shows everything that needs fixing; only a
Python task's params report their first problem (the runtime's msgspec models stop there).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from kairos.catalog import TaskCatalog
from kairos.config import (
    PARAMS_NOT_JSON,
    ResolvedTask,
    StageConfig,
    TaskDefaults,
    TaskEntry,
    TaskOverride,
    TasksFile,
)


class ConfigError(Exception):
    """tasks.yaml cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def read_yaml(path: Path) -> Any:
    """The document as ruamel's round-trip structures, which remember the line of every key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(path, [f"{path}: cannot read: {error.strerror or error}"]) from None
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(path, [f"{where}: YAML syntax error: {error.problem or error.context}"]) from None


def load_tasks_file(path: Path, catalog: TaskCatalog | None = None) -> TasksFile:
    """Parse and validate ``path``; with a catalog, also check task types and params in every stage."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(path, [f"{path}: expected a mapping with 'stages' and 'tasks', got {type(raw).__name__}"])
    try:
        tasks_file = TasksFile.model_validate(raw)
    except ValidationError as invalid:
        raise ConfigError(path, [_describe(path, raw, issue) for issue in invalid.errors()]) from None
    if catalog is not None:
        problems = list(_catalog_problems(path, raw, tasks_file, catalog))
        if problems:
            raise ConfigError(path, problems)
    return tasks_file


def _catalog_problems(path: Path, raw: Any, tasks_file: TasksFile, catalog: TaskCatalog) -> Iterable[str]:
    reported: set[str] = set()
    for stage in [None, *tasks_file.stages]:
        for index, task in enumerate(tasks_file.resolved_tasks(stage)):
            subject = f"task {task.name!r}"
            override = tasks_file.stages[stage].overrides.get(task.name) if stage is not None else None
            if override is not None:
                subject += f" (stage {stage!r})"
            # A params problem points at the value, in the override when that is where params come from.
            params_loc = (
                ("stages", stage, "overrides", task.name, "params")
                if override is not None and override.params is not None
                else ("tasks", index, "params")
            )
            for field, message in _task_problems(task, catalog):
                loc = (*params_loc, *field[1:]) if field[0] == "params" else ("tasks", index)
                field_path = ".".join(str(part) for part in field)
                problem = f"{path}:{_line_of(raw, loc)}: {subject}, field {field_path!r}: {message}"
                if problem not in reported:
                    reported.add(problem)
                    yield problem


def _task_problems(task: ResolvedTask, catalog: TaskCatalog) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """(field's path in the task, what is wrong with it) for what only the task-type catalog can tell."""
    entry = catalog.lookup(task.family, task.task_type)
    if entry is None:
        known = ", ".join(catalog.names(task.family)) or "none"
        yield ("task_type",), f"{task.task_type!r} is not registered for runtime {task.runtime} (known: {known})"
        return
    if task.architecture is not None and task.architecture != entry.architecture.value:
        yield (
            ("architecture",),
            f"task_type {task.task_type!r} needs {entry.architecture.value} "
            f"(its dependencies have no {task.architecture} build)",
        )
    for params_path, message in entry.check_params(task.params):
        yield ("params", *params_path), message


def _describe(path: Path, raw: Any, issue: Any) -> str:
    loc: tuple[Any, ...] = tuple(issue["loc"])
    if issue["type"] == PARAMS_NOT_JSON:
        loc += tuple(issue["ctx"]["path"])
    message = str(issue["msg"]).removeprefix("Value error, ")
    subject, field_path = _subject(raw, loc)
    where = f"{path}:{_line_of(raw, loc)}"
    if issue["type"] == "extra_forbidden":
        message = "unknown field" + did_you_mean(loc[-1], _fields_for(loc))
    elif isinstance(issue.get("input"), str | int | float | bool):
        message += f" (got {issue['input']!r})"
    if field_path:
        return f"{where}: {subject}, field {field_path!r}: {message}"
    return f"{where}: {subject}: {message}"


def _subject(raw: Any, loc: tuple[Any, ...]) -> tuple[str, str]:
    """('task \\'x\\'', 'memory') for a location like ('tasks', 3, 'memory')."""
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        entry = raw["tasks"][loc[1]] if isinstance(raw.get("tasks"), list) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"task {name!r}" if isinstance(name, str) else f"task #{loc[1] + 1}"
        return label, ".".join(str(part) for part in loc[2:])
    if len(loc) >= 2 and loc[0] == "stages":
        return f"stage {loc[1]!r}", ".".join(str(part) for part in loc[2:])
    if loc:
        return "tasks file", ".".join(str(part) for part in loc)
    return "tasks file", ""


def _fields_for(loc: tuple[Any, ...]) -> list[str]:
    if loc[:1] == ("tasks",):
        return list(TaskEntry.model_fields)
    if loc[:1] == ("stages",) and "overrides" in loc:
        return list(TaskOverride.model_fields)
    if loc[:1] == ("stages",):
        return list(StageConfig.model_fields)
    if loc[:1] == ("defaults",):
        return list(TaskDefaults.model_fields)
    return list(TasksFile.model_fields)


def did_you_mean(word: Any, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the candidate closest to ``word``, or nothing when none is close."""
    close = difflib.get_close_matches(str(word), candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _line_of(raw: Any, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest node of ``loc`` that exists in the document."""
    node, line = raw, 1
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                position = lc.key(part) if isinstance(node, dict) else lc.item(part)
                line = position[0] + 1
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return line
