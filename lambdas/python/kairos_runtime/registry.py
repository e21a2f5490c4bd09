"""The task-type registry: ``@registry.task(...)`` records a task type and returns the function unchanged.

Importing this module (and the task modules that register into it) stays cheap: no boto3, pandas
or akshare. The CDK app and the CLI import it to validate each task's params before synthesizing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import msgspec

from kairos_runtime.bounds import TASK_TYPE_PATTERN
from kairos_runtime.tables import TableId
from kairos_runtime.validation import Model, parse

if TYPE_CHECKING:
    from kairos_runtime.context import TaskContext
    from kairos_runtime.fan_out import FanOut


class Access(StrEnum):
    """What a task type may do to a table; the stack writes the IAM statements itself (CDK's ``grant_*_data``
    would also allow Scan and deletes)."""

    READ = "read"
    WRITE = "write"
    READ_WRITE = "read_write"
    QUERY_INDEXES = "query_indexes"
    """Query the table's secondary indexes and nothing else: a view across partitions (every task's
    runs of a day, say) without reading the table's items by key."""

    def allows_read(self) -> bool:
        return self in (Access.READ, Access.READ_WRITE)

    def allows_write(self) -> bool:
        return self in (Access.WRITE, Access.READ_WRITE)


class InvalidDeclarationError(ValueError):
    """A task type's ``tables=`` / ``partitions=`` declaration is inconsistent; raised at registration."""


# Characters IAM's StringLike treats as wildcards: a prefix holding one would grant more than it says.
_IAM_WILDCARDS = frozenset("*?")


class Partitions(msgspec.Struct, frozen=True):
    """The partitions of one table a task type may read and write, by partition-key prefix (``"STOCK#"``).

    The stack grants each access on the table only under ``dynamodb:LeadingKeys`` matching its own
    prefixes; the runtime refuses a write outside ``write`` before it is sent. A plain tuple in
    ``partitions=`` is the shorthand for the same prefixes for every access the table is declared with.
    """

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    query_indexes: bool = False
    """The task also queries the table's secondary indexes. No partition limit reaches an index query
    (``dynamodb:LeadingKeys`` is the table's key), so a partition-scoped read is granted that Query
    only when its task type says it needs it (ADR 0203); a whole-table read always has it."""

    def __post_init__(self) -> None:
        for prefix in (*self.read, *self.write):
            if not isinstance(prefix, str) or not prefix or _IAM_WILDCARDS & set(prefix):
                raise InvalidDeclarationError(
                    f"a partition prefix must be a non-empty string without '*' or '?' (got {prefix!r})"
                )

    def allows_write(self, partition_key: str) -> bool:
        return partition_key.startswith(self.write)


PartitionsDeclaration = Partitions | tuple[str, ...]
"""What ``partitions=`` takes per table: :class:`Partitions`, or a tuple of prefixes for every access."""


def resolve_partitions(
    task_type: str, tables: Mapping[TableId, Access], declared: Mapping[TableId, PartitionsDeclaration]
) -> dict[TableId, Partitions]:
    """``partitions=`` checked against ``tables=``: every access declared has prefixes, and only those.

    A table written to must name its partitions: a whole-table write grant would let one task rewrite
    another's data. A read may stay whole-table (a written choice: see the README's Security section).
    """
    resolved: dict[TableId, Partitions] = {}
    for table_id, value in declared.items():
        where = f"task_type {task_type!r}, table {table_id.value!r}"
        access = tables.get(table_id)
        if access is None:
            raise InvalidDeclarationError(f"{where}: partitions are declared for a table missing from tables=")
        if access is Access.QUERY_INDEXES:
            raise InvalidDeclarationError(
                f"{where}: index queries cannot be scoped by partition (dynamodb:LeadingKeys is the table's key)"
            )
        if isinstance(value, Partitions):
            partitions = value
        else:
            prefixes = tuple(value)
            partitions = Partitions(
                read=prefixes if access.allows_read() else (), write=prefixes if access.allows_write() else ()
            )
        _check_against_access(where, access, partitions)
        resolved[table_id] = partitions
    for table_id, access in tables.items():
        if access.allows_write() and table_id not in resolved:
            raise InvalidDeclarationError(
                f"task_type {task_type!r}, table {table_id.value!r}: a write access needs partitions=, "
                "the partition-key prefixes the task writes"
            )
    return resolved


def _check_against_access(where: str, access: Access, partitions: Partitions) -> None:
    """Prefixes for exactly the accesses declared; index queries only with a read."""
    if partitions.query_indexes and not access.allows_read():
        raise InvalidDeclarationError(f"{where}: query_indexes needs a read access, but access is {access.value}")
    for kind, prefixes, allowed in (
        ("read", partitions.read, access.allows_read()),
        ("write", partitions.write, access.allows_write()),
    ):
        if allowed and not prefixes:
            raise InvalidDeclarationError(f"{where}: access {access.value} needs {kind} prefixes")
        if prefixes and not allowed:
            raise InvalidDeclarationError(f"{where}: {kind} prefixes given, but access is {access.value}")


class DependencyGroup(StrEnum):
    """Which Lambda package a task type's function needs (see the packaging notes in the README)."""

    CORE = "core"
    CRAWLER = "crawler"


class Architecture(StrEnum):
    ARM_64 = "arm64"
    X86_64 = "x86_64"


class TaskParams(Model, frozen=True):
    """Base of every params model: frozen, and a typo in tasks.yaml is an error, not a silent default.

    Declare constraints with ``Annotated[..., msgspec.Meta(...)]``; see :mod:`kairos_runtime.validation`.
    """


class TaskOutcome(msgspec.Struct, frozen=True):
    """What a task function reports back; the runner writes it into the run record."""

    items_written: int = 0
    items_rejected: int = 0
    detail: Mapping[str, Any] = msgspec.field(default_factory=dict)


class TaskSkipped(Exception):  # noqa: N818 - it is an outcome, not an error
    """Raised by a task that decided not to run (a non-trading day, say); recorded as SKIPPED."""

    def __init__(self, reason: str, *, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = dict(detail or {})


ParamsT = TypeVar("ParamsT", bound=TaskParams)
ParamsT_contra = TypeVar("ParamsT_contra", bound=TaskParams, contravariant=True)


class TaskFunction(Protocol[ParamsT_contra]):
    def __call__(self, params: ParamsT_contra, context: TaskContext, /) -> TaskOutcome | None: ...


class TaskType(msgspec.Struct, Generic[ParamsT], frozen=True):
    """A registered task type: its params model, its function and what it needs from AWS."""

    name: str
    params_model: type[ParamsT]
    function: TaskFunction[ParamsT]
    tables: Mapping[TableId, Access]
    group: DependencyGroup
    architecture: Architecture | None
    """None: the group's default, a build setting (``kairos_build/project.py``)."""
    description: str
    parameters: Callable[[ParamsT], Sequence[str]] | None = None
    """SSM parameter names a task reads, given its params (an API key's parameter, say)."""
    partitions: Mapping[TableId, Partitions] = msgspec.field(default_factory=lambda: MappingProxyType({}))
    """Per declared table, the partition-key prefixes each access is limited to; a table absent here
    is granted whole (reads only: see :func:`resolve_partitions`)."""
    fan_out: FanOut[Any] | None = None
    """A fan-out task type (:mod:`kairos_runtime.fan_out`): its schedule starts a state machine that
    runs the planner, the batch workers and the summary; ``function`` is then its batch-less form,
    never deployed."""
    backfill: bool = False
    """Whether the task can run for a past slot (``kairos backfill``): it computes the slot's result
    from the slot, not from what its source serves now. False (a spot snapshot): the handler refuses
    a delivery later than the schedule's late-delivery limit, recorded SKIPPED as PastSlotRefused."""

    @property
    def module(self) -> str:
        """The module whose ``registry`` holds this task type (see ``registry_for_module``)."""
        return self.function.__module__

    def parse_params(self, raw: Mapping[str, Any]) -> ParamsT:
        """The params as this task type's model; :class:`InvalidInputError` names the field that does not fit."""
        return parse(dict(raw), self.params_model)


class DuplicateTaskTypeError(ValueError):
    pass


class UnknownTaskTypeError(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown task_type {name!r}; registered: {', '.join(known) or 'none'}")
        self.name = name


class TaskRegistry:
    """An explicit registry of task types. Several registries merge with :meth:`include`."""

    def __init__(self) -> None:
        self._types: dict[str, TaskType[Any]] = {}

    def task(
        self,
        name: str,
        *,
        params: type[ParamsT],
        tables: Mapping[TableId, Access] | None = None,
        partitions: Mapping[TableId, PartitionsDeclaration] | None = None,
        group: DependencyGroup = DependencyGroup.CORE,
        architecture: Architecture | None = None,
        parameters: Callable[[ParamsT], Sequence[str]] | None = None,
        fan_out: FanOut[Any] | None = None,
        backfill: bool = False,
    ) -> Callable[[TaskFunction[ParamsT]], TaskFunction[ParamsT]]:
        """Register the decorated function as task type ``name``; the function is returned unchanged.

        ``tables`` declares what the task needs beyond writing its own run records; the stack grants
        exactly that and the runtime refuses any other table, so a missing declaration fails in
        tests and local runs rather than with AccessDenied in production. ``partitions`` limits each
        declared table to the partition-key prefixes the task reads and writes (``{TableId.MARKET_DATA:
        ("STOCK#",)}``, or :class:`Partitions` when reads and writes differ); a table written to must
        have them. ``parameters`` names the
        SSM parameters a task reads, derived from its params; the stack grants read on exactly those.
        ``fan_out`` makes it a fan-out task type (:class:`~kairos_runtime.fan_out.FanOut`): its params
        model must have ``batch_size``, ``max_concurrency`` and ``requests_per_second``.
        ``backfill`` says the task can run for a past slot (see :attr:`TaskType.backfill`); off unless
        declared, so a task that only sees the present is never asked to file it under the past.
        """
        if not isinstance(backfill, bool):
            raise InvalidDeclarationError(f"task_type {name!r}: backfill must be True or False")

        if not re.match(rf"^(?:{TASK_TYPE_PATTERN})\Z", name):
            # Events name the task type: a name outside the pattern would never pass their check.
            raise ValueError(f"task_type {name!r} must match {TASK_TYPE_PATTERN}")
        declared_tables = {table_id: Access(access) for table_id, access in (tables or {}).items()}
        # Checked when the module is imported, so a bad declaration fails every test, not a deploy.
        resolved_partitions = resolve_partitions(name, declared_tables, dict(partitions or {}))
        if fan_out is not None:
            from kairos_runtime.fan_out import FAN_OUT_FIELDS

            missing = [each for each in FAN_OUT_FIELDS if each not in params.__struct_fields__]
            if missing:
                raise InvalidDeclarationError(
                    f"task_type {name!r}: a fan-out params model needs the field(s) {', '.join(missing)}"
                )

        def register(function: TaskFunction[ParamsT]) -> TaskFunction[ParamsT]:
            self._add(
                TaskType(
                    name=name,
                    params_model=params,
                    function=function,
                    tables=MappingProxyType(declared_tables),
                    group=group,
                    architecture=architecture,
                    description=(function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else "",
                    parameters=parameters,
                    partitions=MappingProxyType(resolved_partitions),
                    fan_out=fan_out,
                    backfill=backfill,
                )
            )
            return function

        return register

    def include(self, other: TaskRegistry) -> None:
        for task_type in other:
            self._add(task_type)

    def _add(self, task_type: TaskType[Any]) -> None:
        if task_type.name in self._types:
            raise DuplicateTaskTypeError(f"task_type {task_type.name!r} is registered twice")
        self._types[task_type.name] = task_type

    def get(self, name: str) -> TaskType[Any]:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownTaskTypeError(name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[TaskType[Any]]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)
