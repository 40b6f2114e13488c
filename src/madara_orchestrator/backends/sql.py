"""What the SQL job store, queue and settlement transaction store need of a database: a narrow connection
(fetch one row, fetch all rows, execute) used alone or inside one transaction, and a small ``Dialect``
naming what SQLite and PostgreSQL write differently. ``sqlite_db`` and ``postgres_db`` implement both.

Statements are written with ``?`` placeholders; a connection translates them to its driver's style. Rows
are read by column name (alias computed columns).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Row = Mapping[str, Any]
Params = Sequence[Any]


class SqlConnection(Protocol):
    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; the number of rows it changed."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialect:
    name: str
    for_update: str
    """Appended to a SELECT that reads a row it is about to write (PostgreSQL locks it; SQLite's write
    transaction already excludes every other writer)."""
    skip_locked: str
    """Appended to a SELECT that claims rows other receivers may be claiming."""
    text_order: str
    """The collation that orders text by its bytes (SQLite's own order)."""
    nulls_first: str
    """Written after ``ORDER BY column`` for NULLs first, as SQLite orders them."""
    integrity_errors: tuple[type[BaseException], ...]
    """What the driver raises on a violated constraint."""
    uuid: Callable[[Any], Any]
    """A UUID as its column takes it."""
    big_int: Callable[[int | None], Any]
    """An integer that may exceed 64 bits (wei), as its column takes it."""
    now: Callable[[], tuple[str, list[Any]]]
    """An SQL expression of the database's clock (epoch seconds), with its parameters."""
    sender_lock: str | None
    """A statement taking a transaction-scoped lock on a settlement sender, where a write transaction does
    not already exclude other writers."""


class SqlDatabase(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    @property
    def clock(self) -> Callable[[], float]:
        """The clock that stamps rows by default (PostgreSQL's follows the server's)."""
        ...

    def use(self) -> AbstractAsyncContextManager[SqlConnection]:
        """A connection whose statements each commit on their own."""
        ...

    def atomic(self) -> AbstractAsyncContextManager[SqlConnection]:
        """A connection inside one transaction: committed when the block ends, rolled back if it raises."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

    async def notify(self, conn: SqlConnection, queue: str) -> None:
        """Wake the receivers of ``queue`` (in every process) once ``conn``'s work is committed."""
        ...

    async def wake_event(self, queue: str) -> asyncio.Event:
        """The event the next ``notify`` of ``queue`` sets: take it BEFORE looking for work."""
        ...


def placeholders(count: int) -> str:
    return ", ".join(["?"] * count)


def where(clauses: Sequence[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def in_(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``column IN (?, ...)``; false for no values (PostgreSQL has no empty ``IN ()``)."""
    if not values:
        return "(1 = 0)", []
    return f"{column} IN ({placeholders(len(values))})", list(values)


def limit(count: int | None) -> str:
    return "" if count is None else f" LIMIT {int(count)}"
