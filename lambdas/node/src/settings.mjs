/**
 * Runtime settings, read once per cold start from the environment the ScheduledTask construct sets.
 * The variable names, defaults and bounds are kairos_runtime/settings.py's, read from the contract.
 */

import { CONTRACT } from "./contract.mjs";
import { TABLES } from "./tables.mjs";

const { run_record_ttl_days: TTL_DAYS, lambda_retry_attempts: RETRY_ATTEMPTS, max_event_age_seconds: EVENT_AGE } = CONTRACT.settings;

export const STAGE_ENV = CONTRACT.env.stage;
/** The one task a function runs: its run records go under this name, the only one IAM lets it write. */
export const TASK_ENV = CONTRACT.env.task;
/**
 * A shared function's tasks, a JSON array of names (docs/adr/0183-shared-functions.md): an event naming
 * any other is recorded as InvalidEvent under the first of them, and not run. Set instead of KAIROS_TASK.
 */
export const TASKS_ENV = CONTRACT.env.tasks;
/** The one task type a function runs: an event naming another is recorded as InvalidEvent, not run. */
export const TASK_TYPE_ENV = CONTRACT.env.task_type;
export const RUNTIME_ENV = CONTRACT.env.runtime;
export const RUN_RECORD_TTL_DAYS_ENV = TTL_DAYS.env;
/**
 * How often Lambda delivers a rejected event again: a transient failure Lambda will retry is counted
 * as RunsRetried, not RunsFailed.
 */
export const LAMBDA_RETRY_ATTEMPTS_ENV = RETRY_ATTEMPTS.env;
/** How old an event Lambda still retries; an older one it drops (to the dead-letter queue). */
export const MAX_EVENT_AGE_ENV = EVENT_AGE.env;
/**
 * How late (seconds after its scheduled_time) a delivery may arrive for a task type that cannot run
 * for a past slot; a later one is recorded SKIPPED as PastSlotRefused. Unset: no limit.
 */
export const LATE_DELIVERY_LIMIT_ENV = CONTRACT.env.late_delivery_limit_seconds;
/** The error type of the SKIPPED record of a past slot a non-backfillable task type refused. */
export const PAST_SLOT_REFUSED = CONTRACT.past_slot.error_type;
const MIN_LATE_DELIVERY_LIMIT_SECONDS = CONTRACT.past_slot.min_limit_seconds;
/** Lambda waits about a minute before its first retry, and about two before its second. */
export const LAMBDA_FIRST_RETRY_DELAY_SECONDS = CONTRACT.lambda.first_retry_delay_seconds;
const LAMBDA_MAX_EVENT_AGE_SECONDS = /** @type {number} */ (EVENT_AGE.max);
const MIN_EVENT_AGE_SECONDS = EVENT_AGE.min;
/** Every retry count Lambda accepts, 0 to its maximum. */
const RETRY_ATTEMPT_CHOICES = Array.from({ length: /** @type {number} */ (RETRY_ATTEMPTS.max) - RETRY_ATTEMPTS.min + 1 }, (_, index) => RETRY_ATTEMPTS.min + index);

export class MissingTableError extends Error {
  name = "MissingTableError";
}

/**
 * @typedef {object} RuntimeSettings
 * @property {string} stage
 * @property {string | null} task The function's own task (KAIROS_TASK), or null when unset (local runs).
 * @property {readonly string[] | null} tasks A shared function's tasks (KAIROS_TASKS), or null when unset.
 * @property {string | null} taskType The function's own task type (KAIROS_TASK_TYPE), or null when unset.
 * @property {string} runtime Recorded in every run record, e.g. "nodejs22.x".
 * @property {number} runRecordTtlDays
 * @property {number} lambdaRetryAttempts 0 to 2; 0 when unset (a local run is delivered once)
 * @property {number} maxEventAgeSeconds 60 to 21600; Lambda's 6 hours when unset
 * @property {number | null} lateDeliveryLimitSeconds How late a non-backfillable task's delivery may be; null: no limit
 * @property {Readonly<Record<string, string>>} tableNames Deployed table names by table id.
 */

/**
 * @param {Record<string, string | undefined>} env
 * @returns {RuntimeSettings}
 * @throws {RangeError} when KAIROS_RUN_RECORD_TTL_DAYS is not an integer >= 1, so a bad deployment
 *   fails at cold start instead of writing records that never expire, or when
 *   KAIROS_LAMBDA_RETRY_ATTEMPTS is not 0, 1 or 2, or KAIROS_MAX_EVENT_AGE_SECONDS not 60 to 21600.
 */
export function readSettings(env) {
  const ttlText = env[RUN_RECORD_TTL_DAYS_ENV];
  const runRecordTtlDays = ttlText ? Number(ttlText) : TTL_DAYS.default;
  if (!Number.isInteger(runRecordTtlDays) || runRecordTtlDays < TTL_DAYS.min) {
    throw new RangeError(`${RUN_RECORD_TTL_DAYS_ENV} must be an integer >= ${TTL_DAYS.min}, got ${JSON.stringify(ttlText)}`);
  }
  const retryText = env[LAMBDA_RETRY_ATTEMPTS_ENV];
  const lambdaRetryAttempts = retryText ? Number(retryText) : RETRY_ATTEMPTS.default;
  if (!RETRY_ATTEMPT_CHOICES.includes(lambdaRetryAttempts)) {
    const choices = `${RETRY_ATTEMPT_CHOICES.slice(0, -1).join(", ")} or ${RETRY_ATTEMPT_CHOICES.at(-1)}`;
    throw new RangeError(`${LAMBDA_RETRY_ATTEMPTS_ENV} must be ${choices}, got ${JSON.stringify(retryText)}`);
  }
  const ageText = env[MAX_EVENT_AGE_ENV];
  const maxEventAgeSeconds = ageText ? Number(ageText) : EVENT_AGE.default;
  if (!Number.isInteger(maxEventAgeSeconds) || maxEventAgeSeconds < MIN_EVENT_AGE_SECONDS || maxEventAgeSeconds > LAMBDA_MAX_EVENT_AGE_SECONDS) {
    throw new RangeError(
      `${MAX_EVENT_AGE_ENV} must be an integer from ${MIN_EVENT_AGE_SECONDS} to ${LAMBDA_MAX_EVENT_AGE_SECONDS}, got ${JSON.stringify(ageText)}`,
    );
  }
  const limitText = env[LATE_DELIVERY_LIMIT_ENV];
  const lateDeliveryLimitSeconds = limitText ? Number(limitText) : null;
  if (lateDeliveryLimitSeconds !== null && (!Number.isInteger(lateDeliveryLimitSeconds) || lateDeliveryLimitSeconds < MIN_LATE_DELIVERY_LIMIT_SECONDS)) {
    throw new RangeError(`${LATE_DELIVERY_LIMIT_ENV} must be an integer >= ${MIN_LATE_DELIVERY_LIMIT_SECONDS}, got ${JSON.stringify(limitText)}`);
  }
  const tasks = readTaskList(env[TASKS_ENV]);
  const tableNames = Object.fromEntries(
    Object.entries(TABLES)
      .filter(([, design]) => env[design.envVar])
      // Set, as the filter just checked.
      .map(([tableId, design]) => [tableId, /** @type {string} */ (env[design.envVar])]),
  );
  return Object.freeze({
    stage: env[STAGE_ENV] || "local",
    task: env[TASK_ENV] || null,
    tasks,
    taskType: env[TASK_TYPE_ENV] || null,
    runtime: env[RUNTIME_ENV] || "nodejs",
    runRecordTtlDays,
    lambdaRetryAttempts,
    maxEventAgeSeconds,
    lateDeliveryLimitSeconds,
    tableNames: Object.freeze(tableNames),
  });
}

/**
 * A shared function's task list; a malformed one fails the cold start, as Python's does, rather than
 * pinning nothing.
 *
 * @param {string | undefined} text
 * @returns {readonly string[] | null}
 * @throws {RangeError}
 */
function readTaskList(text) {
  if (!text) return null;
  let names;
  try {
    names = JSON.parse(text);
  } catch {
    names = null;
  }
  if (!Array.isArray(names) || names.length === 0 || !names.every((name) => typeof name === "string" && name !== "")) {
    throw new RangeError(`${TASKS_ENV} must be a non-empty JSON array of task names, got ${JSON.stringify(text)}`);
  }
  return Object.freeze([...names]);
}

/**
 * @param {RuntimeSettings} settings
 * @param {string} tableId
 * @returns {string}
 * @throws {MissingTableError}
 */
export function tableName(settings, tableId) {
  const name = settings.tableNames[tableId];
  if (!name) {
    throw new MissingTableError(`table '${tableId}' is not configured (set ${TABLES[tableId].envVar})`);
  }
  return name;
}

/**
 * Whether Lambda invokes again after a failed attempt: it has attempts left, and the event is still
 * young enough once the retry's delay has passed (an older one it drops instead).
 *
 * @param {RuntimeSettings} settings
 * @param {{ attempt: number, eventAgeSeconds: number }} failure
 * @returns {boolean}
 */
export function lambdaRetries(settings, { attempt, eventAgeSeconds }) {
  if (attempt > settings.lambdaRetryAttempts) return false;
  return eventAgeSeconds + LAMBDA_FIRST_RETRY_DELAY_SECONDS * attempt < settings.maxEventAgeSeconds;
}

/**
 * Whether a delivery this late is a past slot the task type may not run (it cannot be backfilled).
 *
 * @param {RuntimeSettings} settings
 * @param {{ backfill: boolean, latenessSeconds: number }} delivery
 * @returns {boolean}
 */
export function refusesPastSlot(settings, { backfill, latenessSeconds }) {
  const limit = settings.lateDeliveryLimitSeconds ?? null;
  return !backfill && limit !== null && latenessSeconds > limit;
}
