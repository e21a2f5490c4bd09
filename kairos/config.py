"""The tasks.yaml models: frozen, extra fields forbidden, every value checked before synthesis.

Layering (most specific wins): a stage's per-task override, then the task entry, then ``defaults``,
then the built-in defaults below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, NamedTuple, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.scalarbool import ScalarBoolean

from kairos.excerpts import EXCERPT_LENGTH, excerpt, shorten
from kairos.limits import SCHEDULE_EXPRESSION_MAX_LENGTH, SCHEDULE_INPUT_MAX_BYTES, SCHEDULE_TIMEZONE_MAX_LENGTH
from kairos.schedule import Schedule, ScheduleError, parse_schedule, validate_timezone
from kairos_runtime.events import MAX_SAFE_INTEGER
from kairos_runtime.validation import InputPath

Runtime = Literal["python3.12", "python3.13", "python3.14", "nodejs20.x", "nodejs22.x", "nodejs24.x"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
PYTHON_RUNTIMES = tuple(runtime for runtime in RUNTIMES if runtime.startswith("python"))
NODE_RUNTIMES = tuple(runtime for runtime in RUNTIMES if runtime.startswith("nodejs"))
Architecture = Literal["arm64", "x86_64"]

TASK_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,47}$"
STAGE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,15}$"
# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# A standard topic (CloudWatch alarm actions cannot publish to a FIFO topic): 1-256 letters, digits, - and _.
SNS_TOPIC_ARN_PATTERN = r"^arn:aws(-cn|-us-gov)?:sns:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}$"
PROXY_PATTERN = r"^https?://"
ACCOUNT_PATTERN = r"^\d{12}$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d$"
PATTERN_HINTS: Final[Mapping[str, str]] = {
    TASK_NAME_PATTERN: "a task name: a lower-case letter, then up to 47 lower-case letters, digits and -",
    STAGE_NAME_PATTERN: "a stage name: a lower-case letter, then up to 15 lower-case letters, digits and -",
    EMAIL_PATTERN: "an e-mail address such as ops@example.com",
    SNS_TOPIC_ARN_PATTERN: "a standard SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:alarms",
    PROXY_PATTERN: "a proxy URL starting with http:// or https://",
    ACCOUNT_PATTERN: "a 12-digit AWS account id",
    REGION_PATTERN: "an AWS region such as eu-west-1",
}
"""What each pattern means, in the words a validation message uses ("expected <hint>"): every pattern
of the models has one (a test walks the JSON schema)."""

TaskName = Annotated[str, Field(pattern=TASK_NAME_PATTERN)]
EmailAddress = Annotated[str, Field(pattern=EMAIL_PATTERN)]


def _written_bool(value: object) -> object:
    """A field that is true or false takes YAML's booleans only. ``yes``, ``no``, ``on`` and ``off``
    are strings in YAML 1.2 (which the file is read as), and a quoted ``"true"`` or a ``1`` is a
    string or a number: each is refused with a message rather than read as whatever pydantic's lax
    rules would make of it. An anchored boolean (ruamel's ``ScalarBoolean``, an int) is a boolean."""
    if isinstance(value, ScalarBoolean):
        return bool(value)
    if isinstance(value, str):
        raise ValueError(
            "expected true or false, not a string: write true or false unquoted "
            "(YAML 1.2 reads yes, no, on and off as strings)"
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected true or false, not a number")
    return value


def _written_int(value: object) -> object:
    """A whole-number field takes YAML integers only: ``"512"`` or ``512.0`` is refused, as the JSON
    schema (``schemas/tasks.schema.json``) refuses it in an editor, rather than coerced."""
    if isinstance(value, bool | ScalarBoolean):  # an anchored boolean is an int to Python
        raise ValueError("expected a whole number, not true or false")
    if isinstance(value, str):
        raise ValueError("expected a whole number, not a string: write it unquoted")
    if isinstance(value, float):
        raise ValueError("expected a whole number: write it without a decimal point")
    return value


WrittenBool = Annotated[bool, Strict(), BeforeValidator(_written_bool)]
"""A boolean as the file writes it (:func:`_written_bool`)."""
WrittenInt = Annotated[int, Strict(), BeforeValidator(_written_int)]
"""A whole number as the file writes it (:func:`_written_int`)."""
Memory = Annotated[int, Field(ge=128, le=10240, description="MB"), Strict(), BeforeValidator(_written_int)]
Timeout = Annotated[int, Field(ge=1, le=900, description="seconds"), Strict(), BeforeValidator(_written_int)]

DEFAULT_ENABLED: Final = False
"""A task that no layer enables is deployed with its schedule DISABLED in every stage, so a new entry
cannot start running in prod unnoticed (docs/adr/0070-task-enabled-default.md)."""

BUILTIN_DEFAULTS: dict[str, Any] = {
    "runtime": "python3.13",
    "memory": 256,
    "timeout": 60,
    "timezone": "UTC",
    "enabled": DEFAULT_ENABLED,
}


class EnabledBy(StrEnum):
    """The layer that decided whether a task's schedule is ENABLED in a stage, most specific first."""

    STAGE_LIST = "stage enabled list"
    OVERRIDE = "override"
    TASK_ENTRY = "task entry"
    DEFAULTS = "defaults"
    BUILT_IN = "built-in default"


class EnabledState(NamedTuple):
    enabled: bool
    decided_by: EnabledBy


def runtime_family(runtime: str) -> Literal["python", "nodejs"]:
    return "python" if runtime.startswith("python") else "nodejs"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


NESTING_LIMIT = 32
"""How deep tasks.yaml (and params, aliases expanded) may nest: far below Python's recursion limit,
which ruamel's composer, pydantic and JSON encoding all recurse into, and far beyond what settings need."""
PARAMS_MAX_VALUES = SCHEDULE_INPUT_MAX_BYTES // 2
"""The most values one task's params may expand to. Each JSON value takes at least two bytes with its
separator, so more could never fit the schedule's input; the count stops an alias bomb (9 aliases of
9 aliases of ... ) at this many steps instead of expanding it exponentially."""


def _check_schedule(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > SCHEDULE_EXPRESSION_MAX_LENGTH:
        raise ValueError(
            f"{len(value)} characters, and EventBridge Scheduler accepts at most {SCHEDULE_EXPRESSION_MAX_LENGTH}: "
            "shorten the expression (ranges such as 1-5 instead of lists, fewer list entries)"
        )
    try:
        parse_schedule(value)
    except ScheduleError as error:
        raise ValueError(str(error)) from None
    return value


PARAMS_NOT_JSON = "params_not_json"
"""The error type of a params value JSON cannot carry; its context names the value's ``path``."""
_YAML_STR_TAG = "tag:yaml.org,2002:str"


class _NotJsonError(ValueError):
    def __init__(self, path: InputPath, problem: str) -> None:
        super().__init__(problem)
        self.path, self.problem = path, problem


class _Expansion:
    """Counts the values params expand to, so aliases cannot make the expansion exponential."""

    def __init__(self) -> None:
        self.values = 0

    def visit(self, path: InputPath) -> None:
        self.values += 1
        if self.values > PARAMS_MAX_VALUES:
            raise _NotJsonError(
                path,
                f"params expand to more than {PARAMS_MAX_VALUES:,} values (YAML aliases repeat what they name), "
                f"more than the schedule's input of {SCHEDULE_INPUT_MAX_BYTES:,} bytes can carry: "
                "write fewer values, without aliases",
            )
        if len(path) > NESTING_LIMIT:
            raise _NotJsonError(
                path, f"nested more than {NESTING_LIMIT} levels deep (aliases included): flatten the params"
            )


def _plain_json(value: Any, path: InputPath, expansion: _Expansion) -> Any:
    """``value`` in the plain types of the schedule's JSON input. YAML's own scalar types (ruamel's
    ``ScalarFloat``; an anchored ``ScalarBoolean``, which is an int; a ``!!str``-tagged scalar) become
    float, bool and str, so the params checks see exactly what the function will receive."""
    expansion.visit(path)
    tag = getattr(getattr(value, "tag", None), "value", None)
    if isinstance(value, TaggedScalar) and tag == _YAML_STR_TAG:
        return str(value.value)
    if tag is not None:
        raise _NotJsonError(path, f"the tag {shorten(tag, EXCERPT_LENGTH)} has no meaning in JSON: remove it")
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJsonError(path, f"the key {excerpt(key)} is not a string, as JSON keys are: quote it")
            plain[str(key)] = _plain_json(item, (*path, key), expansion)
        return plain
    if isinstance(value, list | tuple):
        return [_plain_json(item, (*path, index), expansion) for index, item in enumerate(value)]
    return _plain_scalar(value, path)


def _plain_scalar(value: Any, path: InputPath) -> Any:
    if value is None or isinstance(value, bool | ScalarBoolean):
        return None if value is None else bool(value)
    if isinstance(value, int):
        # The schedule's input is marshalled through JavaScript (jsii): a larger integer would change.
        if abs(value) > MAX_SAFE_INTEGER:
            raise _NotJsonError(path, "too large to stay exact in the schedule's JSON input: quote it")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJsonError(path, f"{value}, which JSON cannot carry")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, AbstractSet):
        raise _NotJsonError(path, "a YAML set, which JSON cannot carry: write it as a list")
    raise _NotJsonError(
        path, f"{_kind(value)}, which the schedule's JSON input cannot carry: write it as a quoted string"
    )


def _kind(value: object) -> str:
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"


def _json_params(params: Any) -> Any:
    if not isinstance(params, Mapping):
        return params  # not a mapping at all: the dict type says so
    try:
        plain: dict[str, Any] = _plain_json(params, (), _Expansion())
    except _NotJsonError as error:
        raise PydanticCustomError(
            PARAMS_NOT_JSON, "{problem}", {"path": error.path, "problem": error.problem}
        ) from None
    return plain


# Before the dict type checks keys, so a non-string key gets the same advice at every depth.
JsonParams = Annotated[dict[str, Any], BeforeValidator(_json_params)]
"""A task's params, as the schedule sends them: JSON."""


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > SCHEDULE_TIMEZONE_MAX_LENGTH:
        raise ValueError(
            f"{len(value)} characters, and EventBridge Scheduler accepts a timezone of at most "
            f"{SCHEDULE_TIMEZONE_MAX_LENGTH}: use an IANA name such as Asia/Shanghai"
        )
    try:
        return validate_timezone(value)
    except ScheduleError as error:
        raise ValueError(str(error)) from None


class TaskDefaults(_Model):
    """Values every task inherits unless it sets its own."""

    runtime: Runtime | None = None
    memory: Memory | None = None
    timeout: Timeout | None = None
    timezone: str | None = None
    enabled: WrittenBool | None = None
    architecture: Architecture | None = None
    shared_function: WrittenBool | None = Field(
        default=None,
        description="the default of every task's shared_function (docs/adr/0183); fan-out tasks own theirs",
    )

    _timezone = field_validator("timezone")(_check_timezone)


class TaskEntry(_Model):
    """One entry of ``tasks:`` as written; :meth:`TasksFile.resolved_tasks` fills in the defaults."""

    name: TaskName
    description: str = ""
    task_type: str = Field(min_length=1)
    runtime: Runtime | None = None
    schedule: str
    timezone: str | None = None
    enabled: WrittenBool | None = None
    memory: Memory | None = None
    timeout: Timeout | None = None
    architecture: Architecture | None = Field(
        default=None, description="defaults to what the task type's dependencies support"
    )
    params: JsonParams = Field(default_factory=dict)
    shared_function: WrittenBool | None = Field(
        default=None,
        description=(
            "run on a function shared with the tasks of the same runtime, type, code, memory, timeout, "
            "grants and event age (docs/adr/0183); fan-out tasks cannot share"
        ),
    )

    _timezone = field_validator("timezone")(_check_timezone)
    _schedule = field_validator("schedule")(_check_schedule)


class TaskOverride(_Model):
    """What a stage may change about one task."""

    enabled: WrittenBool | None = None
    memory: Memory | None = None
    timeout: Timeout | None = None
    schedule: str | None = None
    timezone: str | None = None
    params: JsonParams | None = None
    shared_function: WrittenBool | None = None

    _timezone = field_validator("timezone")(_check_timezone)
    _schedule = field_validator("schedule")(_check_schedule)


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# One address or a list of them; a plain string is read as a list of one, so every error has one path.
AlarmEmails = Annotated[
    list[EmailAddress],
    Field(min_length=1),
    BeforeValidator(_one_or_more, json_schema_input_type=EmailAddress | list[EmailAddress]),
]


DEFAULT_SHARDS = 4
"""Shard stacks per stage unless tasks.yaml says ``shards``: fixed for the stage's life (docs/adr/0180)."""
MAX_SHARDS = 64


class StageConfig(_Model):
    enabled: list[TaskName] | None = Field(
        default=None, description="when set, exactly these tasks are enabled in the stage"
    )
    log_retention_days: WrittenInt = 30
    alarm_email: AlarmEmails | None = Field(
        default=None, description="e-mail address(es) subscribed to the stage's alarm topic"
    )
    alarm_topic_arn: str | None = Field(
        default=None,
        pattern=SNS_TOPIC_ARN_PATTERN,
        description="an existing SNS topic alarms notify instead of the stage's own (not with alarm_email)",
    )
    retain_data: WrittenBool = Field(
        default=False, description="keep tables (with point-in-time recovery) when the stack is deleted"
    )
    https_proxy: str | None = Field(default=None, pattern=PROXY_PATTERN)
    sdk_tracing: WrittenBool = Field(
        default=False,
        description="X-Ray SDK subsegments and annotations in Python functions (Lambda's active tracing is always on)",
    )
    account: str | None = Field(default=None, pattern=ACCOUNT_PATTERN)
    region: str | None = Field(default=None, pattern=REGION_PATTERN)
    shards: WrittenInt = Field(
        default=DEFAULT_SHARDS,
        ge=1,
        le=MAX_SHARDS,
        description=(
            "shard stacks the stage's tasks are spread over, by a hash of their names; fixed for the "
            "stage's life (changing it moves tasks between stacks)"
        ),
    )
    shared_function: WrittenBool | None = Field(
        default=None,
        description=(
            "the stage's default of shared_function, over the file's defaults and under each task's own "
            "(docs/adr/0183); fan-out tasks own theirs"
        ),
    )
    overrides: dict[TaskName, TaskOverride] = Field(default_factory=dict)

    @field_validator("https_proxy")
    @classmethod
    def _proxy_has_no_credentials(cls, value: str | None) -> str | None:
        if value is not None and "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError("credentials do not belong in tasks.yaml: they would be stored in the template")
        return value

    @property
    def alarm_emails(self) -> tuple[str, ...]:
        return tuple(self.alarm_email or ())

    @field_validator("alarm_email")
    @classmethod
    def _each_address_once(cls, value: list[str] | None) -> list[str] | None:
        repeated = sorted({email for email in value or [] if (value or []).count(email) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _one_alarm_destination(self) -> StageConfig:
        if self.alarm_email is not None and self.alarm_topic_arn is not None:
            raise ValueError(
                "alarm_email subscribes to the stage's own alarm topic, which alarm_topic_arn replaces: "
                "subscribe the addresses to that topic where it is managed, or drop alarm_topic_arn"
            )
        return self

    @model_validator(mode="after")
    def _one_way_to_enable(self) -> StageConfig:
        if self.enabled is not None:
            both = sorted(name for name, override in self.overrides.items() if override.enabled is not None)
            if both:
                raise ValueError(
                    f"overrides of {', '.join(both)} set 'enabled', but the stage's 'enabled' list already "
                    "decides which tasks run: edit the list instead"
                )
        return self

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_allowed(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return value


class ResolvedTask(_Model):
    """A task with every layer applied: what one stage deploys."""

    name: str
    description: str
    task_type: str
    runtime: Runtime
    schedule: str
    timezone: str
    enabled: bool
    memory: int
    timeout: int
    architecture: Architecture | None
    params: dict[str, Any]
    shared_function: bool | None = None
    """The task's own choice (its entry, or the stage's override of it); None: it has none."""
    shared_function_default: bool = False
    """The stage's ``shared_function``, else the file's ``defaults``: it applies to a task that can
    share (not a fan-out task), when the task says nothing itself."""

    @property
    def family(self) -> Literal["python", "nodejs"]:
        return runtime_family(self.runtime)

    @property
    def parsed_schedule(self) -> Schedule:
        return parse_schedule(self.schedule)


class TasksFile(_Model):
    """The whole of tasks.yaml."""

    defaults: TaskDefaults = Field(default_factory=TaskDefaults)
    stages: dict[Annotated[str, Field(pattern=STAGE_NAME_PATTERN)], StageConfig] = Field(min_length=1)
    tasks: list[TaskEntry]

    @model_validator(mode="after")
    def _references_are_known(self) -> TasksFile:
        seen: set[str] = set()
        for entry in self.tasks:
            if entry.name in seen:
                raise ValueError(f"task {entry.name!r}: name is used by more than one task")
            seen.add(entry.name)
        for stage_name, stage in self.stages.items():
            unknown = [name for name in (stage.enabled or []) + list(stage.overrides) if name not in seen]
            if unknown:
                names = shorten(", ".join(sorted(set(unknown))))
                raise ValueError(f"stage {stage_name!r}: names unknown tasks: {names}")
        return self

    def task(self, name: str) -> TaskEntry:
        for entry in self.tasks:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def enabled_state(self, name: str, stage: str | None = None) -> EnabledState:
        """Whether task ``name`` is enabled (in ``stage``, when given) and which layer decided it."""
        return self._enabled_state(self.task(name), self.stages[stage] if stage is not None else None)

    def _enabled_state(self, entry: TaskEntry, stage_config: StageConfig | None) -> EnabledState:
        if stage_config is not None:
            # A stage's list and an override's `enabled` never both exist (StageConfig refuses it).
            if stage_config.enabled is not None:
                return EnabledState(entry.name in stage_config.enabled, EnabledBy.STAGE_LIST)
            override = stage_config.overrides.get(entry.name)
            if override is not None and override.enabled is not None:
                return EnabledState(override.enabled, EnabledBy.OVERRIDE)
        if entry.enabled is not None:
            return EnabledState(entry.enabled, EnabledBy.TASK_ENTRY)
        if self.defaults.enabled is not None:
            return EnabledState(self.defaults.enabled, EnabledBy.DEFAULTS)
        return EnabledState(DEFAULT_ENABLED, EnabledBy.BUILT_IN)

    def resolved_tasks(self, stage: str | None = None) -> list[ResolvedTask]:
        """Every task with defaults (and, given a stage, that stage's overrides) applied."""
        stage_config = self.stages[stage] if stage is not None else None
        defaults = self.defaults.model_dump(exclude_none=True)
        # A default decides only where the task says nothing (and can share): the plan applies it.
        shared_default = defaults.pop("shared_function", False)
        if stage_config is not None and stage_config.shared_function is not None:
            shared_default = stage_config.shared_function
        layers = [BUILTIN_DEFAULTS, defaults]
        resolved = []
        for entry in self.tasks:
            values: dict[str, Any] = {}
            for layer in layers:
                values |= layer
            values |= entry.model_dump(exclude_none=True)
            if stage_config is not None:
                override = stage_config.overrides.get(entry.name)
                if override is not None:
                    values |= override.model_dump(exclude_none=True)
            # `enabled` has one more layer than the rest (the stage's list); one method decides it.
            values["enabled"] = self._enabled_state(entry, stage_config).enabled
            values.setdefault("architecture", None)
            values["shared_function_default"] = shared_default
            resolved.append(ResolvedTask.model_validate(values))
        return resolved
