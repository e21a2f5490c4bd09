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
bool) unless :func:`parse` is asked to be ``lax``, and only the first problem is reported;
:func:`input_problems` reports the first problem of every field (what ``kairos validate`` shows).

A message says what would fit: an enum's choices (with a "did you mean"), and for a ``pattern`` the
``description`` of its ``Meta`` (``Meta(pattern=r"^[a-z]{3,6}\Z", description="a lower-case currency
code such as usd")``: a noun phrase, shown as "expected <description>"), never the regex alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

ModelT = TypeVar("ModelT", bound=msgspec.Struct)

# Patterns for msgspec's messages, read only when an input is rejected: kept as text, so ``re``
# compiles (and caches) each on its first use instead of on every cold start.
_LOCATED = r"(?s)^(?P<message>.*) - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`$"
_FIELD_PROBLEM = r"^Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]*)`$"
_PATH_PART = r"\.([^.\[]+)|\[([^\]]*)\]"
_PATTERN_MISMATCH = r"^Expected `str` matching regex "
# A value of the right type outside its bounds ("Expected `int` >= 1"), which msgspec does not echo.
_OUT_OF_BOUNDS = r"^Expected `[a-z]+` (of length )?[<>]=? "
_BAD_CHOICE = r"(?s)^Invalid enum value (?P<value>.*)$"
_SHOWN_LENGTH = 60


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
        raise _located(str(invalid), model, raw) from None


def input_problems(raw: Mapping[str, Any], model: type[msgspec.Struct]) -> list[InvalidInputError]:
    """Every field of ``raw`` that does not fit ``model``, each with its first problem; ``[]`` when it fits.

    msgspec stops at the first error, so after a failed parse each top-level field is converted on
    its own: unknown fields, missing required ones (not when an unknown field is its likely typo)
    and each present field's first problem. A check across fields (``__post_init__``) runs only
    once every field fits, as in :func:`parse`.
    """
    try:
        msgspec.convert(raw, model, strict=True)
    except msgspec.ValidationError as invalid:
        first = _located(str(invalid), model, raw)
    else:
        return []
    if not isinstance(raw, Mapping):
        return [first]
    fields = msgspec.structs.fields(model)
    known = {field.encode_name for field in fields}
    found: list[InvalidInputError] = []
    typo_of: set[str] = set()
    for key in raw:
        if key not in known:
            closest = _closest(str(key), model)
            typo_of |= {closest} if closest else set()
            found.append(InvalidInputError((key,), "unknown field" + _did_you_mean(str(key), model, ())))
    for field in fields:
        if field.encode_name not in raw:
            if field.required and field.encode_name not in typo_of:
                found.append(InvalidInputError((field.encode_name,), "required field missing"))
            continue
        try:
            msgspec.convert(raw[field.encode_name], field.type, strict=True)
        except msgspec.ValidationError as invalid:
            found.append(_located(str(invalid), model, raw, within=(field.encode_name,)))
    return found or [first]


def to_builtins(value: object) -> Any:
    """A model as JSON-ready dicts, lists and strings (datetimes in ISO 8601)."""
    return msgspec.to_builtins(value)


def _located(text: str, model: type[Any], raw: object, within: InputPath = ()) -> InvalidInputError:
    located = re.match(_LOCATED, text)
    message, path = (located["message"], _path(located["path"])) if located else (text, ())
    path = (*within, *path)
    if located and located["key"]:
        path += ("[key]",)
    field_problem = re.match(_FIELD_PROBLEM, message)
    if field_problem is None:
        return InvalidInputError(path, _with_hint(message, model, raw, path))
    field = field_problem["field"]
    if field_problem["what"] == "missing required":
        return InvalidInputError((*path, field), "required field missing")
    return InvalidInputError((*path, field), "unknown field" + _did_you_mean(field, model, path))


def _path(text: str) -> InputPath:
    """msgspec's ``$.legs[1].venue`` as ``("legs", 1, "venue")``; a mapping's value, which msgspec
    writes as ``[...]`` without its key, becomes ``*``."""
    return tuple(
        name or (int(index) if index.isdigit() else "*" if index == "..." else index)
        for name, index in re.findall(_PATH_PART, text)
    )


def _did_you_mean(field: str, model: type[Any], path: InputPath) -> str:
    closest = None if path else _closest(field, model)
    return f" (did you mean {closest!r}?)" if closest else ""


def _closest(word: str, model: type[Any]) -> str | None:
    if not (isinstance(model, type) and issubclass(model, msgspec.Struct)):
        return None
    return _closest_of(word, model.__struct_fields__)


def _closest_of(word: str, choices: Any) -> str | None:
    import difflib  # only a rejected input pays for it

    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


def _with_hint(message: str, model: type[Any], raw: object, path: InputPath) -> str:
    """msgspec's ``message``, told what would fit: a pattern's description, an enum's choices."""
    if not path or not (isinstance(model, type) and issubclass(model, msgspec.Struct)):
        return message
    found = _type_at(model, path)
    if found is None:
        return message
    node, description = found
    import msgspec.inspect as types  # only a rejected input pays for it

    value = _value_at(raw, path)
    if re.match(_PATTERN_MISMATCH, message) and isinstance(node, types.StrType) and description:
        return f"expected {description} (got {_shown(value)})"
    if re.match(_OUT_OF_BOUNDS, message) and isinstance(value, int | float | str):
        return f"{message} (got {_shown(value)})"
    bad_choice = re.match(_BAD_CHOICE, message)
    choices: list[str] = []
    if isinstance(node, types.EnumType):
        choices = [str(member.value) for member in node.cls]
    elif isinstance(node, types.LiteralType):
        choices = [str(value) for value in node.values]
    if bad_choice is None or not choices:
        return message
    closest = _closest_of(value, choices) if isinstance(value, str) else None
    hint = f" (did you mean {closest!r}?)" if closest else ""
    return f"{message}: expected one of {', '.join(choices)}{hint}"


def _type_at(model: type[msgspec.Struct], path: InputPath) -> tuple[Any, str | None] | None:
    """The msgspec type at ``path`` in ``model`` and the ``description`` its ``Meta`` gives, if any."""
    import msgspec.inspect as types

    node: Any = types.type_info(model)
    description: str | None = None
    for part in (*path, None):
        # Through Meta (which carries the description) and Optional to the type itself.
        while True:
            if isinstance(node, types.Metadata):
                description = (node.extra_json_schema or {}).get("description", description)
                node = node.type
            elif (
                isinstance(node, types.UnionType)
                and len(kinds := [t for t in node.types if not isinstance(t, types.NoneType)]) == 1
            ):
                node = kinds[0]
            else:
                break
        if part is None:
            return node, description
        description = None  # a container's description is not its items'
        if isinstance(node, types.StructType) and isinstance(part, str):
            node = next((field.type for field in node.fields if field.encode_name == part), None)
        elif isinstance(node, types.ListType | types.VarTupleType | types.SetType | types.FrozenSetType) and isinstance(
            part, int
        ):
            node = node.item_type
        elif isinstance(node, types.DictType):
            node = node.value_type
        else:
            return None
        if node is None:
            return None
    return None


def _value_at(raw: object, path: InputPath) -> object:
    value = raw
    for part in path:
        try:
            value = value[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_LENGTH else text[:_SHOWN_LENGTH] + "…"
