"""``kairos diff``'s report as text (80 columns) or Markdown (a PR comment); pure."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from kairos.diffing import Change, CodeChange, DiffReport, SharedFunctionChange, TaskSummary

WIDTH = 80
VALUE_LIMIT = 200
"""How much of one value (a params document, a policy condition) a line shows."""


def _cut(value: str | None, limit: int = VALUE_LIMIT) -> str:
    if value is None:
        return "(none)"
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _short_hash(value: str | None) -> str:
    if value is None:
        return "(none)"
    return value if len(value) <= 24 else value[:24] + "…"


def _change_text(change: Change) -> str:
    if change.before is None:
        return f"{change.what}: added ({_cut(change.after)})"
    if change.after is None:
        return f"{change.what}: removed (was {_cut(change.before)})"
    return f"{change.what}: {_cut(change.before)} → {_cut(change.after)}"


def _summary_text(task: TaskSummary) -> str:
    fields = task.fields
    parts = [fields.get(key) for key in ("schedule", "timezone", "state", "memory", "timeout", "runtime")]
    return ", ".join(part for part in parts if part)


def _files(code: CodeChange, limit: int) -> list[str]:
    if not code.files_known:
        return ["files unknown: no asset folders on one side (a saved template)"]
    lines = [f"+ {p}" for p in code.files_added] + [f"- {p}" for p in code.files_removed]
    lines += [f"~ {p}" for p in code.files_changed]
    if not lines:
        return ["same files: the build inputs changed (dependency lock, builder, bytecode compiler)"]
    if len(lines) > limit:
        lines = [*lines[:limit], f"… and {len(lines) - limit} more files"]
    return lines


def _users(code: CodeChange) -> str:
    count = len(code.used_by)
    noun = "user" if count == 1 else "users"
    return f"{', '.join(code.used_by)} ({count} {noun})"


def _wrap(text: str, indent: int, width: int) -> list[str]:
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 4),
        break_long_words=True,
        break_on_hyphens=False,
    ) or [" " * indent]


def _text_details(changes: Iterable[Change], added: Iterable[str], removed: Iterable[str], width: int) -> list[str]:
    """A changed task's or shared function's lines: each change, then each grant added and removed."""
    texts = [_change_text(change) for change in changes]
    texts += [f"grant + {grant}" for grant in added]
    texts += [f"grant - {grant}" for grant in removed]
    return [line for text in texts for line in _wrap(text, 6, width)]


def _text_tasks(report: DiffReport, width: int) -> list[str]:
    lines: list[str] = []
    for title, mark, tasks in (("Tasks added", "+", report.tasks_added), ("Tasks removed", "-", report.tasks_removed)):
        if tasks:
            lines += ["", *_wrap(f"{title} ({len(tasks)})", 0, width)]
            for task in tasks:
                lines += _wrap(f"{mark} {task.name}: {_summary_text(task)}", 2, width)
                lines += _wrap(f"params {_cut(task.fields.get('params'))}", 6, width)
    if report.tasks_changed:
        lines += ["", *_wrap(f"Tasks changed ({len(report.tasks_changed)})", 0, width)]
        for changed in report.tasks_changed:
            lines += _wrap(f"~ {changed.name}", 2, width)
            lines += _text_details(changed.changes, changed.grants_added, changed.grants_removed, width)
    return lines


SHARED_MARKS = {"added": "+", "removed": "-", "changed": "~"}


def _shared_headline(function: SharedFunctionChange) -> str:
    """``+ NAME (stack): runs a, b`` / ``- NAME (stack): ran a`` / ``~ NAME (stack): tasks a → a, b``."""
    head = f"{SHARED_MARKS[function.status]} {function.name} ({function.stack})"
    if function.status == "added":
        return f"{head}: runs {', '.join(function.tasks_after) or '(none)'}"
    if function.status == "removed":
        return f"{head}: ran {', '.join(function.tasks_before) or '(none)'}"
    if function.tasks_before != function.tasks_after:
        return f"{head}: tasks {', '.join(function.tasks_before)} → {', '.join(function.tasks_after)}"
    return f"{head}: runs {', '.join(function.tasks_after)}"


def _text_shared(report: DiffReport, width: int) -> list[str]:
    if not report.shared_functions:
        return []
    lines = ["", *_wrap(f"Shared functions ({len(report.shared_functions)})", 0, width)]
    for function in report.shared_functions:
        lines += _wrap(_shared_headline(function), 2, width)
        lines += _text_details(function.changes, function.grants_added, function.grants_removed, width)
    return lines


def _text_code(report: DiffReport, width: int, file_limit: int) -> list[str]:
    if not report.code:
        return []
    lines = ["", *_wrap(f"Code changes, by asset ({len(report.code)})", 0, width)]
    for code in report.code:
        lines += _wrap(_users(code), 2, width)
        lines += _wrap(f"asset {_short_hash(code.before)} → {_short_hash(code.after)}", 6, width)
        for line in _files(code, file_limit):
            lines += _wrap(line, 6, width)
    return lines


def _text_resources(report: DiffReport, width: int) -> list[str]:
    lines: list[str] = []
    if report.replacements:
        lines += ["", *_wrap(f"WARNING: resources replaced or lost ({len(report.replacements)})", 0, width)]
        for item in report.replacements:
            lines += _wrap(f"! {item.stack} {item.resource} ({item.resource_type}): {item.reason}", 2, width)
    if report.stage_changes:
        lines += ["", *_wrap(f"Stage resources changed ({len(report.stage_changes)})", 0, width)]
        for change in report.stage_changes:
            lines += _wrap(_change_text(change), 2, width)
    return lines


def render_text(report: DiffReport, *, width: int = WIDTH, file_limit: int = 12) -> str:
    """The report for a terminal, every line at most ``width`` columns."""
    lines = _wrap(f"kairos diff: {report.base} → {report.head}", 0, width)
    if report.empty:
        return "\n".join([*lines, "No changes."]) + "\n"
    for title, stacks in (("Stacks added", report.stacks_added), ("Stacks removed", report.stacks_removed)):
        if stacks:
            lines += ["", *_wrap(f"{title} ({len(stacks)})", 0, width)]
            for name in stacks:
                lines += _wrap(name, 2, width)
    lines += _text_tasks(report, width)
    lines += _text_shared(report, width)
    lines += _text_code(report, width, file_limit)
    lines += _text_resources(report, width)
    return "\n".join(lines) + "\n"


def _code(text: str | None) -> str:
    """Inline code that survives any backtick in ``text``."""
    value = _cut(text)
    fence = "``" if "`" in value else "`"
    return f"{fence}{value}{fence}" if not value.startswith("`") else f"{fence} {value} {fence}"


def _md_change(change: Change) -> str:
    if change.before is None:
        return f"{change.what}: added {_code(change.after)}"
    if change.after is None:
        return f"{change.what}: removed (was {_code(change.before)})"
    return f"{change.what}: {_code(change.before)} → {_code(change.after)}"


def _md_list(items: Iterable[str], indent: int = 0) -> list[str]:
    return [f"{' ' * indent}- {item}" for item in items]


def _md_details(changes: Iterable[Change], added: Iterable[str], removed: Iterable[str]) -> list[str]:
    """A changed task's or shared function's sub-list: each change, then each grant added and removed."""
    return [
        *_md_list((_md_change(change) for change in changes), 2),
        *_md_list((f"grant added: {_code(grant)}" for grant in added), 2),
        *_md_list((f"grant removed: {_code(grant)}" for grant in removed), 2),
    ]


def _md_tasks(report: DiffReport) -> list[str]:
    lines: list[str] = []
    for title, tasks in (("Tasks added", report.tasks_added), ("Tasks removed", report.tasks_removed)):
        if tasks:
            lines += [f"#### {title}", ""]
            lines += _md_list(
                f"**{task.name}**: {_summary_text(task)}; params {_code(task.fields.get('params'))}" for task in tasks
            )
            lines.append("")
    if report.tasks_changed:
        lines += ["#### Tasks changed", ""]
        for changed in report.tasks_changed:
            lines.append(f"- **{changed.name}**")
            lines += _md_details(changed.changes, changed.grants_added, changed.grants_removed)
        lines.append("")
    return lines


def _md_warnings(report: DiffReport) -> list[str]:
    if not report.replacements:
        return []
    lines = ["> [!WARNING]", "> Resources replaced or lost on deploy:"]
    for item in report.replacements:
        lines.append(f"> - `{item.stack}` `{item.resource}` ({item.resource_type}): {item.reason}")
    return [*lines, ""]


def render_markdown(report: DiffReport, *, file_limit: int = 12) -> str:
    """The report as a PR comment: headings, lists, and the stage's own resources folded."""
    lines = [f"### kairos diff: {report.base} → {report.head}", ""]
    if report.empty:
        return "\n".join([*lines, "No changes."]) + "\n"
    lines += _md_warnings(report)
    counts = [
        f"{len(report.tasks_added)} added",
        f"{len(report.tasks_removed)} removed",
        f"{len(report.tasks_changed)} changed",
        f"{len(report.code)} code asset change{'s' if len(report.code) != 1 else ''}",
    ]
    lines += [f"**Tasks:** {', '.join(counts)}", ""]
    for title, stacks in (("Stacks added", report.stacks_added), ("Stacks removed", report.stacks_removed)):
        if stacks:
            lines += [f"#### {title}", *_md_list(f"`{name}`" for name in stacks), ""]
    lines += _md_tasks(report)
    if report.shared_functions:
        lines += ["#### Shared functions", ""]
        for function in report.shared_functions:
            lines.append(f"- {_shared_headline(function)}")
            lines += _md_details(function.changes, function.grants_added, function.grants_removed)
        lines.append("")
    if report.code:
        lines += ["#### Code changes, by asset", ""]
        for code in report.code:
            lines.append(f"- {_users(code)}: `{_short_hash(code.before)}` → `{_short_hash(code.after)}`")
            lines += _md_list((f"`{line}`" for line in _files(code, file_limit)), 2)
        lines.append("")
    if report.stage_changes:
        lines += ["<details><summary>Stage resources changed</summary>", ""]
        lines += _md_list(_md_change(change) for change in report.stage_changes)
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
