"""What a task function is handed: its event, a logger, settings and the AWS clients it may use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kairos_runtime.events import ScheduledEvent
from kairos_runtime.registry import Access
from kairos_runtime.settings import RuntimeSettings
from kairos_runtime.tables import TableId

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table


class UndeclaredTableError(PermissionError):
    """The task touched a table its task type did not declare; in AWS this would be AccessDenied."""


class Clients:
    """Lazily built boto3 resources, shared across invocations of a warm function.

    boto3 is imported on first use so that importing the handler stays cheap.
    """

    def __init__(self, settings: RuntimeSettings, resource_factory: Callable[[], Any] | None = None) -> None:
        self._settings = settings
        self._resource_factory = resource_factory
        self._dynamodb: DynamoDBServiceResource | None = None

    @property
    def dynamodb(self) -> DynamoDBServiceResource:
        if self._dynamodb is None:
            if self._resource_factory is not None:
                self._dynamodb = self._resource_factory()
            else:
                import boto3

                self._dynamodb = boto3.resource("dynamodb")
        return self._dynamodb

    def table(self, table_id: TableId) -> Table:
        return self.dynamodb.Table(self._settings.table_name(table_id))

    def scoped(self, tables: Mapping[TableId, Access]) -> ScopedClients:
        return ScopedClients(self, tables)


class ScopedClients:
    """The clients a task sees: only the tables its task type declared."""

    def __init__(self, clients: Clients, tables: Mapping[TableId, Access]) -> None:
        self._clients = clients
        self._tables = tables

    def table(self, table_id: TableId) -> Table:
        if table_id not in self._tables:
            raise UndeclaredTableError(
                f"table {table_id.value!r} is not declared by this task type (declare it in @task(tables=...))"
            )
        table = self._clients.table(table_id)
        if self._tables[table_id] is Access.QUERY_INDEXES:
            return IndexQueries(table, table_id)  # type: ignore[return-value]
        return table


class IndexQueries:
    """A table declared ``Access.QUERY_INDEXES``: queries that name an index, nothing else, as IAM
    grants in AWS. Anything more fails here, in tests and local runs, not as AccessDenied."""

    def __init__(self, table: Table, table_id: TableId) -> None:
        self._table = table
        self._table_id = table_id
        self.name = table.name

    def query(self, **kwargs: Any) -> Any:
        if "IndexName" not in kwargs:
            self._refuse("a query of the table itself")
        return self._table.query(**kwargs)

    def __getattr__(self, operation: str) -> Any:
        self._refuse(operation)

    def _refuse(self, what: str) -> Any:
        raise UndeclaredTableError(
            f"table {self._table_id.value!r} is declared for index queries only ({Access.QUERY_INDEXES.value}); "
            f"{what} needs read access"
        )


@dataclass(frozen=True, slots=True)
class TaskContext:
    event: ScheduledEvent
    settings: RuntimeSettings
    clients: ScopedClients
    logger: logging.Logger | Any
    remaining_time_ms: Callable[[], int]
