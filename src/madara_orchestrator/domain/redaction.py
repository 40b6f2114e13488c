"""Free text that may quote an outside URL (RPC errors, failure reasons) is shown with every URL cut to
``scheme://host[:port]``: RPC URLs often carry an API key in their path, query or credentials."""

from __future__ import annotations

import re
from typing import overload

MAX_TEXT = 600
"""Free text (failure reasons, errors) is cut to this many characters."""

_URL = re.compile(
    r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^\s/'\"<>?#@]*@)?([^\s/'\"<>?#:@]+)(:[0-9]+)?"
    r"(?:[^\s'\"<>]*[^\s'\"<>.,;:!?)\]])?"
)
"""A URL: scheme, optional credentials, host, optional port, then the rest up to a space or a quote (punctuation
that ends a sentence is left out)."""


@overload
def redact(text: str) -> str: ...


@overload
def redact(text: None) -> None: ...


@overload
def redact(text: str | None) -> str | None: ...


def redact(text: str | None) -> str | None:
    """``text`` with every URL cut to ``scheme://host[:port]`` (no credentials, path or query), and cut
    to ``MAX_TEXT`` characters."""
    if text is None:
        return None
    cut = _URL.sub(lambda m: f"{m.group(1)}://{m.group(3)}{m.group(4) or ''}", text)
    return cut if len(cut) <= MAX_TEXT else cut[: MAX_TEXT - 1] + "…"
