// Invoke the Node.js handler the way Lambda does:
// node node_invoke.mjs EVENT RESULT NAME MEMORY TIMEOUT MODULE [EXPORT [STARTED]].
// STARTED is created once the module is imported, when the timeout starts counting.
// Logs go to stdout as they would to CloudWatch; the outcome is written as JSON to RESULT.
import { readFile, writeFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";

const [eventFile, resultFile, functionName, memoryMb, timeoutS, handlerModule, exportName, startedFile] =
  process.argv.slice(2);
const event = JSON.parse(await readFile(eventFile, "utf8"));
const handler = (await import(pathToFileURL(handlerModule).href))[exportName ?? "handler"];
const deadline = Date.now() + Number(timeoutS) * 1000;
const context = {
  functionName,
  functionVersion: "$LATEST",
  memoryLimitInMB: memoryMb,
  invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
  awsRequestId: randomUUID(),
  logGroupName: `/local/${functionName}`,
  logStreamName: "local",
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
};

if (startedFile) await writeFile(startedFile, "");
let outcome;
try {
  outcome = { ok: true, response: await handler(event, context) };
} catch (error) {
  outcome = { ok: false, error_type: error?.name ?? "Error", message: String(error?.message ?? error) };
}
await writeFile(resultFile, JSON.stringify(outcome));
process.exitCode = outcome.ok ? 0 : 1;
