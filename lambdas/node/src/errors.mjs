/**
 * Errors a task throws to say how it failed (mirroring kairos_runtime/errors.py; the kinds come from
 * the contract); the runner records the kind and decides whether the delivery should be retried.
 */

import { CONTRACT } from "./contract.mjs";

/** @type {Readonly<{ TRANSIENT: "transient", PERMANENT: "permanent" }>} */
export const ErrorKind = /** @type {any} */ (Object.freeze(Object.fromEntries(CONTRACT.run_records.error_kinds.map((kind) => [kind.toUpperCase(), kind]))));

/**
 * @typedef {{ cause?: unknown, detail?: Record<string, unknown> }} TaskErrorOptions
 * `detail` is stored in the run record next to the error.
 */

export class TaskError extends Error {
  /** @type {"transient" | "permanent"} */
  kind = ErrorKind.PERMANENT;

  /**
   * @param {string} message
   * @param {TaskErrorOptions} [options]
   */
  constructor(message, { cause, detail } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.detail = detail;
  }
}

/** Another delivery may succeed (the source timed out, throttled or reset the connection). */
export class TransientTaskError extends TaskError {
  kind = ErrorKind.TRANSIENT;
}

/** Another delivery would fail the same way (the source said no, no valid rows). */
export class PermanentTaskError extends TaskError {}

/** Thrown by a task that decided not to run (a non-trading day, say); recorded as SKIPPED. */
export class TaskSkipped extends Error {
  name = "TaskSkipped";

  /**
   * @param {string} reason
   * @param {{ detail?: Record<string, unknown> }} [options]
   */
  constructor(reason, { detail } = {}) {
    super(reason);
    this.reason = reason;
    this.detail = { ...detail };
  }
}

// Socket-level failures, the Node counterpart of Python's ConnectionError. EAI_AGAIN is the resolver
// saying "try again", so it is included; ENOTFOUND is not, since the name will still not exist.
const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/**
 * Whether another delivery could help. Unknown errors count as permanent: they are treated as bugs.
 * The cause chain is followed because fetch() wraps every network failure in a TypeError.
 *
 * @param {unknown} error
 * @returns {"transient" | "permanent"}
 */
export function errorKind(error) {
  const seen = new Set();
  for (let current = error; current instanceof Error && !seen.has(current); current = current.cause) {
    seen.add(current);
    if (current instanceof TaskError) return current.kind;
    // "TimeoutError": AbortSignal.timeout() and the AWS SDK's request timeouts.
    if (TRANSIENT_CODES.has(/** @type {any} */ (current).code) || current.name === "TimeoutError") {
      return ErrorKind.TRANSIENT;
    }
  }
  return ErrorKind.PERMANENT;
}
