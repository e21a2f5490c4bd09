"""What a task function is handed: its event, a logger, settings and the AWS clients it may use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from kairos_runtime.events import ScheduledEvent
from kairos_runtime.registry import Access, Partitions
from kairos_runtime.settings import RuntimeSettings
from kairos_runtime.tables import TABLE_DESIGNS, TableId

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table

    from kairos_runtime.fan_out_objects import ObjectStore


class UndeclaredTableError(PermissionError):
    """The task touched a table its task type did not declare; in AWS this would be AccessDenied."""


class UndeclaredPartitionError(UndeclaredTableError):
    """The task wrote outside the partitions its task type declared, or sent a delete no grant allows."""


class Clients:
    """Lazily built boto3 resources, shared across invocations of a warm function.

    boto3 is imported on first use so that importing the handler stays cheap.
    """

    def __init__(self, settings: RuntimeSettings, resource_factory: Callable[[], Any] | None = None) -> None:
        self._settings = settings
        self._resource_factory = resource_factory
        self._dynamodb: DynamoDBServiceResource | None = None
        self._objects: ObjectStore | None = None

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

    def objects(self) -> ObjectStore | None:
        """The fan-out object store: the stage's bucket, a local directory, or None where neither is set."""
        if self._objects is None:
            from pathlib import Path

            from kairos_runtime.fan_out_objects import DirectoryObjects, S3Objects

            if self._settings.fan_out_bucket:
                self._objects = S3Objects(self._settings.fan_out_bucket)
            elif self._settings.fan_out_dir:
                self._objects = DirectoryObjects(Path(self._settings.fan_out_dir))
        return self._objects

    def scoped(
        self, tables: Mapping[TableId, Access], partitions: Mapping[TableId, Partitions] | None = None
    ) -> ScopedClients:
        return ScopedClients(self, tables, partitions or {})


class ScopedClients:
    """The clients a task sees: only the tables its task type declared, and there only its partitions."""

    def __init__(
        self, clients: Clients, tables: Mapping[TableId, Access], partitions: Mapping[TableId, Partitions]
    ) -> None:
        self._clients = clients
        self._tables = tables
        self._partitions = partitions

    def table(self, table_id: TableId) -> Table:
        if table_id not in self._tables:
            raise UndeclaredTableError(
                f"table {table_id.value!r} is not declared by this task type (declare it in @task(tables=...))"
            )
        table = self._clients.table(table_id)
        if self._tables[table_id] is Access.QUERY_INDEXES:
            return IndexQueries(table, table_id)  # type: ignore[return-value]
        if table_id in self._partitions:
            return PartitionScopedTable(table, WriteScope(table_id, table.name, self._partitions[table_id]))  # type: ignore[return-value]
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


class WriteScope(msgspec.Struct, frozen=True):
    """What one table's writes may touch: the partition-key prefixes its task type declared.

    IAM refuses the same writes in AWS (``dynamodb:LeadingKeys``), but not a ``DeleteRequest`` in the
    task's own partitions: a batch's puts and deletes are one IAM action, ``dynamodb:BatchWriteItem``,
    which the market writer needs. So the runtime is the only place that refuses a batch delete.
    """

    table_id: TableId
    table_name: str
    partitions: Partitions

    def check_write(self, key: Mapping[str, Any], operation: str) -> None:
        partition_key = TABLE_DESIGNS[self.table_id].partition_key
        value = key.get(partition_key)
        if isinstance(value, Mapping):  # the wire form, {"S": "..."}, from a low-level call
            value = value.get("S")
        if not isinstance(value, str) or not self.partitions.allows_write(value):
            raise UndeclaredPartitionError(
                f"table {self.table_id.value!r}: {operation} of {partition_key}={value!r} is outside the "
                f"partitions this task type writes ({', '.join(self.partitions.write) or 'none'}); "
                "declare them in @task(partitions=...)"
            )

    def check_batch(self, requests: Any) -> None:
        for request in requests:
            if "DeleteRequest" in request:
                raise UndeclaredPartitionError(
                    f"table {self.table_id.value!r}: BatchWriteItem with a DeleteRequest; no task type may "
                    "delete (IAM cannot tell a batch's deletes from its puts, so the runtime refuses them)"
                )
            self.check_write(request["PutRequest"]["Item"], "BatchWriteItem")

    def refuse(self, operation: str) -> Any:
        raise UndeclaredPartitionError(f"table {self.table_id.value!r}: {operation} is not granted to any task type")


class PartitionScopedTable:
    """A table whose writes are limited to its task type's partitions, through every path boto3 offers:
    ``put_item``, ``update_item``, ``batch_writer`` and the low-level ``meta.client``. Reads pass
    through (in AWS, IAM scopes them to the declared read partitions)."""

    def __init__(self, table: Table, scope: WriteScope) -> None:
        self._table = table
        self._scope = scope
        self.name = table.name
        self.meta = _ScopedMeta(table.meta, ScopedDynamoDBClient(table.meta.client, scope))

    def put_item(self, **kwargs: Any) -> Any:
        self._scope.check_write(kwargs.get("Item", {}), "PutItem")
        return self._table.put_item(**kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        self._scope.check_write(kwargs.get("Key", {}), "UpdateItem")
        return self._table.update_item(**kwargs)

    def delete_item(self, **kwargs: Any) -> Any:
        return self._scope.refuse("DeleteItem")

    def batch_writer(self, overwrite_by_pkeys: list[str] | None = None) -> Any:
        from boto3.dynamodb.table import BatchWriter

        # BatchWriter only calls batch_write_item on its client: the scoped one checks every flush.
        client: Any = self.meta.client
        return BatchWriter(self.name, client, overwrite_by_pkeys=overwrite_by_pkeys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


class _ScopedMeta:
    def __init__(self, meta: Any, client: ScopedDynamoDBClient) -> None:
        self._meta = meta
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meta, name)


class ScopedDynamoDBClient:
    """The low-level client of a :class:`PartitionScopedTable`: writes to that table are checked, and a
    write naming any other table is refused (it was not reached through a declaration)."""

    def __init__(self, client: Any, scope: WriteScope) -> None:
        self._client = client
        self._scope = scope

    def put_item(self, **kwargs: Any) -> Any:
        self._own_table(kwargs.get("TableName"), "PutItem")
        self._scope.check_write(kwargs.get("Item", {}), "PutItem")
        return self._client.put_item(**kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        self._own_table(kwargs.get("TableName"), "UpdateItem")
        self._scope.check_write(kwargs.get("Key", {}), "UpdateItem")
        return self._client.update_item(**kwargs)

    def batch_write_item(self, **kwargs: Any) -> Any:
        for table_name, requests in kwargs.get("RequestItems", {}).items():
            self._own_table(table_name, "BatchWriteItem")
            self._scope.check_batch(requests)
        return self._client.batch_write_item(**kwargs)

    def delete_item(self, **kwargs: Any) -> Any:
        return self._scope.refuse("DeleteItem")

    def transact_write_items(self, **kwargs: Any) -> Any:
        return self._scope.refuse("TransactWriteItems")

    def _own_table(self, table_name: object, operation: str) -> None:
        if table_name != self._scope.table_name:
            raise UndeclaredTableError(
                f"{operation} on {table_name!r} through the client of table {self._scope.table_id.value!r}: "
                "reach a table through context.clients.table(...) so its declaration applies"
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class TaskContext(msgspec.Struct, frozen=True):
    event: ScheduledEvent
    settings: RuntimeSettings
    clients: ScopedClients
    logger: logging.Logger | Any
    remaining_time_ms: Callable[[], int]
