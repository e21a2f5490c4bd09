"""A task writes only the MarketData partitions its task type declares, whichever boto3 path it takes.

In AWS the same writes are refused by the ``dynamodb:LeadingKeys`` condition on the function's role;
the runtime refuses them first, so a missing declaration fails in tests and ``kairos run``. A batch
delete is refused here only: IAM authorizes BatchWriteItem as one action, deletes included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from kairos.local.tables import tables_from_designs
from kairos_runtime.context import Clients, ScopedClients, UndeclaredPartitionError, UndeclaredTableError
from kairos_runtime.registry import Access, Partitions, TaskOutcome, TaskParams, TaskRegistry
from kairos_runtime.runner import TaskRunner
from kairos_runtime.settings import RuntimeSettings
from kairos_runtime.tables import TableId
from kairos_runtime.tasks import default_registry
from kairos_runtime.tasks.market.writer import write_items
from kairos_runtime.validation import parse
from tests.conftest import FakeLambdaContext, scheduled_event

MARKET = "kairos-test-MarketData"


class NoParams(TaskParams, frozen=True):
    pass


@pytest.fixture
def settings() -> RuntimeSettings:
    names = {table.table_id: table.name for table in tables_from_designs("test")}
    return parse({"stage": "test", "runtime": "python3.13", "table_names": names}, RuntimeSettings)


@pytest.fixture
def crypto_scope(dynamodb: Any, settings: RuntimeSettings) -> ScopedClients:
    """What the crypto_markets task type is handed, from its real declaration."""
    crypto = default_registry().get("crypto_markets")
    return Clients(settings, resource_factory=lambda: dynamodb).scoped(crypto.tables, crypto.partitions)


def stored(dynamodb: Any) -> list[dict[str, Any]]:
    return list(dynamodb.Table(MARKET).scan()["Items"])


def item(pk: str) -> dict[str, Any]:
    return {"pk": pk, "sk": "LATEST", "price": Decimal("1.5")}


def test_a_crypto_task_writing_a_stock_partition_fails_its_run_and_writes_nothing(
    dynamodb: Any, settings: RuntimeSettings, lambda_context: FakeLambdaContext
) -> None:
    crypto = default_registry().get("crypto_markets")
    registry = TaskRegistry()

    @registry.task("probe", params=NoParams, tables=crypto.tables, partitions=crypto.partitions)
    def rewrite_stocks(params: NoParams, context: Any) -> TaskOutcome:
        table = context.clients.table(TableId.MARKET_DATA)
        write_items(table, [item("CRYPTO#bitcoin"), item("STOCK#600519")])
        return TaskOutcome(items_written=2)

    runner = TaskRunner(
        registry=registry,
        settings=settings,
        clients=Clients(settings, resource_factory=lambda: dynamodb),
        logger=logging.getLogger("kairos.test"),
    )
    runner.dispatch(scheduled_event("probe", "probe"), lambda_context)

    [record] = [
        item for item in dynamodb.Table("kairos-test-TaskRuns").scan()["Items"] if item["sk"].startswith("RUN#")
    ]
    assert (record["status"], record["error_type"]) == ("FAILED", "UndeclaredPartitionError")
    assert "pk='STOCK#600519' is outside the partitions this task type writes (CRYPTO#)" in record["error_message"]
    assert stored(dynamodb) == [], "the batch is refused whole, before it is sent"


def test_the_market_writer_stores_items_of_the_declared_partition(dynamodb: Any, crypto_scope: ScopedClients) -> None:
    result = write_items(crypto_scope.table(TableId.MARKET_DATA), [item("CRYPTO#bitcoin"), item("CRYPTO#ether")])

    assert result.written == 2
    assert sorted(row["pk"] for row in stored(dynamodb)) == ["CRYPTO#bitcoin", "CRYPTO#ether"]


WRITES_OUTSIDE: dict[str, Callable[[Any], object]] = {
    "PutItem": lambda table: table.put_item(Item=item("STOCK#600519")),
    "UpdateItem": lambda table: table.update_item(
        Key={"pk": "SUMMARY#STOCK", "sk": "DAY#2026-11-27"},
        UpdateExpression="SET price = :p",
        ExpressionAttributeValues={":p": 1},
    ),
    "low-level PutItem": lambda table: table.meta.client.put_item(TableName=table.name, Item=item("ETF#510300")),
    "low-level PutItem, wire form": lambda table: table.meta.client.put_item(
        TableName=table.name, Item={"pk": {"S": "INDEX#000300"}, "sk": {"S": "LATEST"}}
    ),
    "low-level UpdateItem": lambda table: table.meta.client.update_item(
        TableName=table.name, Key={"pk": "STOCK#1", "sk": "LATEST"}, UpdateExpression="SET price = :p",
        ExpressionAttributeValues={":p": 1},
    ),
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(WRITES_OUTSIDE))
def test_every_write_path_refuses_a_partition_outside_the_declaration(
    path: str, dynamodb: Any, crypto_scope: ScopedClients
) -> None:
    with pytest.raises(UndeclaredPartitionError, match="outside the partitions this task type writes"):
        WRITES_OUTSIDE[path](crypto_scope.table(TableId.MARKET_DATA))
    assert stored(dynamodb) == []


def test_the_batch_writer_refuses_a_partition_outside_the_declaration(
    dynamodb: Any, crypto_scope: ScopedClients
) -> None:
    table = crypto_scope.table(TableId.MARKET_DATA)

    with pytest.raises(UndeclaredPartitionError, match="pk='STOCK#600519'"), table.batch_writer() as batch:
        batch.put_item(Item=item("STOCK#600519"))
    with table.batch_writer() as batch:
        batch.put_item(Item=item("CRYPTO#bitcoin"))

    assert [row["pk"] for row in stored(dynamodb)] == ["CRYPTO#bitcoin"]


def test_deletes_are_refused_even_in_the_tasks_own_partition(dynamodb: Any, crypto_scope: ScopedClients) -> None:
    table = crypto_scope.table(TableId.MARKET_DATA)
    table.put_item(Item=item("CRYPTO#bitcoin"))
    own_key = {"pk": "CRYPTO#bitcoin", "sk": "LATEST"}

    with pytest.raises(UndeclaredPartitionError, match="BatchWriteItem with a DeleteRequest"):
        table.meta.client.batch_write_item(RequestItems={table.name: [{"DeleteRequest": {"Key": own_key}}]})
    with (
        pytest.raises(UndeclaredPartitionError, match="BatchWriteItem with a DeleteRequest"),
        table.batch_writer() as batch,
    ):
        batch.delete_item(Key=own_key)
    with pytest.raises(UndeclaredPartitionError, match="DeleteItem is not granted"):
        table.delete_item(Key=own_key)

    assert [row["pk"] for row in stored(dynamodb)] == ["CRYPTO#bitcoin"]


def test_the_tables_client_cannot_be_used_to_write_another_table(dynamodb: Any, crypto_scope: ScopedClients) -> None:
    client = crypto_scope.table(TableId.MARKET_DATA).meta.client

    with pytest.raises(UndeclaredTableError, match="'kairos-test-TaskRuns' through the client of table 'market_data'"):
        client.put_item(TableName="kairos-test-TaskRuns", Item={"pk": "TASK#other", "sk": "RUN#1"})
    with pytest.raises(UndeclaredTableError, match="through the client of table 'market_data'"):
        client.batch_write_item(
            RequestItems={"kairos-test-TaskRuns": [{"PutRequest": {"Item": {"pk": "TASK#other", "sk": "RUN#1"}}}]}
        )
    assert dynamodb.Table("kairos-test-TaskRuns").scan()["Items"] == []


def test_reads_pass_through_the_scoped_table(dynamodb: Any, settings: RuntimeSettings) -> None:
    dynamodb.Table(MARKET).put_item(Item=item("STOCK#600519"))
    scope = Partitions(read=("STOCK#", "CALENDAR#"), write=("STOCK#",))
    clients = Clients(settings, resource_factory=lambda: dynamodb).scoped(
        {TableId.MARKET_DATA: Access.READ_WRITE}, {TableId.MARKET_DATA: scope}
    )
    table = clients.table(TableId.MARKET_DATA)

    assert table.get_item(Key={"pk": "STOCK#600519", "sk": "LATEST"})["Item"]["price"] == Decimal("1.5")
    assert table.name == MARKET
    with pytest.raises(UndeclaredPartitionError, match=r"\(STOCK#\)"):
        table.put_item(Item=item("CALENDAR#XSHG"))  # read, but not written, by an A-share task
