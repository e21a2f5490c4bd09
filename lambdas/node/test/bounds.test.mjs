// Every delivery leaves a final run record, whatever the event (the Node counterpart of
// tests/runtime/test_event_bounds.py): the real handler against an embedded DynamoDB (dynalite).

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ScanCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";

import { MAX_DETAIL_DEPTH, MAX_PARAMS_BYTES, MAX_PARAMS_DEPTH } from "../src/bounds.mjs";
import { createHandler } from "../src/index.mjs";
import { TaskRegistry } from "../src/registry.mjs";
import { RECORD_WRITE_FAILED, boundedDetail } from "../src/runs.mjs";
import { TASK_RUNS } from "../src/tables.mjs";
import { useDynalite } from "./dynalite.mjs";

const OWN_TASK = "nodejs-task-2";
const FINAL = new Set(["SUCCEEDED", "FAILED", "SKIPPED"]);
const dynamo = useDynalite("bounds");

/** The run records (RUN#), or with `{ slots: true }` the slot claims (SLOT#). */
async function records(table, { slots = false } = {}) {
  const items = [];
  let start;
  do {
    const page = await dynamo.documentClient.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
    items.push(...page.Items);
    start = page.LastEvaluatedKey;
  } while (start);
  return items.filter((item) => item.sk.startsWith(slots ? "SLOT#" : "RUN#"));
}

function handlerFor(table, { registry, env = {} } = {}) {
  return createHandler({
    ...(registry ? { registry } : {}),
    documentClient: dynamo.documentClient,
    env: { KAIROS_TASK_RUNS_TABLE: table, KAIROS_RUNTIME: "nodejs22.x", ...env },
    writeLine: () => {},
  });
}

let requests = 0;
const invocation = (awsRequestId = `req-${++requests}`) => ({ awsRequestId, getRemainingTimeInMillis: () => 60_000 });
const delivered = (overrides = {}) => ({
  task: OWN_TASK,
  task_type: "simple_task_2",
  params: {},
  scheduled_time: "2024-05-01T09:30:00Z",
  execution_id: "exec-1",
  attempt: "1",
  ...overrides,
});

/** An object `depth` levels deep ({} is 1), built without recursion. */
function nested(depth) {
  let value = {};
  for (let level = 1; level < depth; level += 1) value = { a: value };
  return value;
}

const MALFORMED = {
  "execution_id over 1 KB": delivered({ execution_id: "e".repeat(1100) }),
  "execution_id of 129 characters": delivered({ execution_id: "e".repeat(129) }),
  "execution_id with a space": delivered({ execution_id: "exec 1" }),
  "task_type of 500 KB": delivered({ task_type: "t".repeat(500_000) }),
  "task of 500 KB": delivered({ task: "t".repeat(500_000) }),
  "lone surrogate in execution_id": JSON.parse(JSON.stringify(delivered()).replace('"exec-1"', '"exec-\\ud800"')),
  "lone surrogate in task_type": JSON.parse(JSON.stringify(delivered()).replace('"simple_task_2"', '"simple\\ud800"')),
  "lone surrogate in params": delivered({ params: { payload: { x: "\udfff" } } }),
  "payload nested 500 deep": delivered({ params: { payload: nested(500) } }),
  "params over 256 KiB": delivered({ params: { payload: { blob: "x".repeat(MAX_PARAMS_BYTES) } } }),
  "attempt of 5000 digits": delivered({ attempt: "1".repeat(5000) }),
  "not an object": ["not", "an", "event"],
};

describe("a malformed event", () => {
  for (const [name, event] of Object.entries(MALFORMED)) {
    it(`leaves a final InvalidEvent record: ${name}`, async () => {
      const table = await dynamo.freshTable();
      const response = await handlerFor(table, { env: { KAIROS_TASK: OWN_TASK, KAIROS_TASK_TYPE: "simple_task_2" } })(event, invocation());
      const [record, ...others] = await records(table);
      assert.equal(others.length, 0);
      assert.equal(response.status, "FAILED");
      assert.deepEqual([record.status, record.error_type, record.error_kind], ["FAILED", "InvalidEvent", "permanent"]);
      assert.equal(record.pk, `TASK#${OWN_TASK}`);
      assert.ok(Buffer.byteLength(record.sk) <= 200);
      assert.ok(record.error_message.length <= 1000);
    });
  }

  it("keeps the identity fields that are fit for a key, and only those", async () => {
    const table = await dynamo.freshTable();
    const context = invocation();
    await handlerFor(table)(delivered({ execution_id: "e".repeat(129), scheduled_time: "soon" }), context);
    const [record] = await records(table);
    assert.deepEqual([record.task, record.task_type, record.execution_id], [OWN_TASK, "simple_task_2", context.awsRequestId]);
    assert.equal(record.error_message, "execution_id: must be printable ASCII without spaces ([!-~]{1,128}); scheduled_time: must be an ISO 8601 date-time string");
  });
});

describe("events at the bounds", () => {
  it("still run with the longest execution_id and the deepest params", async () => {
    const table = await dynamo.freshTable();
    const params = { payload: nested(MAX_PARAMS_DEPTH - 1) };
    const response = await handlerFor(table)(delivered({ params, execution_id: "e".repeat(128) }), invocation());
    assert.equal(response.status, "SUCCEEDED");
    const [record] = await records(table);
    assert.ok(record.sk.endsWith(`#${"e".repeat(128)}#1`));
    assert.deepEqual(record.detail.event.params, params);
  });
});

describe("boundedDetail over any value", () => {
  it("replaces a detail nested too deep, or holding too many values, with a note", () => {
    const deep = `nested deeper than ${MAX_DETAIL_DEPTH} levels`;
    assert.deepEqual(boundedDetail({ deep: nested(MAX_DETAIL_DEPTH) }), { truncated: true, reason: deep, keys: ["deep"] });
    assert.deepEqual(boundedDetail({ deep: nested(100_000) }), { truncated: true, reason: deep, keys: ["deep"] });
    const row = new Array(1000).fill(0);
    assert.deepEqual(boundedDetail({ wide: new Array(1000).fill(row) }), { truncated: true, reason: "more than 32000 values", keys: ["wide"] });
  });

  it("replaces a cyclic detail with a note", () => {
    const cycle = {};
    cycle.self = cycle;
    assert.equal(boundedDetail(cycle).truncated, true);
  });

  it("stores lone surrogates as replacement characters, and __proto__ as a member", () => {
    const detail = JSON.parse('{"name\\ud800": ["bad \\udfff text"], "__proto__": 1}');
    assert.deepEqual(boundedDetail(detail), JSON.parse('{"name\\ufffd": ["bad \\ufffd text"], "__proto__": 1}'));
  });
});

describe("a final write DynamoDB refuses", () => {
  it("leaves a minimal FAILED record instead", async () => {
    const table = await dynamo.freshTable();
    const registry = new TaskRegistry();
    const params = { type: "object", properties: {}, additionalProperties: false };
    // The task grows its own record to near DynamoDB's 400 KB item limit, so the final update with
    // its detail is refused (ValidationException) while the minimal one still fits.
    registry.task("bloating", { params, tables: { [TASK_RUNS]: "read_write" }, partitions: { [TASK_RUNS]: ["TASK#"] } }, async (_params, context) => {
      const { tableName, client: runs } = context.clients.table(TASK_RUNS);
      const [item] = (await runs.send(new ScanCommand({ TableName: tableName }))).Items;
      await runs.send(
        new UpdateCommand({
          TableName: tableName,
          Key: { pk: item.pk, sk: item.sk },
          UpdateExpression: "SET #bloat = :bloat",
          ExpressionAttributeNames: { "#bloat": "bloat" },
          ExpressionAttributeValues: { ":bloat": "b".repeat(385_000) },
        }),
      );
      return { itemsWritten: 3, detail: { rows: "r".repeat(30_000) } };
    });
    const response = await handlerFor(table, { registry })(delivered({ task: "probe", task_type: "bloating" }), invocation());
    const [record] = await records(table);
    assert.deepEqual([record.status, record.error_type, record.error_kind], ["FAILED", RECORD_WRITE_FAILED, "permanent"]);
    assert.match(record.error_message, /^the run's outcome \(SUCCEEDED\) could not be recorded: ValidationException: /);
    assert.equal(record.detail, undefined);
    assert.ok(record.finished_at >= record.started_at);
    assert.deepEqual([response.status, response.error.type, response.items_written], ["FAILED", RECORD_WRITE_FAILED, 0]);
  });
});

describe("a function pinned to its task type", () => {
  it("records an event naming another task type as InvalidEvent, and does not run it", async () => {
    const table = await dynamo.freshTable();
    const env = { KAIROS_TASK: OWN_TASK, KAIROS_TASK_TYPE: "simple_task_2" };
    const response = await handlerFor(table, { env })(delivered({ task_type: "simple_task_1" }), invocation());
    assert.equal(response.status, "FAILED");
    const [record] = await records(table);
    assert.deepEqual([record.status, record.error_type], ["FAILED", "InvalidEvent"]);
    assert.equal(record.error_message, "this function runs task_type 'simple_task_2'; the event names 'simple_task_1'");
    assert.deepEqual(record.detail, {}, "simple_task_1 did not run");
  });
});

// --- Fuzz: a few hundred malformed events, each leaving a final record ---
const FUZZ_EVENTS = 300;
const FUZZ_MILLISECONDS = 120_000;

/** A small seeded generator (mulberry32), so a failure can be replayed. */
function seeded(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const below = (n) => Math.floor(next() * n);
  return { next, below, pick: (items) => items[below(items.length)] };
}

function nastyValue(rng) {
  switch (rng.below(13)) {
    case 0: return "x".repeat(rng.pick([0, 1, 128, 129, 1025, 50_000, 500_000]));
    case 1: return rng.pick(["\ud800", "a\udfff", "\ud83d", "ok\ud800ok"]);
    case 2: return nested(rng.pick([15, 16, 17, 40, 500, 5000]));
    case 3: return new Array(1 + rng.below(50)).fill(nested(1 + rng.below(30)));
    case 4: return rng.pick([null, true, false, 0, -1, 1.5, 2 ** 64, Number.MAX_VALUE, 12345678901234567890n]);
    case 5: return Array.from({ length: 1 + rng.below(40) }, () => String.fromCharCode(rng.below(0x10000))).join("");
    case 6: return { blob: "y".repeat(rng.pick([1000, MAX_PARAMS_BYTES, 400_000])) };
    case 7: return rng.pick(["2024-05-01T09:30:00Z", "soon", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]);
    case 8: return rng.pick(["1", " 2 ", "1".repeat(5000), "0", "+3", "1e1"]);
    case 9: return { payload: nested(1 + rng.below(40)) };
    case 10: return { payload: { s: rng.pick(["\ud800", "fine", "\udfff".repeat(10)]) } };
    case 11: return rng.pick(["e\n1", "e 1", "é", "exec#1", "#", "<aws.scheduler.execution-id>"]);
    default: return rng.pick(["simple_task_2", "simple_task_1", OWN_TASK, "crypto_markets", "Simple", ""]);
  }
}

function malformedEvent(rng, number) {
  if (rng.next() < 0.05) return nastyValue(rng);
  const event = delivered({ params: { payload: { n: 1 } }, execution_id: `exec-${number}` });
  const fields = [...Object.keys(event), "extra"];
  for (let changes = 1 + rng.below(3); changes > 0; changes -= 1) {
    const field = rng.pick(fields);
    if (rng.next() < 0.15) delete event[field];
    else event[field] = nastyValue(rng);
  }
  return event;
}

describe("fuzzed malformed events", () => {
  it(`each of ${FUZZ_EVENTS} leaves a final record`, async () => {
    const table = await dynamo.freshTable();
    const handler = handlerFor(table, { env: { KAIROS_TASK: OWN_TASK, KAIROS_TASK_TYPE: "simple_task_2" } });
    const rng = seeded(20261201);
    const started = performance.now();
    for (let number = 0; number < FUZZ_EVENTS; number += 1) {
      const event = malformedEvent(rng, number);
      await handler(event, invocation(`fuzz-${number}`)).catch((error) => assert.fail(`event ${number} threw ${error?.name}: ${error?.message}`));
    }
    const elapsed = performance.now() - started;
    const stored = await records(table);
    // Two events may name the same delivery: the record then keeps the earlier one in previous_outcomes.
    // Two valid events of one slot: the second is declined (the slot is done), and listed on the slot.
    const slots = await records(table, { slots: true });
    const delivered_ = new Set([
      ...stored.flatMap((record) => [record, ...(record.previous_outcomes ?? [])].map((outcome) => outcome.request_id)),
      ...slots.flatMap((slot) => (slot.declined ?? []).map((declined) => declined.request_id)),
    ]);
    const missing = Array.from({ length: FUZZ_EVENTS }, (_, number) => `fuzz-${number}`).filter((id) => !delivered_.has(id));
    assert.deepEqual(missing, [], "every delivery has a record");
    for (const record of stored) assert.ok(FINAL.has(record.status), `${record.sk} is ${record.status}`);
    assert.ok(elapsed < FUZZ_MILLISECONDS);
  });
});
