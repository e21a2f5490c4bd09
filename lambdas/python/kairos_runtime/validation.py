r"""Typed values from untyped input (an event, a task's params, the environment), checked by msgspec.

The Lambda runtime validates with msgspec, not pydantic: importing pydantic and building a first
model adds about 40 % to the cold-import floor (``import boto3, aws_lambda_powertools``), more than
the handler's whole budget of 30 %; msgspec adds nothing measurable (``bench/RESULTS.md``). The CDK
app and the CLI keep pydantic for tasks.yaml, where import time does not matter.

Writing a model:

* constraints go in ``Annotated[int, Meta(ge=1)]``; a ``pattern`` is matched with ``re.search``, so
  anchor it with ``^`` and ``\Z`` (``$`` also matches before a final newline);
* a check that spans fields goes in ``__post_init__`` and raises ``ValueError``; a subclass that
  adds one calls ``super().__post_init__()`` first, or the parent's check is lost;
* every subclass restates ``frozen=True`` (msgspec inherits it, but mypy reads each class on its
  own and says so when it is missing); ``kw_only`` is not inherited, so a subclass that adds a
  required field after inherited defaults declares ``kw_only=True`` itself.

Build a model from input with :func:`parse`: calling the class directly checks neither types nor
``Meta`` constraints (only ``__post_init__`` runs), which is fine for values the code itself made.
Unlike pydantic, input is not coerced (``"5"`` is not an int, ``5.0`` not an int, ``"no"`` not a
bool) unless :func:`parse` is asked to be ``lax``, and only the first problem is reported.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

ModelT = TypeVar("ModelT", bound=msgspec.Struct)

_LOCATED = re.compile(r"^(?P<message>.*) - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`$", re.DOTALL)
_FIELD_PROBLEM = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]*)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


class Model(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of the runtime's models: immutable, and an unknown field is an error (a typo in tasks.yaml
    must not silently fall back to a default)."""


InputPath = tuple[str | int, ...]
"""Where in the input a problem is: field names and list indices, ``()`` for the whole object."""


class InvalidInputError(ValueError):
    """Input that does not fit its model, at ``path`` (empty when the problem is the whole object:
    two fields that exclude each other, say)."""

    def __init__(self, path: InputPath, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{self.location}: {message}" if path else message)

    @property
    def location(self) -> str:
        """The path written with dots: ``symbols.0``."""
        return ".".join(str(part) for part in self.path)


def parse(raw: object, model: type[ModelT], *, lax: bool = False) -> ModelT:
    """``raw`` as a ``model``, or :class:`InvalidInputError` naming the first field that does not fit.

    ``lax`` is msgspec's non-strict mode, for input that is all text: environment variables. It
    accepts numbers and booleans written as strings (``"2"``, ``"1e1"``, ``"true"``), floats with no
    fraction for ints, and numbers as Unix times for datetimes. (The event's string fields have a
    grammar of their own, shared with the Node runtime: see :mod:`kairos_runtime.events`.)
    """
    try:
        return msgspec.convert(raw, model, strict=not lax)
    except msgspec.ValidationError as invalid:
        raise _located(str(invalid), model) from None


def to_builtins(value: object) -> Any:
    """A model as JSON-ready dicts, lists and strings (datetimes in ISO 8601)."""
    return msgspec.to_builtins(value)


def _located(text: str, model: type[Any]) -> InvalidInputError:
    located = _LOCATED.match(text)
    message, path = (located["message"], _path(located["path"])) if located else (text, ())
    if located and located["key"]:
        path += ("[key]",)
    field_problem = _FIELD_PROBLEM.match(message)
    if field_problem is None:
        return InvalidInputError(path, message)
    field = field_problem["field"]
    if field_problem["what"] == "missing required":
        return InvalidInputError((*path, field), "required field missing")
    return InvalidInputError((*path, field), "unknown field" + _did_you_mean(field, model, path))


def _path(text: str) -> InputPath:
    """msgspec's ``$.legs[1].venue`` as ``("legs", 1, "venue")``; a mapping's value, which msgspec
    writes as ``[...]`` without its key, becomes ``*``."""
    return tuple(
        name or (int(index) if index.isdigit() else "*" if index == "..." else index)
        for name, index in _PATH_PART.findall(text)
    )


def _did_you_mean(field: str, model: type[Any], path: InputPath) -> str:
    if path or not (isinstance(model, type) and issubclass(model, msgspec.Struct)):
        return ""
    import difflib  # only a rejected input pays for it

    close = difflib.get_close_matches(field, model.__struct_fields__, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
