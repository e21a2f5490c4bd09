/**
 * Runs one scheduled event: resolve the task type, validate params, run, and record the outcome
 * (mirroring kairos_runtime/runner.py).
 *
 * Every delivery leaves a run record, including ones that cannot run at all (a malformed event, an
 * unknown task_type, params that no longer fit the schema). Transient failures are thrown after
 * recording so Lambda's asynchronous retry delivers the event again; permanent ones are returned,
 * since another delivery would fail the same way.
 *
 * A valid event first claims its slot (slots.mjs): a slot that already SUCCEEDED (or was SKIPPED) is
 * not run again, and one whose run is in progress is not started twice; such a delivery is counted
 * on the slot and answers with the earlier result (or the run in progress).
 */

import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { inspect } from "node:util";

import { ErrorKind, TaskSkipped, errorKind } from "./errors.mjs";
import { eventAsJson, fallbackEvent, parseScheduledEvent } from "./events.mjs";
import { createLogger, runMetricsLine, writeToStdout } from "./log.mjs";
import { InvalidParamsError } from "./params.mjs";
import { UndeclaredTableError, indexQueriesClient, partitionScopedClient } from "./partitions.mjs";
import { UnknownTaskTypeError, parseParams } from "./registry.mjs";
import { RunRecorder, RunStatus, runKey } from "./runs.mjs";
import { PAST_SLOT_REFUSED, lambdaRetries, refusesPastSlot, tableName } from "./settings.mjs";
import { Decline, SlotInProgressError, SlotLedger, declinedResponse, runFields } from "./slots.mjs";
import { TASK_RUNS } from "./tables.mjs";

export { UndeclaredTableError };

/**
 * @typedef {import("./events.mjs").ScheduledEvent} ScheduledEvent
 * @typedef {import("./log.mjs").Logger} Logger
 * @typedef {import("./log.mjs").LineWriter} LineWriter
 * @typedef {import("./runs.mjs").DocumentClient} DocumentClient
 * @typedef {import("./runs.mjs").RunError} RunError
 * @typedef {import("./settings.mjs").RuntimeSettings} RuntimeSettings
 * @typedef {import("./registry.mjs").TaskRegistry} TaskRegistry
 *
 * @typedef {object} InvocationContext The parts of Lambda's context object the runner uses.
 * @property {string} awsRequestId
 * @property {() => number} getRemainingTimeInMillis
 *
 * @typedef {object} TaskContext What a task function is handed.
 * @property {Readonly<ScheduledEvent>} event
 * @property {RuntimeSettings} settings
 * @property {Logger} logger
 * @property {() => number} remainingTimeMs
 * @property {{ table: (tableId: string) => { tableName: string, client: DocumentClient } }} clients
 *   only the tables the task type declared
 *
 * @typedef {object} RunResult
 * @property {string} task
 * @property {"SUCCEEDED" | "FAILED" | "SKIPPED"} status
 * @property {string} runId the run record's sort key
 * @property {number} durationMs
 * @property {number} itemsWritten
 * @property {number} itemsRejected
 * @property {RunError | null} error
 * @property {Record<string, unknown> | null} detail
 * @property {boolean} retried a transient failure Lambda delivers again (counted as RunsRetried)
 * @property {boolean} [superseded] a later delivery took the record over while this one ran (RunsSuperseded)
 *
 * @typedef {object} RunResponse What the handler returns (RunResult.as_response() in Python).
 * @property {string} task
 * @property {string} status
 * @property {string} run_id
 * @property {number} duration_ms
 * @property {number} items_written
 * @property {number} items_rejected
 * @property {{ type: string, message: string }} [error]
 * @property {true} [retried]
 * @property {true} [superseded]
 * @property {"done" | "in_progress"} [declined] the delivery did not run: the slot is done (the earlier
 *   result is the answer) or in progress (slots.mjs)
 */

/** Thrown after a transient failure was recorded, so that Lambda retries the delivery. */
export class TaskRunFailed extends Error {
  name = "TaskRunFailed";

  /** @param {RunResult & { error: RunError }} result */
  constructor(result) {
    super(`${result.task}: ${result.error.type}: ${result.error.message}`);
    this.result = result;
  }
}

/**
 * @param {RunResult} result
 * @returns {RunResponse}
 */
export function responseOf(result) {
  /** @type {RunResponse} */
  const response = {
    task: result.task,
    status: result.status,
    run_id: result.runId,
    duration_ms: result.durationMs,
    items_written: result.itemsWritten,
    items_rejected: result.itemsRejected,
  };
  if (result.error) response.error = { type: result.error.type, message: result.error.message };
  if (result.retried) response.retried = true;
  if (result.superseded) response.superseded = true;
  return response;
}

export class TaskRunner {
  #registry;
  #settings;
  #getDocumentClient;
  #clock;
  #writeLine;

  /**
   * @param {object} options
   * @param {TaskRegistry} options.registry
   * @param {RuntimeSettings} options.settings
   * @param {() => DocumentClient} options.getDocumentClient called when a client is first needed
   * @param {() => Date} [options.clock]
   * @param {LineWriter} [options.writeLine] where log and metric lines go
   */
  constructor({ registry, settings, getDocumentClient, clock = () => new Date(), writeLine = writeToStdout }) {
    this.#registry = registry;
    this.#settings = settings;
    this.#getDocumentClient = getDocumentClient;
    this.#clock = clock;
    this.#writeLine = writeLine;
  }

  /**
   * @param {unknown} rawEvent
   * @param {InvocationContext} invocation
   * @returns {Promise<RunResponse>}
   * @throws {TaskRunFailed} after recording a transient failure
   * @throws {Error} when the run record cannot be written (Lambda retries the delivery)
   */
  async dispatch(rawEvent, invocation) {
    const startedAt = this.#clock();
    const requestId = invocation.awsRequestId;
    const { event, issue } = this.#parseEvent(rawEvent, { now: startedAt, executionId: requestId || randomUUID() });
    const logger = createLogger({
      keys: {
        correlation_id: event.execution_id,
        task: event.task,
        task_type: event.task_type,
        attempt: event.attempt,
        request_id: requestId,
      },
      writeLine: this.#writeLine,
      clock: this.#clock,
    });
    const table = {
      documentClient: this.#getDocumentClient(),
      tableName: tableName(this.#settings, TASK_RUNS),
      ttlDays: this.#settings.runRecordTtlDays,
    };
    const recorder = new RunRecorder(table);
    const ledger = new SlotLedger(table);
    /** @type {import("./slots.mjs").Claimed | null} */
    let claimed = null;
    if (!issue) {
      // An invalid event runs nothing, so it claims no slot (its slot may not even be one).
      const claim = await ledger.claim(event, {
        runId: runKey(event).sk,
        requestId,
        executionId: event.execution_id,
        now: startedAt,
        leaseMs: invocation.getRemainingTimeInMillis(),
      });
      if (!claim.claimed) return this.#declined(event, /** @type {import("./slots.mjs").Declined} */ (claim), logger);
      claimed = /** @type {import("./slots.mjs").Claimed} */ (claim);
    }
    let key;
    try {
      key = await recorder.start(event, {
        runtime: this.#settings.runtime,
        requestId,
        startedAt,
        claimFields: claimed ? runFields(claimed) : null,
      });
    } catch (failure) {
      if (claimed) {
        // Free the slot for Lambda's retry of this invocation instead of holding it to the lease.
        const error = failure instanceof Error ? { type: failure.name, message: failure.message } : { type: "Error", message: inspect(failure) };
        await this.#settle(ledger, claimed, { task: event.task, status: RunStatus.FAILED, run_id: runKey(event).sk, error }, logger);
      }
      throw failure;
    }

    const start = performance.now();
    const outcome = issue ? failed("InvalidEvent", issue) : await this.#run(event, invocation, logger);
    const durationMs = Math.round(performance.now() - start);
    const finishedAt = this.#clock();
    /** @type {RunResult} */
    const result = {
      task: event.task,
      runId: key.sk,
      durationMs,
      itemsWritten: 0,
      itemsRejected: 0,
      error: null,
      detail: null,
      ...outcome,
      retried:
        outcome.error?.kind === ErrorKind.TRANSIENT &&
        lambdaRetries(this.#settings, {
          attempt: recorder.lambdaAttempt(key),
          eventAgeSeconds: (finishedAt.getTime() - event.scheduled_time.getTime()) / 1000,
        }),
    };

    const finished = await recorder.finish(key, { ...result, finishedAt });
    if (finished.fallback) {
      // What the record says is what the run counts as: a failure no retry would store better.
      Object.assign(result, { status: RunStatus.FAILED, error: finished.fallback, itemsWritten: 0, itemsRejected: 0, detail: null, retried: false });
    }
    if (!finished.owned) {
      // A later delivery took the record over while this one ran: its outcome decides, so this one
      // is neither retried nor counted as a failure.
      Object.assign(result, { superseded: true, retried: false });
    }
    const response = responseOf(result);
    if (claimed) await this.#settle(ledger, claimed, response, logger, finishedAt);
    this.#writeLine(runMetricsLine({ ...result, stage: this.#settings.stage, timestamp: finishedAt }));
    if (result.status === RunStatus.FAILED) {
      logger.error("run finished", { run: response });
    } else {
      logger.info("run finished", { run: response });
    }
    if (result.error?.kind === ErrorKind.TRANSIENT && !result.superseded) throw new TaskRunFailed(/** @type {RunResult & { error: RunError }} */ (result));
    return response;
  }

  /**
   * A delivery that does not run: counted on the slot (by SlotLedger.claim), answered with the
   * earlier result. A slot in progress under this very invocation's claim (Lambda retried it while
   * the lease holds) fails, so Lambda comes back once the lease has passed.
   *
   * @param {Readonly<ScheduledEvent>} event
   * @param {import("./slots.mjs").Declined} declined
   * @param {Logger} logger
   */
  #declined(event, declined, logger) {
    const response = declinedResponse(declined, event.task);
    logger.info("delivery declined", { run: response, scheduled_time: eventAsJson(event).scheduled_time });
    if (declined.reason === Decline.IN_PROGRESS && declined.ownInvocation) {
      throw new SlotInProgressError(
        `${event.task}: slot ${response.run_id} is still claimed by this invocation's earlier attempt; ` +
          `retry after its lease (${declined.slot.lease_expires_at})`,
      );
    }
    return response;
  }

  /**
   * Records the outcome on the slot. A failure here is logged, not thrown: the run record is final,
   * and failing the delivery would have Lambda retry a run that happened.
   *
   * @param {SlotLedger} ledger
   * @param {import("./slots.mjs").Claimed} claimed
   * @param {Record<string, any>} response
   * @param {Logger} logger
   * @param {Date} [finishedAt]
   */
  async #settle(ledger, claimed, response, logger, finishedAt = this.#clock()) {
    try {
      await ledger.settle(claimed, { status: response.status, result: response, finishedAt });
    } catch (error) {
      logger.error("the slot's outcome could not be recorded; it is recovered after its lease", { error });
    }
  }

  /**
   * The event to record the delivery under, and what makes it unrunnable, if anything. Every record
   * goes under the function's own task when it has one (KAIROS_TASK): IAM lets it write no other.
   *
   * @param {unknown} rawEvent
   * @param {{ now: Date, executionId: string }} fallback for an invalid event without an execution_id
   * @returns {{ event: Readonly<ScheduledEvent>, issue: string | null }}
   */
  #parseEvent(rawEvent, { now, executionId }) {
    const ownTask = recordingTask(this.#settings);
    const parsed = parseScheduledEvent(rawEvent);
    if (parsed.issues) {
      // Still recorded: under the function's own task, else whatever identity the event carried.
      return { event: fallbackEvent(rawEvent, { now, executionId, ownTask }), issue: parsed.issues.join("; ") };
    }
    const refused = refusal(this.#settings, parsed.event.task);
    if (refused !== null) {
      return { event: Object.freeze({ ...parsed.event, task: ownTask ?? parsed.event.task }), issue: refused };
    }
    const ownType = this.#settings.taskType ?? null;
    if (ownType !== null && parsed.event.task_type !== ownType) {
      return {
        event: parsed.event,
        issue: `this function runs task_type ${pyRepr(ownType)}; the event names ${pyRepr(parsed.event.task_type)}`,
      };
    }
    return { event: parsed.event, issue: null };
  }

  /**
   * @param {Readonly<ScheduledEvent>} event
   * @param {InvocationContext} invocation
   * @param {Logger} logger
   * @returns {Promise<Partial<RunResult> & { status: RunResult["status"] }>}
   */
  async #run(event, invocation, logger) {
    let taskType;
    let params;
    try {
      taskType = this.#registry.get(event.task_type);
      params = parseParams(taskType, event.params);
    } catch (error) {
      if (error instanceof UnknownTaskTypeError) return failed("UnknownTaskType", error.message);
      if (error instanceof InvalidParamsError) {
        return failed("InvalidParams", `params do not fit task_type '${event.task_type}': ${error.message}`);
      }
      throw error;
    }
    const latenessSeconds = (this.#clock().getTime() - event.scheduled_time.getTime()) / 1000;
    if (refusesPastSlot(this.#settings, { backfill: taskType.backfill, latenessSeconds })) {
      // Its source serves only the present: running it would file today's data under a past slot.
      const scheduled = event.scheduled_time.toISOString().replace(/\.\d{3}Z$/, "Z");
      const message =
        `task_type '${taskType.name}' cannot run for a past slot: ${scheduled} is ${Math.round(latenessSeconds)} s ago, ` +
        `over the late-delivery limit of ${this.#settings.lateDeliveryLimitSeconds} s`;
      return { status: RunStatus.SKIPPED, error: { type: PAST_SLOT_REFUSED, message, kind: ErrorKind.PERMANENT }, detail: { reason: message } };
    }
    /** @type {TaskContext} */
    const context = Object.freeze({
      event,
      settings: this.#settings,
      logger,
      remainingTimeMs: () => invocation.getRemainingTimeInMillis(),
      clients: this.#scopedClients(taskType),
    });
    try {
      const outcome = /** @type {import("./registry.mjs").TaskOutcome} */ ((await taskType.fn(params, context)) ?? {});
      return {
        status: RunStatus.SUCCEEDED,
        itemsWritten: count(outcome.itemsWritten, "itemsWritten"),
        itemsRejected: count(outcome.itemsRejected, "itemsRejected"),
        detail: outcome.detail ?? {},
      };
    } catch (error) {
      if (error instanceof TaskSkipped) {
        // The reason last, so the task's detail cannot override it.
        return { status: RunStatus.SKIPPED, detail: { ...error.detail, reason: error.reason } };
      }
      logger.error("task failed", { error });
      const isError = error instanceof Error;
      return {
        status: RunStatus.FAILED,
        error: {
          type: isError ? error.name : "Error",
          message: isError ? error.message || error.name : `non-Error value thrown: ${inspect(error)}`,
          kind: errorKind(error),
        },
        detail: isError && isPlainObject(/** @type {{ detail?: unknown }} */ (error).detail) ? /** @type {any} */ (error).detail : null,
      };
    }
  }

  /** @param {import("./registry.mjs").TaskType} taskType */
  #scopedClients(taskType) {
    return Object.freeze({
      table: (/** @type {string} */ tableId) => {
        if (!Object.hasOwn(taskType.tables, tableId)) {
          throw new UndeclaredTableError(
            `table '${tableId}' is not declared by task_type '${taskType.name}' (declare it in registry.task(..., { tables }))`,
          );
        }
        const name = tableName(this.#settings, tableId);
        const client = this.#getDocumentClient();
        if (taskType.tables[tableId] === "query_indexes") {
          return Object.freeze({ tableName: name, client: indexQueriesClient(client, tableId, name) });
        }
        const partitions = taskType.partitions?.[tableId];
        return Object.freeze({ tableName: name, client: partitions ? partitionScopedClient(client, tableId, name, partitions) : client });
      },
    });
  }
}

/**
 * @param {string} type
 * @param {string} message
 */
function failed(type, message) {
  return { status: RunStatus.FAILED, error: { type, message, kind: ErrorKind.PERMANENT } };
}

// Checked so a task cannot put a non-number into the run record or the EMF line; the TypeError is
// thrown inside the task's try block and so becomes a FAILED run.
/**
 * @param {unknown} value what the task returned
 * @param {string} field
 * @returns {number}
 */
function count(value, field) {
  if (value === undefined) return 0;
  // The typeof only narrows: Number.isSafeInteger is false for any non-number.
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  throw new TypeError(`the task returned ${field}=${inspect(value)}; expected an integer >= 0`);
}

/**
 * @param {unknown} value
 * @returns {boolean}
 */
function isPlainObject(value) {
  return value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;
}

/**
 * The task a delivery that cannot be trusted is recorded under: the function's own, or its first when
 * it is shared (the partitions IAM lets it write are its tasks').
 *
 * @param {import("./settings.mjs").RuntimeSettings} settings
 * @returns {string | null}
 */
export function recordingTask(settings) {
  return settings.task ?? settings.tasks?.[0] ?? null;
}

/**
 * Why this function may not run `task`, or null when it may (the words are kairos_runtime's).
 *
 * @param {import("./settings.mjs").RuntimeSettings} settings
 * @param {string} task
 * @returns {string | null}
 */
export function refusal(settings, task) {
  if (settings.task && task !== settings.task) {
    return `this function runs task ${pyRepr(settings.task)}; the event names ${pyRepr(task)}`;
  }
  const tasks = settings.tasks ?? null;
  if (tasks !== null && !tasks.includes(task)) {
    const shown = tasks.slice(0, 5).map(pyRepr).join(", ") + (tasks.length > 5 ? ` and ${tasks.length - 5} more` : "");
    return `this shared function runs tasks ${shown}; the event names ${pyRepr(task)}`;
  }
  return null;
}

/**
 * A string as Python's repr() writes it, so messages match the Python runtime's: single quotes unless
 * the text has a single quote and no double quote, with backslashes, the quote and control
 * characters escaped. (Python also escapes non-printable non-ASCII characters; those are kept here.)
 *
 * @param {string} text
 * @returns {string}
 */
export function pyRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  /** @type {Readonly<Record<string, string>>} */
  const named = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
  let body = "";
  for (const char of text) {
    const code = /** @type {number} */ (char.codePointAt(0)); // a string's iteration yields no empty char
    if (Object.hasOwn(named, char)) body += named[char];
    else if (char === quote) body += `\\${char}`;
    else if (code < 0x20 || code === 0x7f) body += `\\x${code.toString(16).padStart(2, "0")}`;
    else body += char;
  }
  return `${quote}${body}${quote}`;
}
