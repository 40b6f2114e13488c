"""Contract tests of the lock service (named leases), for every backend: exclusive, re-taken (extended) by its
owner, free at once when expired (no reaper delay, unlike SPEC §12), released by its owner only.

Each test gets two handles on one store, as two processes have; nothing here sleeps: a lock taken for 0 s
has expired by the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator.backends.memory import MemoryStore
from madara_orchestrator.backends.postgres import PostgresStore
from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.interfaces import LockService

Stores = tuple[LockService, LockService]


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "memory":  # one process: both handles are the one store
        memory = MemoryStore()
        yield memory, memory
        return
    opened: list[SqliteStore | PostgresStore] = []
    for _ in range(2):
        if request.param == "postgres":
            pg = PostgresDatabase(request.getfixturevalue("postgres_url"))
            await pg.open()
            opened.append(PostgresStore(pg))
        else:
            db = SqliteDatabase(tmp_path / "locks.db")
            await db.open()
            opened.append(SqliteStore(db))
    yield opened[0], opened[1]
    for store in opened:
        await store.close()


async def test_a_held_lock_is_refused_to_another_owner(stores: Stores) -> None:
    mine, theirs = stores
    assert await mine.acquire("batching", "a", 60)
    assert not await theirs.acquire("batching", "b", 60)
    assert not await mine.acquire("batching", "b", 60), "the handle does not matter, the owner does"
    assert await theirs.acquire("other-key", "b", 60), "locks are per key"


async def test_the_owner_takes_its_lock_again_and_extends_it(stores: Stores) -> None:
    mine, theirs = stores
    assert await mine.acquire("k", "a", 0)
    assert await theirs.acquire("k", "a", 60), "the same owner re-acquires, from any process"
    assert not await mine.acquire("k", "b", 60), "re-acquiring extended the lock: it is held again"


async def test_an_expired_lock_is_free_at_once(stores: Stores) -> None:
    mine, theirs = stores
    assert await mine.acquire("k", "a", 0)
    assert await theirs.acquire("k", "b", 60), "expired: another owner takes it without waiting for a reaper"
    assert not await mine.acquire("k", "a", 60)


async def test_only_the_owner_releases(stores: Stores) -> None:
    mine, theirs = stores
    assert await mine.acquire("k", "a", 60)
    assert not await theirs.release("k", "b")
    assert not await theirs.acquire("k", "b", 60), "a refused release leaves the lock held"
    assert await theirs.release("k", "a")
    assert not await mine.release("k", "a"), "nothing left to release"
    assert await theirs.acquire("k", "b", 60), "released: free for anyone"


async def test_owners_racing_from_two_processes_one_wins(stores: Stores) -> None:
    mine, theirs = stores
    results = await asyncio.gather(
        *((mine if i % 2 else theirs).acquire("contended", f"owner-{i}", 60) for i in range(10))
    )
    assert sum(results) == 1
