"""The task-level difference between two synthesized stages: pure, no CDK, no AWS, no files.

``kairos diff`` (:mod:`kairos.cli_diff`) synthesizes a base and the working tree, reads each into an
:class:`Assembly` (templates and the files of every staged asset), and this module compares them:

* tasks are found by the ``kairos:task`` tag of their function and by construct path (a task's
  resources sit under a construct named after it), in whichever stack of the stage holds them, so
  a stage split into several stacks compares the same way as one stack;
* shared functions (docs/adr/0183) the same way, by their ``kairos:shared-function`` tag: each is
  reported added, removed or changed with the tasks it runs, not as the stage's own resources;
* per task: schedule, timezone, state, memory, timeout, params (the schedule's input), grants (the
  policy statements of its roles, rendered one per line), alarms, and any other property changed;
* code: each function's and layer's asset hash, grouped by (base asset, head asset) with the files
  that differ between the two asset folders;
* replacements: a property CloudFormation cannot update in place (:data:`REPLACING_PROPERTIES`), a
  resource that changes logical id or stack, and stateful resources that disappear.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kairos.plan import SHARED_FUNCTION_TAG, TASK_TAG
from kairos_runtime.settings import TASKS_ENV

PATH_METADATA = "aws:cdk:path"

REPLACING_PROPERTIES: Mapping[str, frozenset[str]] = {
    "AWS::Lambda::Function": frozenset({"FunctionName", "PackageType"}),
    "AWS::Lambda::LayerVersion": frozenset(
        {"Content", "CompatibleRuntimes", "CompatibleArchitectures", "Description", "LayerName", "LicenseInfo"}
    ),
    "AWS::Lambda::EventInvokeConfig": frozenset({"FunctionName", "Qualifier"}),
    "AWS::Logs::LogGroup": frozenset({"LogGroupName", "LogGroupClass"}),
    "AWS::DynamoDB::Table": frozenset({"TableName", "KeySchema", "LocalSecondaryIndexes"}),
    "AWS::Scheduler::Schedule": frozenset({"Name", "GroupName"}),
    "AWS::Scheduler::ScheduleGroup": frozenset({"Name"}),
    "AWS::SQS::Queue": frozenset({"QueueName", "FifoQueue"}),
    "AWS::SNS::Topic": frozenset({"TopicName", "FifoTopic"}),
    "AWS::IAM::Role": frozenset({"RoleName", "Path"}),
    "AWS::IAM::Policy": frozenset(),
    "AWS::CloudWatch::Alarm": frozenset({"AlarmName"}),
    "AWS::KMS::Key": frozenset({"KeySpec", "KeyUsage", "MultiRegion"}),
}
"""Properties whose change makes CloudFormation replace the resource ("Update requires:
Replacement" in each resource's page of the CloudFormation User Guide), for the types a stage
holds. A layer version is immutable: any of its properties replaces it."""

STATEFUL_TYPES = frozenset({"AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::SQS::Queue", "AWS::KMS::Key"})
"""Resource types whose replacement or removal loses data (items, log events, messages, a key)."""

FILE_LIST_LIMIT = 12
"""How many changed files an asset lists before it says "and N more"."""


@dataclass(frozen=True, slots=True)
class StackTemplate:
    """One stack of a cloud assembly: its template and, per asset hash, the asset's files."""

    name: str
    template: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Assembly:
    """A synthesized stage: its stacks, and the files of every asset folder found (hash → path → sha)."""

    label: str
    stacks: tuple[StackTemplate, ...]
    asset_files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    what: str
    before: str | None
    after: str | None

    def as_json(self) -> dict[str, str | None]:
        return {"what": self.what, "before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True)
class TaskSummary:
    name: str
    stack: str
    fields: Mapping[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "stack": self.stack, **self.fields}


@dataclass(frozen=True, slots=True)
class TaskChange:
    name: str
    changes: tuple[Change, ...]
    grants_added: tuple[str, ...] = ()
    grants_removed: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "changes": [change.as_json() for change in self.changes],
            "grants_added": list(self.grants_added),
            "grants_removed": list(self.grants_removed),
        }


@dataclass(frozen=True, slots=True)
class CodeChange:
    """Functions and layers that move from one asset to another, and what differs between the two."""

    before: str | None
    after: str | None
    used_by: tuple[str, ...]
    files_added: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()
    files_changed: tuple[str, ...] = ()
    files_known: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "used_by": list(self.used_by),
            "files_known": self.files_known,
            "files_added": list(self.files_added),
            "files_removed": list(self.files_removed),
            "files_changed": list(self.files_changed),
        }


@dataclass(frozen=True, slots=True)
class Replacement:
    stack: str
    resource: str
    resource_type: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"stack": self.stack, "resource": self.resource, "type": self.resource_type, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class SharedFunctionChange:
    """A shared function added, removed or changed: the tasks it runs before and after, and every
    property that changed on its resources (the list of tasks aside)."""

    name: str
    stack: str
    status: str
    """``added``, ``removed`` or ``changed``."""
    tasks_before: tuple[str, ...]
    tasks_after: tuple[str, ...]
    changes: tuple[Change, ...] = ()
    grants_added: tuple[str, ...] = ()
    """Policy statements of its role, one a line as a task's (a task joining adds its run records)."""
    grants_removed: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stack": self.stack,
            "status": self.status,
            "tasks_before": list(self.tasks_before),
            "tasks_after": list(self.tasks_after),
            "changes": [change.as_json() for change in self.changes],
            "grants_added": list(self.grants_added),
            "grants_removed": list(self.grants_removed),
        }


@dataclass(frozen=True, slots=True)
class DiffReport:
    base: str
    head: str
    stacks_added: tuple[str, ...]
    stacks_removed: tuple[str, ...]
    tasks_added: tuple[TaskSummary, ...]
    tasks_removed: tuple[TaskSummary, ...]
    tasks_changed: tuple[TaskChange, ...]
    code: tuple[CodeChange, ...]
    replacements: tuple[Replacement, ...]
    stage_changes: tuple[Change, ...]
    shared_functions: tuple[SharedFunctionChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.stacks_added
            or self.stacks_removed
            or self.tasks_added
            or self.tasks_removed
            or self.tasks_changed
            or self.code
            or self.replacements
            or self.stage_changes
            or self.shared_functions
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "changed": not self.empty,
            "stacks_added": list(self.stacks_added),
            "stacks_removed": list(self.stacks_removed),
            "tasks_added": [task.as_json() for task in self.tasks_added],
            "tasks_removed": [task.as_json() for task in self.tasks_removed],
            "tasks_changed": [task.as_json() for task in self.tasks_changed],
            "code": [code.as_json() for code in self.code],
            "replacements": [replacement.as_json() for replacement in self.replacements],
            "stage_changes": [change.as_json() for change in self.stage_changes],
            "shared_functions": [function.as_json() for function in self.shared_functions],
        }


# -- reading templates ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resource:
    stack: str
    logical_id: str
    type: str
    properties: Mapping[str, Any]
    path: str
    """The construct path below the stack, without a trailing ``/Resource`` (else the logical id)."""
    task: str | None
    shared_function: str | None = None
    """The shared function (its name) the resource belongs to, if any."""


def _tags(properties: Mapping[str, Any]) -> dict[str, str]:
    tags = properties.get("Tags")
    if isinstance(tags, list):
        return {str(tag.get("Key")): str(tag.get("Value")) for tag in tags if isinstance(tag, Mapping)}
    if isinstance(tags, Mapping):  # AWS::Scheduler and a few others take a map
        return {str(key): str(value) for key, value in tags.items()}
    return {}


def _relative_path(stack: str, logical_id: str, metadata: Mapping[str, Any]) -> list[str]:
    path = metadata.get(PATH_METADATA)
    if not isinstance(path, str):
        return [logical_id]
    parts = path.split("/")
    if parts and parts[0] == stack:
        parts = parts[1:]
    if len(parts) > 1 and parts[-1] in ("Resource", "Default"):
        parts = parts[:-1]
    return parts or [logical_id]


def _referenced(value: Any) -> Iterator[str]:
    """Logical ids a template value names through ``Ref`` or ``Fn::GetAtt``."""
    if isinstance(value, Mapping):
        if isinstance(value.get("Ref"), str):
            yield value["Ref"]
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute:
            yield str(attribute[0])
        for item in value.values():
            yield from _referenced(item)
    elif isinstance(value, list):
        for item in value:
            yield from _referenced(item)


def _owners(entries: list[tuple[str, str, Mapping[str, Any], list[str], str | None]]) -> dict[str, str]:
    """Logical id → task: by tag, by a path segment naming a task, and then a policy outside every
    task (a Scheduler target's role, which CDK puts at the stack's root) that names one task's
    resources only, with the roles it is attached to."""
    tagged = {task for *_, task in entries if task}
    owners = {}
    for logical_id, _, _, parts, task in entries:
        owner = task or next((part for part in parts if part in tagged), None)
        if owner:
            owners[logical_id] = owner
    for logical_id, kind, properties, _, _ in entries:
        if kind != "AWS::IAM::Policy" or logical_id in owners:
            continue
        named = {owners[ref] for ref in _referenced(properties.get("PolicyDocument")) if ref in owners}
        if len(named) == 1:
            (task,) = named
            owners[logical_id] = task
            for role in _referenced(properties.get("Roles")):
                owners.setdefault(role, task)
    return owners


def resources_of(stack: StackTemplate) -> list[Resource]:
    """The stack's resources, each assigned to its task (see :func:`_owners`)."""
    raw = stack.template.get("Resources") or {}
    entries = []
    for logical_id, body in raw.items():
        if not isinstance(body, Mapping):
            continue
        properties = body.get("Properties") or {}
        parts = _relative_path(stack.name, logical_id, body.get("Metadata") or {})
        entries.append((logical_id, str(body.get("Type", "")), properties, parts, _tags(properties).get(TASK_TAG)))
    owners = _owners(entries)
    shared = _shared_functions(entries)
    return [
        Resource(
            stack.name, logical_id, kind, properties, "/".join(parts), owners.get(logical_id), shared.get(logical_id)
        )
        for logical_id, kind, properties, parts, _ in entries
    ]


def _shared_functions(entries: list[tuple[str, str, Mapping[str, Any], list[str], str | None]]) -> dict[str, str]:
    """Logical id → shared function name: the resources tagged with it, and every resource under the
    same top-level construct (a policy or an event invoke config, which take no tags). A template
    synthesized before the tag existed is read by its function instead: only a shared function's
    environment lists its tasks (``KAIROS_TASKS``). A tagged resource is its function's even in a
    template without construct paths."""
    tagged: dict[str, str] = {}
    by_construct: dict[str, str] = {}
    for logical_id, kind, properties, parts, task in entries:
        if task is not None:
            continue
        name = _tags(properties).get(SHARED_FUNCTION_TAG)
        if name is None and kind == "AWS::Lambda::Function" and TASKS_ENV in _variables(properties):
            name = str(properties.get("FunctionName") or parts[0])
        if name:
            tagged[logical_id] = name
            if len(parts) > 1:
                by_construct[parts[0]] = name
    members = {
        logical_id: by_construct[parts[0]]
        for logical_id, _, _, parts, task in entries
        if task is None and len(parts) > 1 and parts[0] in by_construct
    }
    return members | tagged


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _reference(value: Any, names: Mapping[str, str]) -> Any:
    """``{"Ref": X}`` and ``{"Fn::GetAtt": [X, A]}`` as ``<path of X>`` / ``<path of X>.A``, recursively."""
    if isinstance(value, Mapping):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            return f"<{names.get(value['Ref'], value['Ref'])}>"
        if set(value) == {"Fn::GetAtt"} and isinstance(value["Fn::GetAtt"], list) and value["Fn::GetAtt"]:
            target, *attribute = value["Fn::GetAtt"]
            return f"<{names.get(str(target), str(target))}>" + "".join(f".{part}" for part in attribute)
        if set(value) == {"Fn::Join"} and isinstance(value["Fn::Join"], list) and len(value["Fn::Join"]) == 2:
            separator, parts = value["Fn::Join"]
            if isinstance(parts, list):
                return str(separator).join(str(_reference(part, names)) for part in parts)
        return {key: _reference(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_reference(item, names) for item in value]
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def render_statement(statement: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """One policy statement on one line: ``Allow dynamodb:GetItem, dynamodb:Query on <Tables/Runs>.Arn
    if {...}``, with references shown as construct paths."""
    resolved = _reference(statement, names)
    actions = ", ".join(str(action) for action in _as_list(resolved.get("Action", resolved.get("NotAction", []))))
    resources = ", ".join(
        str(resource) if isinstance(resource, str) else _json(resource)
        for resource in _as_list(resolved.get("Resource", "*"))
    )
    line = f"{resolved.get('Effect', 'Allow')} {actions} on {resources}"
    if resolved.get("Condition"):
        line += f" if {_json(resolved['Condition'])}"
    return line


@dataclass(frozen=True, slots=True)
class _Task:
    name: str
    stack: str
    resources: tuple[Resource, ...]
    names: Mapping[str, str]

    def of_type(self, kind: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.type == kind]

    def function(self) -> Resource | None:
        functions = self.of_type("AWS::Lambda::Function")
        tagged = [f for f in functions if _tags(f.properties).get(TASK_TAG) == self.name]
        return next(iter(tagged or functions), None)

    def schedule(self) -> Resource | None:
        return next(iter(self.of_type("AWS::Scheduler::Schedule")), None)

    def fields(self) -> dict[str, str]:
        """The settings a reviewer reads first, as text: schedule, timezone, state, memory, timeout, params."""
        found: dict[str, str] = {}
        schedule, function = self.schedule(), self.function()
        if schedule is not None:
            found["schedule"] = str(schedule.properties.get("ScheduleExpression", ""))
            found["timezone"] = str(schedule.properties.get("ScheduleExpressionTimezone", "UTC"))
            found["state"] = str(schedule.properties.get("State", "ENABLED"))
            found["params"] = _json(_schedule_params(schedule))
        if function is not None:
            found["memory"] = f"{function.properties.get('MemorySize', 128)} MB"
            found["timeout"] = f"{function.properties.get('Timeout', 3)} s"
            found["runtime"] = str(function.properties.get("Runtime", ""))
        return found

    def grants(self) -> set[str]:
        return _statements(self.resources, self.names, lambda path: path.removeprefix(f"{self.name}/"))

    def alarms(self) -> dict[str, Mapping[str, Any]]:
        return {
            alarm.path.removeprefix(f"{self.name}/"): alarm.properties
            for alarm in self.of_type("AWS::CloudWatch::Alarm")
        }


def _schedule_params(schedule: Resource) -> Any:
    target = schedule.properties.get("Target") or {}
    text = target.get("Input") if isinstance(target, Mapping) else None
    if not isinstance(text, str):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return text
    return document.get("params") if isinstance(document, Mapping) else document


def _names(resources: Iterable[Resource]) -> dict[str, str]:
    return {resource.logical_id: resource.path for resource in resources}


def _tasks(resources: list[Resource]) -> dict[str, _Task]:
    names = _names(resources)
    grouped: dict[str, list[Resource]] = {}
    for resource in resources:
        if resource.task is not None:
            grouped.setdefault(resource.task, []).append(resource)
    return {name: _Task(name, members[0].stack, tuple(members), names) for name, members in sorted(grouped.items())}


# -- comparing -----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def property_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The top-level properties that differ, sorted."""
    return sorted(key for key in set(before) | set(after) if _json(before.get(key)) != _json(after.get(key)))


COVERED = {
    "AWS::Lambda::Function": {"MemorySize", "Timeout", "Code"},
    "AWS::Scheduler::Schedule": {"ScheduleExpression", "ScheduleExpressionTimezone", "State", "Target"},
    "AWS::IAM::Policy": {"PolicyDocument"},
    "AWS::CloudWatch::Alarm": set(),
}
"""Properties the summary reports in its own words, so the generic list does not repeat them."""
_SCHEDULE_TARGET_TEXT = "Target (besides params)"


def _alarm_changes(before: _Task, after: _Task) -> list[Change]:
    old, new = before.alarms(), after.alarms()
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            changes.append(Change(f"alarm {key}", "present", None))
        elif key not in old:
            changes.append(Change(f"alarm {key}", None, "added"))
        else:
            for prop in property_changes(old[key], new[key]):
                changes.append(Change(f"alarm {key} {prop}", _text(old[key].get(prop)), _text(new[key].get(prop))))
    return changes


def _path_changes(
    old: Mapping[str, Resource],
    new: Mapping[str, Resource],
    *,
    covered: Mapping[str, set[str]] | None = None,
    skipped: frozenset[str] = frozenset(),
    properties: Callable[[Resource], Mapping[str, Any]] = lambda resource: resource.properties,
) -> list[Change]:
    """Resources added or removed, and each property changed, by path: the properties ``covered``
    names for a type are reported elsewhere in their own words, and a type in ``skipped`` only
    counts when it comes or goes."""
    changes = []
    for path in sorted(set(old) | set(new)):
        if path not in new:
            changes.append(Change(path, old[path].type, None))
        elif path not in old:
            changes.append(Change(path, None, new[path].type))
        elif old[path].type not in skipped and new[path].type not in skipped:
            before, after = properties(old[path]), properties(new[path])
            own = (covered or {}).get(new[path].type, set())
            changes += [
                Change(f"{path} {prop}", _text(before.get(prop)), _text(after.get(prop)))
                for prop in property_changes(before, after)
                if prop not in own
            ]
    return changes


def _other_changes(before: _Task, after: _Task) -> list[Change]:
    """Every other property change of the task's resources, by path below the task and property."""
    return _path_changes(
        {resource.path.removeprefix(f"{before.name}/"): resource for resource in before.resources},
        {resource.path.removeprefix(f"{after.name}/"): resource for resource in after.resources},
        covered=COVERED,
        skipped=frozenset({"AWS::CloudWatch::Alarm"}),  # alarms: _alarm_changes
    )


def _compare_task(before: _Task, after: _Task) -> TaskChange | None:
    old_fields, new_fields = before.fields(), after.fields()
    changes = [
        Change(key, old_fields.get(key), new_fields.get(key))
        for key in ("schedule", "timezone", "state", "memory", "timeout", "runtime", "params")
        if old_fields.get(key) != new_fields.get(key)
    ]
    if before.stack != after.stack:
        changes.append(Change("stack", before.stack, after.stack))
    old_schedule, new_schedule = before.schedule(), after.schedule()
    if old_schedule is not None and new_schedule is not None:
        old_target = {k: v for k, v in (old_schedule.properties.get("Target") or {}).items() if k != "Input"}
        new_target = {k: v for k, v in (new_schedule.properties.get("Target") or {}).items() if k != "Input"}
        old_input = _other_input(old_schedule)
        new_input = _other_input(new_schedule)
        if _json(old_target) != _json(new_target) or old_input != new_input:
            changes.append(Change(_SCHEDULE_TARGET_TEXT, _json(old_target) + old_input, _json(new_target) + new_input))
    changes += _alarm_changes(before, after)
    changes += _other_changes(before, after)
    old_grants, new_grants = before.grants(), after.grants()
    added, removed = sorted(new_grants - old_grants), sorted(old_grants - new_grants)
    if not (changes or added or removed):
        return None
    return TaskChange(after.name, tuple(changes), tuple(added), tuple(removed))


def _other_input(schedule: Resource) -> str:
    """The schedule's input without its params (task, task type and the Scheduler placeholders)."""
    target = schedule.properties.get("Target") or {}
    text = target.get("Input") if isinstance(target, Mapping) else None
    try:
        document = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return ""
    if not isinstance(document, Mapping):
        return ""
    return _json({key: value for key, value in document.items() if key != "params"})


def asset_hash(resource: Resource) -> str | None:
    """The asset a function or layer deploys: its S3 key without ``.zip`` (or its inline code's hash)."""
    code = (
        resource.properties.get("Code")
        if resource.type == "AWS::Lambda::Function"
        else resource.properties.get("Content")
    )
    if not isinstance(code, Mapping):
        return None
    key = code.get("S3Key")
    if isinstance(key, str):
        return key.removesuffix(".zip")
    if "ZipFile" in code:
        return "inline:" + _json(code["ZipFile"])[:40]
    return _json(key) if key is not None else None


def _code_owner(resource: Resource) -> str:
    if resource.task:
        return resource.task
    return f"shared function {resource.shared_function}" if resource.shared_function else resource.path


def _code_changes(old: list[Resource], new: list[Resource], base: Assembly, head: Assembly) -> list[CodeChange]:
    kinds = ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion")
    before = {
        _code_owner(r) + (" (layer)" if r.type != kinds[0] else ""): asset_hash(r) for r in old if r.type in kinds
    }
    after = {_code_owner(r) + (" (layer)" if r.type != kinds[0] else ""): asset_hash(r) for r in new if r.type in kinds}
    groups: dict[tuple[str | None, str | None], list[str]] = {}
    for owner in sorted(set(before) & set(after)):
        if before[owner] != after[owner]:
            groups.setdefault((before[owner], after[owner]), []).append(owner)
    changes = []
    for (old_hash, new_hash), users in groups.items():
        old_files = base.asset_files.get(old_hash or "")
        new_files = head.asset_files.get(new_hash or "")
        if old_files is None or new_files is None:
            changes.append(CodeChange(old_hash, new_hash, tuple(users), files_known=False))
            continue
        changes.append(
            CodeChange(
                old_hash,
                new_hash,
                tuple(users),
                files_added=tuple(sorted(set(new_files) - set(old_files))),
                files_removed=tuple(sorted(set(old_files) - set(new_files))),
                files_changed=tuple(sorted(p for p in set(old_files) & set(new_files) if old_files[p] != new_files[p])),
            )
        )
    return changes


def _replacements(old: list[Resource], new: list[Resource]) -> list[Replacement]:
    by_id = {(r.stack, r.logical_id): r for r in new}
    by_path = {r.path: r for r in new}
    found = []
    for resource in old:
        same = by_id.get((resource.stack, resource.logical_id))
        if same is not None and same.type == resource.type:
            replacing = REPLACING_PROPERTIES.get(resource.type, frozenset())
            changed = [p for p in property_changes(resource.properties, same.properties) if p in replacing]
            if changed:
                found.append(
                    Replacement(resource.stack, resource.path, resource.type, f"{', '.join(changed)} changed: replaced")
                )
            continue
        moved = by_path.get(resource.path)
        if moved is not None and moved.type == resource.type:
            where = (
                f"moves to stack {moved.stack}" if moved.stack != resource.stack else f"logical id {moved.logical_id}"
            )
            found.append(Replacement(resource.stack, resource.path, resource.type, f"{where}: a new resource"))
        elif resource.type in STATEFUL_TYPES:
            found.append(Replacement(resource.stack, resource.path, resource.type, "removed: its data goes with it"))
    return found


def _stage_changes(old: list[Resource], new: list[Resource]) -> list[Change]:
    return _path_changes(
        {r.path: r for r in old if r.task is None and r.shared_function is None},
        {r.path: r for r in new if r.task is None and r.shared_function is None},
        # layers are code (reported by asset); CDK's metadata is not deployed behaviour
        skipped=frozenset({"AWS::Lambda::LayerVersion", "AWS::CDK::Metadata"}),
    )


def _variables(properties: Mapping[str, Any]) -> Mapping[str, Any]:
    """A function's environment variables; none for a template that holds anything else there."""
    environment = properties.get("Environment")
    variables = environment.get("Variables") if isinstance(environment, Mapping) else None
    return variables if isinstance(variables, Mapping) else {}


def _function_tasks(resources: list[Resource]) -> tuple[str, ...]:
    """The tasks a shared function runs: its environment's task list (``KAIROS_TASKS``)."""
    for resource in resources:
        if resource.type == "AWS::Lambda::Function":
            try:
                tasks = json.loads(_variables(resource.properties).get(TASKS_ENV, "[]"))
            except (TypeError, ValueError):
                return ()
            return tuple(str(task) for task in tasks) if isinstance(tasks, list) else ()
    return ()


def _without_task_list(resource: Resource) -> Mapping[str, Any]:
    """The resource's properties, its function's task list left out (reported on its own line)."""
    variables = _variables(resource.properties)
    if resource.type != "AWS::Lambda::Function" or TASKS_ENV not in variables:
        return resource.properties
    environment = resource.properties["Environment"]
    kept = {key: value for key, value in variables.items() if key != TASKS_ENV}
    return {**resource.properties, "Environment": {**environment, "Variables": kept}}


def _by_shared_function(resources: list[Resource]) -> dict[str, list[Resource]]:
    groups: dict[str, list[Resource]] = {}
    for resource in resources:
        if resource.shared_function is not None:
            groups.setdefault(resource.shared_function, []).append(resource)
    return groups


def _member_changes(before: list[Resource], after: list[Resource]) -> list[Change]:
    """Property changes of one shared function's resources, by path below its construct; its code
    is left to the code section (the function is named among the asset's users)."""
    return _path_changes(
        {_below_construct(resource.path): resource for resource in before},
        {_below_construct(resource.path): resource for resource in after},
        covered=COVERED_SHARED,
        properties=_without_task_list,
    )


def _below_construct(path: str) -> str:
    """``SharedFunction<key>/Role/DefaultPolicy`` → ``Role/DefaultPolicy``."""
    return path.split("/", 1)[-1]


COVERED_SHARED = {"AWS::Lambda::Function": {"Code"}, "AWS::IAM::Policy": {"PolicyDocument"}}
"""A shared function's properties reported in their own words: code by asset, grants by statement."""


def _statements(resources: Iterable[Resource], names: Mapping[str, str], owner_of: Callable[[str], str]) -> set[str]:
    """Each policy statement of ``resources``, one a line: ``<owner of its path>: <statement>``, with
    references as construct paths."""
    statements = set()
    for policy in resources:
        if policy.type != "AWS::IAM::Policy":
            continue
        owner = owner_of(policy.path)
        document = policy.properties.get("PolicyDocument") or {}
        for statement in _as_list(document.get("Statement", [])):
            if isinstance(statement, Mapping):
                statements.add(f"{owner}: {render_statement(statement, names)}")
    return statements


def _shared_function_changes(old: list[Resource], new: list[Resource]) -> list[SharedFunctionChange]:
    before, after = _by_shared_function(old), _by_shared_function(new)
    old_names, new_names = _names(old), _names(new)
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            changes.append(
                SharedFunctionChange(name, before[name][0].stack, "removed", _function_tasks(before[name]), ())
            )
        elif name not in before:
            changes.append(SharedFunctionChange(name, after[name][0].stack, "added", (), _function_tasks(after[name])))
        else:
            tasks_before, tasks_after = _function_tasks(before[name]), _function_tasks(after[name])
            found = _member_changes(before[name], after[name])
            old_grants = _statements(before[name], old_names, _below_construct)
            new_grants = _statements(after[name], new_names, _below_construct)
            added, removed = tuple(sorted(new_grants - old_grants)), tuple(sorted(old_grants - new_grants))
            if tasks_before != tasks_after or found or added or removed:
                changes.append(
                    SharedFunctionChange(
                        name, after[name][0].stack, "changed", tasks_before, tasks_after, tuple(found), added, removed
                    )
                )
    return changes


def _all_resources(assembly: Assembly) -> list[Resource]:
    return [resource for stack in assembly.stacks for resource in resources_of(stack)]


def diff(base: Assembly, head: Assembly) -> DiffReport:
    """Compare two synthesized stages task by task."""
    old, new = _all_resources(base), _all_resources(head)
    old_tasks, new_tasks = _tasks(old), _tasks(new)
    old_stacks = {stack.name for stack in base.stacks}
    new_stacks = {stack.name for stack in head.stacks}
    changed = [
        change
        for name in sorted(set(old_tasks) & set(new_tasks))
        if (change := _compare_task(old_tasks[name], new_tasks[name])) is not None
    ]
    return DiffReport(
        base=base.label,
        head=head.label,
        stacks_added=tuple(sorted(new_stacks - old_stacks)),
        stacks_removed=tuple(sorted(old_stacks - new_stacks)),
        tasks_added=tuple(_summary(new_tasks[n]) for n in sorted(set(new_tasks) - set(old_tasks))),
        tasks_removed=tuple(_summary(old_tasks[n]) for n in sorted(set(old_tasks) - set(new_tasks))),
        tasks_changed=tuple(changed),
        code=tuple(_code_changes(old, new, base, head)),
        replacements=tuple(_replacements(old, new)),
        stage_changes=tuple(_stage_changes(old, new)),
        shared_functions=tuple(_shared_function_changes(old, new)),
    )


def _summary(task: _Task) -> TaskSummary:
    return TaskSummary(task.name, task.stack, task.fields())
