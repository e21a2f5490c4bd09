/**
 * The DynamoDB table designs of kairos_runtime/tables.py, read from the generated contract: the run
 * recorder builds keys from them, the registry checks declared table ids against them, and the tests
 * create tables from them.
 */

import { CONTRACT } from "./contract.mjs";

/**
 * @typedef {object} TableDesign
 * @property {string} partitionKey
 * @property {string} sortKey
 * @property {{ name: string, partitionKey: string, sortKey: string }[]} indexes
 * @property {string} ttlAttribute
 * @property {string} envVar Environment variable through which functions learn the deployed table name.
 */

/** @type {Readonly<Record<string, Readonly<TableDesign>>>} keyed by the logical table id */
export const TABLES = Object.freeze(
  Object.fromEntries(
    Object.entries(CONTRACT.tables).map(([tableId, design]) => [
      tableId,
      Object.freeze({
        partitionKey: design.partition_key,
        sortKey: design.sort_key,
        indexes: design.indexes.map((index) => ({ name: index.name, partitionKey: index.partition_key, sortKey: index.sort_key })),
        ttlAttribute: design.ttl_attribute,
        envVar: design.env_var,
      }),
    ]),
  ),
);

export const TASK_RUNS = CONTRACT.run_records.table;

/**
 * What a task type may do to a table (kairos_runtime.registry.Access); the stack writes the grants.
 * `query_indexes`: Query on the table's secondary indexes and nothing else.
 *
 * @type {readonly string[]}
 */
export const ACCESS_MODES = Object.freeze([...CONTRACT.access_modes]);
