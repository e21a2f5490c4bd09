/** The two original demonstration tasks, the same task types as the Python runtime ships. */

import { eventAsJson } from "../events.mjs";
import { TaskRegistry } from "../registry.mjs";

export const registry = new TaskRegistry();

registry.task(
  "simple_task_1",
  {
    description: "Log and return the current timestamp.",
    // It reports the time it runs at, not the slot's: a past slot would get the present's answer.
    backfill: false,
    params: {
      type: "object",
      properties: {
        label: { type: "string", maxLength: 200, default: "simple task 1" },
      },
      additionalProperties: false,
    },
  },
  async function logTimestamp(params, context) {
    const now = new Date().toISOString();
    context.logger.info(`${params.label}: the time is ${now}`, { timestamp: now });
    return { detail: { timestamp: now } };
  },
);

registry.task(
  "simple_task_2",
  {
    description: "Echo the event it was invoked with.",
    // Its answer is the event, slot included: any slot, past or present, gets its own.
    backfill: true,
    params: {
      type: "object",
      properties: {
        payload: { type: "object", default: {} },
      },
      additionalProperties: false,
    },
  },
  async function echoEvent(_params, context) {
    const echoed = eventAsJson(context.event);
    context.logger.info("echo", { event: echoed });
    return { detail: { event: echoed } };
  },
);
