/**
 * Every task type the Node.js runtime ships, merged from one registry per module. Building it must
 * stay cheap and offline: scripts/write-manifest.mjs imports it to write task-types.json.
 */

import { TaskRegistry } from "../registry.mjs";
import { registry as simple } from "./simple.mjs";

/** @returns {TaskRegistry} a new registry holding every shipped task type */
export function defaultRegistry() {
  const registry = new TaskRegistry();
  registry.include(simple);
  return registry;
}
