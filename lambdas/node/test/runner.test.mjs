import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { PermanentTaskError, TaskSkipped, TransientTaskError } from "../src/errors.mjs";
import { createHandler } from "../src/index.mjs";
import { TaskRegistry } from "../src/registry.mjs";
import { TaskRunFailed, pyRepr } from "../src/runner.mjs";
import { RESTART_ATTEMPTS } from "../src/runs.mjs";
import { STAGE_ENV } from "../src/settings.mjs";
import { defaultRegistry } from "../src/tasks/index.mjs";

const NOW = new Date("2024-05-01T09:30:01.123Z");
const NOW_SECONDS = Math.floor(NOW.getTime() / 1000);
const DAY_SECONDS = 86_400;
const ENV = { KAIROS_TASK_RUNS_TABLE: "TaskRuns", KAIROS_RUNTIME: "nodejs22.x" };
const INVOCATION = { awsRequestId: "req-1", getRemainingTimeInMillis: () => 54_321 };
const EVENT = {
  task: "nightly",
  task_type: "simple_task_1",
  params: {},
  scheduled_time: "2024-05-01T09:30:00Z",
  execution_id: "exec-1",
  attempt: "1",
};
const SK = "RUN#2024-05-01T09:30:00Z#exec-1#1";
const OPEN_PARAMS = { type: "object", properties: { payload: { type: "object" } }, additionalProperties: false };

/**
 * An in-memory stand-in for DynamoDBDocumentClient that records what it is sent. The slot claim's
 * commands (sk SLOT#...) succeed and are kept apart in `slotCommands`: these tests are about the run
 * record; the claim is replayed against dynalite (run-records.test.mjs, slots.test.mjs).
 */
class FakeDocumentClient {
  /** @type {{ name: string, input: any }[]} */
  commands = [];
  /** @type {{ name: string, input: any }[]} */
  slotCommands = [];

  /**
   * @param {(command: any) => any} [onSend] lets a test make a call fail (by throwing) or answer it
   *   (by returning the response); every call is recorded either way
   */
  constructor(onSend = () => {}) {
    this.onSend = onSend;
  }

  async send(command) {
    const key = command.input.Item ?? command.input.Key;
    if (String(key?.sk ?? "").startsWith("SLOT#")) {
      this.slotCommands.push({ name: command.constructor.name, input: structuredClone(command.input) });
      return {};
    }
    this.commands.push({ name: command.constructor.name, input: structuredClone(command.input) });
    return (await this.onSend(command)) ?? {};
  }

  get names() {
    return this.commands.map((command) => command.name);
  }

  get put() {
    return this.commands.find((command) => command.name === "PutCommand")?.input;
  }

  /** The final update's SET values by attribute name. */
  get updated() {
    const update = this.commands.findLast((command) => command.name === "UpdateCommand")?.input;
    return update && Object.fromEntries(Object.entries(update.ExpressionAttributeValues).map(([name, value]) => [name.slice(1), value]));
  }
}

/** What the SDK throws when a put's ConditionExpression does not hold. */
const conditionFailed = () =>
  Object.assign(new Error("The conditional request failed"), { name: "ConditionalCheckFailedException", $metadata: {} });

/** A handler wired to a fake client, a fixed clock and a captured log. */
function harness({ registry = defaultRegistry(), env = ENV, onSend } = {}) {
  const documentClient = new FakeDocumentClient(onSend);
  const lines = [];
  const handler = createHandler({ registry, documentClient, env, clock: () => new Date(NOW), writeLine: (line) => lines.push(line) });
  const logs = () => lines.map((line) => JSON.parse(line));
  const metrics = () => logs().filter((record) => record._aws);
  return { handler, documentClient, logs, metrics };
}

/** A registry holding one test-only task type. */
function registryWith(fn, options = {}) {
  const registry = new TaskRegistry();
  registry.task("test_task", { params: OPEN_PARAMS, ...options }, fn);
  return registry;
}

const testEvent = (overrides = {}) => ({ ...EVENT, task_type: "test_task", ...overrides });

describe("a successful run", () => {
  it("puts a STARTED record, then sets SUCCEEDED and the outcome", async () => {
    const { handler, documentClient } = harness();
    const response = await handler(EVENT, INVOCATION);

    assert.deepEqual(documentClient.names, ["PutCommand", "UpdateCommand"]);
    assert.deepEqual(documentClient.put, {
      TableName: "TaskRuns",
      ConditionExpression: "attribute_not_exists(#pk)",
      ExpressionAttributeNames: { "#pk": "pk" },
      Item: {
        pk: "TASK#nightly",
        sk: SK,
        gsi1pk: "RUNDATE#2024-05-01",
        gsi1sk: "2024-05-01T09:30:01.123Z#nightly",
        task: "nightly",
        task_type: "simple_task_1",
        runtime: "nodejs22.x",
        status: "STARTED",
        scheduled_time: "2024-05-01T09:30:00Z",
        execution_id: "exec-1",
        attempt: 1,
        deliveries: 1,
        request_id: "req-1",
        started_at: "2024-05-01T09:30:01.123Z",
        expires_at: NOW_SECONDS + 90 * DAY_SECONDS,
      },
    });
    const update = documentClient.commands[1].input;
    assert.deepEqual(update.Key, { pk: "TASK#nightly", sk: SK });
    assert.equal(
      update.UpdateExpression,
      "SET #status = :status, #finished_at = :finished_at, #duration_ms = :duration_ms, " +
        "#items_written = :items_written, #items_rejected = :items_rejected, #detail = :detail",
    );
    assert.equal(update.ExpressionAttributeNames["#status"], "status");
    const { status, finished_at, duration_ms, items_written, items_rejected, detail } = documentClient.updated;
    assert.equal(status, "SUCCEEDED");
    assert.equal(finished_at, "2024-05-01T09:30:01.123Z");
    assert.ok(Number.isInteger(duration_ms) && duration_ms >= 0);
    assert.equal(items_written, 0);
    assert.equal(items_rejected, 0);
    assert.match(detail.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    assert.deepEqual(response, {
      task: "nightly",
      status: "SUCCEEDED",
      run_id: SK,
      duration_ms,
      items_written: 0,
      items_rejected: 0,
    });
  });

  it("logs JSON lines correlated by execution_id and one EMF line, its metrics under the function's stage", async () => {
    const { handler, logs, metrics } = harness({ env: { ...ENV, [STAGE_ENV]: "prod" } });
    await handler({ ...EVENT, params: { label: "hello" } }, INVOCATION);
    const messages = logs().filter((record) => record.message);
    assert.deepEqual(messages.map((record) => record.message.split(":")[0]), ["hello", "run finished"]);
    for (const record of messages) {
      assert.equal(record.correlation_id, "exec-1");
      assert.equal(record.task, "nightly");
      assert.equal(record.service, "kairos");
      assert.equal(record.request_id, "req-1");
    }
    assert.equal(messages[1].run.status, "SUCCEEDED");
    const [emf] = metrics();
    assert.equal(metrics().length, 1);
    assert.equal(emf.task, "nightly");
    assert.equal(emf.service, "kairos");
    assert.equal(emf.stage, "prod");
    assert.deepEqual(emf._aws.CloudWatchMetrics[0].Dimensions, [["task", "service", "stage"]]);
    assert.equal(emf.RunsSucceeded, 1);
    assert.equal(emf._aws.CloudWatchMetrics[0].Namespace, "Kairos");
  });

  it("simple_task_2 echoes the parsed event", async () => {
    const { handler, documentClient } = harness();
    const event = { ...EVENT, task: "echo", task_type: "simple_task_2", params: { payload: { a: [1, 2] } }, attempt: "2" };
    await handler(event, INVOCATION);
    assert.deepEqual(documentClient.updated.detail, { event: { ...event, attempt: 2 } });
  });

  it("records what the task reports, as plain JSON", async () => {
    const registry = registryWith(async () => ({
      itemsWritten: 5,
      itemsRejected: 2,
      detail: { when: new Date(NOW), skipped: undefined, big: 12n, nested: { ok: true } },
    }));
    const { handler, documentClient } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.equal(response.items_written, 5);
    assert.equal(response.items_rejected, 2);
    assert.deepEqual(documentClient.updated.detail, { when: NOW.toISOString(), big: "12", nested: { ok: true } });
  });

  it("gives the task its frozen params, the event, the settings and the remaining time", async () => {
    let seen;
    const registry = registryWith(async (params, context) => {
      seen = { params, context, remaining: context.remainingTimeMs() };
    });
    const { handler } = harness({ registry });
    await handler(testEvent({ params: { payload: { a: 1 } } }), INVOCATION);
    assert.deepEqual(seen.params, { payload: { a: 1 } });
    assert.ok(Object.isFrozen(seen.params));
    assert.equal(seen.context.event.execution_id, "exec-1");
    assert.equal(seen.context.settings.runtime, "nodejs22.x");
    assert.equal(seen.remaining, 54_321);
  });

  it("uses KAIROS_RUN_RECORD_TTL_DAYS for expires_at", async () => {
    const { handler, documentClient } = harness({ env: { ...ENV, KAIROS_RUN_RECORD_TTL_DAYS: "7" } });
    await handler(EVENT, INVOCATION);
    assert.equal(documentClient.put.Item.expires_at, NOW_SECONDS + 7 * DAY_SECONDS);
  });
});

describe("a run that cannot start", () => {
  it("records an unknown task_type as a permanent failure naming the registered types", async () => {
    const { handler, documentClient } = harness();
    const response = await handler({ ...EVENT, task_type: "simple_task_9" }, INVOCATION);
    const message = "unknown task_type 'simple_task_9'; registered: simple_task_1, simple_task_2";
    assert.deepEqual(response.error, { type: "UnknownTaskType", message });
    assert.equal(documentClient.put.Item.task_type, "simple_task_9");
    assert.deepEqual(documentClient.updated, {
      ...documentClient.updated,
      status: "FAILED",
      error_type: "UnknownTaskType",
      error_message: message,
      error_kind: "permanent",
      detail: {},
    });
  });

  it("records params that do not fit the schema as InvalidParams", async () => {
    const { handler, documentClient } = harness();
    const response = await handler({ ...EVENT, params: { label: 5, lable: "typo" } }, INVOCATION);
    assert.equal(response.status, "FAILED");
    assert.equal(
      response.error.message,
      "params do not fit task_type 'simple_task_1': label: must be a string; lable: unknown property (allowed: label)",
    );
    assert.equal(documentClient.updated.error_type, "InvalidParams");
    assert.equal(documentClient.updated.error_kind, "permanent");
  });

  it("records an invalid event under the identity it carried", async () => {
    const { handler, documentClient } = harness();
    const response = await handler({ ...EVENT, scheduled_time: "soon", attempt: "0" }, INVOCATION);
    assert.equal(response.error.type, "InvalidEvent");
    assert.equal(
      response.error.message,
      "scheduled_time: must be an ISO 8601 date-time string; attempt: must be an integer >= 1 (or its decimal string)",
    );
    // No usable scheduled time: the slot is the time the delivery arrived.
    assert.equal(documentClient.put.Item.sk, "RUN#2024-05-01T09:30:01Z#exec-1#1");
    assert.equal(documentClient.put.Item.pk, "TASK#nightly");
    assert.equal(documentClient.updated.error_kind, "permanent");
  });

  it("records an event with no identity under unknown-task and the request id", async () => {
    const { handler, documentClient, logs } = harness();
    const response = await handler("not an event", INVOCATION);
    assert.equal(response.task, "unknown-task");
    assert.deepEqual(response.error, { type: "InvalidEvent", message: "event: must be an object" });
    assert.equal(documentClient.put.Item.pk, "TASK#unknown-task");
    assert.equal(documentClient.put.Item.task_type, "unknown");
    assert.equal(documentClient.put.Item.execution_id, "req-1");
    assert.equal(logs().at(-1).correlation_id, "req-1");
  });
});

describe("a shared function (KAIROS_TASKS)", () => {
  const SHARED_ENV = { ...ENV, KAIROS_TASKS: JSON.stringify(["node-a", "node-b"]) };

  it("runs an event of one of its tasks under that task's name", async () => {
    let ran = false;
    const { handler, documentClient } = harness({ registry: registryWith(async () => { ran = true; }), env: SHARED_ENV });
    const response = await handler(testEvent({ task: "node-b" }), INVOCATION);
    assert.equal(ran, true);
    assert.equal(response.task, "node-b");
    assert.equal(response.status, "SUCCEEDED");
    assert.equal(documentClient.put.Item.pk, "TASK#node-b");
  });

  it("refuses an event naming another task, recording it under its first task without running it", async () => {
    let ran = false;
    const { handler, documentClient } = harness({ registry: registryWith(async () => { ran = true; }), env: SHARED_ENV });
    const response = await handler(testEvent({ task: "someone-else" }), INVOCATION);
    const message = "this shared function runs tasks 'node-a', 'node-b'; the event names 'someone-else'";
    assert.equal(ran, false);
    assert.equal(response.task, "node-a");
    assert.deepEqual(response.error, { type: "InvalidEvent", message });
    assert.equal(documentClient.put.Item.pk, "TASK#node-a");
    assert.equal(documentClient.updated.error_kind, "permanent");
  });
});

describe("a function with its own task (KAIROS_TASK)", () => {
  const OWN_ENV = { ...ENV, KAIROS_TASK: "python-task-1" };

  it("records an event naming another task under its own task, as a permanent InvalidEvent, without running it", async () => {
    let ran = false;
    const { handler, documentClient } = harness({ registry: registryWith(async () => { ran = true; }), env: OWN_ENV });
    const response = await handler(testEvent({ task: "someone-else" }), INVOCATION);
    const message = "this function runs task 'python-task-1'; the event names 'someone-else'";
    assert.equal(ran, false);
    assert.equal(response.task, "python-task-1");
    assert.equal(response.status, "FAILED");
    assert.deepEqual(response.error, { type: "InvalidEvent", message });
    assert.equal(documentClient.put.Item.pk, "TASK#python-task-1");
    assert.equal(documentClient.put.Item.task, "python-task-1");
    assert.equal(documentClient.put.Item.gsi1sk, "2024-05-01T09:30:01.123Z#python-task-1");
    // The rest of the event's identity is kept: the slot is the scheduled one.
    assert.equal(documentClient.put.Item.sk, SK);
    assert.equal(documentClient.put.Item.task_type, "test_task");
    assert.deepEqual(documentClient.commands[1].input.Key, { pk: "TASK#python-task-1", sk: SK });
    assert.deepEqual(documentClient.updated, {
      ...documentClient.updated,
      status: "FAILED",
      error_type: "InvalidEvent",
      error_message: message,
      error_kind: "permanent",
    });
  });

  it("records an invalid event under its own task rather than the one the event carried", async () => {
    const { handler, documentClient } = harness({ env: OWN_ENV });
    const response = await handler({ ...EVENT, scheduled_time: "soon" }, INVOCATION);
    assert.equal(response.task, "python-task-1");
    assert.equal(response.error.type, "InvalidEvent");
    assert.equal(response.error.message, "scheduled_time: must be an ISO 8601 date-time string");
    assert.equal(documentClient.put.Item.pk, "TASK#python-task-1");
    assert.equal(documentClient.put.Item.execution_id, "exec-1");
    assert.equal(documentClient.updated.error_kind, "permanent");
  });

  it("records an event with no identity at all under its own task", async () => {
    const { handler, documentClient } = harness({ env: OWN_ENV });
    const response = await handler({ garbage: true }, INVOCATION);
    assert.equal(response.task, "python-task-1");
    assert.equal(documentClient.put.Item.pk, "TASK#python-task-1");
    assert.equal(documentClient.put.Item.task_type, "unknown");
    assert.equal(documentClient.put.Item.execution_id, "req-1");
  });

  it("runs an event naming its own task as usual", async () => {
    const { handler, documentClient } = harness({ env: { ...ENV, KAIROS_TASK: "nightly" } });
    const response = await handler(EVENT, INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
    assert.equal(documentClient.put.Item.pk, "TASK#nightly");
  });

  it("quotes the names in the message as Python's repr does", () => {
    assert.equal(pyRepr("nightly"), "'nightly'");
    assert.equal(pyRepr("it's"), `"it's"`);
    assert.equal(pyRepr(`it's "x"`), `'it\\'s "x"'`);
    assert.equal(pyRepr("a\\b\n\u0001"), "'a\\\\b\\n\\x01'");
  });
});

describe("a task that fails or skips", () => {
  it("records a skip as SKIPPED with the reason in detail", async () => {
    const registry = registryWith(async () => {
      throw new TaskSkipped("market closed", { detail: { day: "2024-05-01" } });
    });
    const { handler, documentClient, metrics } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.equal(response.status, "SKIPPED");
    assert.equal(response.error, undefined);
    assert.deepEqual(documentClient.updated.detail, { reason: "market closed", day: "2024-05-01" });
    assert.equal(documentClient.updated.error_type, undefined);
    assert.equal(metrics()[0].RunsSkipped, 1);
  });

  it("keeps the skip's reason even if its detail has a reason of its own", async () => {
    const registry = registryWith(async () => {
      throw new TaskSkipped("market closed", { detail: { reason: "overridden?", day: "2024-05-01" } });
    });
    const { handler, documentClient } = harness({ registry });
    await handler(testEvent(), INVOCATION);
    assert.deepEqual(documentClient.updated.detail, { day: "2024-05-01", reason: "market closed" });
  });

  it("records a transient failure, then rejects so that Lambda retries", async () => {
    const registry = registryWith(async () => {
      throw new TransientTaskError("source timed out", { detail: { source: "x" } });
    });
    const { handler, documentClient, metrics, logs } = harness({ registry });
    await assert.rejects(handler(testEvent(), INVOCATION), (error) => {
      assert.ok(error instanceof TaskRunFailed);
      assert.equal(error.message, "nightly: TransientTaskError: source timed out");
      assert.equal(error.result.status, "FAILED");
      return true;
    });
    assert.equal(documentClient.updated.status, "FAILED");
    assert.equal(documentClient.updated.error_type, "TransientTaskError");
    assert.equal(documentClient.updated.error_message, "source timed out");
    assert.equal(documentClient.updated.error_kind, "transient");
    assert.deepEqual(documentClient.updated.detail, { source: "x" });
    assert.equal(metrics()[0].RunsFailed, 1);
    assert.ok(logs().some((record) => record.message === "task failed" && record.error.name === "TransientTaskError"));
  });

  it("counts a transient failure as RunsRetried only when Lambda will invoke again", async () => {
    const registry = registryWith(async () => {
      throw new TransientTaskError("source timed out");
    });
    const env = { ...ENV, KAIROS_LAMBDA_RETRY_ATTEMPTS: "2" };
    /** The record as earlier deliveries left it: `owner` now, `before` moved aside. */
    const earlier = (owner, ...before) => (command) => {
      if (command.constructor.name === "PutCommand") throw conditionFailed();
      if (command.constructor.name === "GetCommand") {
        const previous = before.map((requestId) => ({ status: "FAILED", request_id: requestId }));
        return { Item: { pk: "TASK#nightly", sk: SK, status: "FAILED", request_id: owner, deliveries: before.length + 1, previous_outcomes: previous } };
      }
      return undefined;
    };
    const cases = [
      ["Lambda's first attempt", env, undefined, true],
      ["its second (a retry keeps the request id)", env, earlier("req-1"), true],
      ["its third and last", env, earlier("req-1", "req-1"), false],
      ["a duplicate delivery's first attempt", env, earlier("req-0", "req-0"), true],
      ["an event too old for the retry's delay", { ...env, KAIROS_MAX_EVENT_AGE_SECONDS: "60" }, undefined, false],
    ];
    for (const [label, caseEnv, onSend, retried] of cases) {
      const { handler, metrics } = harness({ registry, env: caseEnv, onSend });
      const failure = await handler(testEvent(), INVOCATION).then(
        () => assert.fail("the handler resolved"),
        (error) => error,
      );
      assert.equal(failure.result.retried, retried, label);
      assert.equal(metrics()[0].RunsRetried, retried ? 1 : undefined, label);
      assert.equal(metrics()[0].RunsFailed, retried ? undefined : 1, label);
    }
  });

  it("treats a connection reset as transient", async () => {
    const registry = registryWith(async () => {
      throw Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    });
    const { handler, documentClient } = harness({ registry });
    await assert.rejects(handler(testEvent(), INVOCATION), TaskRunFailed);
    assert.equal(documentClient.updated.error_kind, "transient");
  });

  it("returns a permanent failure instead of rejecting", async () => {
    const registry = registryWith(async () => {
      throw new PermanentTaskError("no such symbol", { detail: { symbol: "XYZ" } });
    });
    const { handler, documentClient } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.deepEqual(response.error, { type: "PermanentTaskError", message: "no such symbol" });
    assert.equal(documentClient.updated.error_kind, "permanent");
    assert.deepEqual(documentClient.updated.detail, { symbol: "XYZ" });
  });

  it("treats an unexpected error as a permanent failure (a bug)", async () => {
    const registry = registryWith(async (params) => params.missing.field);
    const { handler, documentClient } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.equal(response.error.type, "TypeError");
    assert.equal(documentClient.updated.error_kind, "permanent");
    assert.deepEqual(documentClient.updated.detail, {});
  });

  it("describes a thrown value that is not an Error", async () => {
    const registry = registryWith(async () => {
      throw { reason: "odd" };
    });
    const { handler } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.deepEqual(response.error, { type: "Error", message: "non-Error value thrown: { reason: 'odd' }" });
  });

  it("stores at most 1000 characters of the message, cutting between code points", async () => {
    const message = `${"x".repeat(999)}😀tail`;
    const registry = registryWith(async () => {
      throw new Error(message);
    });
    const { handler, documentClient } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.equal(documentClient.updated.error_message, `${"x".repeat(999)}😀`);
    assert.equal(response.error.message, message);
  });

  it("fails a run whose task reports malformed counts", async () => {
    const registry = registryWith(async () => ({ itemsWritten: "5" }));
    const { handler, documentClient } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.equal(response.status, "FAILED");
    assert.equal(response.error.type, "TypeError");
    assert.match(response.error.message, /itemsWritten='5'/);
    assert.equal(documentClient.updated.items_written, 0);
  });
});

describe("a redelivered event", () => {
  const EARLIER = {
    pk: "TASK#nightly",
    sk: SK,
    status: "FAILED",
    request_id: "req-0",
    started_at: "2024-05-01T09:29:01.000Z",
    finished_at: "2024-05-01T09:29:02.500Z",
    duration_ms: 1500,
    error_type: "TransientTaskError",
    error_message: "source timed out",
    error_kind: "transient",
    deliveries: 1,
    detail: { source: "x" },
  };

  /** The record already exists: the conditional put fails and the get returns `earlier`. */
  const redelivery = (earlier) => (command) => {
    if (command.constructor.name === "PutCommand") throw conditionFailed();
    if (command.constructor.name === "GetCommand") return earlier === undefined ? {} : { Item: structuredClone(earlier) };
    return undefined;
  };

  it("counts the delivery and keeps the earlier outcome instead of overwriting the record", async () => {
    const { handler, documentClient } = harness({ onSend: redelivery(EARLIER) });
    const response = await handler(EVENT, INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
    assert.deepEqual(documentClient.names, ["PutCommand", "GetCommand", "UpdateCommand", "UpdateCommand"]);
    assert.equal(documentClient.put.Item.deliveries, 1);

    assert.deepEqual(documentClient.commands[1].input, {
      TableName: "TaskRuns",
      Key: { pk: "TASK#nightly", sk: SK },
      ConsistentRead: true,
    });
    assert.deepEqual(documentClient.commands[2].input, {
      TableName: "TaskRuns",
      Key: { pk: "TASK#nightly", sk: SK },
      UpdateExpression:
        "SET #status = :status, #request_id = :request_id, #started_at = :started_at, #gsi1pk = :gsi1pk, #gsi1sk = :gsi1sk, " +
        "#expires_at = :expires_at, #previous = list_append(if_not_exists(#previous, :empty), :outcome), #deliveries = :next " +
        "REMOVE #finished_at, #duration_ms, #items_written, #items_rejected, #detail, #error_type, #error_message, #error_kind, " +
        "#rerun, #replaced",
      ConditionExpression: "attribute_exists(#pk) AND #deliveries = :seen_deliveries AND #status = :seen_status",
      ExpressionAttributeNames: {
        "#status": "status",
        "#request_id": "request_id",
        "#started_at": "started_at",
        "#gsi1pk": "gsi1pk",
        "#gsi1sk": "gsi1sk",
        "#expires_at": "expires_at",
        "#finished_at": "finished_at",
        "#duration_ms": "duration_ms",
        "#items_written": "items_written",
        "#items_rejected": "items_rejected",
        "#detail": "detail",
        "#error_type": "error_type",
        "#error_message": "error_message",
        "#error_kind": "error_kind",
        "#rerun": "rerun",
        "#replaced": "replaced",
        "#pk": "pk",
        "#previous": "previous_outcomes",
        "#deliveries": "deliveries",
      },
      ExpressionAttributeValues: {
        ":status": "STARTED",
        ":request_id": "req-1",
        ":started_at": "2024-05-01T09:30:01.123Z",
        ":gsi1pk": "RUNDATE#2024-05-01",
        ":gsi1sk": "2024-05-01T09:30:01.123Z#nightly",
        ":expires_at": NOW_SECONDS + 90 * DAY_SECONDS,
        ":seen_deliveries": 1,
        ":seen_status": "FAILED",
        ":empty": [],
        ":outcome": [
          {
            status: "FAILED",
            request_id: "req-0",
            started_at: "2024-05-01T09:29:01.000Z",
            finished_at: "2024-05-01T09:29:02.500Z",
            error_type: "TransientTaskError",
            error_message: "source timed out",
          },
        ],
        ":next": 2,
      },
    });
    // The new delivery's own outcome is then set as usual.
    assert.equal(documentClient.updated.status, "SUCCEEDED");
  });

  it("keeps only the fields an earlier delivery got to write", async () => {
    // A delivery that died before finishing (a timeout, say) left the record STARTED.
    const { handler, documentClient } = harness({
      onSend: redelivery({ pk: "TASK#nightly", sk: SK, status: "STARTED", request_id: "req-0", started_at: "2024-05-01T09:29:01.000Z" }),
    });
    await handler(EVENT, INVOCATION);
    assert.deepEqual(documentClient.commands[2].input.ExpressionAttributeValues[":outcome"], [
      { status: "STARTED", request_id: "req-0", started_at: "2024-05-01T09:29:01.000Z" },
    ]);
  });

  it("puts the record afresh if the earlier one is gone by the time it is read (expired, say)", async () => {
    let puts = 0;
    const { handler, documentClient } = harness({
      onSend: (command) => {
        if (command.constructor.name === "PutCommand" && (puts += 1) === 1) throw conditionFailed();
        if (command.constructor.name === "GetCommand") return {};
        return undefined;
      },
    });
    const response = await handler(EVENT, INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
    assert.deepEqual(documentClient.names, ["PutCommand", "GetCommand", "PutCommand", "UpdateCommand"]);
    assert.equal(documentClient.commands[2].input.Item.deliveries, 1);
  });

  it("reads again and retries when another delivery restarted the record between its read and its write", async () => {
    let gets = 0;
    let restarts = 0;
    const { handler, documentClient } = harness({
      onSend: (command) => {
        if (command.constructor.name === "PutCommand") throw conditionFailed();
        if (command.constructor.name === "GetCommand") {
          gets += 1;
          return { Item: { ...structuredClone(EARLIER), deliveries: gets, request_id: `req-${gets - 1}` } };
        }
        if (command.input.ConditionExpression?.includes(":seen_deliveries") && (restarts += 1) === 1) throw conditionFailed();
        return undefined;
      },
    });
    const response = await handler(EVENT, INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
    assert.deepEqual(documentClient.names, [
      "PutCommand", "GetCommand", "UpdateCommand", // read, then lost the race
      "PutCommand", "GetCommand", "UpdateCommand", // read again, restarted
      "UpdateCommand", // finished
    ]);
    const retried = documentClient.commands[5].input.ExpressionAttributeValues;
    assert.deepEqual([retried[":seen_deliveries"], retried[":next"], retried[":outcome"][0].request_id], [2, 3, "req-1"]);
  });

  it("gives up with RunRecordContentionError, without running the task, when it never gets a quiet moment", async () => {
    let ran = false;
    const { handler, documentClient } = harness({
      registry: registryWith(async () => { ran = true; }),
      onSend: (command) => {
        if (command.constructor.name === "GetCommand") return { Item: structuredClone(EARLIER) };
        throw conditionFailed();
      },
    });
    await assert.rejects(handler(testEvent(), INVOCATION), { name: "RunRecordContentionError", message: /5 other deliveries changed the run record/ });
    assert.equal(ran, false);
    assert.equal(documentClient.names.filter((name) => name === "UpdateCommand").length, RESTART_ATTEMPTS);
  });

  it("adds its outcome to previous_outcomes, and leaves the status alone, when another delivery took over meanwhile", async () => {
    const { handler, documentClient } = harness({
      onSend: (command) => {
        if (command.input.ConditionExpression === "#request_id = :request_id AND #started_at = :started_at") throw conditionFailed();
        return undefined;
      },
    });
    const response = await handler(EVENT, INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
    assert.deepEqual(documentClient.names, ["PutCommand", "UpdateCommand", "UpdateCommand"]);
    const owned = documentClient.commands[1].input.ExpressionAttributeValues;
    assert.deepEqual([owned[":request_id"], owned[":started_at"]], ["req-1", "2024-05-01T09:30:01.123Z"]);
    assert.deepEqual(documentClient.commands[2].input, {
      TableName: "TaskRuns",
      Key: { pk: "TASK#nightly", sk: SK },
      UpdateExpression: "SET #previous = list_append(if_not_exists(#previous, :empty), :outcome)",
      ExpressionAttributeNames: { "#previous": "previous_outcomes" },
      ExpressionAttributeValues: {
        ":empty": [],
        ":outcome": [
          {
            status: "SUCCEEDED",
            finished_at: "2024-05-01T09:30:01.123Z",
            request_id: "req-1",
            started_at: "2024-05-01T09:30:01.123Z",
            finished_after_redelivery: true,
          },
        ],
      },
    });
  });

  it("re-reads when the owner finished between its read and its write, so the outcome kept is the final one", async () => {
    const owner = { pk: "TASK#nightly", sk: SK, status: "STARTED", request_id: "req-0", started_at: "2024-05-01T09:29:01.000Z", deliveries: 1 };
    const finished = { ...owner, status: "SUCCEEDED", finished_at: "2024-05-01T09:30:02.000Z" };
    let gets = 0;
    const { handler, documentClient } = harness({
      onSend: (command) => {
        if (command.constructor.name === "PutCommand") throw conditionFailed();
        if (command.constructor.name === "GetCommand") return { Item: structuredClone((gets += 1) === 1 ? owner : finished) };
        const { ConditionExpression, ExpressionAttributeValues } = command.input;
        // DynamoDB's side of the condition: the owner's finish has set SUCCEEDED by the first write.
        if (ConditionExpression?.includes(":seen_status") && ExpressionAttributeValues[":seen_status"] !== "SUCCEEDED") {
          throw conditionFailed();
        }
        return undefined;
      },
    });
    await handler(EVENT, INVOCATION);
    const restart = documentClient.commands.findLast((command) => command.input.ConditionExpression?.includes(":seen_status"));
    assert.deepEqual(restart.input.ExpressionAttributeValues[":outcome"], [
      { status: "SUCCEEDED", request_id: "req-0", started_at: "2024-05-01T09:29:01.000Z", finished_at: "2024-05-01T09:30:02.000Z" },
    ]);
  });

  it("does not ask for a retry of a delivery that another delivery took over while it ran", async () => {
    const registry = registryWith(async () => {
      throw new TransientTaskError("source timed out");
    });
    const { handler, documentClient, metrics } = harness({
      registry,
      env: { ...ENV, KAIROS_LAMBDA_RETRY_ATTEMPTS: "2" },
      onSend: (command) => {
        if (command.input.ConditionExpression === "#request_id = :request_id AND #started_at = :started_at") throw conditionFailed();
        return undefined;
      },
    });
    const response = await handler(testEvent(), INVOCATION); // resolves: no TaskRunFailed, so no retry
    assert.equal(response.superseded, true);
    assert.equal(response.retried, undefined);
    assert.equal(metrics()[0].RunsSuperseded, 1);
    assert.equal(metrics()[0].RunsFailed, undefined);
    assert.equal(documentClient.commands.at(-1).input.ExpressionAttributeValues[":outcome"][0].error_type, "TransientTaskError");
  });

  it("rejects without running the task if recording the redelivery fails", async () => {
    let ran = false;
    const { handler, documentClient } = harness({
      registry: registryWith(async () => { ran = true; }),
      onSend: (command) => {
        if (command.constructor.name === "PutCommand") throw conditionFailed();
        if (command.constructor.name === "UpdateCommand") {
          throw Object.assign(new Error("Rate exceeded"), { name: "ProvisionedThroughputExceededException" });
        }
        return { Item: EARLIER };
      },
    });
    await assert.rejects(handler(testEvent(), INVOCATION), { name: "ProvisionedThroughputExceededException" });
    assert.equal(ran, false);
    assert.deepEqual(documentClient.names, ["PutCommand", "GetCommand", "UpdateCommand"]);
  });
});

describe("a large detail", () => {
  it("is replaced by a note naming its size and keys, and the run still finishes", async () => {
    const big = "é".repeat(20_000); // 40,000 bytes in UTF-8, though only 20,000 UTF-16 units
    const registry = registryWith(async () => ({ itemsWritten: 1, detail: { rows: big, zeta: 1, alpha: 2 } }));
    const { handler, documentClient } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
    assert.equal(documentClient.updated.status, "SUCCEEDED");
    assert.deepEqual(documentClient.updated.detail, {
      truncated: true,
      bytes: Buffer.byteLength(JSON.stringify({ rows: big, zeta: 1, alpha: 2 })),
      keys: ["alpha", "rows", "zeta"],
    });
  });

  it("is bounded for a failed run's detail too", async () => {
    const registry = registryWith(async () => {
      throw new PermanentTaskError("rejected", { detail: { response: "x".repeat(40_000) } });
    });
    const { handler, documentClient } = harness({ registry });
    await handler(testEvent(), INVOCATION);
    assert.equal(documentClient.updated.status, "FAILED");
    assert.equal(documentClient.updated.error_type, "PermanentTaskError");
    assert.deepEqual(documentClient.updated.detail, { truncated: true, bytes: 40_015, keys: ["response"] });
  });
});

describe("a detail with numbers JSON cannot hold", () => {
  it("stores NaN and Infinity as null, and the run still finishes", async () => {
    const registry = registryWith(async () => ({
      itemsWritten: 1,
      detail: { ratio: Number.NaN, limit: Number.POSITIVE_INFINITY, floor: Number.NEGATIVE_INFINITY, price: 1700.5, nested: [Number.NaN] },
    }));
    const { handler, documentClient } = harness({ registry });
    const response = await handler(testEvent(), INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
    assert.equal(documentClient.updated.status, "SUCCEEDED");
    assert.deepEqual(documentClient.updated.detail, { ratio: null, limit: null, floor: null, price: 1700.5, nested: [null] });
  });
});

describe("table access", () => {
  let handedOut;
  const tableTask = (tables) =>
    registryWith(async (_params, context) => {
      handedOut = context.clients.table("market_data");
    }, { tables });

  it("hands a declared table's name and the shared client to the task", async () => {
    const { handler, documentClient } = harness({
      registry: tableTask({ market_data: "read" }),
      env: { ...ENV, KAIROS_MARKET_DATA_TABLE: "MarketData" },
    });
    await handler(testEvent(), INVOCATION);
    assert.equal(handedOut.tableName, "MarketData");
    assert.equal(handedOut.client, documentClient);
  });

  it("fails a task that uses a table it did not declare", async () => {
    const { handler } = harness({ registry: tableTask({}), env: { ...ENV, KAIROS_MARKET_DATA_TABLE: "MarketData" } });
    const response = await handler(testEvent(), INVOCATION);
    assert.equal(response.error.type, "UndeclaredTableError");
    assert.match(response.error.message, /table 'market_data' is not declared by task_type 'test_task'/);
  });

  it("fails a task whose declared table is not configured", async () => {
    const { handler } = harness({ registry: tableTask({ market_data: "read" }) });
    const response = await handler(testEvent(), INVOCATION);
    assert.deepEqual(response.error, {
      type: "MissingTableError",
      message: "table 'market_data' is not configured (set KAIROS_MARKET_DATA_TABLE)",
    });
  });
});

describe("when run records cannot be written", () => {
  it("rejects without running the task if the TaskRuns table is not configured", async () => {
    let ran = false;
    const { handler, documentClient } = harness({ registry: registryWith(async () => { ran = true; }), env: {} });
    await assert.rejects(handler(testEvent(), INVOCATION), { name: "MissingTableError" });
    assert.equal(ran, false);
    assert.equal(documentClient.commands.length, 0);
  });

  it("rejects without running the task if the STARTED record fails", async () => {
    let ran = false;
    const { handler, documentClient } = harness({
      registry: registryWith(async () => { ran = true; }),
      onSend: () => {
        throw Object.assign(new Error("Requested resource not found"), { name: "ResourceNotFoundException" });
      },
    });
    await assert.rejects(handler(testEvent(), INVOCATION), { name: "ResourceNotFoundException" });
    assert.equal(ran, false);
    // Only a failed condition means a redelivery.
    assert.deepEqual(documentClient.names, ["PutCommand"]);
  });

  it("refuses to start with a KAIROS_LAMBDA_RETRY_ATTEMPTS Lambda does not allow", () => {
    for (const attempts of ["3", "-1", "1.5", "two"]) {
      assert.throws(() => harness({ env: { ...ENV, KAIROS_LAMBDA_RETRY_ATTEMPTS: attempts } }), RangeError);
    }
  });

  it("refuses to start with a KAIROS_MAX_EVENT_AGE_SECONDS Lambda does not allow", () => {
    for (const age of ["59", "21601", "90.5", "soon"]) {
      assert.throws(() => harness({ env: { ...ENV, KAIROS_MAX_EVENT_AGE_SECONDS: age } }), RangeError);
    }
  });

  it("refuses to start with an invalid KAIROS_RUN_RECORD_TTL_DAYS", () => {
    for (const ttl of ["0", "abc", "1.5"]) {
      assert.throws(() => harness({ env: { ...ENV, KAIROS_RUN_RECORD_TTL_DAYS: ttl } }), RangeError);
    }
  });
});

describe("a past slot (KAIROS_LATE_DELIVERY_LIMIT_SECONDS)", () => {
  const LATE_ENV = { ...ENV, KAIROS_LATE_DELIVERY_LIMIT_SECONDS: "900" };
  const daysBefore = (days) => new Date(NOW.getTime() - days * DAY_SECONDS * 1000).toISOString();

  it("is refused for a task type that cannot be backfilled: SKIPPED as PastSlotRefused, the task never runs", async () => {
    let ran = false;
    const registry = registryWith(async () => {
      ran = true;
    });
    const { handler, documentClient, metrics } = harness({ registry, env: LATE_ENV });
    const response = await handler(testEvent({ scheduled_time: daysBefore(3) }), INVOCATION);
    assert.equal(ran, false);
    assert.equal(response.status, "SKIPPED");
    assert.equal(documentClient.updated.status, "SKIPPED");
    assert.equal(documentClient.updated.error_type, "PastSlotRefused");
    assert.equal(documentClient.updated.error_kind, "permanent");
    assert.match(documentClient.updated.detail.reason, /cannot run for a past slot: .* over the late-delivery limit of 900 s/);
    assert.equal(metrics()[0].RunsSkipped, 1);
  });

  it("runs for a task type declared backfill: true", async () => {
    const registry = registryWith(async () => ({ itemsWritten: 1 }), { backfill: true });
    const { handler, documentClient } = harness({ registry, env: LATE_ENV });
    const response = await handler(testEvent({ scheduled_time: daysBefore(30) }), INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
    assert.equal(documentClient.updated.error_type, undefined);
  });

  it("still runs a late delivery within the limit", async () => {
    const registry = registryWith(async () => ({ itemsWritten: 1 }));
    const { handler } = harness({ registry, env: LATE_ENV });
    const response = await handler(testEvent({ scheduled_time: new Date(NOW.getTime() - 899_000).toISOString() }), INVOCATION);
    assert.equal(response.status, "SUCCEEDED");
  });

  it("refuses a non-boolean backfill declaration", () => {
    assert.throws(() => registryWith(async () => {}, { backfill: "yes" }), /backfill must be true or false/);
  });

  it("declares the shipped types as the Python registry does", () => {
    const registry = defaultRegistry();
    assert.deepEqual([registry.get("simple_task_1").backfill, registry.get("simple_task_2").backfill], [false, true]);
  });
});

describe("KAIROS_LATE_DELIVERY_LIMIT_SECONDS", () => {
  it("fails the cold start when malformed, as the Python runtime does", async () => {
    const { readSettings } = await import("../src/settings.mjs");
    for (const value of ["10", "soon", "-5"]) {
      assert.throws(() => readSettings({ KAIROS_LATE_DELIVERY_LIMIT_SECONDS: value }), /KAIROS_LATE_DELIVERY_LIMIT_SECONDS must be an integer >= 60/);
    }
  });
});
