"""In-process moto answers concurrent DynamoDB requests the way DynamoDB does: each one whole.

Without the serialisation in tests/conftest.py, a Query racing another thread's BatchWriteItem
fails inside moto (``dictionary changed size during iteration``), so a fan-out test's batch failed
at random (docs/adr/0163)."""

from __future__ import annotations

import threading
from typing import Any


def test_concurrent_writes_and_queries_on_moto_all_succeed(dynamodb: Any) -> None:
    table = dynamodb.Table("kairos-test-MarketData")
    client = dynamodb.meta.client
    errors: list[str] = []
    rounds = 30

    def worker(thread: int) -> None:
        for round_ in range(rounds):
            try:
                with table.batch_writer() as batch:
                    for bar in range(25):
                        batch.put_item(Item={"pk": f"STOCK#{thread}-{round_}", "sk": f"DAY#{bar:04d}"})
                client.query(
                    TableName=table.name,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": f"STOCK#{(thread + 1) % 4}-{round_}"},
                    ScanIndexForward=False,
                    Limit=1,
                )
            except Exception as error:  # every failure is the finding
                errors.append(repr(error))

    threads = [threading.Thread(target=worker, args=(thread,)) for thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert table.scan(Select="COUNT")["Count"] == 4 * rounds * 25
