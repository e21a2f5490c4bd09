"""In-place edits of tasks.yaml that keep comments, key order and formatting (ruamel round-trip)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.util import load_yaml_guess_indent

from kairos.catalog import TaskCatalog
from kairos.loading import ConfigError, load_tasks_file
from kairos.suggestions import did_you_mean


class EditError(ValueError):
    pass


def _round_trip(path: Path) -> tuple[Any, YAML]:
    text = path.read_text(encoding="utf-8")
    _, indent, block_seq_indent = load_yaml_guess_indent(text)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=indent, offset=block_seq_indent)
    # Write null as `null` (ruamel's default is an empty value), as people write it in tasks.yaml.
    yaml.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml.load(text), yaml


def set_enabled(path: Path, name: str, enabled: bool, *, stage: str | None, catalog: TaskCatalog) -> str:
    """Enable or disable ``name`` (in one stage when given) and return what changed, in words.

    The edited file is validated before it replaces the original, so a failed edit loses nothing.
    """
    document, yaml = _round_trip(path)
    tasks = document.get("tasks") or []
    entry = next((task for task in tasks if task.get("name") == name), None)
    if entry is None:
        names = [str(task.get("name", "")) for task in tasks]
        raise EditError(f"unknown task {name!r} in {path}{did_you_mean(name, names)}")
    if stage is None:
        _set_key_after(entry, "enabled", enabled, after="schedule")
        change = f"{name}: enabled: {str(enabled).lower()}"
        shadowing = [
            stage_name
            for stage_name, config in (document.get("stages") or {}).items()
            if config.get("enabled") is not None
            or ((config.get("overrides") or {}).get(name) or {}).get("enabled") is not None
        ]
        if shadowing:
            change += f" (stages {', '.join(shadowing)} decide for themselves: use --stage to change them)"
    else:
        stages = document.get("stages") or {}
        if stage not in stages:
            raise EditError(f"unknown stage {stage!r} in {path}{did_you_mean(stage, list(stages))}")
        stage_config = stages[stage]
        if stage_config.get("enabled") is not None:
            names = stage_config["enabled"]
            if enabled and name not in names:
                names.append(name)
            if not enabled and name in names:
                names.remove(name)
            change = f"stages.{stage}.enabled {'includes' if enabled else 'excludes'} {name}"
        else:
            overrides = stage_config.setdefault("overrides", {})
            override = overrides.setdefault(name, {})
            override["enabled"] = enabled
            change = f"stages.{stage}.overrides.{name}.enabled: {str(enabled).lower()}"
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    candidate = path.with_name(f".{path.name}.edit")
    candidate.write_text(buffer.getvalue(), encoding="utf-8")
    try:
        load_tasks_file(candidate, catalog)
        candidate.replace(path)
    except ConfigError as invalid:
        # Report against the file the user named, not the scratch copy.
        raise ConfigError(path, [problem.replace(str(candidate), str(path)) for problem in invalid.problems]) from None
    finally:
        candidate.unlink(missing_ok=True)
    return change


def _set_key_after(mapping: Any, key: str, value: Any, *, after: str) -> None:
    if key in mapping:
        mapping[key] = value
        return
    keys = list(mapping)
    position = keys.index(after) + 1 if after in keys else len(keys)
    mapping.insert(position, key, value)
