import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";

import { createHandler } from "../src/index.mjs";
import { UndeclaredPartitionError, UndeclaredTableError, indexQueriesClient, partitionScopedClient, resolvePartitions } from "../src/partitions.mjs";
import { TaskRegistry, buildManifest } from "../src/registry.mjs";

const PARAMS = { type: "object", properties: {}, additionalProperties: false };
const noop = async () => {};

describe("partitions declarations", () => {
  it("take a list for every declared access, or different read and write prefixes", () => {
    const registry = new TaskRegistry();
    registry.task("spot", { params: PARAMS, tables: { market_data: "write" }, partitions: { market_data: ["STOCK#"] } }, noop);
    registry.task(
      "daily",
      { params: PARAMS, tables: { market_data: "read_write" }, partitions: { market_data: { read: ["STOCK#", "CALENDAR#"], write: ["STOCK#"] } } },
      noop,
    );
    assert.deepEqual(registry.get("spot").partitions, { market_data: { read: [], write: ["STOCK#"] } });
    assert.deepEqual(registry.get("daily").partitions, { market_data: { read: ["STOCK#", "CALENDAR#"], write: ["STOCK#"] } });
    // The Python catalog reads them from the manifest and grants exactly these.
    assert.deepEqual(buildManifest(registry).task_types.spot.partitions, { market_data: { read: [], write: ["STOCK#"] } });
  });

  for (const [tables, partitions, problem] of [
    [{ market_data: "write" }, {}, /a write access needs partitions/],
    [{}, { market_data: ["STOCK#"] }, /missing from tables/],
    [{ market_data: "write" }, { market_data: { read: ["STOCK#"], write: ["STOCK#"] } }, /read prefixes given, but access is write/],
    [{ market_data: "read_write" }, { market_data: { write: ["STOCK#"] } }, /access read_write needs read prefixes/],
    [{ market_data: "write" }, { market_data: ["STOCK#*"] }, /without '\*' or '\?'/],
    [{ market_data: "write" }, { market_data: { write: ["STOCK#"], query_indexes: true } }, /query_indexes needs a read access, but access is write/],
    [{ market_data: "read" }, { market_data: { read: ["STOCK#"], query_indexes: "yes" } }, /query_indexes must be true or false/],
    [{ task_runs: "query_indexes" }, { task_runs: ["TASK#"] }, /index queries cannot be scoped by partition/],
  ]) {
    it(`refuses ${JSON.stringify({ tables, partitions })}`, () => {
      assert.throws(() => resolvePartitions("probe", tables, partitions), problem);
    });
  }
});

describe("query_indexes", () => {
  it("is an access of its own and a flag of a partition-scoped read, both in the manifest the Python side reads", () => {
    const registry = new TaskRegistry();
    registry.task("summary", { params: PARAMS, tables: { task_runs: "query_indexes" } }, noop);
    registry.task(
      "scan_day",
      { params: PARAMS, tables: { market_data: "read" }, partitions: { market_data: { read: ["STOCK#"], query_indexes: true } } },
      noop,
    );
    registry.task("plain", { params: PARAMS, tables: { market_data: "read" }, partitions: { market_data: { read: ["STOCK#"], query_indexes: false } } }, noop);
    const manifest = buildManifest(registry).task_types;
    assert.deepEqual(manifest.summary.tables, { task_runs: "query_indexes" });
    assert.equal(manifest.summary.partitions, undefined);
    assert.deepEqual(manifest.scan_day.partitions, { market_data: { read: ["STOCK#"], write: [], query_indexes: true } });
    assert.deepEqual(manifest.plain.partitions, { market_data: { read: ["STOCK#"], write: [] } });
  });

  const sent = [];
  const client = indexQueriesClient({ send: async (command) => sent.push(command) }, "task_runs", "TaskRuns");

  it("lets a table declared for index queries answer a Query that names an index", async () => {
    await client.send(new QueryCommand({ TableName: "TaskRuns", IndexName: "by_date", KeyConditionExpression: "gsi1pk = :d" }));
    assert.equal(sent.length, 1);
  });

  for (const [label, command, problem] of [
    ["a query of the table itself", new QueryCommand({ TableName: "TaskRuns", KeyConditionExpression: "pk = :p" }), /declared for index queries only \(query_indexes\); a query of the table itself needs read access/],
    ["a get", new GetCommand({ TableName: "TaskRuns", Key: { pk: "TASK#a", sk: "RUN#1" } }), /GetCommand needs read access/],
    ["a scan of the index", new ScanCommand({ TableName: "TaskRuns", IndexName: "by_date" }), /ScanCommand needs read access/],
    ["a put", new PutCommand({ TableName: "TaskRuns", Item: { pk: "TASK#a" } }), /PutCommand/],
    ["a query of another table", new QueryCommand({ TableName: "MarketData", IndexName: "by_class_date" }), /a query of 'MarketData' through this table's client/],
  ]) {
    it(`refuses ${label} before sending it`, async () => {
      const before = sent.length;
      await assert.rejects(client.send(command), (error) => error instanceof UndeclaredTableError && problem.test(error.message));
      assert.equal(sent.length, before);
    });
  }

  it("is what a task gets for such a table, and a refused call fails its run", async () => {
    const sent = [];
    const registry = new TaskRegistry();
    registry.task("runs_of_day", { params: PARAMS, tables: { task_runs: "query_indexes" } }, async (_params, context) => {
      const { tableName, client } = context.clients.table("task_runs");
      await client.send(new QueryCommand({ TableName: tableName, IndexName: "by_date", KeyConditionExpression: "gsi1pk = :d" }));
      await client.send(new GetCommand({ TableName: tableName, Key: { pk: "TASK#other", sk: "RUN#1" } }));
    });
    const handler = createHandler({
      registry,
      documentClient: { send: async (command) => (sent.push(command.constructor.name), { Items: [] }) },
      env: { KAIROS_TASK_RUNS_TABLE: "TaskRuns", KAIROS_RUNTIME: "nodejs22.x" },
      clock: () => new Date("2024-05-01T09:30:01Z"),
      writeLine: () => {},
    });
    const event = { task: "probe", task_type: "runs_of_day", params: {}, scheduled_time: "2024-05-01T09:30:00Z", execution_id: "e", attempt: "1" };

    const response = await handler(event, { awsRequestId: "req-1", getRemainingTimeInMillis: () => 10_000 });

    assert.equal(response.status, "FAILED");
    assert.equal(response.error.type, "UndeclaredTableError");
    assert.ok(sent.includes("QueryCommand"), "the index query was sent");
    assert.ok(!sent.includes("GetCommand"), "the get was refused before it was sent");
  });
});

describe("partitionScopedClient", () => {
  const sent = [];
  const client = partitionScopedClient({ send: async (command) => sent.push(command) }, "market_data", "MarketData", {
    read: [],
    write: ["CRYPTO#"],
  });

  it("passes writes of the declared partitions and reads on", async () => {
    await client.send(new PutCommand({ TableName: "MarketData", Item: { pk: "CRYPTO#bitcoin", sk: "LATEST" } }));
    await client.send(new BatchWriteCommand({ RequestItems: { MarketData: [{ PutRequest: { Item: { pk: "CRYPTO#eth", sk: "LATEST" } } }] } }));
    await client.send(new GetCommand({ TableName: "MarketData", Key: { pk: "STOCK#600519", sk: "LATEST" } }));
    assert.equal(sent.length, 3);
  });

  for (const [label, command, problem] of [
    ["a put of another class", new PutCommand({ TableName: "MarketData", Item: { pk: "STOCK#600519", sk: "LATEST" } }), /pk="STOCK#600519" is outside the partitions this task type writes \(CRYPTO#\)/],
    ["an update of another class", new UpdateCommand({ TableName: "MarketData", Key: { pk: "SUMMARY#STOCK", sk: "DAY#1" } }), /outside the partitions/],
    ["a batch with one foreign item", new BatchWriteCommand({ RequestItems: { MarketData: [{ PutRequest: { Item: { pk: "CRYPTO#a" } } }, { PutRequest: { Item: { pk: "ETF#510300" } } }] } }), /pk="ETF#510300"/],
    ["a batch delete in its own partition", new BatchWriteCommand({ RequestItems: { MarketData: [{ DeleteRequest: { Key: { pk: "CRYPTO#a", sk: "LATEST" } } }] } }), /DeleteRequest/],
    ["a delete", new DeleteCommand({ TableName: "MarketData", Key: { pk: "CRYPTO#a", sk: "LATEST" } }), /DeleteCommand is not granted/],
    ["a write to another table", new PutCommand({ TableName: "TaskRuns", Item: { pk: "CRYPTO#a" } }), /on 'TaskRuns' through this table's client/],
  ]) {
    it(`refuses ${label} before sending it`, async () => {
      const before = sent.length;
      await assert.rejects(client.send(command), (error) => error instanceof UndeclaredPartitionError && problem.test(error.message));
      assert.equal(sent.length, before);
    });
  }
});

describe("a task declared with partitions", () => {
  it("fails its run when it writes outside them, and the write is never sent", async () => {
    const sent = [];
    const registry = new TaskRegistry();
    registry.task(
      "crypto_probe",
      { params: PARAMS, tables: { market_data: "write" }, partitions: { market_data: ["CRYPTO#"] } },
      async (_params, context) => {
        const { tableName, client } = context.clients.table("market_data");
        await client.send(new PutCommand({ TableName: tableName, Item: { pk: "STOCK#600519", sk: "LATEST" } }));
      },
    );
    const handler = createHandler({
      registry,
      documentClient: { send: async (command) => (sent.push(command.constructor.name), {}) },
      env: { KAIROS_TASK_RUNS_TABLE: "TaskRuns", KAIROS_MARKET_DATA_TABLE: "MarketData", KAIROS_RUNTIME: "nodejs22.x" },
      clock: () => new Date("2024-05-01T09:30:01Z"),
      writeLine: () => {},
    });
    const event = { task: "probe", task_type: "crypto_probe", params: {}, scheduled_time: "2024-05-01T09:30:00Z", execution_id: "e", attempt: "1" };

    const response = await handler(event, { awsRequestId: "req-1", getRemainingTimeInMillis: () => 10_000 });

    assert.equal(response.status, "FAILED");
    assert.equal(response.error.type, "UndeclaredPartitionError");
    assert.deepEqual(
      sent,
      ["PutCommand", "PutCommand", "UpdateCommand", "UpdateCommand"],
      "only the slot's claim, the run record's own put and update, and the slot's settle",
    );
  });
});
