import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";

import { InvalidParamsError } from "../src/params.mjs";
import {
  DuplicateTaskTypeError,
  JSON_SCHEMA_DIALECT,
  TaskRegistry,
  UnknownTaskTypeError,
  buildManifest,
  manifestJson,
  parseParams,
} from "../src/registry.mjs";
import { defaultRegistry } from "../src/tasks/index.mjs";

const PARAMS = { type: "object", properties: { n: { type: "integer", default: 1 } }, additionalProperties: false };
const noop = async () => {};

describe("TaskRegistry", () => {
  it("registers a task type and returns the function unchanged", () => {
    const registry = new TaskRegistry();
    const fn = async () => ({ itemsWritten: 1 });
    const options = { params: PARAMS, tables: { market_data: "write" }, partitions: { market_data: ["B#"] }, description: "B." };
    assert.equal(registry.task("b_task", options, fn), fn);
    registry.task("a_task", { params: PARAMS }, noop);
    assert.deepEqual(registry.names(), ["a_task", "b_task"]);
    assert.equal(registry.size, 2);
    assert.ok(registry.has("a_task"));
    const taskType = registry.get("b_task");
    assert.equal(taskType.fn, fn);
    assert.equal(taskType.description, "B.");
    assert.deepEqual(taskType.tables, { market_data: "write" });
    assert.deepEqual([...registry].map((type) => type.name).sort(), ["a_task", "b_task"]);
  });

  it("refuses a name registered twice, directly or through include", () => {
    const registry = new TaskRegistry();
    registry.task("dup", { params: PARAMS }, noop);
    assert.throws(() => registry.task("dup", { params: PARAMS }, noop), DuplicateTaskTypeError);
    const other = new TaskRegistry();
    other.task("dup", { params: PARAMS }, noop);
    assert.throws(() => registry.include(other), /task_type 'dup' is registered twice/);
  });

  it("names the registered task types when asked for an unknown one", () => {
    const registry = new TaskRegistry();
    assert.throws(() => registry.get("x"), { name: "UnknownTaskTypeError", message: "unknown task_type 'x'; registered: none" });
    registry.task("b", { params: PARAMS }, noop);
    registry.task("a", { params: PARAMS }, noop);
    assert.throws(() => registry.get("x"), (error) => {
      assert.ok(error instanceof UnknownTaskTypeError);
      assert.equal(error.message, "unknown task_type 'x'; registered: a, b");
      return true;
    });
  });

  it("refuses params that accept unknown keys, unsupported schemas and unknown tables", () => {
    const registry = new TaskRegistry();
    const open = { type: "object", properties: {} };
    assert.throws(() => registry.task("t", { params: open }, noop), /additionalProperties": false/);
    assert.throws(() => registry.task("t", { params: { ...PARAMS, minProperties: 1 } }, noop), /keyword 'minProperties'/);
    assert.throws(() => registry.task("t", { params: PARAMS, tables: { nope: "read" } }, noop), /unknown table 'nope'/);
    assert.throws(() => registry.task("t", { params: PARAMS, tables: { market_data: "admin" } }, noop), /must be one of/);
    assert.throws(() => registry.task("t", { params: PARAMS }, "not a function"), /must be a function/);
    assert.throws(() => registry.task("", { params: PARAMS }, noop), /non-empty name/);
    assert.equal(registry.size, 0);
  });

  it("keeps its own copy of the schema", () => {
    const registry = new TaskRegistry();
    const schema = structuredClone(PARAMS);
    registry.task("t", { params: schema }, noop);
    schema.properties.n.maximum = 0;
    assert.deepEqual(parseParams(registry.get("t"), { n: 5 }), { n: 5 });
  });
});

describe("parseParams", () => {
  it("returns frozen params with defaults, or throws InvalidParamsError", () => {
    const registry = new TaskRegistry();
    registry.task("t", { params: PARAMS }, noop);
    const params = parseParams(registry.get("t"), {});
    assert.deepEqual(params, { n: 1 });
    assert.ok(Object.isFrozen(params));
    assert.throws(() => parseParams(registry.get("t"), { n: "1" }), InvalidParamsError);
  });
});

describe("the shipped task types", () => {
  it("are simple_task_1 and simple_task_2 with the Python runtime's params", () => {
    const registry = defaultRegistry();
    assert.deepEqual(registry.names(), ["simple_task_1", "simple_task_2"]);
    assert.deepEqual(parseParams(registry.get("simple_task_1"), {}), { label: "simple task 1" });
    assert.throws(() => parseParams(registry.get("simple_task_1"), { label: "x".repeat(201) }), InvalidParamsError);
    assert.deepEqual(parseParams(registry.get("simple_task_2"), {}), { payload: {} });
    assert.throws(() => parseParams(registry.get("simple_task_2"), { payload: [] }), InvalidParamsError);
    assert.throws(() => parseParams(registry.get("simple_task_2"), { label: "x" }), /label: unknown property/);
  });
});

describe("task-types.json", () => {
  it("is exactly what the registry produces (regenerate: node lambdas/node/scripts/write-manifest.mjs)", async () => {
    const checkedIn = await readFile(new URL("../task-types.json", import.meta.url), "utf8");
    assert.equal(checkedIn, manifestJson(defaultRegistry()));
  });

  it("describes every task type with a draft 2020-12 schema that forbids unknown params", () => {
    const { task_types: taskTypes } = buildManifest(defaultRegistry());
    for (const [name, entry] of Object.entries(taskTypes)) {
      assert.deepEqual(Object.keys(entry), ["description", "backfill", "params_schema", "tables"], name);
      assert.equal(typeof entry.backfill, "boolean", name);
      assert.ok(entry.description, name);
      assert.equal(entry.params_schema.$schema, JSON_SCHEMA_DIALECT, name);
      assert.equal(entry.params_schema.type, "object", name);
      assert.equal(entry.params_schema.additionalProperties, false, name);
    }
  });
});

describe("src/tasks/index.mjs", () => {
  it("merges the registry of every module under src/tasks", async () => {
    const { readdir } = await import("node:fs/promises");
    const tasksDir = new URL("../src/tasks/", import.meta.url);
    const merged = new Set(defaultRegistry().names());
    const modules = (await readdir(tasksDir)).filter((file) => file.endsWith(".mjs") && file !== "index.mjs");
    assert.ok(modules.length > 0);
    for (const file of modules) {
      const { registry } = await import(new URL(file, tasksDir).href);
      assert.ok(registry instanceof TaskRegistry, `${file} exports no registry`);
      for (const name of registry.names()) {
        assert.ok(merged.has(name), `${file} registers ${name}, which src/tasks/index.mjs does not include`);
      }
    }
  });
});
