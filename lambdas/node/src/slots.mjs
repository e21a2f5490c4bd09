/**
 * One claim per scheduled slot: the item that makes a slot's effect happen once (mirroring
 * kairos_runtime/slots.py, whose docstring has the rules; docs/adr/0140-exactly-once-per-slot.md
 * says why). In the TaskRuns partition of the task, beside its run records:
 *   pk  TASK#<task>               (the function's IAM grant: LeadingKeys TASK#<task>)
 *   sk  SLOT#<scheduled_time>     (no gsi1pk, no RUN# prefix: no query for runs reads it)
 *
 * No claim yet or a FAILED slot: this delivery claims it and runs. SUCCEEDED or SKIPPED: declined
 * ("done") unless the event says rerun. STARTED within its lease (the owner's Lambda deadline plus
 * CLAIM_MARGIN_SECONDS): declined ("in_progress"), a rerun too. STARTED past its lease: recovered.
 * Each claim or decline is conditional on the claim read being still the slot's (status and
 * claimed_at), so exactly one racer claims; `deliveries` is added to, so declines do not contend.
 */

import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";

import { CONTRACT } from "./contract.mjs";
import { RESTART_ATTEMPTS, RunRecordContentionError, RunStatus, isoUtcSeconds } from "./runs.mjs";
import { TABLES, TASK_RUNS } from "./tables.mjs";

const SLOTS = CONTRACT.slots;
const DESIGN = TABLES[TASK_RUNS];
const DAY_SECONDS = 24 * 60 * 60;

export const SLOT_PREFIX = SLOTS.prefix;
/** Added to the owner's Lambda deadline before its claim may be recovered. */
export const CLAIM_MARGIN_SECONDS = SLOTS.claim_margin_seconds;
/** How many declined deliveries a slot lists (the first ones); `deliveries` counts them all. */
export const DECLINED_KEPT = SLOTS.declined_kept;
/** A slot with one of these outcomes is not run again without `rerun`. */
export const DONE = Object.freeze(new Set(SLOTS.done));
/** What a new claim keeps of the one it replaced (on the slot and on its run record). */
export const REPLACED_FIELDS = SLOTS.replaced_fields;
/** The earlier claim's outcome, removed by a new claim until its own settle sets them. */
export const CLEARED_ON_CLAIM = SLOTS.cleared_on_claim;
/** Why a delivery did not run. */
export const Decline = Object.freeze({ DONE: "done", IN_PROGRESS: "in_progress" });

/**
 * This invocation's own earlier attempt still holds the slot's claim (Lambda retried it, or
 * delivered it twice, before the lease passed): the delivery fails, so Lambda retries it later.
 */
export class SlotInProgressError extends Error {
  name = "SlotInProgressError";
}

/** @param {unknown} error */
const isConditionFailure = (error) => /** @type {any} */ (error)?.name === "ConditionalCheckFailedException";

/**
 * @typedef {import("./events.mjs").ScheduledEvent} ScheduledEvent
 * @typedef {import("./runs.mjs").DocumentClient} DocumentClient
 * @typedef {{ claimed: true, key: Record<string, string>, requestId: string, claimedAt: string, rerun: boolean,
 *   replaced: Record<string, unknown> | null }} Claimed
 * @typedef {{ claimed: false, reason: "done" | "in_progress", slot: Record<string, any>, ownInvocation: boolean }} Declined
 */

/** @param {Readonly<ScheduledEvent>} event */
export function slotKey(event) {
  return { [DESIGN.partitionKey]: `TASK#${event.task}`, [DESIGN.sortKey]: `${SLOT_PREFIX}${isoUtcSeconds(event.scheduled_time)}` };
}

/**
 * What the run record says about the claim: `rerun` and the outcome it `replaced`.
 *
 * @param {Claimed} claimed
 */
export function runFields(claimed) {
  return {
    ...(claimed.rerun ? { rerun: true } : {}),
    ...(claimed.replaced ? { replaced: claimed.replaced } : {}),
  };
}

/**
 * The answer of a declined delivery: the earlier run's result when the slot is done, else the run
 * in progress.
 *
 * @param {Declined} declined
 * @param {string} task
 */
export function declinedResponse(declined, task) {
  const result = declined.slot.result;
  const answer =
    declined.reason === Decline.DONE && result && typeof result === "object"
      ? { ...result }
      : { task, status: String(declined.slot.status), run_id: String(declined.slot.run_id) };
  return { ...answer, declined: declined.reason };
}

/**
 * Why a delivery at `now` may not claim `slot`; null when it may.
 *
 * @param {Record<string, any>} slot
 * @param {{ rerun: boolean, now: Date }} delivery
 */
function declineReason(slot, { rerun, now }) {
  if (slot.status === RunStatus.STARTED) {
    const lease = Date.parse(String(slot.lease_expires_at));
    if (Number.isNaN(lease)) return null; // no lease to keep
    return now.getTime() < lease ? Decline.IN_PROGRESS : null;
  }
  if (DONE.has(slot.status) && !rerun) return Decline.DONE;
  return null;
}

/**
 * An update's condition that the slot still holds the claim read (status and claimed_at), with
 * `names` and `values` and what the condition and `ADD #deliveries :one` need.
 *
 * @param {Record<string, any>} earlier
 * @param {{ names: Record<string, string>, values: Record<string, unknown> }} expression
 */
function unchanged(earlier, { names, values }) {
  return {
    ConditionExpression: "#status = :seen_status AND #claimed_at = :seen_claimed_at",
    ExpressionAttributeNames: { ...names, "#status": "status", "#claimed_at": "claimed_at", "#deliveries": "deliveries" },
    ExpressionAttributeValues: { ...values, ":seen_status": earlier.status, ":seen_claimed_at": earlier.claimed_at, ":one": 1 },
  };
}

/** Claims, declines and settles slots in the TaskRuns table (one instance per delivery). */
export class SlotLedger {
  /** @param {{ documentClient: DocumentClient, tableName: string, ttlDays: number }} options */
  constructor({ documentClient, tableName, ttlDays }) {
    this.documentClient = documentClient;
    this.tableName = tableName;
    this.ttlDays = ttlDays;
  }

  /**
   * Claims the event's slot for this delivery, or records why it does not run. `leaseMs` is how
   * long this delivery may still run (Lambda's remaining time); `runId` the sort key of the run
   * record it will write.
   *
   * @param {Readonly<ScheduledEvent>} event
   * @param {{ runId: string, requestId: string, executionId: string, now: Date, leaseMs: number }} delivery
   * @returns {Promise<Claimed | Declined>}
   */
  async claim(event, { runId, requestId, executionId, now, leaseMs }) {
    const key = slotKey(event);
    const claimedAt = now.toISOString();
    /** @type {Record<string, unknown>} */
    const owner = {
      status: RunStatus.STARTED,
      run_id: runId,
      request_id: requestId,
      claimed_at: claimedAt,
      lease_expires_at: new Date(now.getTime() + leaseMs + CLAIM_MARGIN_SECONDS * 1000).toISOString(),
      [DESIGN.ttlAttribute]: Math.floor(now.getTime() / 1000) + this.ttlDays * DAY_SECONDS,
    };
    if (event.rerun) owner.rerun = true;
    for (let attempt = 0; attempt < RESTART_ATTEMPTS; attempt += 1) {
      try {
        await this.documentClient.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { ...key, task: event.task, scheduled_time: isoUtcSeconds(event.scheduled_time), ...owner, deliveries: 1 },
            ConditionExpression: "attribute_not_exists(#pk)",
            ExpressionAttributeNames: { "#pk": DESIGN.partitionKey },
          }),
        );
        return { claimed: true, key, requestId, claimedAt, rerun: event.rerun, replaced: null };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const response = await this.documentClient.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
      const earlier = response?.Item;
      if (!earlier) continue; // expired since the put failed: put it afresh
      const reason = declineReason(earlier, { rerun: event.rerun, now });
      try {
        if (reason === null) {
          const replaced = Object.fromEntries(REPLACED_FIELDS.filter((name) => Object.hasOwn(earlier, name)).map((name) => [name, earlier[name]]));
          await this.#takeOver(key, earlier, { ...owner, replaced });
          return { claimed: true, key, requestId, claimedAt, rerun: event.rerun, replaced };
        }
        const declined = { request_id: requestId, execution_id: executionId, attempt: event.attempt, at: claimedAt, reason };
        await this.#countDeclined(key, earlier, declined);
        return { claimed: false, reason, slot: earlier, ownInvocation: earlier.request_id === requestId };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    }
    throw new RunRecordContentionError(
      `${key[DESIGN.partitionKey]} ${key[DESIGN.sortKey]}: ${RESTART_ATTEMPTS} other deliveries changed the slot while this one tried`,
    );
  }

  /**
   * @param {Record<string, string>} key
   * @param {Record<string, any>} earlier
   * @param {Record<string, unknown>} owner
   */
  async #takeOver(key, earlier, owner) {
    const set = Object.keys(owner);
    const cleared = CLEARED_ON_CLAIM.filter((name) => !Object.hasOwn(owner, name));
    await this.documentClient.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: key,
        UpdateExpression:
          `SET ${set.map((name) => `#${name} = :${name}`).join(", ")}` +
          (cleared.length > 0 ? ` REMOVE ${cleared.map((name) => `#${name}`).join(", ")}` : "") +
          " ADD #deliveries :one",
        ...unchanged(earlier, {
          names: Object.fromEntries([...set, ...cleared].map((name) => [`#${name}`, name])),
          values: Object.fromEntries(set.map((name) => [`:${name}`, owner[name]])),
        }),
      }),
    );
  }

  /**
   * @param {Record<string, string>} key
   * @param {Record<string, any>} earlier
   * @param {Record<string, unknown>} declined
   */
  async #countDeclined(key, earlier, declined) {
    const listing = (earlier.declined ?? []).length < DECLINED_KEPT;
    await this.documentClient.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: key,
        UpdateExpression: listing
          ? "SET #declined = list_append(if_not_exists(#declined, :empty), :declined) ADD #deliveries :one"
          : "ADD #deliveries :one",
        ...unchanged(earlier, {
          names: listing ? { "#declined": "declined" } : {},
          values: listing ? { ":empty": [], ":declined": [declined] } : {},
        }),
      }),
    );
  }

  /**
   * Records the run's outcome on the slot it claimed.
   *
   * @param {Claimed} claimed
   * @param {{ status: string, result: Record<string, unknown>, finishedAt: Date }} outcome
   * @returns {Promise<boolean>} false when a later delivery took the slot over meanwhile (its lease
   *   had passed), which then decides
   */
  async settle(claimed, { status, result, finishedAt }) {
    try {
      await this.documentClient.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: claimed.key,
          UpdateExpression: "SET #status = :status, #result = :result, #finished_at = :finished_at",
          ConditionExpression: "#request_id = :request_id AND #claimed_at = :claimed_at",
          ExpressionAttributeNames: {
            "#status": "status",
            "#result": "result",
            "#finished_at": "finished_at",
            "#request_id": "request_id",
            "#claimed_at": "claimed_at",
          },
          ExpressionAttributeValues: {
            ":status": status,
            ":result": result,
            ":finished_at": finishedAt.toISOString(),
            ":request_id": claimed.requestId,
            ":claimed_at": claimed.claimedAt,
          },
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
    return false;
  }
}
