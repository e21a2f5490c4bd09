/**
 * The constants this runtime shares with the Python one (environment variable names, table designs,
 * run-record fields, statuses, limits, metric names), read at module load from ../contract.json.
 * That file is generated from kairos_runtime's own definitions by `make contract`
 * (kairos_runtime/contract.py) and a pytest test fails when it is stale, so no constant here is kept
 * equal by hand. It sits inside the Node code asset, next to src/.
 *
 * readFileSync rather than an `import ... with { type: "json" }`: the attribute syntax needs Node
 * 20.10 or later and still warns on some 20.x releases, a plain read works on every Lambda nodejs
 * runtime.
 */

import { readFileSync } from "node:fs";

/**
 * @template T
 * @param {T} value
 * @returns {Readonly<T>}
 */
function deepFreeze(value) {
  if (value && typeof value === "object") {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}

/**
 * @typedef {object} SettingBounds
 * @property {string} env
 * @property {number} default
 * @property {number} min
 * @property {number} [max]
 */

/**
 * @typedef {object} Contract
 * @property {{ stage: string, task: string, tasks: string, task_type: string, runtime: string, late_delivery_limit_seconds: string }} env
 * @property {{ error_type: string, min_limit_seconds: number }} past_slot
 * @property {{ run_record_ttl_days: SettingBounds, lambda_retry_attempts: SettingBounds, max_event_age_seconds: SettingBounds }} settings
 * @property {{ first_retry_delay_seconds: number }} lambda
 * @property {string[]} access_modes
 * @property {Record<string, string | number>} bounds
 * @property {Record<string, { partition_key: string, sort_key: string, indexes: { name: string, partition_key: string, sort_key: string }[], ttl_attribute: string, env_var: string }>} tables
 * @property {{ table: string, statuses: string[], error_kinds: string[], max_error_message: number, max_detail_bytes: number, max_detail_keys: number, previous_outcome_fields: string[], restart_attempts: number, cleared_on_redelivery: string[], restarted_fields: string[], claim_fields: string[] }} run_records
 * @property {{ prefix: string, claim_margin_seconds: number, declined_kept: number, done: string[], replaced_fields: string[], cleared_on_claim: string[], declines: string[] }} slots
 * @property {{ namespace: string, service: string, dimensions: string[], run_outcomes: Record<string, string>, runs_retried: string, runs_superseded: string, runs_alive: string, alive_outcomes: string[], run_duration: string, items_written: string, items_rejected: string }} metrics
 */

/** @type {Readonly<Contract>} */
export const CONTRACT = deepFreeze(JSON.parse(readFileSync(new URL("../contract.json", import.meta.url), "utf8")));
