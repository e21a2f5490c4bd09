"""Read tasks.yaml into a :class:`~kairos.config.TasksFile`, or fail with messages a person can act on.

Every problem names the file, the line, the task (or stage) and the field, and all problems are
reported at once, so one run of ``kairos validate`` shows everything that needs fixing; only a
Python task's params report their first problem (the runtime's msgspec models stop there).
"""

from __future__ import annotations

import codecs
import difflib
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, ComposerError, MaxDepthExceededError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionStartEvent
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.scanner import RoundTripScanner

from kairos.catalog import TaskCatalog
from kairos.config import (
    NESTING_LIMIT,
    PARAMS_NOT_JSON,
    ResolvedTask,
    StageConfig,
    TaskDefaults,
    TaskEntry,
    TaskOverride,
    TasksFile,
)
from kairos.excerpts import EXCERPT_LENGTH, excerpt, shorten
from kairos.plan import limit_problems


class ConfigError(Exception):
    """tasks.yaml cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


MAX_FILE_BYTES = 1024 * 1024
"""The largest tasks file read (1 MiB): a registry of schedules is a few kilobytes, and ruamel's
pure-Python parser would spend seconds on more."""
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# What YAML 1.2 allows in a stream (ruamel's reader refuses the rest, without a line).
_NOT_ALLOWED_IN_YAML = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"


class _UnbuildableValueError(ConstructorError):
    """A value YAML parsed but could not build."""


class _CheckedConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor, with a bad tagged scalar (``!!int abc``, ``!!bool maybe``,
    ``!!timestamp 2026-13-45``) reported at its line instead of escaping as a ValueError or KeyError."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, LookupError, TypeError, ArithmeticError) as error:
            tag = str(node.tag).replace(_YAML_TAG_PREFIX, "!!")
            if isinstance(node, ScalarNode):
                problem = f"{excerpt(node.value)} is not a valid {tag}: fix the value, or quote it for a string"
            else:
                problem = f"this {tag} cannot be read ({shorten(str(error))})"
            raise _UnbuildableValueError(None, None, problem, node.start_mark) from None


class _CheckedComposer(Composer):
    """ruamel's composer, refusing an alias inside the collection it names (``&loop {again: *loop}``),
    which ruamel would otherwise read as null: such a value has no JSON form."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._open_anchors: set[str] = set()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent) and event.anchor in self._open_anchors:
            raise ComposerError(
                None,
                None,
                f"the alias *{shorten(str(event.anchor), EXCERPT_LENGTH)} is inside what it names",
                event.start_mark,
            )
        anchor = event.anchor if isinstance(event, CollectionStartEvent) else None
        if anchor is None:
            return super().compose_node(parent, index)
        self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.discard(anchor)


class _TooDeepError(MarkedYAMLError):
    """Nesting beyond :data:`NESTING_LIMIT`, found by the scanner or the composer."""


class _CheckedScanner(RoundTripScanner):
    """ruamel's scanner, refusing flow collections (``[[[...``) nested deeper than :data:`NESTING_LIMIT`.

    The composer's ``max_depth`` comes too late for them: the scanner reads a whole nest of flow
    collections ahead of the composer, in time quadratic in its depth (5,000 levels take seconds).
    """

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:  # noqa: N803 - ruamel's name
        if len(self.flow_context) >= NESTING_LIMIT:
            raise _TooDeepError(None, None, "too deep", self.reader.get_mark())
        super().fetch_flow_collection_start(TokenClass, to_push)


def read_text(path: Path) -> str:
    """The file as text: at most :data:`MAX_FILE_BYTES`, UTF-8 (a BOM is fine), YAML's characters only."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(path, [f"{path}: cannot read: {error.strerror or error}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            path, [f"{path}: larger than {MAX_FILE_BYTES:,} bytes (1 MiB), the most a tasks file may be: split it"]
        )
    if data.startswith(_UTF16_BOMS):
        raise ConfigError(path, [f"{path}: the file is UTF-16; save it as UTF-8"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = data[error.start : error.start + 1].hex()
        raise ConfigError(
            path, [f"{path}:{line}: not UTF-8 (byte 0x{byte} at offset {error.start}): save the file as UTF-8"]
        ) from None
    forbidden = _NOT_ALLOWED_IN_YAML.search(text)
    if forbidden is not None:
        line = text.count("\n", 0, forbidden.start()) + 1
        column = forbidden.start() - (text.rfind("\n", 0, forbidden.start()) + 1) + 1
        character = forbidden.group()
        hint = " (a UTF-16 file? save it as UTF-8)" if character == "\0" else ""
        raise ConfigError(
            path,
            [
                f"{path}:{line}:{column}: control character U+{ord(character):04X} is not allowed in YAML{hint}: "
                "remove it, or write it as an escape in a double-quoted string"
            ],
        )
    return text


def read_yaml(path: Path) -> Any:
    """The document as ruamel's round-trip structures, which remember the line of every key."""
    text = read_text(path)
    yaml = YAML(typ="rt")
    yaml.Constructor = _CheckedConstructor
    yaml.Composer = _CheckedComposer
    yaml.Scanner = _CheckedScanner
    # ruamel composes nodes recursively: a deep document would otherwise exhaust Python's stack.
    yaml.max_depth = NESTING_LIMIT
    try:
        with warnings.catch_warnings():
            # A reused anchor is valid YAML (the later one wins); ruamel's warning would print several lines.
            warnings.simplefilter("ignore", ReusedAnchorWarning)
            return yaml.load(text)
    except (MaxDepthExceededError, _TooDeepError) as error:
        raise ConfigError(
            path,
            [
                f"{_where(path, error.problem_mark)}: nested more than {NESTING_LIMIT} levels deep, "
                "the most a tasks file may nest: flatten it"
            ],
        ) from None
    except _UnbuildableValueError as error:
        raise ConfigError(path, [f"{_where(path, error.problem_mark)}: {error.problem}"]) from None
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = shorten(str(error.problem or error.context))
        raise ConfigError(path, [f"{_where(path, mark)}: YAML syntax error: {problem}"]) from None
    except YAMLError as error:
        raise ConfigError(path, [f"{path}: YAML error: {shorten(str(error))}"]) from None


def _where(path: Path, mark: Any) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)


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
                loc = (*params_loc, *field[1:]) if field[0] == "params" else ("tasks", index, *field)
                field_path = ".".join(str(part) for part in field)
                problem = f"{path}:{_line_of(raw, loc)}: {subject}, field {excerpt(field_path)}: {shorten(message)}"
                if problem not in reported:
                    reported.add(problem)
                    yield problem


def _task_problems(task: ResolvedTask, catalog: TaskCatalog) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """(field's path in the task, what is wrong with it) for what only the task-type catalog can tell."""
    entry = catalog.lookup(task.family, task.task_type)
    if entry is None:
        known = ", ".join(catalog.names(task.family)) or "none"
        yield (
            ("task_type",),
            f"{excerpt(task.task_type)} is not registered for runtime {task.runtime} (known: {known})",
        )
        return
    if task.architecture is not None and task.architecture != entry.architecture.value:
        yield (
            ("architecture",),
            f"task_type {task.task_type!r} needs {entry.architecture.value} "
            f"(its dependencies have no {task.architecture} build)",
        )
    for params_path, message in entry.check_params(task.params):
        yield ("params", *params_path), message
    for field, message in limit_problems(task, entry):
        yield (field,), message


def _describe(path: Path, raw: Any, issue: Any) -> str:
    loc: tuple[Any, ...] = tuple(issue["loc"])
    if issue["type"] == PARAMS_NOT_JSON:
        loc += tuple(issue["ctx"]["path"])
    message = shorten(str(issue["msg"]).removeprefix("Value error, "))
    subject, field_path = _subject(raw, loc)
    where = f"{path}:{_line_of(raw, loc)}"
    if issue["type"] == "extra_forbidden":
        message = "unknown field" + did_you_mean(loc[-1], _fields_for(loc))
    elif isinstance(issue.get("input"), str | int | float | bool):
        message += f" (got {excerpt(issue['input'])})"
    if field_path:
        return f"{where}: {subject}, field {excerpt(field_path)}: {message}"
    return f"{where}: {subject}: {message}"


def _subject(raw: Any, loc: tuple[Any, ...]) -> tuple[str, str]:
    """('task \\'x\\'', 'memory') for a location like ('tasks', 3, 'memory')."""
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        entry = raw["tasks"][loc[1]] if isinstance(raw.get("tasks"), list) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"task {excerpt(name)}" if isinstance(name, str) else f"task #{loc[1] + 1}"
        return label, ".".join(str(part) for part in loc[2:])
    if len(loc) >= 2 and loc[0] == "stages":
        return f"stage {excerpt(loc[1])}", ".".join(str(part) for part in loc[2:])
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
    choices = list(candidates)
    if len(str(word)) > 2 * max(map(len, choices), default=0):
        return ""  # nothing that long is a typo of a known name, and comparing it would take long
    close = difflib.get_close_matches(str(word), choices, n=1)
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
