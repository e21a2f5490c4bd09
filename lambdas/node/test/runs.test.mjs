import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { MAX_DETAIL_BYTES, boundedDetail } from "../src/runs.mjs";

/** A detail whose compact JSON text is exactly `bytes` long: {"k":"xxx..."} */
const detailOfSize = (bytes) => ({ k: "x".repeat(bytes - '{"k":""}'.length) });

describe("boundedDetail", () => {
  it("stores a detail of up to MAX_DETAIL_BYTES as plain JSON", () => {
    assert.equal(MAX_DETAIL_BYTES, 32_000);
    const detail = detailOfSize(MAX_DETAIL_BYTES);
    assert.equal(Buffer.byteLength(JSON.stringify(detail)), MAX_DETAIL_BYTES);
    assert.deepEqual(boundedDetail(detail), detail);
  });

  it("replaces a larger one with a note of its size and keys", () => {
    assert.deepEqual(boundedDetail(detailOfSize(MAX_DETAIL_BYTES + 1)), { truncated: true, bytes: MAX_DETAIL_BYTES + 1, keys: ["k"] });
  });

  it("counts UTF-8 bytes, not characters", () => {
    const detail = { k: "€".repeat(11_000) }; // 3 bytes each: 33,008 bytes in 11,008 characters
    assert.deepEqual(boundedDetail(detail), { truncated: true, bytes: 33_008, keys: ["k"] });
  });

  it("lists the first 50 keys in code point order, as Python's sorted() does", () => {
    const detail = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`key${String(59 - i).padStart(2, "0")}`, "x".repeat(600)]));
    const note = boundedDetail(detail);
    assert.equal(note.truncated, true);
    assert.deepEqual(note.keys, Array.from({ length: 50 }, (_, i) => `key${String(i).padStart(2, "0")}`));

    // UTF-16 order would put the astral "😀" (D83D DE00) before "\uFFFD"; code point order does not.
    const mixed = boundedDetail({ "😀": "x".repeat(MAX_DETAIL_BYTES), "\uFFFD": 1, b: 2, B: 3 });
    assert.deepEqual(mixed.keys, ["B", "b", "\uFFFD", "😀"]);
  });

  it("stores plain JSON: Dates and BigInts as strings, undefined members dropped, nothing as {}", () => {
    const when = new Date("2024-05-01T09:30:01.123Z");
    assert.deepEqual(boundedDetail({ when, big: 12n, gone: undefined, nested: { n: 1.5 } }), {
      when: "2024-05-01T09:30:01.123Z",
      big: "12",
      nested: { n: 1.5 },
    });
    assert.deepEqual(boundedDetail(null), {});
    assert.deepEqual(boundedDetail(undefined), {});
  });
});
