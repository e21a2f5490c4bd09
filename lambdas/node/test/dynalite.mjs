// The embedded DynamoDB (dynalite on 127.0.0.1) the Node tests run the real handler against, and the
// TaskRuns table they create in it, built from the shared table design (src/tables.mjs). Not a test
// file: `node --test` loads it too and finds no tests in it.
import { after, before } from "node:test";

import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import dynalite from "dynalite";

import { TABLES, TASK_RUNS } from "../src/tables.mjs";

const DESIGN = TABLES[TASK_RUNS];

/**
 * Creates a TaskRuns table named `tableName` as the stack declares it; with `indexes: true` also its
 * global secondary indexes (the by-date lookup).
 *
 * @param {DynamoDBClient} client
 * @param {string} tableName
 * @param {{ indexes?: boolean }} [options]
 */
export async function createTaskRunsTable(client, tableName, { indexes = false } = {}) {
  const keyed = (partitionKey, sortKey) => [
    { AttributeName: partitionKey, KeyType: "HASH" },
    { AttributeName: sortKey, KeyType: "RANGE" },
  ];
  const secondary = indexes ? DESIGN.indexes : [];
  const attributes = [DESIGN.partitionKey, DESIGN.sortKey, ...secondary.flatMap((index) => [index.partitionKey, index.sortKey])];
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [...new Set(attributes)].map((name) => ({ AttributeName: name, AttributeType: "S" })),
      KeySchema: keyed(DESIGN.partitionKey, DESIGN.sortKey),
      ...(secondary.length > 0 && {
        GlobalSecondaryIndexes: secondary.map((index) => ({
          IndexName: index.name,
          KeySchema: keyed(index.partitionKey, index.sortKey),
          Projection: { ProjectionType: "ALL" },
        })),
      }),
    }),
  );
}

/**
 * Starts dynalite before the calling test file's tests and stops it after them. The clients exist
 * once `ready()` has resolved; `freshTable()` gives each test a table of its own
 * (`TaskRuns-<prefix>-<n>`), so it sees only its own records.
 *
 * @param {string} prefix
 */
export function useDynalite(prefix) {
  let server;
  let starting;
  let tables = 0;
  const start = async () => {
    server = dynalite({ createTableMs: 0 });
    await new Promise((resolve, reject) => server.listen(0, "127.0.0.1", (error) => (error ? reject(error) : resolve())));
    dynamo.endpoint = `http://127.0.0.1:${server.address().port}`;
    dynamo.client = new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    dynamo.documentClient = DynamoDBDocumentClient.from(dynamo.client);
  };
  const dynamo = {
    /** @type {string} */
    endpoint: "",
    /** @type {DynamoDBClient} */
    client: undefined,
    /** @type {DynamoDBDocumentClient} */
    documentClient: undefined,
    /** Resolves once dynalite listens (started once): a file's own `before` hook awaits it first. */
    ready() {
      starting ??= start();
      return starting;
    },
    async freshTable() {
      await dynamo.ready();
      const tableName = `TaskRuns-${prefix}-${++tables}`;
      await createTaskRunsTable(dynamo.client, tableName);
      return tableName;
    },
  };

  // Node 20 runs a file's top-level hooks as they are registered, not one after another: a file's
  // own `before` that needs the clients awaits `dynamo.ready()` rather than this hook.
  before(() => dynamo.ready());

  after(async () => {
    dynamo.documentClient?.destroy();
    if (server) await new Promise((resolve) => server.close(() => resolve()));
  });

  return dynamo;
}
