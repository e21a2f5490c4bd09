"""One template for a whole stage, so per-task assertions read as they did for one stack.

Each shard stack reads the core stack's values through ``Fn::GetStackOutput`` (weak cross-stack
references, docs/adr/0110); here each such reference is replaced by the value the core stack's output
publishes (a ``Ref`` or ``Fn::GetAtt`` of the core's resource), and the stacks' resources are put side
by side. Logical ids are unique within a stack only: a shard's id that another stack also uses (its
layer) is suffixed with the shard's index.
"""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template

from kairos_stack.app_builder import StageStacks


def _resolved(value: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::GetStackOutput"}:
            reference = value["Fn::GetStackOutput"]
            return outputs[reference["StackName"]][reference["OutputName"]]["Value"]
        return {key: _resolved(item, outputs) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, outputs) for item in value]
    return value


def stage_json(stacks: StageStacks) -> dict[str, Any]:
    templates = {stack.stack_name: Template.from_stack(stack).to_json() for stack in stacks.stacks}
    outputs = {name: template.get("Outputs", {}) for name, template in templates.items()}
    merged: dict[str, Any] = {"Resources": {}, "Outputs": dict(outputs[stacks.core.stack_name])}
    for index, (name, template) in enumerate(templates.items()):
        for logical_id, resource in template.get("Resources", {}).items():
            key = logical_id if logical_id not in merged["Resources"] else f"{logical_id}{index}"
            merged["Resources"][key] = _resolved(resource, outputs)
        del name
    return merged


def stage_template(stacks: StageStacks) -> Template:
    return Template.from_json(stage_json(stacks))
