// The run-record and slot-claim scenarios both runtimes replay (tests/contract/run_records.json), against an
// embedded DynamoDB (dynalite on 127.0.0.1); tests/runtime/test_run_record_contract.py replays the
// same file against the Python runtime on moto, asserting the same stored records.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { GetCommand } from "@aws-sdk/lib-dynamodb";

import { parseScheduledEvent } from "../src/events.mjs";
import { RunRecordContentionError, RunRecorder, runKey } from "../src/runs.mjs";
import { SlotLedger, declinedResponse, runFields } from "../src/slots.mjs";
import { TASK_RUNS, TABLES } from "../src/tables.mjs";
import { useDynalite } from "./dynalite.mjs";

const SCENARIOS = JSON.parse(readFileSync(new URL("../../../tests/contract/run_records.json", import.meta.url), "utf8"));
const DESIGN = TABLES[TASK_RUNS];
const { event: EVENT } = parseScheduledEvent(SCENARIOS.event);
const SCHEDULED_MS = Date.parse(SCENARIOS.event.scheduled_time);
const at = (seconds) => new Date(SCHEDULED_MS + seconds * 1000);

/** dynamo.freshTable(): one TaskRuns table per scenario, as every scenario writes the same record key. */
const dynamo = useDynalite("scenario");

/**
 * A document client where, after each of this delivery's reads, one rival delivery restarts the
 * record before this delivery's conditional write (what another Lambda instance can do).
 */
function rivalsBetweenReadAndWrite(tableName, rivals) {
  const waiting = [...rivals];
  return {
    async send(command) {
      const response = await dynamo.documentClient.send(command);
      if (command instanceof GetCommand && waiting.length > 0) {
        const rival = waiting.shift();
        await new RunRecorder({ documentClient: dynamo.documentClient, tableName, ttlDays: SCENARIOS.ttl_days }).start(EVENT, {
          runtime: SCENARIOS.runtime,
          requestId: rival.request_id,
          startedAt: at(rival.at),
        });
      }
      return response;
    },
  };
}

async function replay(steps) {
  const tableName = await dynamo.freshTable();
  const deliveries = new Map();
  const { pk, sk } = SCENARIOS.record_base;
  for (const [index, step] of steps.entries()) {
    const where = `step ${index + 1}: ${JSON.stringify(step)}`;
    if ("start" in step) {
      const recorder = new RunRecorder({
        documentClient: rivalsBetweenReadAndWrite(tableName, step.rivals ?? []),
        tableName,
        ttlDays: SCENARIOS.ttl_days,
      });
      const started = recorder.start(EVENT, { runtime: SCENARIOS.runtime, requestId: step.request_id, startedAt: at(step.at) });
      if (step.error === "contention") {
        await assert.rejects(started, RunRecordContentionError, where);
        continue;
      }
      const key = await started;
      deliveries.set(step.start, { recorder, key });
      assert.equal(recorder.lambdaAttempt(key), step.lambda_attempt, where);
    } else if ("finish" in step) {
      const { recorder, key } = deliveries.get(step.finish);
      const { owned, fallback } = await recorder.finish(key, {
        status: step.status,
        finishedAt: at(step.at),
        durationMs: 1000,
        itemsWritten: step.items_written ?? 0,
        itemsRejected: 0,
        detail: step.detail,
        error: step.error,
      });
      assert.equal(owned, step.owned, where);
      assert.equal(fallback, null, `${where}: the outcome was recorded, not a fallback`);
    } else {
      const { Item } = await dynamo.documentClient.send(
        new GetCommand({ TableName: tableName, Key: { [DESIGN.partitionKey]: pk, [DESIGN.sortKey]: sk }, ConsistentRead: true }),
      );
      assert.deepEqual(Item, { ...SCENARIOS.record_base, ...step.expect_record }, where);
    }
  }
}

describe("the shared run-record scenarios", () => {
  for (const scenario of SCENARIOS.scenarios) {
    it(scenario.name, async () => {
      await replay(scenario.steps);
    });
  }
});

/** The scenario's event as a step delivers it: its own execution id, and rerun when it says so. */
function delivered(step) {
  const { event, issues } = parseScheduledEvent({ ...SCENARIOS.event, execution_id: step.execution_id, rerun: step.rerun ?? false });
  assert.equal(issues, null);
  return event;
}

async function replaySlots(steps) {
  const tableName = await dynamo.freshTable();
  const options = { documentClient: dynamo.documentClient, tableName, ttlDays: SCENARIOS.ttl_days };
  const claims = new Map();
  for (const [index, step] of steps.entries()) {
    const where = `step ${index + 1}: ${JSON.stringify(step)}`;
    if ("deliver" in step) {
      const event = delivered(step);
      const key = runKey(event);
      const claim = await new SlotLedger(options).claim(event, {
        runId: key.sk,
        requestId: step.request_id,
        executionId: event.execution_id,
        now: at(step.at),
        leaseMs: (step.lease_s ?? SCENARIOS.lease_s) * 1000,
      });
      if (step.expect === "claimed") {
        assert.equal(claim.claimed, true, where);
        assert.deepEqual(claim.replaced ?? undefined, step.replaced, where);
        const recorder = new RunRecorder(options);
        await recorder.start(event, { runtime: SCENARIOS.runtime, requestId: step.request_id, startedAt: at(step.at), claimFields: runFields(claim) });
        claims.set(step.deliver, { claim, recorder, key });
      } else {
        assert.equal(claim.claimed, false, where);
        assert.equal(claim.reason, step.expect, where);
        assert.equal(claim.ownInvocation, step.own_invocation ?? false, where);
        assert.deepEqual(declinedResponse(claim, SCENARIOS.event.task), step.expect_response, where);
      }
    } else if ("settle" in step) {
      const { claim, recorder, key } = claims.get(step.settle);
      await recorder.finish(key, { status: step.status, finishedAt: at(step.at), durationMs: 1000, itemsWritten: 0, itemsRejected: 0, error: step.error });
      const result = { task: SCENARIOS.event.task, status: step.status, run_id: key.sk, duration_ms: 1000, items_written: 0, items_rejected: 0 };
      if (step.error) result.error = { type: step.error.type, message: step.error.message };
      assert.equal(await new SlotLedger(options).settle(claim, { status: step.status, result, finishedAt: at(step.at) }), true, where);
    } else if ("expect_slot" in step) {
      const { pk, sk } = SCENARIOS.slot_base;
      const { Item } = await dynamo.documentClient.send(
        new GetCommand({ TableName: tableName, Key: { [DESIGN.partitionKey]: pk, [DESIGN.sortKey]: sk }, ConsistentRead: true }),
      );
      assert.deepEqual(Item, { ...SCENARIOS.slot_base, ...step.expect_slot }, where);
    } else {
      const expected = { ...SCENARIOS.record_base, ...step.expect_record };
      const { Item } = await dynamo.documentClient.send(
        new GetCommand({ TableName: tableName, Key: { [DESIGN.partitionKey]: expected.pk, [DESIGN.sortKey]: expected.sk }, ConsistentRead: true }),
      );
      assert.deepEqual(Item, expected, where);
    }
  }
}

describe("the shared slot-claim scenarios", () => {
  for (const scenario of SCENARIOS.slot_scenarios) {
    it(scenario.name, async () => {
      await replaySlots(scenario.steps);
    });
  }
});
