/**
 * Run records in the TaskRuns table: one item per delivery, STARTED then a final status. Attribute
 * names and key formats are those of kairos_runtime/runs.py, so `kairos runs` and the daily summary
 * read both runtimes' records alike:
 *   pk      TASK#<task>
 *   sk      RUN#<scheduled_time>#<execution_id>#<attempt>   (newest scheduled slot sorts last)
 *   gsi1pk  RUNDATE#<UTC date the run started>              (index by_date: every task's runs of a day)
 *   gsi1sk  <started_at>#<task>
 */

import { inspect } from "node:util";

import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";

import { MAX_DETAIL_BYTES, MAX_DETAIL_DEPTH, MAX_DETAIL_KEYS, MAX_ERROR_MESSAGE } from "./bounds.mjs";
import { CONTRACT } from "./contract.mjs";
import { TABLES, TASK_RUNS } from "./tables.mjs";

const RECORDS = CONTRACT.run_records;

/** @type {Readonly<{ STARTED: "STARTED", SUCCEEDED: "SUCCEEDED", FAILED: "FAILED", SKIPPED: "SKIPPED" }>} */
export const RunStatus = /** @type {any} */ (Object.freeze(Object.fromEntries(RECORDS.statuses.map((status) => [status, status]))));

export { MAX_DETAIL_BYTES, MAX_ERROR_MESSAGE } from "./bounds.mjs";
/** The error type of the minimal FAILED record written when a run's outcome could not be stored. */
export const RECORD_WRITE_FAILED = "RecordWriteFailed";
/** What a redelivery keeps of the earlier delivery's outcome, in previous_outcomes. */
export const PREVIOUS_OUTCOME_FIELDS = RECORDS.previous_outcome_fields;
/**
 * How often a delivery re-reads and retries when other deliveries of the same event keep restarting
 * the record between its read and its write.
 */
export const RESTART_ATTEMPTS = RECORDS.restart_attempts;
/** The earlier delivery's outcome, removed by a redelivery until its own finish sets them. */
export const CLEARED_ON_REDELIVERY = RECORDS.cleared_on_redelivery;

const DESIGN = TABLES[TASK_RUNS];
const DAY_SECONDS = 24 * 60 * 60;
/** Set again by a redelivery, from the new delivery. */
const RESTARTED_FIELDS = RECORDS.restarted_fields;
/**
 * What a delivery's slot claim adds to its record (slots.mjs): set by the delivery that has them,
 * removed by a redelivery that has not.
 */
export const CLAIM_FIELDS = RECORDS.claim_fields;

/**
 * Other deliveries of the same event kept restarting its record; this one gives up (and fails, so
 * Lambda's retry comes back later).
 */
export class RunRecordContentionError extends Error {
  name = "RunRecordContentionError";
}

/** @param {unknown} error */
const isConditionFailure = (error) => /** @type {any} */ (error)?.name === "ConditionalCheckFailedException";
/** @param {RunKey} key */
const claimId = (key) => `${key.pk}\n${key.sk}`;

/**
 * @typedef {import("./events.mjs").ScheduledEvent} ScheduledEvent
 * @typedef {{ pk: string, sk: string }} RunKey
 * @typedef {{ type: string, message: string, kind: "transient" | "permanent" }} RunError
 * @typedef {{ send: (command: any) => Promise<any> }} DocumentClient an @aws-sdk/lib-dynamodb client
 */

/**
 * @param {Date} moment
 * @returns {string} e.g. 2024-05-01T09:30:00Z (the scheduled slot: Scheduler works in whole seconds)
 */
export function isoUtcSeconds(moment) {
  return `${moment.toISOString().slice(0, 19)}Z`;
}

/**
 * @param {Readonly<ScheduledEvent>} event
 * @returns {RunKey}
 */
export function runKey(event) {
  return {
    pk: `TASK#${event.task}`,
    sk: `RUN#${isoUtcSeconds(event.scheduled_time)}#${event.execution_id}#${event.attempt}`,
  };
}

/**
 * The run's detail as an item value, or a note when it cannot be stored whole (Python's
 * bounded_detail): JSON-shaped data as the document client accepts it (Dates as their JSON text,
 * undefined members dropped, BigInts as strings, NaN and infinities as null), with lone surrogates
 * as U+FFFD. The note, `{truncated: true, ...}` with the first MAX_DETAIL_KEYS top-level keys,
 * replaces a detail over MAX_DETAIL_BYTES as JSON in UTF-8 (saying its `bytes`) or one nested deeper
 * than MAX_DETAIL_DEPTH or holding more values than MAX_DETAIL_BYTES (saying the `reason`: a cycle
 * is one of these). Total over any value: the walk is iterative and bounded.
 *
 * Both runtimes measure compact JSON text in UTF-8; they can still differ slightly on where the
 * bound falls (Python writes 1e16 where JavaScript writes 10000000000000000), not on the note's shape.
 *
 * @param {unknown} detail
 * @returns {any}
 */
export function boundedDetail(detail) {
  const value = detail !== null && typeof detail === "object" && !Array.isArray(detail) ? detail : {};
  const keys = Object.keys(value).map((key) => key.toWellFormed()).sort(byCodePoint).slice(0, MAX_DETAIL_KEYS);
  let plain;
  try {
    plain = plainData(value);
  } catch (error) {
    if (!(error instanceof Unmeasurable)) throw error;
    return { truncated: true, reason: error.message, keys };
  }
  const encoded = JSON.stringify(plain);
  const bytes = Buffer.byteLength(encoded, "utf8");
  if (bytes > MAX_DETAIL_BYTES) return { truncated: true, bytes, keys };
  return plain;
}

/**
 * Sets a member as JSON.parse would: an own property even when it is named "__proto__".
 *
 * @param {any} container
 * @param {string | number} slot
 * @param {unknown} value
 */
function put(container, slot, value) {
  Object.defineProperty(container, slot, { value, enumerable: true, writable: true, configurable: true });
}

/** A detail too deep, or with too many values, to encode: its note says which. */
class Unmeasurable extends Error {}

/**
 * `value` as JSON-shaped data (see boundedDetail), built without recursion, as JSON.stringify would
 * see it: toJSON() first, then own enumerable members; in objects, undefined, functions and symbols
 * are dropped, in arrays they are null.
 *
 * @param {unknown} value
 */
function plainData(value) {
  const root = [null];
  /** @type {[unknown, any, string | number, number][]} */
  const pending = [[value, root, 0, 1]];
  let visited = 0;
  const tooMany = () => new Unmeasurable(`more than ${MAX_DETAIL_BYTES} values`);
  while (pending.length > 0) {
    let [source, container, slot, depth] = /** @type {[any, any, string | number, number]} */ (pending.pop());
    visited += 1;
    if (visited > MAX_DETAIL_BYTES) throw tooMany();
    if (source !== null && typeof source === "object" && typeof source.toJSON === "function") source = source.toJSON(slot);
    if (typeof source === "string") {
      put(container, slot, source.toWellFormed());
    } else if (typeof source === "number") {
      put(container, slot, Number.isFinite(source) ? source : null);
    } else if (typeof source === "bigint") {
      put(container, slot, String(source));
    } else if (typeof source === "boolean" || source === null) {
      put(container, slot, source);
    } else if (typeof source === "object") {
      if (depth > MAX_DETAIL_DEPTH) throw new Unmeasurable(`nested deeper than ${MAX_DETAIL_DEPTH} levels`);
      const entries = Array.isArray(source) ? [...source.entries()] : Object.entries(source);
      if (visited + pending.length + entries.length > MAX_DETAIL_BYTES) throw tooMany();
      const target = Array.isArray(source) ? new Array(source.length).fill(null) : {};
      for (const [key, member] of entries) {
        if (!Array.isArray(source) && (member === undefined || typeof member === "function" || typeof member === "symbol")) continue;
        const name = typeof key === "string" ? key.toWellFormed() : key;
        pending.push([member, target, name, depth + 1]);
      }
      put(container, slot, target);
    } else {
      put(container, slot, null); // undefined, a function or a symbol in an array
    }
  }
  return root[0];
}

/**
 * Python's sort order for str: by code point (Array.prototype.sort compares UTF-16 units, which
 * orders characters above U+FFFF before U+E000..U+FFFF).
 *
 * @param {string} left
 * @param {string} right
 * @returns {number}
 */
function byCodePoint(left, right) {
  const a = [...left];
  const b = [...right];
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
    // Both are code points of a string, never empty, so codePointAt(0) is a number.
    const difference = /** @type {number} */ (a[i].codePointAt(0)) - /** @type {number} */ (b[i].codePointAt(0));
    if (difference !== 0) return difference;
  }
  return a.length - b.length;
}

/**
 * Code points, not UTF-16 units, so a cut never leaves half a surrogate pair (and matches Python).
 *
 * @param {string} text
 * @param {number} limit
 */
function truncate(text, limit) {
  const codePoints = [...text];
  return codePoints.length > limit ? codePoints.slice(0, limit).join("") : text;
}

/**
 * Deliveries of one event share a record. The delivery that last (re)started it owns it (its
 * request_id and started_at; Lambda's own retries keep the request id, so the start time tells them
 * apart): only the owner's finish sets the final status; a delivery that finishes after another took
 * over adds its outcome to previous_outcomes instead (marked finished_after_redelivery). Restarts use
 * optimistic concurrency on `deliveries`, so racing deliveries each count.
 */
export class RunRecorder {
  /** @type {Map<string, { requestId: string, startedAt: string, attempt: number }>} what this recorder wrote as owner */
  #claims = new Map();

  /**
   * @param {{ documentClient: DocumentClient, tableName: string, ttlDays: number }} options
   */
  constructor({ documentClient, tableName, ttlDays }) {
    this.documentClient = documentClient;
    this.tableName = tableName;
    this.ttlDays = ttlDays;
  }

  /**
   * Records a delivery as STARTED.
   *
   * The same event delivered again (Lambda's asynchronous retry, or a duplicate delivery) has the
   * same key: the record then counts the delivery and keeps the earlier outcome in
   * `previous_outcomes` instead of silently overwriting it; this delivery becomes its owner.
   *
   * `claimFields` are the slot claim's (CLAIM_FIELDS: rerun, replaced).
   *
   * @param {Readonly<ScheduledEvent>} event
   * @param {{ runtime: string, requestId: string, startedAt: Date, claimFields?: Record<string, unknown> | null }} invocation
   * @returns {Promise<RunKey>}
   */
  async start(event, { runtime, requestId, startedAt, claimFields = null }) {
    const key = runKey(event);
    const started = startedAt.toISOString(); // millisecond precision, UTC, "Z"
    const item = {
      [DESIGN.partitionKey]: key.pk,
      [DESIGN.sortKey]: key.sk,
      gsi1pk: `RUNDATE#${started.slice(0, 10)}`,
      gsi1sk: `${started}#${event.task}`,
      task: event.task,
      task_type: event.task_type,
      runtime,
      status: RunStatus.STARTED,
      scheduled_time: isoUtcSeconds(event.scheduled_time),
      execution_id: event.execution_id,
      attempt: event.attempt,
      deliveries: 1,
      request_id: requestId,
      started_at: started,
      [DESIGN.ttlAttribute]: Math.floor(startedAt.getTime() / 1000) + this.ttlDays * DAY_SECONDS,
      ...Object.fromEntries(Object.entries(claimFields ?? {}).filter(([name]) => CLAIM_FIELDS.includes(name))),
    };
    const attempt = await this.#claim(key, item);
    this.#claims.set(claimId(key), { requestId, startedAt: started, attempt });
    return key;
  }

  /**
   * Which of Lambda's attempts at its invocation this run is: 1, 2 after one retry, and so on.
   * Lambda's retries keep the request id; a duplicate delivery of the event has its own and starts
   * again at 1, so duplicates do not use up the retries of another invocation.
   *
   * @param {RunKey} key
   * @returns {number}
   */
  lambdaAttempt(key) {
    return this.#claimOf(key).attempt;
  }

  /** @param {RunKey} key */
  #claimOf(key) {
    const claim = this.#claims.get(claimId(key));
    if (!claim) throw new Error(`${key.pk} ${key.sk} was not started by this recorder`);
    return claim;
  }

  /**
   * Puts the STARTED record, or restarts the one an earlier delivery left.
   *
   * @param {RunKey} key
   * @param {Record<string, unknown>} item the STARTED item the new delivery would put
   * @returns {Promise<number>} this delivery's Lambda attempt (see lambdaAttempt)
   */
  async #claim(key, item) {
    const tableKey = { [DESIGN.partitionKey]: key.pk, [DESIGN.sortKey]: key.sk };
    for (let attempt = 0; attempt < RESTART_ATTEMPTS; attempt += 1) {
      try {
        await this.documentClient.send(
          new PutCommand({
            TableName: this.tableName,
            Item: item,
            ConditionExpression: "attribute_not_exists(#pk)",
            ExpressionAttributeNames: { "#pk": DESIGN.partitionKey },
          }),
        );
        return 1;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const response = await this.documentClient.send(
        new GetCommand({ TableName: this.tableName, Key: tableKey, ConsistentRead: true }),
      );
      const earlier = response?.Item;
      if (!earlier) continue; // expired or deleted since the put failed: put it afresh
      try {
        return await this.#restart(tableKey, item, earlier);
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    }
    throw new RunRecordContentionError(
      `${key.pk} ${key.sk}: ${RESTART_ATTEMPTS} other deliveries changed the run record while this one tried`,
    );
  }

  /**
   * @param {Record<string, string>} tableKey
   * @param {Record<string, unknown>} item
   * @param {Record<string, any>} earlier the record as read
   * @returns {Promise<number>} the new delivery's Lambda attempt
   */
  async #restart(tableKey, item, earlier) {
    const outcome = Object.fromEntries(
      PREVIOUS_OUTCOME_FIELDS.filter((name) => Object.hasOwn(earlier, name)).map((name) => [name, earlier[name]]),
    );
    const seen = Number(earlier.deliveries ?? 0);
    // Earlier attempts of this invocation: the current owner and the outcomes moved aside before,
    // except the late outcomes appended by deliveries that had already been moved aside once.
    const earlierAttempts = [...(earlier.previous_outcomes ?? []), earlier].filter((outcome) => !outcome.finished_after_redelivery);
    const attempt = 1 + earlierAttempts.filter((outcome) => outcome.request_id === item.request_id).length;
    // The record must still be the one read: no other delivery restarted it (deliveries) and its
    // owner did not finish meanwhile (status), else the outcome moved would be a stale one.
    const restarted = [...RESTARTED_FIELDS, ...CLAIM_FIELDS].filter((name) => Object.hasOwn(item, name));
    const cleared = [...CLEARED_ON_REDELIVERY, ...CLAIM_FIELDS.filter((name) => !Object.hasOwn(item, name))];
    const watched = ["deliveries", "status"];
    const unchanged = watched
      .map((name) => (Object.hasOwn(earlier, name) ? `#${name} = :seen_${name}` : `attribute_not_exists(#${name})`))
      .join(" AND ");
    await this.documentClient.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: tableKey,
        UpdateExpression:
          `SET ${restarted.map((name) => `#${name} = :${name}`).join(", ")}` +
          ", #previous = list_append(if_not_exists(#previous, :empty), :outcome), #deliveries = :next" +
          ` REMOVE ${cleared.map((name) => `#${name}`).join(", ")}`,
        ConditionExpression: `attribute_exists(#pk) AND ${unchanged}`,
        ExpressionAttributeNames: {
          ...Object.fromEntries([...restarted, ...cleared].map((name) => [`#${name}`, name])),
          "#pk": DESIGN.partitionKey,
          "#previous": "previous_outcomes",
          "#deliveries": "deliveries",
        },
        ExpressionAttributeValues: {
          ...Object.fromEntries(restarted.map((name) => [`:${name}`, item[name]])),
          ...Object.fromEntries(watched.filter((name) => Object.hasOwn(earlier, name)).map((name) => [`:seen_${name}`, earlier[name]])),
          ":empty": [],
          ":outcome": [outcome],
          ":next": seen + 1,
        },
      }),
    );
    return attempt;
  }

  /**
   * Sets the final status and outcome on the record `start` created. When that write fails for any
   * reason but a lost ownership race (an item DynamoDB refuses, say), a minimal FAILED record
   * (RecordWriteFailed, saying what the outcome was and why it could not be stored) is written
   * instead, so the delivery still ends with a final record; only when that fails too does the
   * error propagate (and Lambda retries).
   *
   * @param {RunKey} key
   * @param {{ status: string, finishedAt: Date, durationMs: number, itemsWritten: number,
   *   itemsRejected: number, detail?: Record<string, unknown> | null, error?: RunError | null }} outcome
   * @returns {Promise<{ owned: boolean, fallback: RunError | null }>} `owned` is false when a later
   *   delivery had taken the record over (this outcome went into its previous_outcomes); `fallback`
   *   says why the outcome could not be stored, when the minimal record was written instead
   */
  async finish(key, { status, finishedAt, durationMs, itemsWritten, itemsRejected, detail, error }) {
    const values = {
      status,
      finished_at: finishedAt.toISOString(),
      duration_ms: durationMs,
      items_written: itemsWritten,
      items_rejected: itemsRejected,
      detail: boundedDetail(detail),
    };
    if (error) Object.assign(values, errorValues(error));
    const claim = this.#claimOf(key);
    this.#claims.delete(claimId(key));
    /** @type {RunError} */
    let fallback;
    try {
      return { owned: await this.#writeFinal(key, claim, values), fallback: null };
    } catch (failure) {
      // Any failure but a lost race (handled in #writeFinal) gets the minimal record.
      const outcome = error ? `${status} ${error.type}` : status;
      const cause = failure instanceof Error ? `${failure.name}: ${failure.message}` : inspect(failure);
      fallback = { type: RECORD_WRITE_FAILED, message: `the run's outcome (${outcome}) could not be recorded: ${cause}`, kind: "permanent" };
    }
    const minimal = { status: RunStatus.FAILED, finished_at: values.finished_at, duration_ms: durationMs, ...errorValues(fallback) };
    return { owned: await this.#writeFinal(key, claim, minimal), fallback };
  }

  /**
   * Sets `values` on the record this delivery owns.
   *
   * @param {RunKey} key
   * @param {{ requestId: string, startedAt: string }} claim
   * @param {Record<string, unknown>} values
   * @returns {Promise<boolean>} false when a later delivery had taken the record over, and the
   *   outcome went into its previous_outcomes instead
   */
  async #writeFinal(key, claim, values) {
    const tableKey = { [DESIGN.partitionKey]: key.pk, [DESIGN.sortKey]: key.sk };
    const names = Object.keys(values);
    try {
      await this.documentClient.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: tableKey,
          // Placeholders for every name: "status" is a DynamoDB reserved word.
          UpdateExpression: `SET ${names.map((name) => `#${name} = :${name}`).join(", ")}`,
          ConditionExpression: "#request_id = :request_id AND #started_at = :started_at",
          ExpressionAttributeNames: {
            ...Object.fromEntries(names.map((name) => [`#${name}`, name])),
            "#request_id": "request_id",
            "#started_at": "started_at",
          },
          ExpressionAttributeValues: {
            ...Object.fromEntries(names.map((name) => [`:${name}`, values[name]])),
            ":request_id": claim.requestId,
            ":started_at": claim.startedAt,
          },
        }),
      );
      return true;
    } catch (failure) {
      if (!isConditionFailure(failure)) throw failure;
    }
    // A later delivery restarted the record while this one ran: its status stays, this
    // delivery's outcome joins the earlier ones.
    const late = Object.fromEntries(PREVIOUS_OUTCOME_FIELDS.filter((name) => Object.hasOwn(values, name)).map((name) => [name, values[name]]));
    Object.assign(late, { request_id: claim.requestId, started_at: claim.startedAt, finished_after_redelivery: true });
    await this.documentClient.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: tableKey,
        UpdateExpression: "SET #previous = list_append(if_not_exists(#previous, :empty), :outcome)",
        ExpressionAttributeNames: { "#previous": "previous_outcomes" },
        ExpressionAttributeValues: { ":empty": [], ":outcome": [late] },
      }),
    );
    return false;
  }
}

/**
 * A run error as record attributes: bounded, and well-formed text.
 *
 * @param {RunError} error
 */
function errorValues(error) {
  return {
    error_type: truncate(String(error.type).toWellFormed(), MAX_ERROR_MESSAGE),
    error_message: truncate(String(error.message).toWellFormed(), MAX_ERROR_MESSAGE),
    error_kind: error.kind,
  };
}

