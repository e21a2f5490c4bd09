"""Typed values from untyped input (an event, a task's params, the environment), checked by msgspec.

The Lambda runtime validates with msgspec, not pydantic: importing pydantic and building a first
model costs about a third of the cold-import floor (``import boto3, aws_lambda_powertools``), which
alone breaks the handler's budget; msgspec costs about a twentieth (``bench/RESULTS.md``). The
CDK app and the CLI keep pydantic for tasks.yaml, where import time does not matter.

Constraints are declared with ``Annotated[int, Meta(ge=1)]`` on :class:`Model` fields; a check that
spans fields goes in ``__post_init__`` and raises ``ValueError``. Every subclass restates
``frozen=True`` (msgspec inherits it, but mypy reads each class on its own and says so when it is
missing); ``kw_only`` is not inherited, so a subclass that adds a required field after inherited
defaults declares ``kw_only=True`` too.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

ModelT = TypeVar("ModelT")

_LOCATED = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_FIELD_PROBLEM = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]*)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


class Model(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the runtime's models: immutable, keyword-only, and an unknown field is an error (a typo
    in tasks.yaml must not silently fall back to a default)."""


class InvalidInputError(ValueError):
    """Input that does not fit its model. ``location`` is a dotted path (``symbols.0``), empty when
    the problem is the whole object (two fields that exclude each other, say)."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location
        self.message = message


def parse(raw: object, model: type[ModelT], *, from_strings: bool = False) -> ModelT:
    """``raw`` as a ``model``, or :class:`InvalidInputError` naming the first field that does not fit.

    ``from_strings`` also accepts numbers and booleans written as strings: environment variables,
    and Scheduler's context attributes, which it substitutes into the event as strings.
    """
    try:
        return msgspec.convert(raw, model, strict=not from_strings)
    except msgspec.ValidationError as invalid:
        raise _located(str(invalid), model) from None


def to_builtins(value: object) -> Any:
    """A model as JSON-ready dicts, lists and strings (datetimes in ISO 8601)."""
    return msgspec.to_builtins(value)


def _located(text: str, model: type[Any]) -> InvalidInputError:
    located = _LOCATED.match(text)
    message, parts = (located["message"], _path_parts(located["path"])) if located else (text, [])
    field_problem = _FIELD_PROBLEM.match(message)
    if field_problem is None:
        return InvalidInputError(".".join(parts), message)
    field = field_problem["field"]
    if field_problem["what"] == "missing required":
        return InvalidInputError(".".join([*parts, field]), "required field missing")
    return InvalidInputError(".".join([*parts, field]), "unknown field" + _did_you_mean(field, model, parts))


def _path_parts(path: str) -> list[str]:
    # msgspec writes a mapping's value as ``[...]`` without its key: it becomes ``*``.
    return [name or ("*" if index == "..." else index) for name, index in _PATH_PART.findall(path)]


def _did_you_mean(field: str, model: type[Any], parts: list[str]) -> str:
    if parts or not (isinstance(model, type) and issubclass(model, msgspec.Struct)):
        return ""
    import difflib  # only a rejected input pays for it

    close = difflib.get_close_matches(field, model.__struct_fields__, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
