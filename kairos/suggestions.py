"""A "did you mean" for a word that is not one of the names a field or command accepts."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: object, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, or ``None`` when none is close enough to be its typo."""
    choices = list(candidates)
    text = str(word)
    if len(text) > 2 * max(map(len, choices), default=0):
        return None  # nothing that long is a typo of a known name, and comparing it would take long
    close = difflib.get_close_matches(text, choices, n=1)
    if not close:
        # A case slip (asia/shanghai) scores low on characters alone.
        folded = {choice.casefold(): choice for choice in choices}
        close = [folded[match] for match in difflib.get_close_matches(text.casefold(), list(folded), n=1)]
    return close[0] if close else None


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the candidate closest to ``word``, or nothing when none is close."""
    match = closest(word, candidates)
    return f" (did you mean {match!r}?)" if match else ""
