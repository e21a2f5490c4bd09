/**
 * The Lambda entry point for every Node.js task (handler string "src/index.handler").
 */

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

import { writeToStdout } from "./log.mjs";
import { TaskRunner } from "./runner.mjs";
import { readSettings } from "./settings.mjs";
import { defaultRegistry } from "./tasks/index.mjs";

/**
 * @typedef {import("./runner.mjs").InvocationContext} InvocationContext
 * @typedef {import("./runner.mjs").RunResponse} RunResponse
 * @typedef {import("./runs.mjs").DocumentClient} DocumentClient
 * @typedef {(event: unknown, context: InvocationContext) => Promise<RunResponse>} Handler
 */

/** @type {DocumentClient | undefined} */
let sharedDocumentClient;

// Built on first use, not at import, and then kept for the life of the execution environment so
// warm invocations reuse its connections. Region, credentials and endpoint come from the environment.
function defaultDocumentClient() {
  sharedDocumentClient ??= DynamoDBDocumentClient.from(new DynamoDBClient({}));
  return sharedDocumentClient;
}

/**
 * Builds a handler. Settings are read from `env` once, here, as the Python runtime reads them at import.
 *
 * @param {object} [options]
 * @param {import("./registry.mjs").TaskRegistry} [options.registry] defaults to every shipped task type
 * @param {DocumentClient} [options.documentClient] defaults to a lazily built, shared DynamoDB document client
 * @param {Record<string, string | undefined>} [options.env] defaults to process.env
 * @param {() => Date} [options.clock]
 * @param {import("./log.mjs").LineWriter} [options.writeLine] where log and EMF lines go; defaults to stdout
 * @returns {Handler} rejects with TaskRunFailed after recording a transient failure
 */
export function createHandler({
  registry = defaultRegistry(),
  documentClient,
  env = process.env,
  clock = () => new Date(),
  writeLine = writeToStdout,
} = {}) {
  const runner = new TaskRunner({
    registry,
    settings: readSettings(env),
    getDocumentClient: documentClient ? () => documentClient : defaultDocumentClient,
    clock,
    writeLine,
  });
  return (event, context) => runner.dispatch(event, context);
}

/** @type {Handler} */
export const handler = createHandler();
