/**
 * The event every schedule sends to its function (mirroring kairos_runtime/events.py):
 * {"task", "task_type", "params", "scheduled_time", "execution_id", "attempt"}.
 *
 * EventBridge Scheduler substitutes its context attributes into the schedule's input as strings, so
 * `attempt` arrives as "1" and is coerced back to an integer.
 */

import { randomUUID } from "node:crypto";

import {
  EXECUTION_ID_PATTERN,
  MAX_PARAMS_BYTES,
  MAX_PARAMS_DEPTH,
  TASK_NAME_PATTERN,
  TASK_TYPE_PATTERN,
  fullMatch,
} from "./bounds.mjs";

/**
 * @typedef {object} ScheduledEvent Field names follow the wire format.
 * @property {string} task
 * @property {string} task_type
 * @property {Record<string, unknown>} params
 * @property {Date} scheduled_time
 * @property {string} execution_id
 * @property {number} attempt >= 1
 * @property {boolean} rerun run the slot even when it is done (a JSON true or false only; no
 *   schedule's input carries it, and it passes none of the checks an event must pass to run)
 */

/**
 * The fields that go into the run record's keys, with what each must be (Python's KEY_FIELDS);
 * checked before anything else reads the event, so no key can pass DynamoDB's limits.
 */
export const KEY_FIELDS = Object.freeze({
  task: { pattern: fullMatch(TASK_NAME_PATTERN), requirement: `must be a task name (${TASK_NAME_PATTERN})` },
  task_type: { pattern: fullMatch(TASK_TYPE_PATTERN), requirement: `must be a task type name (${TASK_TYPE_PATTERN})` },
  execution_id: {
    pattern: fullMatch(EXECUTION_ID_PATTERN),
    requirement: `must be printable ASCII without spaces (${EXECUTION_ID_PATTERN})`,
  },
});

// Date, then optionally a time with optional seconds, fraction and offset; no offset means UTC.
const ISO_DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:[Zz]|([+-])(\d{2}):?(\d{2}))?)?$/;

/**
 * @param {unknown} raw
 * @returns {{ event: Readonly<ScheduledEvent>, issues: null } | { event: null, issues: string[] }}
 *   `issues` says what is wrong, one "field: problem" entry per field.
 */
export function parseScheduledEvent(raw) {
  if (!isObject(raw)) return { event: null, issues: ["event: must be an object"] };
  /** @type {string[]} */
  const issues = [];
  /** @param {keyof typeof KEY_FIELDS} field */
  const requireKeyField = (field) => {
    if (raw[field] === undefined) issues.push(`${field}: is required`);
    else if (typeof raw[field] !== "string") issues.push(`${field}: must be a string`);
    else if (!KEY_FIELDS[field].pattern.test(raw[field])) issues.push(`${field}: ${KEY_FIELDS[field].requirement}`);
    return raw[field];
  };
  const task = requireKeyField("task");
  const taskType = requireKeyField("task_type");
  const executionId = requireKeyField("execution_id");

  const params = raw.params === undefined ? {} : raw.params;
  if (!isObject(params)) issues.push("params: must be an object");
  else {
    const problem = paramsProblem(params);
    if (problem) issues.push(problem);
  }

  const scheduledTime = parseDateTime(raw.scheduled_time);
  if (raw.scheduled_time === undefined) issues.push("scheduled_time: is required");
  else if (scheduledTime === null) issues.push("scheduled_time: must be an ISO 8601 date-time string");

  const attempt = raw.attempt === undefined ? 1 : parseAttempt(raw.attempt);
  if (attempt === null) issues.push("attempt: must be an integer >= 1 (or its decimal string)");

  const rerun = raw.rerun === undefined ? false : raw.rerun;
  if (typeof rerun !== "boolean") issues.push("rerun: must be true or false");

  if (issues.length > 0) return { event: null, issues };
  // No issues, so scheduled_time parsed and attempt is an integer >= 1.
  return {
    event: Object.freeze({
      task,
      task_type: taskType,
      params,
      scheduled_time: /** @type {Date} */ (scheduledTime),
      execution_id: executionId,
      attempt: /** @type {number} */ (attempt),
      rerun,
    }),
    issues: null,
  };
}

/**
 * The event to record an invalid delivery under: the function's own task when it has one (the only
 * records IAM lets it write), else whatever identity the raw event carried.
 *
 * @param {unknown} raw
 * @param {{ now: Date, executionId: string, ownTask?: string | null }} fallback `executionId` is used
 *   when the raw event has no execution_id
 * @returns {Readonly<ScheduledEvent>}
 */
export function fallbackEvent(raw, { now, executionId, ownTask = null }) {
  return Object.freeze({
    task: nonEmptyText(ownTask) ?? keyField(raw, "task") ?? "unknown-task",
    task_type: keyField(raw, "task_type") ?? "unknown",
    params: {},
    scheduled_time: now,
    execution_id: keyField(raw, "execution_id") ?? (KEY_FIELDS.execution_id.pattern.test(executionId) ? executionId : randomUUID()),
    attempt: 1,
    rerun: false,
  });
}

/**
 * The raw event's `field` when it is fit for a key (see KEY_FIELDS), else null: what an invalid
 * event's record may still be filed under.
 *
 * @param {unknown} raw
 * @param {"task" | "task_type" | "execution_id"} field
 * @returns {string | null}
 */
export function keyField(raw, field) {
  const value = isObject(raw) ? raw[field] : undefined;
  return typeof value === "string" && KEY_FIELDS[field].pattern.test(value) ? value : null;
}

/**
 * What makes params unfit, as "path: problem", or null (Python's check_params): nested deeper than
 * MAX_PARAMS_DEPTH, a lone surrogate (valid as a "\ud800" escape in JSON text, but no UTF-8 encoder
 * takes it), or over MAX_PARAMS_BYTES as JSON. Iterative, so no nesting can exhaust the stack.
 *
 * @param {Record<string, unknown>} params
 * @returns {string | null}
 */
function paramsProblem(params) {
  /** @type {[unknown, string, number][]} */
  const pending = [[params, "params", 1]];
  while (pending.length > 0) {
    const [value, path, depth] = /** @type {[unknown, string, number]} */ (pending.pop());
    if (typeof value === "string") {
      if (!value.isWellFormed()) return `${path}: holds a lone surrogate, which is not text`;
      continue;
    }
    if (value === null || typeof value !== "object") continue;
    if (depth > MAX_PARAMS_DEPTH) return `params: nested deeper than ${MAX_PARAMS_DEPTH} levels`;
    if (Array.isArray(value)) {
      value.forEach((member, index) => pending.push([member, `${path}.${index}`, depth + 1]));
      continue;
    }
    for (const [key, member] of Object.entries(value)) {
      if (!key.isWellFormed()) return `${path}: holds a key with a lone surrogate, which is not text`;
      pending.push([member, `${path}.${key}`, depth + 1]);
    }
  }
  const size = Buffer.byteLength(JSON.stringify(params), "utf8");
  return size > MAX_PARAMS_BYTES ? `params: ${size} bytes as JSON, over the ${MAX_PARAMS_BYTES} allowed` : null;
}

/**
 * The event as JSON, exactly as the Python runtime dumps it: scheduled_time in UTC with a "Z", and
 * a fraction only when there is one, in microseconds (as msgspec writes datetimes).
 *
 * @param {Readonly<ScheduledEvent>} event
 * @returns {Record<string, unknown>}
 */
export function eventAsJson(event) {
  const seconds = event.scheduled_time.toISOString().slice(0, 19);
  const milliseconds = event.scheduled_time.getUTCMilliseconds();
  return {
    task: event.task,
    task_type: event.task_type,
    params: event.params,
    scheduled_time: milliseconds === 0 ? `${seconds}Z` : `${seconds}.${String(milliseconds * 1000).padStart(6, "0")}Z`,
    execution_id: event.execution_id,
    attempt: event.attempt,
    // Only a rerun says so, as the operator's event did.
    ...(event.rerun ? { rerun: true } : {}),
  };
}

/**
 * @param {unknown} value
 * @returns {Date | null}
 */
function parseDateTime(value) {
  const match = typeof value === "string" ? ISO_DATE_TIME.exec(value) : null;
  if (!match) return null;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((part) => Number(part ?? 0));
  const [fraction = "", sign, offsetHours, offsetMinutes] = match.slice(7);
  const asUtc = new Date(Date.UTC(year, month - 1, day, hour, minute, second, Number(fraction.padEnd(3, "0").slice(0, 3))));
  // Date.UTC rolls 2024-02-30 over to March 1st; such a date is invalid, not a different date.
  const exact =
    asUtc.getUTCFullYear() === year &&
    asUtc.getUTCMonth() === month - 1 &&
    asUtc.getUTCDate() === day &&
    asUtc.getUTCHours() === hour &&
    asUtc.getUTCMinutes() === minute &&
    asUtc.getUTCSeconds() === second;
  if (!exact) return null;
  if (!sign) return asUtc;
  if (Number(offsetHours) > 23 || Number(offsetMinutes) > 59) return null;
  const offsetMinutesTotal = (sign === "+" ? 1 : -1) * (Number(offsetHours) * 60 + Number(offsetMinutes));
  return new Date(asUtc.getTime() - offsetMinutesTotal * 60_000);
}

/**
 * @param {unknown} value
 * @returns {number | null}
 */
function parseAttempt(value) {
  const number = typeof value === "string" && /^\s*\+?\d+\s*$/.test(value) ? Number(value) : value;
  return typeof number === "number" && Number.isSafeInteger(number) && number >= 1 ? number : null;
}

/**
 * @param {unknown} value
 * @returns {string | null}
 */
function nonEmptyText(value) {
  return typeof value === "string" && value !== "" ? value : null;
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
