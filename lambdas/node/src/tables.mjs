/**
 * The DynamoDB table designs, mirroring kairos_runtime/tables.py: the run recorder builds keys from
 * them, the registry checks declared table ids against them, and the tests create tables from them.
 */

/**
 * @typedef {object} TableDesign
 * @property {string} partitionKey
 * @property {string} sortKey
 * @property {{ name: string, partitionKey: string, sortKey: string }[]} indexes
 * @property {string} ttlAttribute
 * @property {string} envVar Environment variable through which functions learn the deployed table name.
 */

/** @type {Readonly<Record<string, Readonly<TableDesign>>>} keyed by the logical table id */
export const TABLES = Object.freeze({
  task_runs: Object.freeze({
    partitionKey: "pk",
    sortKey: "sk",
    indexes: [{ name: "by_date", partitionKey: "gsi1pk", sortKey: "gsi1sk" }],
    ttlAttribute: "expires_at",
    envVar: "KAIROS_TASK_RUNS_TABLE",
  }),
  market_data: Object.freeze({
    partitionKey: "pk",
    sortKey: "sk",
    indexes: [{ name: "by_class_date", partitionKey: "gsi1pk", sortKey: "gsi1sk" }],
    ttlAttribute: "expires_at",
    envVar: "KAIROS_MARKET_DATA_TABLE",
  }),
});

export const TASK_RUNS = "task_runs";

/** What a task type may do to a table; the stack turns it into grant_* calls. */
export const ACCESS_MODES = Object.freeze(["read", "write", "read_write"]);
