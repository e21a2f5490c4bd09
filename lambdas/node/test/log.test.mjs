import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createLogger, runMetricsLine } from "../src/log.mjs";

const NOW = new Date("2024-05-01T09:30:01.123Z");

function capture() {
  const lines = [];
  return { lines, records: () => lines.map((line) => JSON.parse(line)), writeLine: (line) => lines.push(line) };
}

describe("createLogger", () => {
  it("writes one JSON line per call with level, message, timestamp, service and its keys", () => {
    const sink = capture();
    const logger = createLogger({ keys: { correlation_id: "exec-1", task: "nightly" }, writeLine: sink.writeLine, clock: () => NOW });
    logger.info("hello", { rows: 3 });
    logger.warn("careful");
    logger.error("failed");
    assert.equal(sink.lines.length, 3);
    assert.deepEqual(sink.records()[0], {
      level: "INFO",
      message: "hello",
      timestamp: "2024-05-01T09:30:01.123Z",
      service: "kairos",
      correlation_id: "exec-1",
      task: "nightly",
      rows: 3,
    });
    assert.deepEqual(sink.records().map((record) => record.level), ["INFO", "WARN", "ERROR"]);
  });

  it("does not let fields overwrite the standard keys", () => {
    const sink = capture();
    createLogger({ keys: { task: "nightly" }, writeLine: sink.writeLine }).info("m", { level: "DEBUG", task: "other", extra: 1 });
    const [record] = sink.records();
    assert.equal(record.level, "INFO");
    assert.equal(record.task, "nightly");
    assert.equal(record.extra, 1);
  });

  it("serializes errors, BigInts and, without failing, circular fields", () => {
    const sink = capture();
    const logger = createLogger({ writeLine: sink.writeLine });
    const error = Object.assign(new TypeError("fetch failed", { cause: new Error("reset") }), { code: "X" });
    logger.error("task failed", { error, big: 10n });
    const [record] = sink.records();
    assert.equal(record.error.name, "TypeError");
    assert.equal(record.error.message, "fetch failed");
    assert.equal(record.error.code, "X");
    assert.match(record.error.stack, /TypeError: fetch failed/);
    assert.equal(record.error.cause.message, "reset");
    assert.equal(record.big, "10");

    const circular = {};
    circular.self = circular;
    logger.info("loop", { circular });
    const fallback = sink.records()[1];
    assert.equal(fallback.message, "loop");
    assert.match(fallback.fields, /circular/);
    assert.match(fallback.log_error, /circular/i);
  });
});

describe("runMetricsLine", () => {
  it("is an Embedded Metric Format record with the run's metrics under dimensions task, service and stage, as Powertools writes them", () => {
    const record = JSON.parse(
      runMetricsLine({ task: "nightly", stage: "prod", status: "SUCCEEDED", durationMs: 42, itemsWritten: 7, itemsRejected: 1, timestamp: NOW }),
    );
    assert.deepEqual(record, {
      _aws: {
        Timestamp: NOW.getTime(),
        CloudWatchMetrics: [
          {
            Namespace: "Kairos",
            Dimensions: [["task", "service", "stage"]],
            Metrics: [
              { Name: "RunsSucceeded", Unit: "Count" },
              { Name: "RunDuration", Unit: "Milliseconds" },
              { Name: "ItemsWritten", Unit: "Count" },
              { Name: "ItemsRejected", Unit: "Count" },
              { Name: "RunsAlive", Unit: "Count" },
            ],
          },
        ],
      },
      task: "nightly",
      service: "kairos",
      stage: "prod",
      RunsSucceeded: 1,
      RunDuration: 42,
      ItemsWritten: 7,
      ItemsRejected: 1,
      RunsAlive: 1,
    });
  });

  it("counts a success or skip as alive (the freshness alarm's metric), a failure never", () => {
    const alive = (status, retried = false) =>
      JSON.parse(runMetricsLine({ task: "t", status, retried, durationMs: 0, itemsWritten: 0, itemsRejected: 0, timestamp: NOW }))
        .RunsAlive;
    assert.deepEqual(
      [alive("SUCCEEDED"), alive("SKIPPED"), alive("FAILED"), alive("FAILED", true)],
      [1, 1, undefined, undefined],
    );
  });

  it("names the run counter after the status", () => {
    for (const [status, name] of [["FAILED", "RunsFailed"], ["SKIPPED", "RunsSkipped"]]) {
      const record = JSON.parse(runMetricsLine({ task: "t", status, durationMs: 0, itemsWritten: 0, itemsRejected: 0, timestamp: NOW }));
      assert.equal(record[name], 1);
      assert.equal(record._aws.CloudWatchMetrics[0].Metrics[0].Name, name);
    }
  });

  it("counts a failure Lambda delivers again as RunsRetried, not RunsFailed", () => {
    const record = JSON.parse(
      runMetricsLine({ task: "t", status: "FAILED", retried: true, durationMs: 0, itemsWritten: 0, itemsRejected: 0, timestamp: NOW }),
    );
    assert.equal(record.RunsRetried, 1);
    assert.equal(record.RunsFailed, undefined);
    assert.equal(record._aws.CloudWatchMetrics[0].Metrics[0].Name, "RunsRetried");
  });
});
