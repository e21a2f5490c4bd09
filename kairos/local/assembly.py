"""What ``kairos local`` runs, read from the synthesized cloud assembly (not from tasks.yaml).

``cdk.out/<stage>/manifest.json`` lists the stage's stacks (one, or a core stack and shard stacks);
every ``AWS::Scheduler::Schedule`` of every stack becomes a :class:`LocalSchedule`: its expression,
timezone, state and input, and the function its target names, with that function's handler,
runtime, memory, timeout and environment. References in the environment (``Ref`` of a table in the
same stack, ``Fn::ImportValue`` of one exported by another stack of the stage, or
``Fn::GetStackOutput`` of another stack's output) are resolved to the
local tables' names; anything else a template refers to, which this machine cannot provide, is a
clear :class:`AssemblyError`. A schedule that starts a fan-out's state machine carries a
:class:`LocalFanOut`: the machine's three functions, MaxConcurrency, batch Retry and timeout, read
from its definition (:mod:`kairos.local.state_machine`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kairos.local.state_machine import DefinitionError, read_definition
from kairos.local.tables import local_table_name, template_tables
from kairos.plan import NODE_CODE_DIR, PYTHON_CODE_DIR, RetryPlan
from kairos_runtime.events import render_schedule_input

STACK_ARTIFACT = "aws:cloudformation:stack"
CDK_PATH = "aws:cdk:path"
FUNCTION_TYPE = "AWS::Lambda::Function"
STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"
FAN_OUT_STEPS = ("plan", "batch", "summarize")


class AssemblyError(ValueError):
    """The cloud assembly cannot be read or run locally; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class LocalFunction:
    stack: str
    logical_id: str
    runtime: str
    handler: str
    memory: int
    timeout: int
    environment: Mapping[str, str]
    """The template's environment, table references replaced by the local tables' names."""

    @property
    def family(self) -> str:
        return "python" if self.runtime.startswith("python") else "node"

    @property
    def code_dir(self) -> Path:
        # The sources the asset is built from: a bundled Python asset holds wheels for Lambda's
        # platform, which this interpreter may not load.
        return PYTHON_CODE_DIR if self.family == "python" else NODE_CODE_DIR


@dataclass(frozen=True, slots=True)
class LocalFanOut:
    """A fan-out's state machine, as the local driver runs it (``kairos/local/fan_out.py``)."""

    stack: str
    logical_id: str
    functions: Mapping[str, LocalFunction]
    """By step: plan, batch, summarize (they run in one process, on the union of their environments)."""
    max_concurrency: int
    """The Map's MaxConcurrency: the driver's thread pool."""
    batch_retry: RetryPlan
    timeout: int
    """The machine's TimeoutSeconds: bounds the whole run."""
    notes: tuple[str, ...] = ()

    @property
    def environment(self) -> Mapping[str, str]:
        """Every step's variables: they may differ only by what one step has and another lacks (the
        planner's bucket, say), never by a value (checked when the assembly is read)."""
        merged: dict[str, str] = {}
        for function in self.functions.values():
            merged |= function.environment
        return merged

    @property
    def runtime(self) -> str:
        return self.functions["plan"].runtime


@dataclass(frozen=True, slots=True)
class LocalSchedule:
    name: str
    """The task: the input's ``task`` (a shared function serves several), else the construct id."""
    stack: str
    expression: str
    timezone: str
    enabled: bool
    input_template: Mapping[str, Any]
    target_type: str
    function: LocalFunction | None
    """The function the schedule invokes; None for a state machine (``fan_out``) or a target
    kairos local does not run."""
    fan_out: LocalFanOut | None = None
    """The fan-out's state machine the schedule starts."""

    @property
    def runnable(self) -> bool:
        return self.function is not None or self.fan_out is not None

    @property
    def runtime(self) -> str:
        if self.fan_out is not None:
            return self.fan_out.runtime
        return self.function.runtime if self.function is not None else ""

    @property
    def environment(self) -> Mapping[str, str]:
        if self.fan_out is not None:
            return self.fan_out.environment
        return self.function.environment if self.function is not None else {}

    def event(self, *, scheduled_time: Any, execution_id: str, attempt: int = 1) -> dict[str, Any]:
        """The input with Scheduler's context attributes substituted, as Scheduler delivers it."""
        return render_schedule_input(
            dict(self.input_template), scheduled_time=scheduled_time, execution_id=execution_id, attempt=attempt
        )


@dataclass(frozen=True, slots=True)
class LocalAssembly:
    directory: Path
    stacks: tuple[str, ...]
    schedules: tuple[LocalSchedule, ...]
    templates: Mapping[str, Mapping[str, Any]]

    def schedule(self, name: str) -> LocalSchedule:
        return next(schedule for schedule in self.schedules if schedule.name == name)


def read_assembly(directory: Path, *, stage: str) -> LocalAssembly:
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssemblyError(f"no cloud assembly in {directory} (run `make synth`, or give --assembly)") from None
    except (OSError, ValueError) as error:
        raise AssemblyError(f"{manifest_path}: cannot be read ({error})") from None
    templates: dict[str, Mapping[str, Any]] = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != STACK_ARTIFACT:
            continue
        template_file = directory / artifact.get("properties", {}).get("templateFile", "")
        try:
            # By stack name: what Fn::GetStackOutput names (the display name is the construct path).
            name = artifact.get("properties", {}).get("stackName") or artifact.get("displayName") or artifact_id
            templates[name] = json.loads(template_file.read_text("utf-8"))
        except (OSError, ValueError) as error:
            raise AssemblyError(f"{template_file}: cannot be read ({error})") from None
    if not templates:
        raise AssemblyError(f"{manifest_path}: the assembly holds no stack")
    resolver = _Resolver(templates, stage=stage)
    schedules = [
        resolver.schedule(stack, logical_id, resource)
        for stack, template in templates.items()
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Scheduler::Schedule"
    ]
    names = [schedule.name for schedule in schedules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise AssemblyError(f"{directory}: several schedules run the task(s) {', '.join(duplicates)}")
    return LocalAssembly(directory, tuple(templates), tuple(sorted(schedules, key=lambda s: s.name)), templates)


@dataclass(frozen=True, slots=True)
class _Reference:
    stack: str
    logical_id: str
    attribute: str | None


class _Resolver:
    """CloudFormation's intrinsic functions, as far as a local run needs them."""

    def __init__(self, templates: Mapping[str, Mapping[str, Any]], *, stage: str) -> None:
        self._templates = templates
        self._stage = stage
        self._exports: dict[str, tuple[str, Any]] = {}
        self._tables: dict[tuple[str, str], str] = {}
        for stack, template in templates.items():
            for output in template.get("Outputs", {}).values():
                name = output.get("Export", {}).get("Name")
                if isinstance(name, str):
                    self._exports[name] = (stack, output.get("Value"))
            for logical_id, design in template_tables(template):
                self._tables[(stack, logical_id)] = local_table_name(stage, design)

    def _resource(self, stack: str, logical_id: str) -> Mapping[str, Any]:
        resource = self._templates[stack].get("Resources", {}).get(logical_id)
        if resource is None:
            raise AssemblyError(f"stack {stack}: no resource {logical_id}")
        return dict(resource)

    def reference(self, stack: str, value: Any) -> _Reference | None:
        """The resource a ``Ref`` / ``Fn::GetAtt`` / ``Fn::ImportValue`` points at; None for a literal."""
        if not isinstance(value, Mapping) or len(value) != 1:
            return None
        (function, argument), *_ = value.items()
        if function == "Ref" and isinstance(argument, str):
            return _Reference(stack, argument, None)
        if function == "Fn::GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else list(argument)
            return _Reference(stack, str(parts[0]), str(parts[1]))
        if function == "Fn::ImportValue":
            name = self.text(stack, argument, where="an import's name")
            if name not in self._exports:
                raise AssemblyError(f"stack {stack} imports {name}, which no stack of the assembly exports")
            exporter, exported = self._exports[name]
            return self.reference(exporter, exported)
        if function == "Fn::GetStackOutput" and isinstance(argument, Mapping):
            # A weak cross-stack reference (docs/adr/0180): another stack's output, read at deploy time.
            producer = self.text(stack, argument.get("StackName"), where="a stack output's stack name")
            output = self.text(stack, argument.get("OutputName"), where="a stack output's name")
            outputs = self._templates.get(producer, {}).get("Outputs", {})
            if output not in outputs:
                raise AssemblyError(f"stack {stack} reads output {output} of {producer}, which the assembly lacks")
            return self.reference(producer, outputs[output].get("Value"))
        return None

    def text(self, stack: str, value: Any, *, where: str) -> str:
        """A string value: a literal, an ``Fn::Join`` of literals, or a local table's name."""
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, Mapping) and set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return str(separator).join(self.text(stack, part, where=where) for part in parts)
        reference = self.reference(stack, value)
        if (
            reference is not None
            and reference.attribute is None
            and (reference.stack, reference.logical_id) in (self._tables)
        ):
            return self._tables[(reference.stack, reference.logical_id)]
        if (
            reference is not None
            and reference.attribute is None
            and self._resource(reference.stack, reference.logical_id).get("Type") == "AWS::S3::Bucket"
        ):
            # The fan-out bucket (docs/adr/0164): locally its objects are files in the run's directory
            # (KAIROS_FAN_OUT_DIR, kairos/local/fan_out_invoke.py); the name only labels them.
            return f"kairos-local-{self._stage}-{reference.logical_id.lower()}"
        raise AssemblyError(f"stack {stack}: {where} is {json.dumps(value)}, which kairos local cannot provide")

    def target_type(self, reference: _Reference) -> str:
        return str(self._resource(reference.stack, reference.logical_id).get("Type"))

    def function(self, reference: _Reference) -> LocalFunction:
        resource = self._resource(reference.stack, reference.logical_id)
        properties = resource.get("Properties", {})
        where = f"function {reference.logical_id}"
        variables = properties.get("Environment", {}).get("Variables", {})
        return LocalFunction(
            stack=reference.stack,
            logical_id=reference.logical_id,
            runtime=self.text(reference.stack, properties.get("Runtime"), where=f"{where}'s runtime"),
            handler=self.text(reference.stack, properties.get("Handler"), where=f"{where}'s handler"),
            memory=int(properties.get("MemorySize", 128)),
            timeout=int(properties.get("Timeout", 3)),
            environment={
                name: self.text(reference.stack, value, where=f"{where}'s variable {name}")
                for name, value in variables.items()
            },
        )

    def definition_text(self, stack: str, value: Any, tokens: dict[str, _Reference], *, where: str) -> str:
        """A definition string: literal parts kept, each reference replaced by a token (in ``tokens``)."""
        if isinstance(value, str):
            return value
        if isinstance(value, Mapping) and set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return str(separator).join(self.definition_text(stack, part, tokens, where=where) for part in parts)
        reference = self.reference(stack, value)
        if reference is None:
            raise AssemblyError(f"stack {stack}: {where} holds {json.dumps(value)}, which kairos local cannot read")
        token = f"kairos-local-reference-{len(tokens)}"
        tokens[token] = reference
        return token

    def state_machine(self, reference: _Reference) -> LocalFanOut:
        properties = self._resource(reference.stack, reference.logical_id).get("Properties", {})
        where = f"state machine {reference.logical_id}"
        tokens: dict[str, _Reference] = {}
        text = self.definition_text(
            reference.stack, properties.get("DefinitionString"), tokens, where=f"{where}'s definition"
        )
        for name, value in dict(properties.get("DefinitionSubstitutions") or {}).items():
            text = text.replace(
                "${" + name + "}",
                self.definition_text(reference.stack, value, tokens, where=f"{where}'s substitution {name}"),
            )
        try:
            shape = read_definition(json.loads(text))
        except ValueError as error:  # DefinitionError, or a definition that is not JSON
            reason = str(error) if isinstance(error, DefinitionError) else "its definition is not JSON"
            raise AssemblyError(f"stack {reference.stack}: {where}: {reason}") from None
        functions: dict[str, LocalFunction] = {}
        for step in FAN_OUT_STEPS:
            target = tokens.get(shape.functions[step])
            if target is None or target.logical_id.startswith("AWS::") or self.target_type(target) != FUNCTION_TYPE:
                raise AssemblyError(
                    f"stack {reference.stack}: {where}: its {step} step invokes {shape.functions[step]!r}, "
                    "not a function of the assembly"
                )
            functions[step] = self.function(target)
        values: dict[str, set[str]] = {}
        for function in functions.values():
            for name, value in function.environment.items():
                values.setdefault(name, set()).add(value)
        clashing = sorted(name for name, seen in values.items() if len(seen) > 1)
        if clashing:
            raise AssemblyError(
                f"stack {reference.stack}: {where}: its functions set {', '.join(clashing)} to different values, "
                "and kairos local runs the three steps in one process"
            )
        return LocalFanOut(
            stack=reference.stack,
            logical_id=reference.logical_id,
            functions=functions,
            max_concurrency=shape.max_concurrency,
            batch_retry=shape.batch_retry,
            timeout=shape.timeout_seconds,
            notes=shape.notes,
        )

    def schedule(self, stack: str, logical_id: str, resource: Mapping[str, Any]) -> LocalSchedule:
        properties = resource.get("Properties", {})
        where = f"stack {stack}: schedule {logical_id}"
        target = properties.get("Target", {})
        reference = self.reference(stack, target.get("Arn"))
        if reference is None:
            raise AssemblyError(f"{where}: its target is not a resource of the assembly")
        raw_input = self.text(stack, target.get("Input", "{}"), where=f"schedule {logical_id}'s input")
        try:
            input_template = json.loads(raw_input)
        except ValueError:
            raise AssemblyError(f"{where}: its input is not JSON") from None
        if not isinstance(input_template, dict):
            raise AssemblyError(f"{where}: its input is not a JSON object")
        path = str(resource.get("Metadata", {}).get(CDK_PATH, ""))
        parts = path.split("/")
        name = input_template.get("task") or (parts[-3] if len(parts) >= 3 else logical_id)
        target_type = self.target_type(reference)
        return LocalSchedule(
            name=str(name),
            stack=stack,
            expression=self.text(
                stack, properties.get("ScheduleExpression"), where=f"schedule {logical_id}'s expression"
            ),
            timezone=str(properties.get("ScheduleExpressionTimezone") or "UTC"),
            enabled=properties.get("State", "ENABLED") == "ENABLED",
            input_template=input_template,
            target_type=target_type,
            function=self.function(reference) if target_type == FUNCTION_TYPE else None,
            fan_out=self.state_machine(reference) if target_type == STATE_MACHINE_TYPE else None,
        )
