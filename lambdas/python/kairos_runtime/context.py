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
        return self._clients.table(table_id)


@dataclass(frozen=True, slots=True)
class TaskContext:
    event: ScheduledEvent
    settings: RuntimeSettings
    clients: ScopedClients
    logger: logging.Logger | Any
    remaining_time_ms: Callable[[], int]
