// Exactly one effect per scheduled slot, through the real handler on an embedded DynamoDB (dynalite):
// a probe task counts its calls. The stored claims are the shared contract (slot_scenarios in
// tests/contract/run_records.json, replayed by run-records.test.mjs); tests/runtime/test_slots.py
// does the same against the Python runtime with threads on moto.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DynamoDBDocumentClient, QueryCommand } from "@aws-sdk/lib-dynamodb";

import { createHandler } from "../src/index.mjs";
import { TaskRegistry } from "../src/registry.mjs";
import { SlotInProgressError } from "../src/slots.mjs";
import { useDynalite } from "./dynalite.mjs";

const PARAMS = { type: "object", properties: {}, additionalProperties: false };

const dynamo = useDynalite("slots");

/** A probe task that counts its calls (each is one effect), holding each call for `holdMs`. */
function probe({ holdMs = 0 } = {}) {
  const counter = { calls: 0 };
  const registry = new TaskRegistry();
  registry.task("probe", { params: PARAMS }, async () => {
    counter.calls += 1;
    const calls = counter.calls;
    await new Promise((resolve) => setTimeout(resolve, holdMs));
    return { itemsWritten: calls };
  });
  return { counter, registry };
}

const event = (overrides = {}) => ({
  task: "probe",
  task_type: "probe",
  params: {},
  scheduled_time: "2026-11-27T07:15:00Z",
  execution_id: "exec-1",
  attempt: "1",
  ...overrides,
});
const invocation = (awsRequestId) => ({ awsRequestId, getRemainingTimeInMillis: () => 60_000 });

async function stored(tableName, prefix) {
  const { Items } = await dynamo.documentClient.send(
    new QueryCommand({
      TableName: tableName,
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
      ExpressionAttributeValues: { ":pk": "TASK#probe", ":prefix": prefix },
      ConsistentRead: true,
    }),
  );
  return Items;
}

describe("one effect per slot", () => {
  it("does not run a succeeded slot again, and answers with the earlier result", async () => {
    const tableName = await dynamo.freshTable();
    const { counter, registry } = probe();
    const handler = createHandler({ registry, documentClient: dynamo.documentClient, env: { KAIROS_TASK_RUNS_TABLE: tableName }, writeLine: () => {} });

    const first = await handler(event(), invocation("req-1"));
    const again = await handler(event({ execution_id: "exec-2" }), invocation("req-2"));
    const sameEvent = await handler(event(), invocation("req-3"));

    assert.equal(counter.calls, 1);
    assert.deepEqual(again, { ...first, declined: "done" });
    assert.deepEqual(sameEvent, { ...first, declined: "done" });
    const [slot] = await stored(tableName, "SLOT#");
    assert.equal(slot.deliveries, 3);
    assert.deepEqual(slot.declined.map((declined) => declined.request_id), ["req-2", "req-3"]);
  });

  it("runs concurrent duplicate deliveries once, and gives each a final record", async () => {
    const tableName = await dynamo.freshTable();
    const { counter, registry } = probe({ holdMs: 200 });
    const deliveries = 8;
    // One handler (one client) per delivery, as each Lambda instance has its own.
    const answers = await Promise.all(
      Array.from({ length: deliveries }, (_, number) =>
        createHandler({ registry, documentClient: DynamoDBDocumentClient.from(dynamo.client), env: { KAIROS_TASK_RUNS_TABLE: tableName }, writeLine: () => {} })(
          event({ execution_id: `exec-${number}` }),
          invocation(`req-${number}`),
        ),
      ),
    );

    assert.equal(counter.calls, 1, "exactly one delivery ran the task");
    const ran = answers.filter((answer) => answer.declined === undefined);
    assert.equal(ran.length, 1);
    for (const answer of answers) assert.ok([undefined, "in_progress", "done"].includes(answer.declined));
    const runs = await stored(tableName, "RUN#");
    assert.deepEqual(runs.map((run) => [run.status, run.sk]), [["SUCCEEDED", ran[0].run_id]]);
    const [slot] = await stored(tableName, "SLOT#");
    assert.equal(slot.status, "SUCCEEDED");
    assert.equal(slot.deliveries, deliveries, "every delivery is counted");
    assert.equal(slot.declined.length, deliveries - 1, "every declined delivery is listed");
  });

  it("fails a retry of the owner's own invocation while its lease holds, so Lambda comes back later", async () => {
    const tableName = await dynamo.freshTable();
    let release = () => {};
    const registry = new TaskRegistry();
    registry.task("probe", { params: PARAMS }, () => new Promise((resolve) => { release = () => resolve({}); }));
    const handler = createHandler({ registry, documentClient: dynamo.documentClient, env: { KAIROS_TASK_RUNS_TABLE: tableName }, writeLine: () => {} });

    const running = handler(event(), invocation("req-1"));
    while ((await stored(tableName, "RUN#")).length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await assert.rejects(handler(event(), invocation("req-1")), SlotInProgressError);
    release();
    assert.equal((await running).status, "SUCCEEDED");
  });

  it("runs a done slot again on rerun, and the record says what it replaced", async () => {
    const tableName = await dynamo.freshTable();
    const { counter, registry } = probe();
    const handler = createHandler({ registry, documentClient: dynamo.documentClient, env: { KAIROS_TASK_RUNS_TABLE: tableName }, writeLine: () => {} });
    const first = await handler(event(), invocation("req-1"));

    const rerun = await handler(event({ execution_id: "exec-2", rerun: true }), invocation("req-2"));

    assert.equal(counter.calls, 2);
    assert.equal(rerun.declined, undefined);
    const record = (await stored(tableName, "RUN#")).find((run) => run.execution_id === "exec-2");
    assert.equal(record.rerun, true);
    assert.deepEqual([record.replaced.status, record.replaced.run_id], ["SUCCEEDED", first.run_id]);
  });

  it("claims no slot for an invalid event, rerun or not", async () => {
    const tableName = await dynamo.freshTable();
    const { counter, registry } = probe();
    const handler = createHandler({
      registry,
      documentClient: dynamo.documentClient,
      env: { KAIROS_TASK_RUNS_TABLE: tableName, KAIROS_TASK: "probe", KAIROS_TASK_TYPE: "probe" },
      writeLine: () => {},
    });
    const otherType = await handler(event({ task_type: "simple_task_1", rerun: true }), invocation("req-1"));
    const notABool = await handler(event({ execution_id: "exec-2", rerun: "yes" }), invocation("req-2"));

    assert.equal(counter.calls, 0);
    assert.deepEqual([otherType.status, otherType.error.type], ["FAILED", "InvalidEvent"]);
    assert.match(notABool.error.message, /^rerun: must be true or false/);
    assert.deepEqual(await stored(tableName, "SLOT#"), []);
  });
});
