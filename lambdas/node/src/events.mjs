/**
 * The event every schedule sends to its function (mirroring kairos_runtime/events.py):
 * {"task", "task_type", "params", "scheduled_time", "execution_id", "attempt"}.
 *
 * EventBridge Scheduler substitutes its context attributes into the schedule's input as strings, so
 * `attempt` arrives as "1" and is coerced back to an integer.
 */

/**
 * @typedef {object} ScheduledEvent Field names follow the wire format.
 * @property {string} task
 * @property {string} task_type
 * @property {Record<string, unknown>} params
 * @property {Date} scheduled_time
 * @property {string} execution_id
 * @property {number} attempt >= 1
 */

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
  const issues = [];
  const requireText = (field) => {
    if (raw[field] === undefined) issues.push(`${field}: is required`);
    else if (nonEmptyText(raw[field]) === null) issues.push(`${field}: must be a non-empty string`);
    return raw[field];
  };
  const task = requireText("task");
  const taskType = requireText("task_type");
  const executionId = requireText("execution_id");

  const params = raw.params === undefined ? {} : raw.params;
  if (!isObject(params)) issues.push("params: must be an object");

  const scheduledTime = parseDateTime(raw.scheduled_time);
  if (raw.scheduled_time === undefined) issues.push("scheduled_time: is required");
  else if (scheduledTime === null) issues.push("scheduled_time: must be an ISO 8601 date-time string");

  const attempt = raw.attempt === undefined ? 1 : parseAttempt(raw.attempt);
  if (attempt === null) issues.push("attempt: must be an integer >= 1 (or its decimal string)");

  if (issues.length > 0) return { event: null, issues };
  return {
    event: Object.freeze({
      task,
      task_type: taskType,
      params,
      scheduled_time: scheduledTime,
      execution_id: executionId,
      attempt,
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
  const field = (name) => (isObject(raw) ? nonEmptyText(raw[name]) : null);
  return Object.freeze({
    task: nonEmptyText(ownTask) ?? field("task") ?? "unknown-task",
    task_type: field("task_type") ?? "unknown",
    params: {},
    scheduled_time: now,
    execution_id: field("execution_id") ?? executionId,
    attempt: 1,
  });
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
