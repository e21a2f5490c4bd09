"""Read tasks.yaml into a :class:`~kairos.config.TasksFile`, or fail with messages a person can act on.

Every problem names the file, the line, the task (or stage) and the field, and all problems are
reported at once, so one run of ``kairos validate`` shows everything that needs fixing: the fields of
every entry, what spans entries (duplicate names, stage lists and overrides naming no task) and the
task types and params of whatever parsed, even where other fields are wrong
(docs/adr/0100-validation-in-one-pass.md).
"""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
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
    PATTERN_HINTS,
    TASK_NAME_PATTERN,
    ResolvedTask,
    StageConfig,
    TaskDefaults,
    TaskEntry,
    TaskOverride,
    TasksFile,
)
from kairos.excerpts import EXCERPT_LENGTH, excerpt, shorten
from kairos.plan import limit_problems
from kairos.schedule import AtSchedule
from kairos.suggestions import closest, did_you_mean

__all__ = ["MAX_FILE_BYTES", "Checked", "ConfigError", "check_tasks_file", "did_you_mean", "load_tasks_file"]


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


@dataclass(frozen=True, slots=True)
class Checked:
    """What checking a tasks file found: the model when there is no problem, and every problem and warning."""

    tasks_file: TasksFile | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...]


class _Report(NamedTuple):
    line: int
    text: str
    warning: bool = False


def load_tasks_file(path: Path, catalog: TaskCatalog | None = None) -> TasksFile:
    """Parse and validate ``path``; with a catalog, also check task types and params in every stage."""
    checked = check_tasks_file(path, catalog)
    if checked.tasks_file is None:
        raise ConfigError(path, checked.problems)
    return checked.tasks_file


def check_tasks_file(path: Path, catalog: TaskCatalog | None = None, *, now: datetime | None = None) -> Checked:
    """Every problem of ``path`` in one pass, sorted by line: the fields of every entry and stage, then
    what spans entries (names, stage lists, overrides) and, with a catalog, task types and params,
    checked on whatever parsed even where other fields are wrong. Given ``now``, also a one-time
    schedule whose time has passed (docs/adr/0100-validation-in-one-pass.md). A file that cannot be
    read as YAML at all raises :class:`ConfigError` with its one problem.
    """
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(path, [f"{path}: expected a mapping with 'stages' and 'tasks', got {type(raw).__name__}"])
    tasks_file: TasksFile | None
    try:
        tasks_file, issues = TasksFile.model_validate(raw), []
    except ValidationError as invalid:
        tasks_file, issues = None, invalid.errors()
    references = list(_reference_problems(raw))
    # The model's own check of references stops at the first; the document's check above reports each.
    reports = [*_field_problems(raw, issues, skip_file_level=bool(references)), *references]
    usable, indices = (tasks_file, list(range(len(tasks_file.tasks)))) if tasks_file else _salvaged(raw, issues)
    if catalog is not None:
        reports += _catalog_problems(raw, usable, indices, catalog)
    if now is not None:
        reports += _passed_one_time_schedules(raw, usable, indices, now)
    problems: list[str] = []
    warnings: list[str] = []
    for report in sorted(dict.fromkeys(reports), key=lambda report: report.line):
        if report.warning:
            warnings.append(f"{path}:{report.line}: warning: {report.text}")
        else:
            problems.append(f"{path}:{report.line}: {report.text}")
    return Checked(tasks_file if not problems else None, tuple(problems), tuple(warnings))


def _field_problems(raw: dict[str, Any], issues: list[Any], *, skip_file_level: bool) -> Iterator[_Report]:
    # An unknown field that is the typo of a required one says so; "field required" would repeat it.
    typos = {
        (tuple(issue["loc"][:-1]), closest(issue["loc"][-1], _fields_for(tuple(issue["loc"]))))
        for issue in issues
        if issue["type"] == "extra_forbidden"
    }
    for issue in issues:
        loc = tuple(issue["loc"])
        if skip_file_level and not loc:
            continue
        if issue["type"] == "missing" and (loc[:-1], loc[-1]) in typos:
            continue
        yield _describe(raw, issue)


def _reference_problems(raw: dict[str, Any]) -> Iterator[_Report]:
    """Duplicate task names, and stage lists and overrides naming no task, each at its own line."""
    tasks = raw.get("tasks")
    first_at: dict[str, int] = {}
    for index, entry in enumerate(tasks if isinstance(tasks, list) else []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_at:
            earlier = _line_of(raw, ("tasks", first_at[name], "name"))
            yield _Report(
                _line_of(raw, ("tasks", index, "name")),
                f"task {excerpt(name)}, field 'name': task #{first_at[name] + 1} (line {earlier}) has this name "
                "already: names must be unique",
            )
        else:
            first_at[name] = index
    stages = raw.get("stages")
    for stage_name, stage in stages.items() if isinstance(stages, dict) else ():
        if not isinstance(stage, dict):
            continue
        listed = stage.get("enabled")
        for position, name in enumerate(listed if isinstance(listed, list) else []):
            if _is_task_name(name) and name not in first_at:
                yield _Report(
                    _line_of(raw, ("stages", stage_name, "enabled", position)),
                    f"stage {excerpt(stage_name)}, field 'enabled.{position}': {_unknown_task(name, first_at)}",
                )
        overrides = stage.get("overrides")
        for name in overrides if isinstance(overrides, dict) else ():
            if _is_task_name(name) and name not in first_at:
                yield _Report(
                    _line_of(raw, ("stages", stage_name, "overrides", name)),
                    f"stage {excerpt(stage_name)}, field {excerpt(f'overrides.{name}')}: "
                    f"{_unknown_task(name, first_at)}",
                )


def _is_task_name(value: object) -> TypeGuard[str]:
    # A name the pattern refuses has its own problem already.
    return isinstance(value, str) and re.fullmatch(TASK_NAME_PATTERN, value) is not None


def _unknown_task(name: str, known: Iterable[str]) -> str:
    return f"unknown task {excerpt(name)}{did_you_mean(name, known) or ' (no entry under tasks has that name)'}"


_STAND_IN_NAME = "salvaged"
_STAND_IN_SCHEDULE = "rate(1 day)"


def _salvaged(raw: dict[str, Any], issues: list[Any]) -> tuple[TasksFile, list[int]]:
    """What parsed of a file with problems, for the checks that need models: every entry, stage
    override and the defaults without their bad fields (a missing name or schedule stood in for),
    and the index in ``tasks`` of each entry kept. An entry without a usable task_type is left out:
    the catalog has nothing to check it against."""
    salvage = _Salvage(issues)
    defaults = _built(TaskDefaults, salvage.kept(raw.get("defaults", {}), ("defaults",), TaskDefaults))
    entries: list[TaskEntry] = []
    indices: list[int] = []
    tasks = raw.get("tasks")
    for index, value in enumerate(tasks if isinstance(tasks, list) else []):
        fields = salvage.kept(value, ("tasks", index), TaskEntry)
        if fields is None or "task_type" not in fields:
            continue
        entry = _built(TaskEntry, {"name": _STAND_IN_NAME, "schedule": _STAND_IN_SCHEDULE, **fields})
        if entry is not None:
            entries.append(entry)
            indices.append(index)
    raw_stages = raw.get("stages")
    stages = {
        name: stage
        for name, value in (raw_stages.items() if isinstance(raw_stages, dict) else ())
        if isinstance(name, str) and (stage := salvage.stage(name, value)) is not None
    }
    return TasksFile.model_construct(defaults=defaults or TaskDefaults(), stages=stages, tasks=entries), indices


class _Salvage:
    """The fields with a problem, per model (entry, stage, override, defaults), to leave out."""

    def __init__(self, issues: list[Any]) -> None:
        self._bad: dict[tuple[Any, ...], set[Any]] = {}
        for issue in issues:
            loc = tuple(issue["loc"])
            owner = _owner(loc)
            # None: the model failed as a whole (not a mapping, say).
            self._bad.setdefault(owner, set()).add(loc[len(owner)] if len(loc) > len(owner) else None)

    def kept(self, value: Any, owner: tuple[Any, ...], model: type[BaseModel]) -> dict[str, Any] | None:
        bad = self._bad.get(owner, set())
        if not isinstance(value, dict) or (None in bad and model is not StageConfig):
            return None
        return {key: item for key, item in value.items() if key in model.model_fields and key not in bad}

    def stage(self, name: str, value: Any) -> StageConfig | None:
        # A stage's own checks across fields do not matter here: only its list and overrides do.
        stage = self.kept(value, ("stages", name), StageConfig)
        if stage is None:
            return None
        overrides = {}
        raw_overrides = stage.get("overrides")
        for task, override in raw_overrides.items() if isinstance(raw_overrides, dict) else ():
            built = _built(TaskOverride, self.kept(override, ("stages", name, "overrides", task), TaskOverride))
            if isinstance(task, str) and built is not None:
                overrides[task] = built
        enabled = stage.get("enabled")
        return StageConfig.model_construct(enabled=enabled if isinstance(enabled, list) else None, overrides=overrides)


def _owner(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The location of the model a problem's location is in: a task entry, a stage, an override, defaults."""
    if loc[:1] == ("tasks",) and len(loc) >= 2:
        return loc[:2]
    if loc[:1] == ("stages",) and len(loc) >= 4 and loc[2] == "overrides":
        return loc[:4]
    if loc[:1] == ("stages",) and len(loc) >= 2:
        return loc[:2]
    return loc[:1]


ModelT = TypeVar("ModelT", bound=BaseModel)


def _built(model: type[ModelT], fields: dict[str, Any] | None) -> ModelT | None:
    if fields is None:
        return None
    try:
        return model.model_validate(fields)
    except ValidationError:
        return None


def _catalog_problems(
    raw: dict[str, Any], tasks_file: TasksFile, indices: list[int], catalog: TaskCatalog
) -> Iterator[_Report]:
    for stage in [None, *tasks_file.stages]:
        for position, task in enumerate(tasks_file.resolved_tasks(stage)):
            index = indices[position]
            subject = _subject(raw, ("tasks", index))[0]
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
                yield _Report(_line_of(raw, loc), f"{subject}, field {excerpt(field_path)}: {shorten(message)}")


def _task_problems(task: ResolvedTask, catalog: TaskCatalog) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """(field's path in the task, what is wrong with it) for what only the task-type catalog can tell."""
    entry = catalog.lookup(task.family, task.task_type)
    if entry is None:
        known = catalog.names(task.family)
        hint = did_you_mean(task.task_type, known) or f" (known: {', '.join(known) or 'none'})"
        yield ("task_type",), f"{excerpt(task.task_type)} is not registered for runtime {task.runtime}{hint}"
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


def _passed_one_time_schedules(
    raw: dict[str, Any], tasks_file: TasksFile, indices: list[int], now: datetime
) -> Iterator[_Report]:
    """An ``at(...)`` whose time has passed: Scheduler accepts it and never fires it. A problem where
    some stage enables the task, a warning where none does (a one-off kept after it ran)."""
    passed: dict[tuple[Any, ...], tuple[str, str, list[str]]] = {}
    stages: list[str | None] = [*tasks_file.stages] or [None]
    for stage in stages:
        for position, task in enumerate(tasks_file.resolved_tasks(stage)):
            schedule = task.parsed_schedule
            if not isinstance(schedule, AtSchedule):
                continue
            fires = schedule.at.replace(tzinfo=ZoneInfo(task.timezone))
            if fires > now:
                continue
            index = indices[position]
            override = tasks_file.stages[stage].overrides.get(task.name) if stage is not None else None
            from_override = override is not None and override.schedule is not None
            loc = (
                ("stages", stage, "overrides", task.name, "schedule") if from_override else ("tasks", index, "schedule")
            )
            subject = _subject(raw, ("tasks", index))[0] + (f" (stage {stage!r})" if from_override else "")
            moment = f"{schedule.expression} in {task.timezone} ({fires.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ})"
            _, _, enabled_in = passed.setdefault(loc, (subject, moment, []))
            if task.enabled and stage is not None:
                enabled_in.append(stage)
    for loc, (subject, moment, enabled_in) in passed.items():
        head = f"{subject}, field 'schedule': {moment} has passed, and Scheduler never fires a one-time schedule late"
        if enabled_in:
            yield _Report(
                _line_of(raw, loc),
                f"{head}: give a future time, or disable the task in {', '.join(enabled_in)}",
            )
        else:
            yield _Report(_line_of(raw, loc), f"{head} (disabled in every stage: remove it when done)", warning=True)


def _describe(raw: Any, issue: Any) -> _Report:
    loc: tuple[Any, ...] = tuple(issue["loc"])
    if issue["type"] == PARAMS_NOT_JSON:
        loc += tuple(issue["ctx"]["path"])
    message = shorten(str(issue["msg"]).removeprefix("Value error, "))
    subject, field_path = _subject(raw, loc)
    shown = issue.get("input")
    if issue["type"] == "extra_forbidden":
        message = "unknown field" + did_you_mean(loc[-1], _fields_for(loc))
    elif issue["type"] == "string_pattern_mismatch" and issue["ctx"]["pattern"] in PATTERN_HINTS:
        message = f"expected {PATTERN_HINTS[issue['ctx']['pattern']]} (got {excerpt(shown)})"
    elif issue["type"] == "literal_error" and isinstance(shown, str):
        choices = re.findall(r"'([^']*)'", str(issue["ctx"]["expected"]))
        message += f" (got {excerpt(shown)}){did_you_mean(shown, choices)}"
    elif isinstance(shown, bool):
        message += f" (got {str(shown).lower()})"  # as YAML spells it, not Python
    elif isinstance(shown, int | float) or (isinstance(shown, str) and excerpt(shown) not in message):
        message += f" (got {excerpt(shown)})"
    if field_path:
        return _Report(_line_of(raw, loc), f"{subject}, field {excerpt(field_path)}: {message}")
    return _Report(_line_of(raw, loc), f"{subject}: {message}")


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
