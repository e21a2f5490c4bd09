/**
 * How large and how deep anything an event or a task puts into a run record may be: the numbers of
 * kairos_runtime/bounds.py, where each is explained, read from the generated contract.json. Patterns are unanchored; anchor them with `fullMatch`.
 */

import { CONTRACT } from "./contract.mjs";

/** @type {{ TASK_NAME_PATTERN: string, TASK_TYPE_PATTERN: string, EXECUTION_ID_PATTERN: string, MAX_PARAMS_BYTES: number, MAX_PARAMS_DEPTH: number, MAX_DETAIL_BYTES: number, MAX_DETAIL_DEPTH: number, MAX_DETAIL_KEYS: number, MAX_ERROR_MESSAGE: number }} */
const SHARED = /** @type {any} */ (CONTRACT.bounds);
export const {
  TASK_NAME_PATTERN,
  TASK_TYPE_PATTERN,
  EXECUTION_ID_PATTERN,
  MAX_PARAMS_BYTES,
  MAX_PARAMS_DEPTH,
  MAX_DETAIL_BYTES,
  MAX_DETAIL_DEPTH,
  MAX_DETAIL_KEYS,
  MAX_ERROR_MESSAGE,
} = SHARED;

/**
 * One of the patterns above, matching a whole string only (JavaScript's `$` has no newline
 * exception without the m flag, as Python's `\Z`).
 *
 * @param {string} pattern
 * @returns {RegExp}
 */
export function fullMatch(pattern) {
  return new RegExp(`^(?:${pattern})$`);
}
