import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { eventAsJson, fallbackEvent, parseScheduledEvent } from "../src/events.mjs";
import { recordingTask, refusal } from "../src/runner.mjs";
import { LATE_DELIVERY_LIMIT_ENV, TASKS_ENV, readSettings, refusesPastSlot } from "../src/settings.mjs";

// As EventBridge Scheduler delivers it: the context attributes substituted as strings.
const DELIVERED = {
  task: "nightly",
  task_type: "simple_task_1",
  params: { label: "x" },
  scheduled_time: "2024-05-01T09:30:00Z",
  execution_id: "exec-1",
  attempt: "1",
};

function parsed(overrides) {
  const { event, issues } = parseScheduledEvent({ ...DELIVERED, ...overrides });
  assert.equal(issues, null, `unexpected issues: ${issues}`);
  return event;
}

function issuesOf(raw) {
  const { event, issues } = parseScheduledEvent(raw);
  assert.equal(event, null);
  return issues;
}

describe("parseScheduledEvent", () => {
  it("parses a delivered event, coercing the attempt string to a number", () => {
    assert.deepEqual(parsed({}), {
      task: "nightly",
      task_type: "simple_task_1",
      params: { label: "x" },
      scheduled_time: new Date("2024-05-01T09:30:00Z"),
      execution_id: "exec-1",
      attempt: 1,
      rerun: false,
    });
    assert.equal(parsed({ attempt: "3" }).attempt, 3);
    assert.equal(parsed({ attempt: " 2 " }).attempt, 2);
    assert.equal(parsed({ attempt: 4 }).attempt, 4);
  });

  it("defaults attempt to 1 and params to {}", () => {
    const { attempt, params, ...rest } = DELIVERED;
    const { event } = parseScheduledEvent(rest);
    assert.equal(event.attempt, 1);
    assert.deepEqual(event.params, {});
  });

  it("reads scheduled_time in UTC, treating a time without offset as UTC", () => {
    const expectations = {
      "2024-05-01T09:30:00Z": "2024-05-01T09:30:00.000Z",
      "2024-05-01T09:30:00": "2024-05-01T09:30:00.000Z",
      "2024-05-01 09:30:00z": "2024-05-01T09:30:00.000Z",
      "2024-05-01T09:30Z": "2024-05-01T09:30:00.000Z",
      "2024-05-01T11:30:00.5+02:00": "2024-05-01T09:30:00.500Z",
      "2024-05-01T04:30:00.123456-0500": "2024-05-01T09:30:00.123Z",
      "2024-05-01": "2024-05-01T00:00:00.000Z",
    };
    for (const [text, iso] of Object.entries(expectations)) {
      assert.equal(parsed({ scheduled_time: text }).scheduled_time.toISOString(), iso, text);
    }
  });

  it("rejects scheduled times that are not valid ISO 8601 dates", () => {
    for (const bad of ["2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-05-01T24:00:00Z", "20240501T093000Z",
      "<aws.scheduler.scheduled-time>", "", 1714555800, null]) {
      assert.deepEqual(issuesOf({ ...DELIVERED, scheduled_time: bad }), ["scheduled_time: must be an ISO 8601 date-time string"], String(bad));
    }
  });

  it("rejects attempts that are not integers >= 1", () => {
    for (const bad of ["0", 0, -1, 1.5, "1.5", "abc", "", null, true]) {
      assert.equal(issuesOf({ ...DELIVERED, attempt: bad }).length, 1, String(bad));
    }
  });

  it("lists every problem, telling missing fields from malformed ones", () => {
    assert.deepEqual(issuesOf({ task: "", task_type: 7, params: [], attempt: "0" }), [
      "task: must be a task name ([a-z][a-z0-9-]{0,47})",
      "task_type: must be a string",
      "execution_id: is required",
      "params: must be an object",
      "scheduled_time: is required",
      "attempt: must be an integer >= 1 (or its decimal string)",
    ]);
    assert.deepEqual(issuesOf({ ...DELIVERED, params: null }), ["params: must be an object"]);
  });

  it("rejects an event that is not an object", () => {
    for (const raw of [null, undefined, "event", 3, [DELIVERED]]) {
      assert.deepEqual(issuesOf(raw), ["event: must be an object"]);
    }
  });
});

describe("fallbackEvent", () => {
  const now = new Date("2024-05-01T09:30:01.250Z");

  it("keeps the identity the raw event carried", () => {
    assert.deepEqual(fallbackEvent({ task: "nightly", task_type: "t", execution_id: "e", attempt: "9" }, { now, executionId: "req" }), {
      task: "nightly",
      task_type: "t",
      params: {},
      scheduled_time: now,
      execution_id: "e",
      attempt: 1,
      rerun: false,
    });
  });

  it("fills in what is missing", () => {
    for (const raw of [null, [], { task: "", task_type: 5 }]) {
      const event = fallbackEvent(raw, { now, executionId: "req" });
      assert.equal(event.task, "unknown-task");
      assert.equal(event.task_type, "unknown");
      assert.equal(event.execution_id, "req");
    }
  });

  it("takes the function's own task over the one the raw event carried", () => {
    const raw = { task: "nightly", task_type: "t", execution_id: "e" };
    assert.equal(fallbackEvent(raw, { now, executionId: "req", ownTask: "own" }).task, "own");
    assert.equal(fallbackEvent(null, { now, executionId: "req", ownTask: "own" }).task, "own");
    assert.equal(fallbackEvent(raw, { now, executionId: "req", ownTask: null }).task, "nightly");
  });
});

describe("eventAsJson", () => {
  it("writes scheduled_time as the Python runtime does: whole seconds, or microseconds when there is a fraction", () => {
    assert.deepEqual(eventAsJson(parsed({})), { ...DELIVERED, attempt: 1 });
    assert.equal(eventAsJson(parsed({ scheduled_time: "2024-05-01T09:30:00.5Z" })).scheduled_time, "2024-05-01T09:30:00.500000Z");
  });
});

// The forms both runtimes must read alike; tests/runtime/test_event_contract.py runs the same file.
describe("the scheduled-event contract shared with the Python runtime", () => {
  const cases = JSON.parse(readFileSync(new URL("../../../tests/contract/scheduled_events.json", import.meta.url), "utf8"));
  // {"$repeat": text, "times": n} and {"$nest": n} written out (see the file's "about").
  const expanded = (value) => {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
    if ("$repeat" in value) return value.$repeat.repeat(value.times);
    if ("$nest" in value) {
      let nested = {};
      for (let level = 1; level < value.$nest; level += 1) nested = { a: nested };
      return nested;
    }
    return Object.fromEntries(Object.entries(value).map(([key, member]) => [key, expanded(member)]));
  };
  const label = (change) => JSON.stringify(change).slice(0, 80);

  it("reads every accepted form as the Python runtime does", () => {
    for (const { change, scheduled_time, attempt, rerun = false } of cases.accepted) {
      const { event, issues } = parseScheduledEvent({ ...cases.delivered, ...expanded(change) });
      assert.equal(issues, null, `${label(change)}: ${issues}`);
      const written = eventAsJson(event);
      assert.deepEqual([written.scheduled_time, written.attempt], [scheduled_time, attempt], label(change));
      assert.equal(event.rerun, rerun, label(change));
      assert.equal(written.rerun, rerun ? true : undefined, `${label(change)}: only a rerun is written with it`);
    }
  });

  it("runs or refuses every late delivery as the Python runtime does", () => {
    for (const { backfill, limit_seconds: limit, lateness_seconds: latenessSeconds, runs } of cases.past_slot.cases) {
      const settings = readSettings(limit === null ? {} : { [LATE_DELIVERY_LIMIT_ENV]: String(limit) });
      assert.equal(refusesPastSlot(settings, { backfill, latenessSeconds }), !runs, JSON.stringify({ backfill, limit, latenessSeconds }));
    }
  });

  it("runs only the function's own tasks, recording a refused one where Python does", () => {
    for (const { env, task, recorded_under: recordedUnder, message } of cases.task_pinning.cases) {
      const settings = readSettings(env);
      assert.equal(refusal(settings, task), message, JSON.stringify({ env, task }));
      assert.equal(recordingTask(settings), recordedUnder, JSON.stringify(env));
    }
  });

  it("fails the cold start on a malformed task list, as Python does", () => {
    for (const text of cases.task_pinning.malformed) {
      assert.throws(() => readSettings({ [TASKS_ENV]: text }), RangeError, text);
    }
  });

  it("refuses every refused form, naming the same field", () => {
    for (const { change, field } of cases.refused) {
      const { event, issues } = parseScheduledEvent({ ...cases.delivered, ...expanded(change) });
      assert.equal(event, null, label(change));
      assert.deepEqual(issues.map((issue) => issue.split(":")[0]), [field], label(change));
    }
  });
});
