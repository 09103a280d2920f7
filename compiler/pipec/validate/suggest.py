"""Validate stage: the did-you-mean of every hint, shared by the model errors and the rules."""

from __future__ import annotations

import difflib


def did_you_mean(word: str, options: list[str]) -> str | None:
    """A suggestion among options for a misspelt word, or None when nothing is close."""
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not matches:
        matches = [o for o in options if word and o.startswith(word)][:2]
        matches = matches if len(matches) == 1 else []
    if not matches:
        lowered = {o.lower().replace("_", "-"): o for o in options}
        match = lowered.get(word.lower().replace("_", "-"))
        matches = [match] if match else []
    return f'did you mean "{matches[0]}"?' if matches else None
