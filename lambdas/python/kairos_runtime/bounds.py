"""How large and how deep anything an event or a task puts into a run record may be.

Every event field that goes into a key or a record is checked against these before a key is built
(:mod:`kairos_runtime.events`), and a task's detail is bounded by them before it is written
(:mod:`kairos_runtime.runs`), so every delivery can write its final record. The Node runtime reads
the same values from ``lambdas/node/contract.json``, generated from this module (``make contract``).
Patterns are written without anchors: each runtime anchors them (``^(?:…)\\Z`` in Python,
``^(?:…)$`` in JavaScript, where ``$`` has no newline exception).

The DynamoDB limits they keep clear of (Amazon DynamoDB Developer Guide, "Service, account, and
table quotas"): an item is at most 400 KB; a sort key at most 1,024 bytes; a document nests at most
32 levels. Params are held to 256 KiB: Lambda's long-standing limit for an asynchronous payload
(still InvokeAsync's; Invoke now takes up to 1 MB asynchronously, AWS Lambda API Reference,
"Invoke"). Scheduler invokes asynchronously and a schedule's params come from tasks.yaml, so
anything larger is not a scheduled event.
"""

from __future__ import annotations

# --- Bounds the Node runtime reads through lambdas/node/contract.json (every upper-case name) ---
TASK_NAME_PATTERN = "[a-z][a-z0-9-]{0,47}"
"""A task's name as tasks.yaml allows it (``kairos/config.py``): it is the run record's partition."""
TASK_TYPE_PATTERN = "[a-z][a-z0-9_]{0,63}"
"""A task type's name as the registries allow it (``@registry.task``, ``registry.task``)."""
EXECUTION_ID_PATTERN = "[!-~]{1,128}"
"""1 to 128 printable ASCII characters, no space: Scheduler's execution ids are short ASCII tokens,
and this keeps the sort key (``RUN#<slot>#<execution_id>#<attempt>``) far below 1,024 bytes."""
MAX_PARAMS_BYTES = 262144
"""The params' compact JSON text in UTF-8 (256 KiB)."""
MAX_PARAMS_DEPTH = 16
"""How deep params may nest (the params object itself is level 1)."""
MAX_DETAIL_BYTES = 32000
"""A run's detail as compact JSON in UTF-8; over it the detail is replaced by a note saying so, so
the record stays well under DynamoDB's 400 KB item limit."""
MAX_DETAIL_DEPTH = 24
"""How deep a run's detail may nest (its top level is 1): deeper is replaced by a note, well inside
DynamoDB's 32 levels, and deep enough for an echo of params nested MAX_PARAMS_DEPTH deep."""
MAX_DETAIL_KEYS = 50
"""How many of an oversized detail's top-level keys its note lists."""
MAX_ERROR_MESSAGE = 1000
"""An error message in a run record, in code points."""
# --- end of the shared bounds ---
