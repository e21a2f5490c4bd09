"""What ``kairos local`` needs of a fan-out's state machine, read from its Amazon States Language
definition (docs/adr/0202-kairos-local-runs-fan-outs-from-the-definition.md).

The states are found by what they are, not by their names: the plan is the first Task reached from
``StartAt``; the batch is the Task inside a ``Map`` state's ``ItemProcessor`` (or ``Iterator``);
the summary is the first Task reached from that Map's ``Next``. With an INLINE and a DISTRIBUTED Map
both present (the distributed one for universes past the inline limit), the INLINE one is taken:
its MaxConcurrency and its batch Task; a note says so when the DISTRIBUTED one's differ. The local
driver still runs whichever form the planner picks (docs/adr/0164). Each Task's function is its
``Resource`` (a Lambda ARN), or ``Parameters.FunctionName`` for the ``arn:aws:states:::lambda:invoke``
integration; the caller resolves those strings to the assembly's functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kairos.plan import RetryPlan

LAMBDA_INVOKE = ":states:::lambda:invoke"
"""The suffix of the optimised Lambda integration's resource (its function is a parameter)."""
STANDARD_MAX_SECONDS = 365 * 24 * 3600
"""A standard workflow without ``TimeoutSeconds`` runs for up to a year."""
UNBOUNDED_MAP_CONCURRENCY = 10_000
"""MaxConcurrency 0 (or none) means no limit: the pool grows to one thread per batch, well below this."""
UNCAPPED_DELAY_SECONDS = STANDARD_MAX_SECONDS
"""A Retry without ``MaxDelaySeconds`` has no cap on its backoff."""
# Step Functions' documented defaults of a retrier.
DEFAULT_INTERVAL_SECONDS = 1
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_RATE = 2.0


class DefinitionError(ValueError):
    """The definition is not a fan-out kairos local can run; the message is one line."""


@dataclass(frozen=True, slots=True)
class MachineShape:
    """A fan-out's state machine as the local driver runs it."""

    functions: Mapping[str, str]
    """By step (plan, batch, summarize): the Task's function, as the definition names it."""
    max_concurrency: int
    """The Map's MaxConcurrency; 0 (no limit) is :data:`UNBOUNDED_MAP_CONCURRENCY`."""
    batch_retry: RetryPlan
    """The batch Task's first retrier (the local driver applies one)."""
    timeout_seconds: int
    """The machine's ``TimeoutSeconds``; a standard workflow's year when absent."""
    map_state: str
    """The Map state taken."""
    notes: tuple[str, ...] = ()
    """What the user should know about the choice (an INLINE and a DISTRIBUTED Map, say)."""


def read_definition(definition: Any) -> MachineShape:
    """The fan-out's functions, concurrency, batch retry and timeout from a parsed definition."""
    states = _states(definition, "the definition")
    start = definition.get("StartAt")
    plan_state = _first_task(states, start, "StartAt")
    maps = {name: state for name, state in states.items() if isinstance(state, Mapping) and state.get("Type") == "Map"}
    if not maps:
        raise DefinitionError("it has no Map state (the batches)")
    inline = {name: state for name, state in maps.items() if _mode(state) == "INLINE"}
    chosen = inline or maps
    if len(chosen) > 1:
        raise DefinitionError(f"it has several {'INLINE ' if inline else ''}Map states: {', '.join(sorted(chosen))}")
    (map_name, map_state), *_ = chosen.items()
    notes: tuple[str, ...] = ()
    differing = sorted(name for name in set(maps) - set(inline) if inline and not _same_batches(maps[name], map_state))
    if differing:
        # The planner picks the form per slot; locally both run on one pool, with one set of values.
        notes = (
            f"it has an INLINE Map ({map_name}) and a DISTRIBUTED one ({', '.join(differing)}) with other "
            "MaxConcurrency or batch Retry: the INLINE one's run",
        )
    if "MaxConcurrencyPath" in map_state:
        raise DefinitionError(f"Map {map_name} takes MaxConcurrencyPath; kairos local needs a fixed MaxConcurrency")
    concurrency = map_state.get("MaxConcurrency", 0)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 0:
        raise DefinitionError(f"Map {map_name}'s MaxConcurrency is {concurrency!r}, not a whole number")
    processor = map_state.get("ItemProcessor") or map_state.get("Iterator")
    if not isinstance(processor, Mapping):
        raise DefinitionError(f"Map {map_name} has no ItemProcessor")
    inner = _states(processor, f"Map {map_name}'s ItemProcessor")
    batch_state = _first_task(inner, processor.get("StartAt"), f"Map {map_name}'s StartAt")
    summary_state = _first_task(states, map_state.get("Next"), f"Map {map_name}'s Next")
    timeout = definition.get("TimeoutSeconds", STANDARD_MAX_SECONDS)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        raise DefinitionError(f"its TimeoutSeconds is {timeout!r}, not a positive whole number")
    return MachineShape(
        functions={
            "plan": _function(plan_state, states),
            "batch": _function(batch_state, inner),
            "summarize": _function(summary_state, states),
        },
        max_concurrency=concurrency or UNBOUNDED_MAP_CONCURRENCY,
        batch_retry=_retry(batch_state, inner[batch_state]),
        timeout_seconds=timeout,
        map_state=map_name,
        notes=notes,
    )


def _states(container: Any, where: str) -> Mapping[str, Any]:
    states = container.get("States") if isinstance(container, Mapping) else None
    if not isinstance(states, Mapping) or not states:
        raise DefinitionError(f"{where} has no States")
    return states


def _same_batches(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two Map states run their batches alike: the same MaxConcurrency and batch Retry."""
    if one.get("MaxConcurrency") != other.get("MaxConcurrency"):
        return False
    retries = []
    for state in (one, other):
        processor = _mapping(state.get("ItemProcessor") or state.get("Iterator"))
        start = processor.get("StartAt")
        first = _mapping(processor.get("States")).get(start) if isinstance(start, str) else None
        retries.append(first.get("Retry") if isinstance(first, Mapping) else None)
    return retries[0] == retries[1]


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one: a field of the wrong type reads as absent."""
    return value if isinstance(value, Mapping) else {}


def _mode(state: Mapping[str, Any]) -> str:
    processor = state.get("ItemProcessor")
    if not isinstance(processor, Mapping):
        return "INLINE"  # the legacy Iterator field is an inline Map
    return str(_mapping(processor.get("ProcessorConfig")).get("Mode", "INLINE"))


def _first_task(states: Mapping[str, Any], name: Any, where: str) -> str:
    """The first Task state from ``name`` along the ``Next`` chain (Pass and Wait states go by)."""
    seen: set[str] = set()
    while isinstance(name, str) and name not in seen:
        seen.add(name)
        state = states.get(name)
        if not isinstance(state, Mapping):
            raise DefinitionError(f"{where} leads to {name!r}, which is not one of its states")
        if state.get("Type") == "Task":
            return name
        if state.get("Type") not in ("Pass", "Wait"):
            break
        name = state.get("Next")
    raise DefinitionError(f"no Task state follows {where}")


def _function(name: str, states: Mapping[str, Any]) -> str:
    state = states[name]
    resource = state.get("Resource")
    if isinstance(resource, str) and resource.endswith(LAMBDA_INVOKE):
        function = _mapping(state.get("Parameters")).get("FunctionName")
    else:
        function = resource
    if not isinstance(function, str) or not function:
        raise DefinitionError(f"Task {name} names no function")
    return function


def _retry(name: str, state: Mapping[str, Any]) -> RetryPlan:
    retriers = state.get("Retry") or []
    if not retriers:
        return RetryPlan(errors=(), interval_seconds=0, max_attempts=0, backoff_rate=1.0, max_delay_seconds=0)
    first = retriers[0]
    try:
        return RetryPlan(
            errors=tuple(str(error) for error in first["ErrorEquals"]),
            interval_seconds=int(first.get("IntervalSeconds", DEFAULT_INTERVAL_SECONDS)),
            max_attempts=int(first.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS)),
            backoff_rate=float(first.get("BackoffRate", DEFAULT_BACKOFF_RATE)),
            max_delay_seconds=int(first.get("MaxDelaySeconds", UNCAPPED_DELAY_SECONDS)),
        )
    except (KeyError, TypeError, ValueError):
        raise DefinitionError(f"Task {name}'s first Retry is not a retrier ({first!r:.80})") from None
