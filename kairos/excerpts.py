"""Short, printable excerpts of user input for error messages.

Every message that echoes a value from tasks.yaml (a name, a field, a value, a did-you-mean
candidate) goes through :func:`excerpt`, so a 200,000-character name yields a short line and a
control character yields its escape, never the character itself.
"""

from __future__ import annotations

import reprlib

EXCERPT_LENGTH = 60
"""How many characters of a value a message echoes."""
MESSAGE_LENGTH = 320
"""How long a message from a library (ruamel, jsonschema) may be once it echoes input itself."""
_ELLIPSIS = "…"
# Bounded work for any value: a few items per container and a few levels, however large (or
# alias-expanded) the value is.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 3, 4, 4, 4, 4
_REPR.maxstring = _REPR.maxother = EXCERPT_LENGTH


def excerpt(value: object, limit: int = EXCERPT_LENGTH) -> str:
    """``repr(value)``, cut to ``limit`` characters with an ellipsis and the full length when longer."""
    if isinstance(value, str) and len(value) > limit:
        # Cut before repr: repr of a huge string would cost as much as printing it.
        return f"{value[:limit]!r}{_ELLIPSIS} ({len(value):,} characters)"
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + _ELLIPSIS


def shorten(message: str, limit: int = MESSAGE_LENGTH) -> str:
    """A library's message on one line, cut to ``limit`` characters."""
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[:limit] + _ELLIPSIS
