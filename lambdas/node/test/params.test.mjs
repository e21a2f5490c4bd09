import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { InvalidParamsError, assertSupportedSchema, validateParams } from "../src/params.mjs";

/** The issues validateParams reports for `value`, or [] when it passes. */
function issuesOf(schema, value) {
  try {
    validateParams(schema, value);
    return [];
  } catch (error) {
    assert.ok(error instanceof InvalidParamsError);
    return error.issues;
  }
}

const objectOf = (properties, extra = {}) => ({ type: "object", properties, additionalProperties: false, ...extra });

describe("validateParams", () => {
  it("fills in defaults without sharing them with the schema", () => {
    const schema = objectOf({ label: { type: "string", default: "x" }, payload: { type: "object", default: {} } });
    const params = validateParams(schema, {});
    assert.deepEqual(params, { label: "x", payload: {} });
    params.payload.changed = true;
    assert.deepEqual(schema.properties.payload.default, {});
  });

  it("keeps given values over defaults and does not modify its input", () => {
    const schema = objectOf({ label: { type: "string", default: "x" } });
    const input = { label: "given" };
    assert.deepEqual(validateParams(schema, input), { label: "given" });
    assert.deepEqual(input, { label: "given" });
  });

  it("checks each type the way JSON Schema does", () => {
    const cases = [
      ["string", "a", [1, null, {}]],
      ["integer", 3, [3.5, "3", true, null]],
      ["number", 3.5, [Number.NaN, Number.POSITIVE_INFINITY, "3.5", false]],
      ["boolean", false, [0, "true", null]],
      ["array", [1], [{}, "[]", null]],
      ["object", {}, [[], null, "{}", new Date()]],
    ];
    for (const [type, good, bads] of cases) {
      const schema = objectOf({ value: { type } });
      assert.deepEqual(issuesOf(schema, { value: good }), [], type);
      for (const bad of bads) {
        assert.equal(issuesOf(schema, { value: bad }).length, 1, `${type} accepted ${String(bad)}`);
      }
    }
    assert.deepEqual(issuesOf(objectOf({ value: { type: "integer" } }), { value: 2.0 }), []);
  });

  it("counts string length in code points, as Python and JSON Schema do", () => {
    const schema = objectOf({ label: { type: "string", maxLength: 3, minLength: 2 } });
    assert.deepEqual(issuesOf(schema, { label: "😀😀😀" }), []);
    assert.deepEqual(issuesOf(schema, { label: "😀😀😀😀" }), ["label: must be at most 3 characters"]);
    assert.deepEqual(issuesOf(schema, { label: "a" }), ["label: must be at least 2 characters"]);
  });

  it("checks minimum, maximum and enum", () => {
    const schema = objectOf({
      count: { type: "integer", minimum: 1, maximum: 10 },
      mode: { type: "string", enum: ["fast", "slow"] },
    });
    assert.deepEqual(issuesOf(schema, { count: 1, mode: "fast" }), []);
    assert.deepEqual(issuesOf(schema, { count: 10 }), []);
    assert.deepEqual(issuesOf(schema, { count: 0, mode: "medium" }), [
      "count: must be >= 1",
      'mode: must be one of "fast", "slow"',
    ]);
    assert.deepEqual(issuesOf(schema, { count: 11 }), ["count: must be <= 10"]);
  });

  it("rejects unknown properties, naming the allowed ones", () => {
    const schema = objectOf({ label: { type: "string" } });
    assert.deepEqual(issuesOf(schema, { lable: "typo" }), ["lable: unknown property (allowed: label)"]);
    assert.deepEqual(issuesOf(objectOf({}), { x: 1 }), ["x: unknown property (allowed: none)"]);
  });

  it("passes unknown properties through where additionalProperties is not false", () => {
    const schema = objectOf({ payload: { type: "object" } });
    assert.deepEqual(validateParams(schema, { payload: { anything: [1, { deep: true }] } }), {
      payload: { anything: [1, { deep: true }] },
    });
  });

  it("reports missing required properties and every issue with its path", () => {
    const schema = objectOf(
      {
        name: { type: "string" },
        tags: { type: "array", items: { type: "string" } },
        nested: objectOf({ flag: { type: "boolean" } }, { required: ["flag"] }),
      },
      { required: ["name"] },
    );
    assert.deepEqual(issuesOf(schema, { tags: ["a", 2], nested: { other: 1 } }), [
      "name: is required",
      "tags.1: must be a string",
      "nested.flag: is required",
      "nested.other: unknown property (allowed: flag)",
    ]);
  });

  it("keeps a __proto__ key as data rather than a prototype", () => {
    const schema = objectOf({ payload: { type: "object" } });
    const params = validateParams(schema, JSON.parse('{"payload": {"__proto__": {"polluted": true}}}'));
    assert.equal(Object.getPrototypeOf(params.payload), Object.prototype);
    assert.deepEqual(Object.keys(params.payload), ["__proto__"]);
    assert.equal(params.payload.polluted, undefined);
  });
});

describe("assertSupportedSchema", () => {
  it("accepts every supported keyword", () => {
    assertSupportedSchema(
      objectOf(
        {
          label: { type: "string", description: "d", minLength: 1, maxLength: 5, default: "abc" },
          count: { type: "integer", minimum: 0, maximum: 3, enum: [1, 2] },
          ratio: { type: "number", minimum: 0.5 },
          on: { type: "boolean" },
          tags: { type: "array", items: { type: "string" } },
        },
        { required: ["count"] },
      ),
    );
  });

  const rejected = [
    ["an unknown keyword", objectOf({ code: { type: "string", pattern: "^a" } }), "keyword 'pattern'"],
    ["a keyword of another type", objectOf({ n: { type: "integer", maxLength: 3 } }), "keyword 'maxLength'"],
    ["an unknown type", objectOf({ n: { type: "null" } }), ".type must be one of"],
    ["a list of types", objectOf({ n: { type: ["string", "null"] } }), ".type must be one of"],
    ["a non-boolean additionalProperties", { type: "object", additionalProperties: { type: "string" } }, "true or false"],
    ["required names it does not declare", objectOf({}, { required: ["x"] }), "required must list"],
    ["a required property with a default", objectOf({ x: { type: "string", default: "a" } }, { required: ["x"] }), "must not list properties that have a default"],
    ["a default that does not fit", objectOf({ n: { type: "string", maxLength: 1, default: "ab" } }), "default does not fit"],
    ["a negative maxLength", objectOf({ n: { type: "string", maxLength: -1 } }), "maxLength must be"],
    ["an empty enum", objectOf({ n: { type: "string", enum: [] } }), "enum must be"],
    ["a nested problem", objectOf({ a: { type: "array", items: { type: "date" } } }), "schema.properties.a.items.type"],
  ];
  for (const [what, schema, expected] of rejected) {
    it(`rejects ${what}`, () => {
      assert.throws(() => assertSupportedSchema(schema), (error) => error instanceof TypeError && error.message.includes(expected));
    });
  }
});
