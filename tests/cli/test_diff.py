"""``kairos diff`` on two synthesized trees: a throwaway git repository holding this project with a
tiny tasks file, its HEAD against its working tree, offline (the synth runs with no AWS variable)."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kairos import diff_sources
from kairos.cli import app
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

TASKS = """\
    stages:
      dev: {enabled: [alpha, gamma]}
    tasks:
      - {name: alpha, task_type: simple_task_1, schedule: rate(5 minutes), params: {label: a}}
      - {name: beta, task_type: simple_task_2, schedule: "cron(0 8 * * ? *)", timezone: Europe/Paris}
      - {name: gamma, task_type: simple_task_1, schedule: rate(1 hour), runtime: nodejs22.x}
"""
# A new task module beside simple.py, and a task of its type: the change a PR adds a task type with.
REPORTS_MODULE = '''\
"""A task type added in the test: weekly reports."""

from __future__ import annotations

from kairos_runtime.context import TaskContext
from kairos_runtime.registry import TaskOutcome, TaskParams, TaskRegistry

registry = TaskRegistry()


class WeeklyParams(TaskParams, frozen=True):
    weeks: int = 1


@registry.task("weekly_report", params=WeeklyParams)
def weekly_report(params: WeeklyParams, context: TaskContext) -> TaskOutcome:
    """Nothing yet."""
    return TaskOutcome()
'''
LEFT_OUT = ("tests/", "docs/", "bench/", "schemas/")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This project's files (as they are now) with the tiny tasks file, committed; then changed:
    a task added, one changed, one removed, and a new task module."""
    root = tmp_path_factory.mktemp("diff") / "repo"
    listed = _git(PROJECT_ROOT, "ls-files", "-co", "--exclude-standard").splitlines()
    for name in listed:
        source = PROJECT_ROOT / name
        if name.startswith(LEFT_OUT) or not source.is_file():
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / name)
    (root / "node_modules").symlink_to(PROJECT_ROOT / "node_modules")
    (root / "tasks.yaml").write_text(textwrap.dedent(TASKS))
    _git(root, "init", "--quiet", "--initial-branch=main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "base")
    changed = (
        textwrap.dedent(TASKS)
        .replace("params: {label: a}}", "params: {label: b}, memory: 512}")
        .replace(
            '  - {name: beta, task_type: simple_task_2, schedule: "cron(0 8 * * ? *)", timezone: Europe/Paris}\n', ""
        )
    )
    changed += "  - {name: weekly, task_type: weekly_report, schedule: cron(0 6 ? * MON *), params: {weeks: 2}}\n"
    (root / "tasks.yaml").write_text(changed)
    (root / "lambdas/python/kairos_runtime/tasks/reports.py").write_text(REPORTS_MODULE)
    return root


def run_diff(repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.chdir(repo)
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(app, ["diff", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def report(repo: Path) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        document: dict[str, Any] = json.loads(run_diff(repo, monkeypatch, "--json"))
    return document


def test_tasks_added_removed_and_changed_are_reported_by_name(report: dict[str, Any]) -> None:
    assert [task["name"] for task in report["tasks_added"]] == ["weekly"]
    added = report["tasks_added"][0]
    assert (added["schedule"], added["state"], added["params"]) == ("cron(0 6 ? * MON *)", "DISABLED", '{"weeks":2}')
    assert [task["name"] for task in report["tasks_removed"]] == ["beta"]
    (alpha,) = report["tasks_changed"]
    changes = {change["what"]: (change["before"], change["after"]) for change in alpha["changes"]}
    assert changes["memory"] == ("256 MB", "512 MB")
    assert changes["params"] == ('{"label":"a"}', '{"label":"b"}')


def test_a_new_task_module_changes_no_other_function_s_code(report: dict[str, Any]) -> None:
    # alpha runs kairos_runtime.tasks.simple, gamma is a Node function: neither ships reports.py.
    assert report["code"] == [], "adding a task type must not touch the assets of the existing functions"


def test_a_removed_task_loses_its_log_group_and_says_so(report: dict[str, Any]) -> None:
    lost = {(item["resource"], item["reason"]) for item in report["replacements"]}
    assert ("beta/Logs", "removed: its data goes with it") in lost


def test_a_change_to_the_shared_runtime_is_one_asset_group_naming_the_file(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = repo / "lambdas/python/kairos_runtime/errors.py"
    original = errors.read_text()
    errors.write_text(original + "\n# a comment the test adds\n")
    try:
        text = run_diff(repo, monkeypatch)
    finally:
        errors.write_text(original)

    assert "Code changes, by asset (1)" in text
    assert "alpha (1 user)" in text
    assert "~ kairos_runtime/errors.py" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_second_diff_synthesizes_nothing_and_the_worktree_is_gone(
    repo: Path, report: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("synthesized again: the cache missed")

    monkeypatch.setattr(diff_sources, "synthesize", refuse)
    text = run_diff(repo, monkeypatch)

    assert "Tasks added (1)" in text
    assert "+ weekly: cron(0 6 ? * MON *), UTC, DISABLED, 256 MB, 60 s" in text
    assert len(_git(repo, "worktree", "list").splitlines()) == 1, "the base's temporary worktree is removed"


def test_a_saved_assembly_is_a_base_too_and_markdown_is_for_a_pr(
    repo: Path, report: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree_id = _git(repo, "rev-parse", "HEAD^{tree}").strip()
    saved = repo / ".kairos" / "diff-cache" / diff_sources.cache_key(tree_id, "dev", "tasks.yaml")
    assert (saved / "manifest.json").is_file()

    markdown = run_diff(repo, monkeypatch, "--template", str(saved), "--markdown")

    lines = markdown.splitlines()
    assert lines[0].startswith("### kairos diff: stage dev, ")
    assert "**Tasks:** 1 added, 1 removed, 1 changed, 0 code asset changes" in lines
    assert "> [!WARNING]" in lines


def test_raw_is_the_cdk_cli_s_offline_diff(repo: Path, report: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    text = run_diff(repo, monkeypatch, "--raw")

    assert "Stack kairos-dev" in text
    assert "[-] AWS::Lambda::Function beta/Function" in text
    assert "[+] AWS::Lambda::Function weekly/Function" in text


def test_bad_sides_are_one_line_errors(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    for args, message in (
        (["--base", "no-such-ref"], "unknown git ref 'no-such-ref'"),
        (["--template", str(repo / "missing.json")], "no such template file or cloud assembly folder"),
        (["--base", "HEAD", "--template", "x"], "give --base or --template, not both"),
    ):
        result = CliRunner().invoke(app, ["diff", *args])
        assert result.exit_code == 1
        assert message in result.output
        assert "Traceback" not in result.output
