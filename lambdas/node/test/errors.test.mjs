import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { PermanentTaskError, TaskSkipped, TransientTaskError, errorKind } from "../src/errors.mjs";

const systemError = (code) => Object.assign(new Error(`read ${code}`), { code });

describe("errorKind", () => {
  it("takes the kind a TaskError declares", () => {
    assert.equal(errorKind(new TransientTaskError("throttled")), "transient");
    assert.equal(errorKind(new PermanentTaskError("no such symbol")), "permanent");
    // An explicit classification wins over the network error that caused it.
    assert.equal(errorKind(new PermanentTaskError("gave up", { cause: systemError("ECONNRESET") })), "permanent");
  });

  it("treats connection failures and timeouts as transient", () => {
    for (const code of ["ECONNRESET", "ETIMEDOUT", "ECONNREFUSED", "EPIPE", "UND_ERR_SOCKET"]) {
      assert.equal(errorKind(systemError(code)), "transient", code);
    }
    assert.equal(errorKind(new DOMException("signal timed out", "TimeoutError")), "transient");
    // fetch() reports every network failure as TypeError("fetch failed") with the cause attached.
    assert.equal(errorKind(new TypeError("fetch failed", { cause: systemError("ECONNRESET") })), "transient");
  });

  it("treats everything else as permanent", () => {
    assert.equal(errorKind(new Error("bug")), "permanent");
    assert.equal(errorKind(systemError("ENOTFOUND")), "permanent");
    assert.equal(errorKind("a string"), "permanent");
    assert.equal(errorKind(undefined), "permanent");
    const loop = new Error("loop");
    loop.cause = loop;
    assert.equal(errorKind(loop), "permanent");
  });
});

describe("task errors", () => {
  it("carry their class name, detail and cause", () => {
    const cause = new Error("socket hang up");
    const error = new TransientTaskError("source unavailable", { cause, detail: { source: "x" } });
    assert.equal(error.name, "TransientTaskError");
    assert.equal(error.cause, cause);
    assert.deepEqual(error.detail, { source: "x" });
    assert.equal(new PermanentTaskError("no").name, "PermanentTaskError");
  });

  it("TaskSkipped carries its reason and detail", () => {
    const skipped = new TaskSkipped("market closed", { detail: { day: "2024-05-01" } });
    assert.equal(skipped.reason, "market closed");
    assert.deepEqual(skipped.detail, { day: "2024-05-01" });
    assert.deepEqual(new TaskSkipped("r").detail, {});
  });
});
