// Writes task-types.json from the default registry. Run after adding or changing a task type:
//   node lambdas/node/scripts/write-manifest.mjs
// test/registry.test.mjs fails while the checked-in file differs from what this writes.

import { writeFile } from "node:fs/promises";

import { manifestJson } from "../src/registry.mjs";
import { defaultRegistry } from "../src/tasks/index.mjs";

const target = new URL("../task-types.json", import.meta.url);
await writeFile(target, manifestJson(defaultRegistry()));
console.log(`wrote ${target.pathname}`);
