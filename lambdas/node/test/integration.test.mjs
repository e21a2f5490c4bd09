// The real handler against an embedded DynamoDB (dynalite on 127.0.0.1): every kind of run, with the
// stored records read back field by field.

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";

import { TaskSkipped, TransientTaskError } from "../src/errors.mjs";
import { TaskRegistry } from "../src/registry.mjs";
import { TASK_RUNS, TABLES } from "../src/tables.mjs";
import { createTaskRunsTable, useDynalite } from "./dynalite.mjs";

const TABLE = "TaskRuns-test";
const DESIGN = TABLES[TASK_RUNS];
const DAY_SECONDS = 86_400;
const SCHEDULED = "2024-05-01T09:30:00Z";

let reader;
let index;

const logLines = [];
const writeLine = (line) => logLines.push(line);
let requestCount = 0;
const invocation = () => ({ awsRequestId: `req-${++requestCount}`, getRemainingTimeInMillis: () => 60_000 });
const event = (overrides) => ({ params: {}, scheduled_time: SCHEDULED, attempt: "1", ...overrides });

const dynamo = useDynalite("integration");

before(async () => {
  await dynamo.ready();
  const { endpoint } = dynamo;

  // What the handler's own client reads: dummy credentials, and never a profile or config file.
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_REGION: "us-east-1",
    AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    AWS_CONFIG_FILE: "/dev/null",
    AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    AWS_EC2_METADATA_DISABLED: "true",
    KAIROS_TASK_RUNS_TABLE: TABLE,
    KAIROS_RUNTIME: "nodejs22.x",
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.KAIROS_RUN_RECORD_TTL_DAYS;

  await createTaskRunsTable(dynamo.client, TABLE, { indexes: true });
  reader = dynamo.documentClient;
  // Imported only now: the module reads its settings from process.env when it loads.
  index = await import("../src/index.mjs");
});

/** Every record storedRun has read, to look them up again through the by_date index. */
const storedRuns = [];

async function storedRun(task, runId) {
  const { Item } = await reader.send(new GetCommand({ TableName: TABLE, Key: { pk: `TASK#${task}`, sk: runId } }));
  assert.ok(Item, `no run record for ${task} ${runId}`);
  storedRuns.push(Item);
  return Item;
}

/**
 * The fields every finished record has, whatever its status. Its expiry counts from the start of its
 * latest delivery (a redelivery extends it).
 */
function assertCommonFields(item, { task, taskType, executionId, requestId, attempt = 1, scheduled = SCHEDULED }) {
  assert.equal(item.pk, `TASK#${task}`);
  assert.equal(item.sk, `RUN#${scheduled}#${executionId}#${attempt}`);
  assert.equal(item.task, task);
  assert.equal(item.task_type, taskType);
  assert.equal(item.runtime, "nodejs22.x");
  assert.equal(item.scheduled_time, scheduled);
  assert.equal(item.execution_id, executionId);
  assert.equal(typeof item.attempt, "number");
  assert.equal(item.attempt, attempt);
  assert.equal(item.request_id, requestId);

  const startedMs = Date.parse(item.started_at);
  assert.match(item.started_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Math.abs(Date.now() - startedMs) < 60_000, "started_at is now");
  assert.equal(item.gsi1pk, `RUNDATE#${item.started_at.slice(0, 10)}`);
  assert.equal(item.gsi1sk, `${item.started_at}#${task}`);
  assert.equal(item.expires_at, Math.floor(Date.parse(item.started_at) / 1000) + 90 * DAY_SECONDS);
  assert.ok(Date.parse(item.finished_at) >= startedMs);
  assert.equal(typeof item.duration_ms, "number");
  assert.ok(item.duration_ms >= 0);
  assert.equal(typeof item.items_written, "number");
  assert.equal(typeof item.items_rejected, "number");
}

describe("the handler against DynamoDB", () => {
  it("records simple_task_1 as SUCCEEDED with its timestamp", async () => {
    const context = invocation();
    // The exported handler itself: default registry, shared client built from the environment, stdout.
    const response = await index.handler(event({ task: "tick", task_type: "simple_task_1", execution_id: "exec-1" }), context);
    assert.equal(response.status, "SUCCEEDED");
    const item = await storedRun("tick", response.run_id);
    assertCommonFields(item, { task: "tick", taskType: "simple_task_1", executionId: "exec-1", requestId: context.awsRequestId });
    assert.equal(item.status, "SUCCEEDED");
    assert.equal(item.items_written, 0);
    assert.equal(item.items_rejected, 0);
    assert.match(item.detail.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    for (const absent of ["error_type", "error_message", "error_kind"]) assert.equal(item[absent], undefined, absent);
  });

  it("records simple_task_2's echo of the event, attempt as a number", async () => {
    const handler = index.createHandler({ writeLine });
    const context = invocation();
    const raw = event({ task: "echo", task_type: "simple_task_2", execution_id: "exec-2", attempt: "2", params: { payload: { n: 1.5, tags: ["a"] } } });
    const response = await handler(raw, context);
    const item = await storedRun("echo", response.run_id);
    assertCommonFields(item, { task: "echo", taskType: "simple_task_2", executionId: "exec-2", requestId: context.awsRequestId, attempt: 2 });
    assert.equal(item.status, "SUCCEEDED");
    assert.deepEqual(item.detail, { event: { ...raw, attempt: 2 } });
  });

  it("records simple_task_2's echo of a huge payload with its detail cut to a note", async () => {
    const handler = index.createHandler({ writeLine });
    const context = invocation();
    // Params within their bound, but the echo is far over the detail's.
    // Its own task: the slot of "echo" above is done, and would not run again.
    const raw = event({ task: "echo-huge", task_type: "simple_task_2", execution_id: "exec-huge", params: { payload: { blob: "x".repeat(200_000) } } });
    const response = await handler(raw, context);
    assert.equal(response.status, "SUCCEEDED");
    const item = await storedRun("echo-huge", response.run_id);
    assertCommonFields(item, { task: "echo-huge", taskType: "simple_task_2", executionId: "exec-huge", requestId: context.awsRequestId });
    assert.equal(item.status, "SUCCEEDED");
    assert.deepEqual(item.detail, {
      truncated: true,
      bytes: Buffer.byteLength(JSON.stringify({ event: { ...raw, attempt: 1 } })),
      keys: ["event"],
    });
    assert.ok(item.detail.bytes > 200_000);
  });

  it("records an unknown task_type as FAILED, naming the registered types", async () => {
    const handler = index.createHandler({ writeLine });
    const context = invocation();
    const response = await handler(event({ task: "typo", task_type: "simple_task_3", execution_id: "exec-3" }), context);
    assert.equal(response.status, "FAILED");
    const item = await storedRun("typo", response.run_id);
    assertCommonFields(item, { task: "typo", taskType: "simple_task_3", executionId: "exec-3", requestId: context.awsRequestId });
    assert.equal(item.status, "FAILED");
    assert.equal(item.error_type, "UnknownTaskType");
    assert.equal(item.error_message, "unknown task_type 'simple_task_3'; registered: simple_task_1, simple_task_2");
    assert.equal(item.error_kind, "permanent");
    assert.deepEqual(item.detail, {});
  });

  it("records params that do not fit as FAILED InvalidParams", async () => {
    const handler = index.createHandler({ writeLine });
    const context = invocation();
    const response = await handler(event({ task: "bad", task_type: "simple_task_1", execution_id: "exec-4", params: { label: "x".repeat(201) } }), context);
    const item = await storedRun("bad", response.run_id);
    assertCommonFields(item, { task: "bad", taskType: "simple_task_1", executionId: "exec-4", requestId: context.awsRequestId });
    assert.equal(item.status, "FAILED");
    assert.equal(item.error_type, "InvalidParams");
    assert.equal(item.error_message, "params do not fit task_type 'simple_task_1': label: must be at most 200 characters");
    assert.equal(item.error_kind, "permanent");
  });

  it("records an invalid event as FAILED InvalidEvent under unknown-task", async () => {
    const handler = index.createHandler({ writeLine });
    const context = invocation();
    const response = await handler({ scheduled_time: "whenever" }, context);
    assert.equal(response.task, "unknown-task");
    const item = await storedRun("unknown-task", response.run_id);
    // Without a usable event the slot is the arrival time and the execution id is the request id.
    const arrival = `${item.started_at.slice(0, 19)}Z`;
    assertCommonFields(item, { task: "unknown-task", taskType: "unknown", executionId: context.awsRequestId, requestId: context.awsRequestId, scheduled: arrival });
    assert.equal(item.status, "FAILED");
    assert.equal(item.error_type, "InvalidEvent");
    assert.equal(
      item.error_message,
      "task: is required; task_type: is required; execution_id: is required; scheduled_time: must be an ISO 8601 date-time string",
    );
    assert.equal(item.error_kind, "permanent");
  });

  describe("in a function with its own task (KAIROS_TASK)", () => {
    const ownTask = "node-task-1";
    const ownHandler = () => index.createHandler({ writeLine, env: { ...process.env, KAIROS_TASK: ownTask } });

    it("records an event naming another task under its own task as FAILED InvalidEvent", async () => {
      const context = invocation();
      const response = await ownHandler()(event({ task: "someone-else", task_type: "simple_task_1", execution_id: "exec-own-1" }), context);
      assert.equal(response.task, ownTask);
      assert.equal(response.status, "FAILED");
      const item = await storedRun(ownTask, response.run_id);
      assertCommonFields(item, { task: ownTask, taskType: "simple_task_1", executionId: "exec-own-1", requestId: context.awsRequestId });
      assert.equal(item.status, "FAILED");
      assert.equal(item.error_type, "InvalidEvent");
      assert.equal(item.error_message, "this function runs task 'node-task-1'; the event names 'someone-else'");
      assert.equal(item.error_kind, "permanent");
      assert.deepEqual(item.detail, {});
      const { Item } = await reader.send(new GetCommand({ TableName: TABLE, Key: { pk: "TASK#someone-else", sk: response.run_id } }));
      assert.equal(Item, undefined, "nothing recorded under the task the event named");
    });

    it("records an invalid event under its own task", async () => {
      const context = invocation();
      const response = await ownHandler()({ task: "someone-else", scheduled_time: "whenever" }, context);
      assert.equal(response.task, ownTask);
      const item = await storedRun(ownTask, response.run_id);
      const arrival = `${item.started_at.slice(0, 19)}Z`;
      assertCommonFields(item, { task: ownTask, taskType: "unknown", executionId: context.awsRequestId, requestId: context.awsRequestId, scheduled: arrival });
      assert.equal(item.status, "FAILED");
      assert.equal(item.error_type, "InvalidEvent");
      assert.equal(
        item.error_message,
        "task_type: is required; execution_id: is required; scheduled_time: must be an ISO 8601 date-time string",
      );
    });

    it("runs an event naming its own task", async () => {
      const context = invocation();
      const response = await ownHandler()(event({ task: ownTask, task_type: "simple_task_1", execution_id: "exec-own-2" }), context);
      assert.equal(response.status, "SUCCEEDED");
      const item = await storedRun(ownTask, response.run_id);
      assertCommonFields(item, { task: ownTask, taskType: "simple_task_1", executionId: "exec-own-2", requestId: context.awsRequestId });
      assert.equal(item.status, "SUCCEEDED");
    });
  });

  describe("with test-only task types", () => {
    const registry = new TaskRegistry();
    const params = { type: "object", properties: {}, additionalProperties: false };
    registry.task("flaky", { params }, async () => {
      throw new TransientTaskError("upstream timed out");
    });
    let flakyOnceCalls = 0;
    registry.task("flaky_once", { params }, async () => {
      flakyOnceCalls += 1;
      if (flakyOnceCalls === 1) throw new TransientTaskError("upstream timed out");
      return { itemsWritten: 3 };
    });
    registry.task("holiday", { params }, async () => {
      throw new TaskSkipped("market closed", { detail: { day: "2024-05-01" } });
    });
    // The first delivery's task says it is running (its record is written by then), then waits until
    // a duplicate delivery of the same event has taken the record over and finished.
    let firstIsRunning = () => {};
    const firstRunning = new Promise((resolve) => { firstIsRunning = resolve; });
    let releaseFirst = () => {};
    const duplicateFinished = new Promise((resolve) => { releaseFirst = resolve; });
    let gatedCalls = 0;
    registry.task("gated", { params }, async () => {
      gatedCalls += 1;
      if (gatedCalls === 1) {
        firstIsRunning();
        await duplicateFinished;
      }
      return { itemsWritten: gatedCalls };
    });

    it("records a transient failure, then rejects so that Lambda retries", async () => {
      const handler = index.createHandler({ registry, writeLine });
      const context = invocation();
      const raw = event({ task: "flaky", task_type: "flaky", execution_id: "exec-5" });
      const failure = await handler(raw, context).then(
        () => assert.fail("the handler resolved"),
        (error) => error,
      );
      assert.equal(failure.name, "TaskRunFailed");
      const item = await storedRun("flaky", failure.result.runId);
      assertCommonFields(item, { task: "flaky", taskType: "flaky", executionId: "exec-5", requestId: context.awsRequestId });
      assert.equal(item.status, "FAILED");
      assert.equal(item.error_type, "TransientTaskError");
      assert.equal(item.error_message, "upstream timed out");
      assert.equal(item.error_kind, "transient");
      const finished = logLines.map((line) => JSON.parse(line)).find((record) => record.correlation_id === "exec-5" && record.message === "run finished");
      assert.equal(finished.level, "ERROR");
      assert.deepEqual(finished.run.error, { type: "TransientTaskError", message: "upstream timed out" });
    });

    it("keeps the first outcome when Lambda delivers the same event again", async () => {
      const handler = index.createHandler({ registry, writeLine });
      // Lambda's asynchronous retry sends the identical event, so both deliveries share one record.
      const raw = event({ task: "retried", task_type: "flaky_once", execution_id: "exec-7" });
      const first = invocation();
      const failure = await handler(raw, first).then(
        () => assert.fail("the first delivery resolved"),
        (error) => error,
      );
      assert.equal(failure.name, "TaskRunFailed");
      const afterFirst = await storedRun("retried", failure.result.runId);
      assert.equal(afterFirst.status, "FAILED");
      assert.equal(afterFirst.deliveries, 1);
      assert.equal(afterFirst.previous_outcomes, undefined);

      const second = invocation();
      const response = await handler(raw, second);
      assert.equal(response.status, "SUCCEEDED");
      assert.equal(response.run_id, failure.result.runId);
      const item = await storedRun("retried", response.run_id);
      assertCommonFields(item, {
        task: "retried",
        taskType: "flaky_once",
        executionId: "exec-7",
        requestId: second.awsRequestId,
      });
      assert.equal(item.deliveries, 2);
      assert.deepEqual(item.previous_outcomes, [
        {
          status: "FAILED",
          request_id: first.awsRequestId,
          started_at: afterFirst.started_at,
          finished_at: afterFirst.finished_at,
          error_type: "TransientTaskError",
          error_message: "upstream timed out",
        },
      ]);
      // The second delivery's outcome, with nothing left over from the first.
      assert.equal(item.status, "SUCCEEDED");
      assert.equal(item.items_written, 3);
      for (const absent of ["error_type", "error_message", "error_kind"]) assert.equal(item[absent], undefined, absent);
      assert.ok(item.started_at >= afterFirst.finished_at);
    });

    it("does not start a duplicate delivery while the first runs, and answers that the slot is in progress", async () => {
      const handler = index.createHandler({ registry, writeLine });
      const raw = event({ task: "duplicated", task_type: "gated", execution_id: "exec-8" });
      const [first, second] = [invocation(), invocation()];
      const firstRun = handler(raw, first);
      await firstRunning;
      const secondResponse = await handler(raw, second);
      releaseFirst();
      const firstResponse = await firstRun;

      assert.deepEqual(secondResponse, { task: "duplicated", status: "STARTED", run_id: firstResponse.run_id, declined: "in_progress" });
      assert.equal(gatedCalls, 1, "the task ran once");
      const item = await storedRun("duplicated", firstResponse.run_id);
      assertCommonFields(item, { task: "duplicated", taskType: "gated", executionId: "exec-8", requestId: first.awsRequestId });
      assert.equal(item.status, "SUCCEEDED");
      assert.equal(item.deliveries, 1, "the declined delivery is counted on the slot, not on the run");
      const { Item: slot } = await reader.send(new GetCommand({ TableName: TABLE, Key: { pk: "TASK#duplicated", sk: `SLOT#${SCHEDULED}` } }));
      assert.equal(slot.status, "SUCCEEDED");
      assert.equal(slot.deliveries, 2);
      assert.deepEqual(slot.declined.map((declined) => [declined.request_id, declined.reason]), [[second.awsRequestId, "in_progress"]]);

      // Delivered again once it has finished: not run, answered with the earlier result.
      const third = invocation();
      const again = await handler(raw, third);
      assert.deepEqual(again, { ...firstResponse, declined: "done" });
      assert.equal(gatedCalls, 1, "still once");
    });

    it("records a skip as SKIPPED with its reason", async () => {
      const handler = index.createHandler({ registry, writeLine });
      const context = invocation();
      const response = await handler(event({ task: "holiday", task_type: "holiday", execution_id: "exec-6" }), context);
      assert.equal(response.status, "SKIPPED");
      const item = await storedRun("holiday", response.run_id);
      assertCommonFields(item, { task: "holiday", taskType: "holiday", executionId: "exec-6", requestId: context.awsRequestId });
      assert.equal(item.status, "SKIPPED");
      assert.deepEqual(item.detail, { reason: "market closed", day: "2024-05-01" });
      assert.equal(item.error_type, undefined);
    });
  });

  it("finds every run of a day through the by_date index, newest first", async () => {
    // Normally one day; two if the tests straddled midnight UTC.
    const days = new Set(storedRuns.map((item) => item.gsi1pk));
    const found = [];
    for (const day of days) {
      const { Items } = await reader.send(
        new QueryCommand({
          TableName: TABLE,
          IndexName: DESIGN.indexes[0].name,
          KeyConditionExpression: "gsi1pk = :day",
          ExpressionAttributeValues: { ":day": day },
          ScanIndexForward: false,
        }),
      );
      const started = Items.map((item) => item.gsi1sk);
      assert.deepEqual(started, [...started].sort().reverse());
      found.push(...Items);
    }
    const foundKeys = new Set(found.map((item) => `${item.pk} ${item.sk}`));
    for (const item of storedRuns) assert.ok(foundKeys.has(`${item.pk} ${item.sk}`), `${item.pk} ${item.sk} not in by_date`);
  });
});
