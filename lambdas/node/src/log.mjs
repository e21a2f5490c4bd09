/**
 * Structured JSON logs and CloudWatch Embedded Metric Format (EMF) lines, hand-written because
 * Powertools for TypeScript is not bundled: one JSON object per line on stdout.
 */

import { inspect } from "node:util";

import { CONTRACT } from "./contract.mjs";

export const SERVICE = CONTRACT.metrics.service;
export const METRICS_NAMESPACE = CONTRACT.metrics.namespace;
const METRICS = CONTRACT.metrics;

/** @typedef {(line: string) => void} LineWriter */

/**
 * Writes to process.stdout rather than console: the Lambda runtime prefixes console output with a
 * timestamp and request id, and CloudWatch only extracts EMF metrics from lines that are pure JSON.
 *
 * @type {LineWriter}
 */
export function writeToStdout(line) {
  process.stdout.write(`${line}\n`);
}

/**
 * @typedef {object} Logger
 * @property {(message: string, fields?: Record<string, unknown>) => void} info
 * @property {(message: string, fields?: Record<string, unknown>) => void} warn
 * @property {(message: string, fields?: Record<string, unknown>) => void} error
 */

/**
 * A logger whose every line carries `keys` (correlation_id, task, ...) next to level, message,
 * timestamp and service. Extra fields may not override those.
 *
 * @param {{ keys?: Record<string, unknown>, writeLine?: LineWriter, clock?: () => Date }} [options]
 * @returns {Logger}
 */
export function createLogger({ keys = {}, writeLine = writeToStdout, clock = () => new Date() } = {}) {
  /**
   * @param {"INFO" | "WARN" | "ERROR"} level
   * @param {string} message
   * @param {Record<string, unknown>} [fields]
   */
  const log = (level, message, fields = {}) => {
    const base = { level, message, timestamp: clock().toISOString(), service: SERVICE, ...keys };
    // base first for reading order, and again last so a field cannot overwrite it.
    writeLine(toJsonLine({ ...base, ...fields, ...base }, base));
  };
  return Object.freeze({
    info: (message, fields) => log("INFO", message, fields),
    warn: (message, fields) => log("WARN", message, fields),
    error: (message, fields) => log("ERROR", message, fields),
  });
}

/**
 * @param {Record<string, unknown>} record
 * @param {Record<string, unknown>} base what to write if `record` cannot be serialized
 */
function toJsonLine(record, base) {
  try {
    return JSON.stringify(record, jsonReplacer);
  } catch (error) {
    // A circular field must not cost the log line, let alone the run.
    return JSON.stringify({ ...base, fields: inspect(record, { depth: 4 }), log_error: String(error) });
  }
}

/**
 * @param {string} _key
 * @param {unknown} value
 * @returns {unknown}
 */
function jsonReplacer(_key, value) {
  if (typeof value === "bigint") return String(value);
  if (value instanceof Error) {
    return { name: value.name, message: value.message, code: /** @type {{ code?: unknown }} */ (value).code, stack: value.stack, cause: value.cause };
  }
  return value;
}

/**
 * @typedef {object} RunMetrics
 * @property {string} task dimension, next to service
 * @property {string} stage dimension: stages may share an account and region, and a task keeps its name in each
 * @property {"SUCCEEDED" | "FAILED" | "SKIPPED"} status counted as RunsSucceeded / RunsFailed / RunsSkipped
 * @property {boolean} [retried] a failure Lambda delivers again: counted as RunsRetried instead
 * @property {boolean} [superseded] a later delivery took the record over: counted as RunsSuperseded
 *   (a superseded success or skip still counts RunsAlive, as every success and skip does)
 * @property {number} durationMs
 * @property {number} itemsWritten
 * @property {number} itemsRejected
 * @property {Date} timestamp
 */

/**
 * One EMF line with a run's metrics: a JSON log line whose `_aws` member tells CloudWatch which of
 * its top-level members are metrics (and their units) and which are dimensions. The dimension set
 * is the contract's (task, service "kairos", stage), the one the Python handler publishes with
 * Powertools, so both runtimes publish the same metric streams, the ones each task's alarms watch.
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 *
 * @param {RunMetrics} run
 * @returns {string}
 */
export function runMetricsLine({ task, stage, status, retried = false, superseded = false, durationMs, itemsWritten, itemsRejected, timestamp }) {
  const outcome = superseded ? METRICS.runs_superseded : retried ? METRICS.runs_retried : METRICS.run_outcomes[status];
  const metrics = [
    [outcome, "Count", 1],
    [METRICS.run_duration, "Milliseconds", durationMs],
    [METRICS.items_written, "Count", itemsWritten],
    [METRICS.items_rejected, "Count", itemsRejected],
  ];
  // A success or skip keeps the task alive (its freshness alarm watches this counter).
  if (METRICS.alive_outcomes.includes(status) && !retried) metrics.push([METRICS.runs_alive, "Count", 1]);
  return JSON.stringify({
    _aws: {
      Timestamp: timestamp.getTime(),
      CloudWatchMetrics: [
        {
          Namespace: METRICS_NAMESPACE,
          Dimensions: [METRICS.dimensions],
          Metrics: metrics.map(([name, unit]) => ({ Name: name, Unit: unit })),
        },
      ],
    },
    task,
    service: SERVICE,
    stage,
    ...Object.fromEntries(metrics.map(([name, , value]) => [name, value])),
  });
}
