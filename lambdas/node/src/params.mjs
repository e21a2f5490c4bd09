/**
 * A validator for the small subset of JSON Schema (draft 2020-12) that task params use.
 *
 * The same schemas are published in task-types.json and checked by the Python side with the
 * `jsonschema` library, so a schema may only use keywords implemented here: assertSupportedSchema
 * rejects anything else at registration instead of letting the two validators silently disagree.
 * Unlike plain JSON Schema, validation also fills in `default`s (as the Python runtime's models do).
 */

import { isDeepStrictEqual } from "node:util";

const COMMON_KEYWORDS = ["type", "description", "default", "enum"];
/** @type {Readonly<Record<string, string[]>>} */
const KEYWORDS_BY_TYPE = {
  string: ["minLength", "maxLength"],
  integer: ["minimum", "maximum"],
  number: ["minimum", "maximum"],
  boolean: [],
  array: ["items"],
  object: ["properties", "required", "additionalProperties"],
};

/** @typedef {Record<string, any>} ParamsSchema A JSON Schema object restricted to the keywords above. */
/** @typedef {(problem: string, at?: string[]) => void} IssueReporter records one "path: problem" issue */

export class InvalidParamsError extends Error {
  name = "InvalidParamsError";

  /** @param {string[]} issues one "path: problem" entry per violation */
  constructor(issues) {
    super(issues.join("; "));
    this.issues = issues;
  }
}

/**
 * Throws unless `schema` uses only the supported keywords, with well-formed values and defaults that
 * satisfy their own schema.
 *
 * @param {ParamsSchema} schema
 * @param {string} [where] how to name the schema in messages
 * @throws {TypeError}
 */
export function assertSupportedSchema(schema, where = "schema") {
  /** @type {string[]} */
  const problems = [];
  collectSchemaProblems(schema, where, problems);
  if (problems.length > 0) throw new TypeError(`unsupported params schema: ${problems.join("; ")}`);
}

/**
 * Validates `value` against `schema` and returns it with defaults filled in (objects are copied, the
 * input is not modified).
 *
 * @param {ParamsSchema} schema a schema accepted by assertSupportedSchema
 * @param {unknown} value
 * @returns {any}
 * @throws {InvalidParamsError} listing every violation, not just the first
 */
export function validateParams(schema, value) {
  /** @type {string[]} */
  const issues = [];
  const result = check(schema, value, [], issues);
  if (issues.length > 0) throw new InvalidParamsError(issues);
  return result;
}

/**
 * @param {unknown} schema
 * @param {string} where
 * @param {string[]} problems appended to, one entry per problem
 */
function collectSchemaProblems(schema, where, problems) {
  if (!isPlainObject(schema)) {
    problems.push(`${where} must be an object`);
    return;
  }
  const typeKeywords = KEYWORDS_BY_TYPE[schema.type];
  if (!typeKeywords) {
    problems.push(`${where}.type must be one of ${Object.keys(KEYWORDS_BY_TYPE).join(", ")}`);
    return;
  }
  for (const keyword of Object.keys(schema)) {
    if (!COMMON_KEYWORDS.includes(keyword) && !typeKeywords.includes(keyword)) {
      problems.push(`${where}: keyword '${keyword}' is not supported for type ${schema.type}`);
    }
  }
  for (const keyword of ["minLength", "maxLength"]) {
    if (keyword in schema && !(Number.isInteger(schema[keyword]) && schema[keyword] >= 0)) {
      problems.push(`${where}.${keyword} must be a non-negative integer`);
    }
  }
  for (const keyword of ["minimum", "maximum"]) {
    if (keyword in schema && !Number.isFinite(schema[keyword])) problems.push(`${where}.${keyword} must be a number`);
  }
  if ("description" in schema && typeof schema.description !== "string") {
    problems.push(`${where}.description must be a string`);
  }
  if ("enum" in schema && !(Array.isArray(schema.enum) && schema.enum.length > 0)) {
    problems.push(`${where}.enum must be a non-empty array`);
  }
  if ("items" in schema) collectSchemaProblems(schema.items, `${where}.items`, problems);
  if ("properties" in schema) {
    if (isPlainObject(schema.properties)) {
      for (const [name, property] of Object.entries(schema.properties)) {
        collectSchemaProblems(property, `${where}.properties.${name}`, problems);
      }
    } else {
      problems.push(`${where}.properties must be an object`);
    }
  }
  if ("required" in schema) {
    const declared = isPlainObject(schema.properties) ? schema.properties : {};
    if (!Array.isArray(schema.required) || !schema.required.every((/** @type {string} */ name) => Object.hasOwn(declared, name))) {
      problems.push(`${where}.required must list names from ${where}.properties`);
    } else if (schema.required.some((/** @type {string} */ name) => isPlainObject(declared[name]) && "default" in declared[name])) {
      // JSON Schema does not apply defaults, so the Python side would reject what this side fills in.
      problems.push(`${where}.required must not list properties that have a default`);
    }
  }
  if ("additionalProperties" in schema && typeof schema.additionalProperties !== "boolean") {
    problems.push(`${where}.additionalProperties must be true or false`);
  }
  // Checked last, and only when the schema itself is sound, so `check` can rely on it.
  if (problems.length === 0 && "default" in schema) {
    /** @type {string[]} */
    const issues = [];
    check(schema, schema.default, [], issues);
    if (issues.length > 0) problems.push(`${where}.default does not fit its schema (${issues.join("; ")})`);
  }
}

/** @type {Readonly<Record<string, [(value: unknown) => boolean, string]>>} */
const TYPE_CHECKS = {
  string: [(value) => typeof value === "string", "a string"],
  integer: [(value) => Number.isInteger(value), "an integer"],
  number: [(value) => Number.isFinite(value), "a number"],
  boolean: [(value) => typeof value === "boolean", "a boolean"],
  array: [Array.isArray, "an array"],
  object: [isPlainObject, "an object"],
};

/**
 * @param {ParamsSchema} schema a schema accepted by assertSupportedSchema
 * @param {any} value
 * @param {string[]} path where `value` sits in the params
 * @param {string[]} issues appended to, one "path: problem" entry per violation
 * @returns {any} `value`, with defaults filled in
 */
function check(schema, value, path, issues) {
  /** @param {string} problem @param {string[]} [at] */
  const issue = (problem, at = path) => issues.push(`${at.join(".") || "params"}: ${problem}`);
  const [hasType, typeName] = TYPE_CHECKS[schema.type];
  if (!hasType(value)) {
    issue(`must be ${typeName}`);
    return value;
  }
  if (schema.enum && !schema.enum.some((/** @type {unknown} */ allowed) => isDeepStrictEqual(allowed, value))) {
    issue(`must be one of ${schema.enum.map((/** @type {unknown} */ allowed) => JSON.stringify(allowed)).join(", ")}`);
  }
  if (schema.type === "string") {
    // JSON Schema (and Python's len) count code points, not UTF-16 units.
    const length = [...value].length;
    if ("maxLength" in schema && length > schema.maxLength) issue(`must be at most ${schema.maxLength} characters`);
    if ("minLength" in schema && length < schema.minLength) issue(`must be at least ${schema.minLength} characters`);
  }
  if ("maximum" in schema && value > schema.maximum) issue(`must be <= ${schema.maximum}`);
  if ("minimum" in schema && value < schema.minimum) issue(`must be >= ${schema.minimum}`);
  if (schema.type === "array" && schema.items) {
    return value.map((/** @type {unknown} */ item, /** @type {number} */ index) => check(schema.items, item, [...path, String(index)], issues));
  }
  if (schema.type === "object") return checkObject(schema, value, path, issues, issue);
  return value;
}

/**
 * @param {ParamsSchema} schema an object schema accepted by assertSupportedSchema
 * @param {Record<string, any>} value a plain object
 * @param {string[]} path
 * @param {string[]} issues
 * @param {IssueReporter} issue
 * @returns {Record<string, any>} a copy of `value` with defaults filled in
 */
function checkObject(schema, value, path, issues, issue) {
  const properties = schema.properties ?? {};
  const required = schema.required ?? [];
  const entries = [];
  for (const [name, property] of Object.entries(properties)) {
    if (Object.hasOwn(value, name)) {
      entries.push([name, check(property, value[name], [...path, name], issues)]);
    } else if ("default" in property) {
      // A copy, so a task that mutates its params cannot change the schema's default.
      entries.push([name, structuredClone(property.default)]);
    } else if (required.includes(name)) {
      issue("is required", [...path, name]);
    }
  }
  for (const name of Object.keys(value)) {
    if (Object.hasOwn(properties, name)) continue;
    if (schema.additionalProperties === false) {
      const known = Object.keys(properties).join(", ") || "none";
      issue(`unknown property (allowed: ${known})`, [...path, name]);
    } else {
      entries.push([name, value[name]]);
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays data instead of a prototype.
  return Object.fromEntries(entries);
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
function isPlainObject(value) {
  if (value === null || typeof value !== "object") return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
