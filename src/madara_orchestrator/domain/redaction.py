"""Keeping secrets out of text people see: logs, errors, alerts, job failure reasons, API answers.

RPC URLs often carry a key (``https://user:password@host/v2/KEY?apikey=KEY``), so a URL is shown cut to
``scheme://host[:port]``; and configured secret values (private keys, tokens) are masked wherever they
appear. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
MIN_MASKED_LENGTH = 4
"""Shorter secret fragments are not masked: masking ``"1"`` everywhere would garble every line (and a
secret that short protects nothing)."""

_URL = re.compile(
    r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^\s/'\"<>?#@]*@)?([^\s/'\"<>?#:@]+)(:[0-9]+)?"
    r"(?:[^\s'\"<>]*[^\s'\"<>.,;:!?)\]])?"
)
"""A URL: scheme, optional credentials, host, optional port, then the rest up to a space or a quote (punctuation
that ends a sentence is left out)."""


def cut_urls(text: str) -> str:
    """``text`` with every URL cut to ``scheme://host[:port]``: no credentials, path, query or fragment."""
    return _URL.sub(lambda m: f"{m.group(1)}://{m.group(3)}{m.group(4) or ''}", text)


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, how a URL is named in messages; ``<url>`` when it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        return "<url>"
    if not parts.scheme or not host:
        return "<url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}"


LONG_PATH_SEGMENT = 16
"""A URL path segment this long is taken for a key (``/v3/<32 hex digits>``) and masked."""


def secret_fragments(value: str) -> list[str]:
    """What of a configured value must never be shown. For a URL: its password, its credentials, each query
    value (API keys travel there) and each long path segment; ``cut_urls`` already shows a URL without them,
    so its origin stays readable. Any other value is secret whole (with and without its ``0x``)."""
    text = value.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or not parts.netloc:
        return [text, text[2:]] if text[:2].lower() == "0x" else [text]
    fragments: list[str] = []
    if parts.password:
        fragments.append(parts.password)
    if "@" in parts.netloc:
        fragments.append(parts.netloc.rsplit("@", 1)[0])
    fragments += [v for _, v in parse_qsl(parts.query)]
    fragments += [segment for segment in parts.path.split("/") if len(segment) >= LONG_PATH_SEGMENT]
    return fragments


class SecretMask:
    """Masks given secret values (and the secret parts of URLs among them) in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        fragments = {f for value in secrets if value for f in secret_fragments(str(value))}
        # Longest first: a key is masked whole before a shorter fragment of it could be.
        self._fragments = sorted((f for f in fragments if len(f) >= MIN_MASKED_LENGTH), key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._fragments)

    def __call__(self, text: str) -> str:
        for fragment in self._fragments:
            if fragment in text:
                text = text.replace(fragment, MASK)
        return text


def redact(text: str, mask: SecretMask | None = None) -> str:
    """``text`` with URLs cut (``cut_urls``) and, with ``mask``, configured secrets masked."""
    cut = cut_urls(text)
    return mask(cut) if mask else cut
