/**
 * Partition-scoped table declarations, mirroring `Partitions` and `resolve_partitions` in
 * kairos_runtime/registry.py, the client wrapper that refuses writes outside them, and the one that
 * lets a `query_indexes` table answer index queries only.
 *
 * The stack grants each declared access only under `dynamodb:LeadingKeys` matching its prefixes; the
 * runtime refuses the same writes before they are sent, and every delete: a batch's puts and deletes
 * are one IAM action (`dynamodb:BatchWriteItem`), so IAM cannot refuse a batch delete in the task's
 * own partitions.
 */

import { TABLES } from "./tables.mjs";

/**
 * @typedef {{ read: readonly string[], write: readonly string[], query_indexes?: true }} Partitions
 *   `query_indexes`: the task also queries the table's secondary indexes, which no partition limit
 *   reaches (`dynamodb:LeadingKeys` is the table's key), so a partition-scoped read is granted that
 *   Query only when declared (ADR 0203); present only when true, as in the manifest
 * @typedef {readonly string[] | { read?: readonly string[], write?: readonly string[], query_indexes?: boolean }} PartitionsDeclaration
 *   a list: the same prefixes for every declared access
 */

export class UndeclaredPartitionError extends Error {
  name = "UndeclaredPartitionError";
}

/** @param {string} access */
const allowsRead = (access) => access === "read" || access === "read_write";
/** @param {string} access */
const allowsWrite = (access) => access === "write" || access === "read_write";

/**
 * @param {unknown} prefixes
 * @param {string} where how to name the declaration in messages
 * @returns {readonly string[]}
 */
function checkedPrefixes(prefixes, where) {
  if (!Array.isArray(prefixes)) throw new TypeError(`${where}: prefixes must be a list of strings`);
  for (const prefix of prefixes) {
    // IAM's StringLike treats * and ? as wildcards: a prefix holding one would grant more than it says.
    if (typeof prefix !== "string" || prefix === "" || /[*?]/.test(prefix)) {
      throw new TypeError(`${where}: a partition prefix must be a non-empty string without '*' or '?' (got ${JSON.stringify(prefix)})`);
    }
  }
  return Object.freeze([...prefixes]);
}

/**
 * `partitions` checked against `tables`: every declared access has prefixes, and only those; a table
 * written to must have them (a whole-table write grant would let one task rewrite another's data).
 *
 * @param {string} taskType
 * @param {Record<string, string>} tables
 * @param {Record<string, PartitionsDeclaration>} declared
 * @returns {Readonly<Record<string, Readonly<Partitions>>>}
 * @throws {TypeError}
 */
export function resolvePartitions(taskType, tables, declared) {
  /** @type {Record<string, Readonly<Partitions>>} */
  const resolved = {};
  for (const [tableId, value] of Object.entries(declared)) {
    const where = `task_type '${taskType}', table '${tableId}'`;
    const access = tables[tableId];
    if (access === undefined) throw new TypeError(`${where}: partitions are declared for a table missing from tables`);
    if (access === "query_indexes") {
      throw new TypeError(`${where}: index queries cannot be scoped by partition (dynamodb:LeadingKeys is the table's key)`);
    }
    let read;
    let write;
    let queryIndexes = false;
    if (Array.isArray(value)) {
      const prefixes = checkedPrefixes(value, where);
      read = allowsRead(access) ? prefixes : Object.freeze([]);
      write = allowsWrite(access) ? prefixes : Object.freeze([]);
    } else if (value !== null && typeof value === "object") {
      const declaration = /** @type {{ read?: readonly string[], write?: readonly string[], query_indexes?: unknown }} */ (value);
      read = checkedPrefixes(declaration.read ?? [], where);
      write = checkedPrefixes(declaration.write ?? [], where);
      if (declaration.query_indexes !== undefined && typeof declaration.query_indexes !== "boolean") {
        throw new TypeError(`${where}: query_indexes must be true or false (got ${JSON.stringify(declaration.query_indexes)})`);
      }
      queryIndexes = declaration.query_indexes === true;
      if (queryIndexes && !allowsRead(access)) throw new TypeError(`${where}: query_indexes needs a read access, but access is ${access}`);
    } else {
      throw new TypeError(`${where}: partitions must be a list of prefixes or { read, write, query_indexes }`);
    }
    /** @type {[string, readonly string[], boolean][]} */
    const checks = [["read", read, allowsRead(access)], ["write", write, allowsWrite(access)]];
    for (const [kind, prefixes, allowed] of checks) {
      if (allowed && prefixes.length === 0) throw new TypeError(`${where}: access ${access} needs ${kind} prefixes`);
      if (!allowed && prefixes.length > 0) throw new TypeError(`${where}: ${kind} prefixes given, but access is ${access}`);
    }
    resolved[tableId] = Object.freeze(queryIndexes ? { read, write, query_indexes: /** @type {const} */ (true) } : { read, write });
  }
  for (const [tableId, access] of Object.entries(tables)) {
    if (allowsWrite(access) && !Object.hasOwn(resolved, tableId)) {
      throw new TypeError(
        `task_type '${taskType}', table '${tableId}': a write access needs partitions, the partition-key prefixes the task writes`,
      );
    }
  }
  return Object.freeze(resolved);
}

/**
 * A document client for one declared table whose writes stay inside `partitions.write`: PutCommand,
 * UpdateCommand and BatchWriteCommand are checked, deletes are refused, and a write naming another
 * table is refused; anything else (reads) is passed on.
 *
 * @param {{ send: (command: any) => Promise<any> }} client
 * @param {string} tableId
 * @param {string} tableName
 * @param {Readonly<Partitions>} partitions
 */
export function partitionScopedClient(client, tableId, tableName, partitions) {
  const partitionKey = TABLES[tableId].partitionKey;
  /**
   * @param {string} message
   * @returns {never}
   */
  const refuse = (message) => {
    throw new UndeclaredPartitionError(`table '${tableId}': ${message}`);
  };
  /**
   * @param {unknown} name
   * @param {string} operation
   */
  const ownTable = (name, operation) => {
    if (name !== tableName) refuse(`${operation} on '${name}' through this table's client; reach a table through context.clients.table(...)`);
  };
  /**
   * @param {Record<string, unknown> | undefined} key
   * @param {string} operation
   */
  const checkKey = (key, operation) => {
    const value = key?.[partitionKey];
    if (typeof value !== "string" || !partitions.write.some((prefix) => value.startsWith(prefix))) {
      refuse(
        `${operation} of ${partitionKey}=${JSON.stringify(value)} is outside the partitions this task type writes ` +
          `(${partitions.write.join(", ") || "none"}); declare them in registry.task(..., { partitions })`,
      );
    }
  };
  return Object.freeze({
    /** @param {any} command */
    async send(command) {
      const operation = command?.constructor?.name;
      const input = command?.input ?? {};
      if (operation === "PutCommand") {
        ownTable(input.TableName, operation);
        checkKey(input.Item, operation);
      } else if (operation === "UpdateCommand") {
        ownTable(input.TableName, operation);
        checkKey(input.Key, operation);
      } else if (operation === "BatchWriteCommand") {
        for (const [name, requests] of Object.entries(input.RequestItems ?? {})) {
          ownTable(name, operation);
          for (const request of requests) {
            if (request.DeleteRequest) refuse(`${operation} with a DeleteRequest; no task type may delete`);
            checkKey(request.PutRequest?.Item, operation);
          }
        }
      } else if (operation === "DeleteCommand" || operation === "TransactWriteCommand") {
        refuse(`${operation} is not granted to any task type`);
      }
      return client.send(command);
    },
  });
}

/** The task touched a table its task type did not declare, or more of it than declared; in AWS this would be AccessDenied. */
export class UndeclaredTableError extends Error {
  name = "UndeclaredTableError";
}

/**
 * A document client for a table declared `query_indexes`: a QueryCommand that names an index of that
 * table, and nothing else, as IAM grants in AWS (kairos_runtime.context.IndexQueries). Anything more
 * fails here, in tests and local runs, not as AccessDenied.
 *
 * @param {{ send: (command: any) => Promise<any> }} client
 * @param {string} tableId
 * @param {string} tableName
 */
export function indexQueriesClient(client, tableId, tableName) {
  /** @param {string} what */
  const refuse = (what) => {
    throw new UndeclaredTableError(`table '${tableId}' is declared for index queries only (query_indexes); ${what} needs read access`);
  };
  return Object.freeze({
    /** @param {any} command */
    async send(command) {
      const operation = command?.constructor?.name;
      const input = command?.input ?? {};
      if (operation !== "QueryCommand") refuse(String(operation));
      if (input.TableName !== tableName) refuse(`a query of '${input.TableName}' through this table's client`);
      if (typeof input.IndexName !== "string" || input.IndexName === "") refuse("a query of the table itself");
      return client.send(command);
    },
  });
}
