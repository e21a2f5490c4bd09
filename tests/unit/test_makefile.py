"""`make help` lists every target of the Makefile with what it does, read from the Makefile itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import PROJECT_ROOT

MAKEFILE = PROJECT_ROOT / "Makefile"
RULE = re.compile(r"^([^\s#:=]+)\s*:(?!=)")


def make_help(makefile: Path) -> dict[str, str]:
    completed = subprocess.run(
        [shutil.which("make") or "make", "--no-print-directory", "-f", str(makefile), "help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=makefile.parent,
    )
    listed = {}
    for line in completed.stdout.splitlines():
        assert len(line) <= 80, line
        prefix, name, text = line.split(maxsplit=2)
        assert prefix == "make"
        listed[name] = text
    return listed


def rules(text: str) -> set[str]:
    """Every target a rule names, but files (a path or a variable in its name) and special targets."""
    names = {match.group(1) for line in text.splitlines() if (match := RULE.match(line))}
    return {name for name in names if not name.startswith(".") and "/" not in name and "$" not in name}


def phony(text: str) -> set[str]:
    [line] = [line for line in text.splitlines() if line.startswith(".PHONY:")]
    return set(line.removeprefix(".PHONY:").split())


def test_every_target_is_listed_with_a_description() -> None:
    text = MAKEFILE.read_text(encoding="utf-8")
    listed = make_help(MAKEFILE)
    assert set(listed) == rules(text) == phony(text)
    assert {"help", "run", "test", "setup", "lint"} <= set(listed)
    undescribed = [name for name, description in listed.items() if description.startswith("(no description")]
    assert undescribed == []


def test_a_new_target_is_listed_even_before_it_is_described(tmp_path: Path) -> None:
    makefile = tmp_path / "Makefile"
    makefile.write_text(MAKEFILE.read_text(encoding="utf-8") + "\nshiny: setup\n\techo shiny\n", encoding="utf-8")
    listed = make_help(makefile)
    assert listed["shiny"] == "(no description: end its line with ## and one)"
    assert "run" in listed
