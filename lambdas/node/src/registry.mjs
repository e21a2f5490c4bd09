/**
 * The task-type registry (mirroring kairos_runtime/registry.py): `registry.task(name, options, fn)`
 * records a task type and returns the function unchanged.
 *
 * The registry is also the source of task-types.json, the manifest the Python side reads to validate
 * tasks.yaml entries that run on Node.js, so nothing here may need AWS or the network.
 */

import { TASK_TYPE_PATTERN, fullMatch } from "./bounds.mjs";
import { assertSupportedSchema, validateParams } from "./params.mjs";
import { resolvePartitions } from "./partitions.mjs";
import { ACCESS_MODES, TABLES } from "./tables.mjs";

export const JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema";

/**
 * @typedef {import("./params.mjs").ParamsSchema} ParamsSchema
 * @typedef {"read" | "write" | "read_write" | "query_indexes"} Access
 *
 * @typedef {object} TaskOutcome What a task function reports back; every field is optional.
 * @property {number} [itemsWritten]
 * @property {number} [itemsRejected]
 * @property {Record<string, unknown>} [detail] JSON-able; stored in the run record.
 *
 * @typedef {(params: any, context: import("./runner.mjs").TaskContext) => Promise<TaskOutcome | void> | TaskOutcome | void} TaskFunction
 *
 * @typedef {object} TaskOptions
 * @property {ParamsSchema} params JSON Schema of the params: type "object" with additionalProperties false.
 * @property {Record<string, Access>} [tables] Tables the task uses beyond its own run records; the stack
 *   grants exactly these and the runtime refuses any other.
 * @property {Record<string, import("./partitions.mjs").PartitionsDeclaration>} [partitions] Per declared
 *   table, the partition-key prefixes the task touches (`["STOCK#"]`, or `{ read, write }` when they
 *   differ); a table written to must have them. The stack scopes the grants to them and the runtime
 *   refuses writes outside them.
 * @property {string} [description] One line for the manifest and `kairos` listings.
 * @property {boolean} [backfill] Whether the task can run for a past slot (`kairos backfill`): it
 *   computes the slot's result from the slot, not from what its source serves now. Off unless
 *   declared: the handler refuses a delivery later than the late-delivery limit (PastSlotRefused).
 *
 * @typedef {object} TaskType
 * @property {string} name
 * @property {string} description
 * @property {ParamsSchema} paramsSchema
 * @property {Readonly<Record<string, Access>>} tables
 * @property {Readonly<Record<string, Readonly<import("./partitions.mjs").Partitions>>>} partitions
 * @property {boolean} backfill
 * @property {TaskFunction} fn
 */

export class DuplicateTaskTypeError extends Error {
  name = "DuplicateTaskTypeError";
}

export class UnknownTaskTypeError extends Error {
  name = "UnknownTaskTypeError";

  /**
   * @param {string} taskType
   * @param {string[]} known
   */
  constructor(taskType, known) {
    super(`unknown task_type '${taskType}'; registered: ${known.join(", ") || "none"}`);
    this.taskType = taskType;
  }
}

/** An explicit registry of task types. Several registries merge with `include`. */
export class TaskRegistry {
  /** @type {Map<string, Readonly<TaskType>>} */
  #types = new Map();

  /**
   * Registers `fn` as task type `name`.
   *
   * @template {TaskFunction} F
   * @param {string} name
   * @param {TaskOptions} options
   * @param {F} fn
   * @returns {F} `fn`, unchanged
   * @throws {TypeError} for a malformed name, schema, table declaration or function
   * @throws {DuplicateTaskTypeError}
   */
  task(name, { params, tables = {}, partitions = {}, description = "", backfill = false }, fn) {
    if (typeof name !== "string" || name === "") throw new TypeError("a task type needs a non-empty name");
    // Events name the task type: a name outside the pattern would never pass their check.
    if (!fullMatch(TASK_TYPE_PATTERN).test(name)) throw new TypeError(`task_type '${name}' must match ${TASK_TYPE_PATTERN}`);
    if (typeof fn !== "function") throw new TypeError(`task_type '${name}': the task must be a function`);
    if (typeof description !== "string") throw new TypeError(`task_type '${name}': description must be a string`);
    if (typeof backfill !== "boolean") throw new TypeError(`task_type '${name}': backfill must be true or false`);
    assertSupportedSchema(params, `task_type '${name}' params`);
    if (params.type !== "object" || params.additionalProperties !== false) {
      // A typo in tasks.yaml must be an error, not a silently ignored key.
      throw new TypeError(`task_type '${name}': params must be {"type": "object", "additionalProperties": false, ...}`);
    }
    for (const [tableId, access] of Object.entries(tables)) {
      if (!Object.hasOwn(TABLES, tableId)) {
        throw new TypeError(`task_type '${name}': unknown table '${tableId}' (known: ${Object.keys(TABLES).join(", ")})`);
      }
      if (!ACCESS_MODES.includes(access)) {
        throw new TypeError(`task_type '${name}': access to '${tableId}' must be one of ${ACCESS_MODES.join(", ")}`);
      }
    }
    const resolvedPartitions = resolvePartitions(name, tables, partitions);
    this.#add(
      Object.freeze({
        name,
        description,
        // Copies, so later changes to the caller's objects cannot make the manifest and runtime disagree.
        paramsSchema: structuredClone(params),
        tables: Object.freeze({ ...tables }),
        partitions: resolvedPartitions,
        backfill,
        fn,
      }),
    );
    return fn;
  }

  /**
   * Adds every task type of `other`.
   *
   * @param {TaskRegistry} other
   * @throws {DuplicateTaskTypeError}
   */
  include(other) {
    for (const taskType of other) this.#add(taskType);
  }

  /**
   * @param {string} name
   * @returns {Readonly<TaskType>}
   * @throws {UnknownTaskTypeError}
   */
  get(name) {
    const taskType = this.#types.get(name);
    if (!taskType) throw new UnknownTaskTypeError(name, this.names());
    return taskType;
  }

  /** @returns {string[]} registered names, sorted */
  names() {
    return [...this.#types.keys()].sort();
  }

  /** @param {string} name */
  has(name) {
    return this.#types.has(name);
  }

  get size() {
    return this.#types.size;
  }

  [Symbol.iterator]() {
    return this.#types.values();
  }

  /**
   * @param {Readonly<TaskType>} taskType
   * @throws {DuplicateTaskTypeError}
   */
  #add(taskType) {
    if (this.#types.has(taskType.name)) {
      throw new DuplicateTaskTypeError(`task_type '${taskType.name}' is registered twice`);
    }
    this.#types.set(taskType.name, taskType);
  }
}

/**
 * Validates raw params for a task type and fills in defaults.
 *
 * @param {Readonly<TaskType>} taskType
 * @param {unknown} rawParams
 * @returns {Readonly<Record<string, unknown>>} frozen, like Python's params models
 * @throws {import("./params.mjs").InvalidParamsError}
 */
export function parseParams(taskType, rawParams) {
  return Object.freeze(validateParams(taskType.paramsSchema, rawParams));
}

/**
 * The manifest the Python side reads (task-types.json): every task type's description, params JSON
 * Schema and table declarations, sorted by name so the file is stable.
 *
 * @param {TaskRegistry} registry
 * @returns {{ task_types: Record<string, { description: string, backfill: boolean, params_schema: ParamsSchema, tables: Record<string, Access>, partitions?: Record<string, { read: string[], write: string[] }> }> }}
 */
export function buildManifest(registry) {
  /** @type {Record<string, any>} */
  const taskTypes = {};
  for (const name of registry.names()) {
    const taskType = registry.get(name);
    taskTypes[name] = {
      description: taskType.description,
      backfill: taskType.backfill,
      params_schema: { $schema: JSON_SCHEMA_DIALECT, ...taskType.paramsSchema },
      tables: { ...taskType.tables },
      // Only where declared, so task types without them keep their manifest entry as it was.
      ...(Object.keys(taskType.partitions).length > 0 ? { partitions: structuredClone(taskType.partitions) } : {}),
    };
  }
  return { task_types: taskTypes };
}

/**
 * The manifest exactly as task-types.json holds it.
 *
 * @param {TaskRegistry} registry
 * @returns {string}
 */
export function manifestJson(registry) {
  return `${JSON.stringify(buildManifest(registry), null, 2)}\n`;
}
