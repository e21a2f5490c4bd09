/**
 * How large and how deep anything an event or a task puts into a run record may be: the numbers of
 * kairos_runtime/bounds.py, where each is explained (tests/runtime/test_bounds.py compares the two
 * files, so they cannot drift). Patterns are unanchored; anchor them with `fullMatch`.
 */

// --- Bounds shared with lambdas/python/kairos_runtime/bounds.py (same names, same values) ---
export const TASK_NAME_PATTERN = "[a-z][a-z0-9-]{0,47}";
export const TASK_TYPE_PATTERN = "[a-z][a-z0-9_]{0,63}";
export const EXECUTION_ID_PATTERN = "[!-~]{1,128}";
export const MAX_PARAMS_BYTES = 262144;
export const MAX_PARAMS_DEPTH = 16;
export const MAX_DETAIL_BYTES = 32000;
export const MAX_DETAIL_DEPTH = 24;
export const MAX_DETAIL_KEYS = 50;
export const MAX_ERROR_MESSAGE = 1000;
// --- end of the shared bounds ---

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
