/**
 * Run records in the TaskRuns table: one item per delivery, STARTED then a final status. Attribute
 * names and key formats are those of kairos_runtime/runs.py, so `kairos runs` and the daily summary
 * read both runtimes' records alike:
 *   pk      TASK#<task>
 *   sk      RUN#<scheduled_time>#<execution_id>#<attempt>   (newest scheduled slot sorts last)
 *   gsi1pk  RUNDATE#<UTC date the run started>              (index by_date: every task's runs of a day)
 *   gsi1sk  <started_at>#<task>
 */

import { PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";

import { TABLES, TASK_RUNS } from "./tables.mjs";

export const RunStatus = Object.freeze({
  STARTED: "STARTED",
  SUCCEEDED: "SUCCEEDED",
  FAILED: "FAILED",
  SKIPPED: "SKIPPED",
});

export const MAX_ERROR_MESSAGE = 1000;

const DESIGN = TABLES[TASK_RUNS];
const DAY_SECONDS = 24 * 60 * 60;

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
 * Plain JSON-able data as the document client accepts it: Dates become strings, undefined members
 * disappear and BigInts become strings (Python's json.dumps(default=str) round trip).
 *
 * @param {unknown} value
 * @returns {any}
 */
export function toItemValue(value) {
  return JSON.parse(JSON.stringify(value, (_key, member) => (typeof member === "bigint" ? String(member) : member)) ?? "null");
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

export class RunRecorder {
  /**
   * @param {{ documentClient: DocumentClient, tableName: string, ttlDays: number }} options
   */
  constructor({ documentClient, tableName, ttlDays }) {
    this.documentClient = documentClient;
    this.tableName = tableName;
    this.ttlDays = ttlDays;
  }

  /**
   * Puts the STARTED record. A retried delivery of the same event has the same key and replaces it.
   *
   * @param {Readonly<ScheduledEvent>} event
   * @param {{ runtime: string, requestId: string, startedAt: Date }} invocation
   * @returns {Promise<RunKey>}
   */
  async start(event, { runtime, requestId, startedAt }) {
    const key = runKey(event);
    const started = startedAt.toISOString(); // millisecond precision, UTC, "Z"
    await this.documentClient.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
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
          request_id: requestId,
          started_at: started,
          [DESIGN.ttlAttribute]: Math.floor(startedAt.getTime() / 1000) + this.ttlDays * DAY_SECONDS,
        },
      }),
    );
    return key;
  }

  /**
   * Sets the final status and outcome on the record `start` created.
   *
   * @param {RunKey} key
   * @param {{ status: string, finishedAt: Date, durationMs: number, itemsWritten: number,
   *   itemsRejected: number, detail?: Record<string, unknown> | null, error?: RunError | null }} outcome
   * @returns {Promise<void>}
   */
  async finish(key, { status, finishedAt, durationMs, itemsWritten, itemsRejected, detail, error }) {
    const values = {
      status,
      finished_at: finishedAt.toISOString(),
      duration_ms: durationMs,
      items_written: itemsWritten,
      items_rejected: itemsRejected,
      detail: toItemValue(detail ?? {}),
    };
    if (error) {
      Object.assign(values, {
        error_type: error.type,
        error_message: truncate(error.message, MAX_ERROR_MESSAGE),
        error_kind: error.kind,
      });
    }
    const names = Object.keys(values);
    await this.documentClient.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [DESIGN.partitionKey]: key.pk, [DESIGN.sortKey]: key.sk },
        // Placeholders for every name: "status" is a DynamoDB reserved word.
        UpdateExpression: `SET ${names.map((name) => `#${name} = :${name}`).join(", ")}`,
        ExpressionAttributeNames: Object.fromEntries(names.map((name) => [`#${name}`, name])),
        ExpressionAttributeValues: Object.fromEntries(names.map((name) => [`:${name}`, values[name]])),
      }),
    );
  }
}
