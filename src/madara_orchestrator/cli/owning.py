"""How the composition root owns what it opens: every resource's close on one ``contextlib.AsyncExitStack``,
closed in reverse order of opening (``build_embedded_stack`` holds the stack)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


def own(exits: contextlib.AsyncExitStack, close: Closer) -> None:
    """``close`` runs when ``exits`` closes; a failing close is logged and does not keep the others open."""

    async def quietly() -> None:
        try:
            await close()
        except Exception as exc:  # closing: nothing left to do about it
            log.debug("closing %s failed: %s", getattr(close, "__qualname__", close), exc)

    exits.push_async_callback(quietly)


def own_sync(exits: contextlib.AsyncExitStack, close: Callable[[], None]) -> None:
    """``own`` for a close that does not wait."""

    async def closer() -> None:
        close()

    own(exits, closer)
