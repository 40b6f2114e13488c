"""Contract tests of the settlement transaction store (``TxStore``), for every backend (SQLite, PostgreSQL,
memory; a new backend joins the parameter list): nonce reservation per sender, attempt records, finalization,
reverts, the order of pending keys; and two handles on one store (two processes, or a restart) see the same
records, and reserving nonces for one sender at once through both never gives one nonce twice."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from madara_orchestrator.backends.memory import MemoryTxStore
from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.tx_store import PostgresTxStore, SqliteTxStore
from madara_orchestrator.domain.errors import AlreadyExists, NotFound
from madara_orchestrator.domain.settlement_tx import AttemptRecord, AttemptStatus, KeyStatus
from madara_orchestrator.interfaces import TxStore
from tests.helpers.engine import FakeClock

SENDER = "0xAbC0000000000000000000000000000000000001"

OpenStore = Callable[[], Awaitable[TxStore]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[OpenStore]:
    """Opens a new handle on the test's store each call (a new connection pool for PostgreSQL; for memory, one
    process: every handle is the one store, as a restarted sender in that process finds it)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    memory = MemoryTxStore(clock=clock)
    databases: list[PostgresDatabase] = []
    sqlite_stores: list[SqliteTxStore] = []

    async def open_one() -> TxStore:
        if request.param == "memory":
            return memory
        if url is None:
            sqlite_stores.append(SqliteTxStore(tmp_path / "tx.db", clock=clock))
            return sqlite_stores[-1]
        db = PostgresDatabase(url, max_size=10)
        await db.open()
        databases.append(db)
        return PostgresTxStore(db, clock=clock)

    yield open_one
    for store in sqlite_stores:
        store.close()
    for db in databases:
        await db.close()


@pytest.fixture
async def store(open_store: OpenStore) -> TxStore:
    return await open_store()


def _attempt(key: str, no: int, nonce: int, status: AttemptStatus = AttemptStatus.SIGNED) -> AttemptRecord:
    return AttemptRecord(
        key=key,
        attempt_no=no,
        nonce=nonce,
        tx_hash=f"0x{no:064x}",
        gas_multiplier=1.1 * 2 ** (no - 1),
        max_fee_per_gas=10**20 + no,  # above 2^63
        max_priority_fee_per_gas=2,
        max_fee_per_blob_gas=3,
        status=status,
        error=None,
        raw=b"\x03raw",
        created_at=1.0,
        updated_at=1.0,
    )


async def test_create_key_is_idempotent_and_lowercases_the_sender(store: TxStore, clock: FakeClock) -> None:
    first = await store.create_key("a", SENDER)
    clock.advance(5)
    again = await store.create_key("a", "0x" + "ff" * 20)
    assert again == first and first.sender == SENDER.lower() and first.status is KeyStatus.PENDING
    assert first.nonce is None and first.created_at == first.updated_at == clock.t - 5
    assert (first.final_tx_hash, first.fee_paid_wei, first.block_number, first.error) == (None, None, None, None)
    assert await store.get_key("a") == first
    assert await store.get_key("missing") is None
    await store.reserve_nonce("a", chain_latest=0, chain_pending=0)
    reserved = await store.get_key("a")
    assert reserved is not None and (reserved.created_at, reserved.updated_at) == (clock.t - 5, clock.t)


async def test_each_key_gets_its_own_nonce_and_keeps_it(store: TxStore) -> None:
    for key in ("a", "b", "c"):
        await store.create_key(key, SENDER)
    assert await store.reserve_nonce("a", chain_latest=5, chain_pending=5) == 5
    assert await store.reserve_nonce("b", chain_latest=5, chain_pending=5) == 6  # a holds 5
    assert await store.reserve_nonce("a", chain_latest=9, chain_pending=9) == 5  # pinned
    assert await store.reserve_nonce("c", chain_latest=5, chain_pending=8) == 8  # unknown txs in the pool
    assert [k.key for k in await store.pending_keys(SENDER)] == ["a", "b", "c"]


async def test_a_released_nonce_is_reused_and_finalized_keys_do_not_hold_one(store: TxStore) -> None:
    await store.create_key("a", SENDER)
    await store.create_key("b", SENDER)
    assert await store.reserve_nonce("a", chain_latest=0, chain_pending=0) == 0
    await store.add_attempt(_attempt("a", 1, 0))
    await store.finalize("a", 1, fee_paid_wei=123, block_number=4)
    assert await store.reserve_nonce("b", chain_latest=1, chain_pending=1) == 1
    await store.add_attempt(_attempt("b", 1, 1, AttemptStatus.SENT))
    await store.release_nonce("b")
    released = await store.get_key("b")
    assert released is not None and released.nonce is None
    assert [a.status for a in await store.attempts("b")] == [AttemptStatus.REPLACED]
    assert await store.reserve_nonce("b", chain_latest=1, chain_pending=1) == 1


async def test_a_nonce_released_below_held_ones_is_taken_again_not_skipped(store: TxStore) -> None:
    """Several settlements in flight: batch 1 holds 3, batch 2 holds 4 (in the pool: pending 5); batch 1's
    nonce is released (its first attempt refused). Batch 1 takes 3 again, else batch 2 would be stranded
    behind a gap and batch 1 would land after it."""
    for key in ("b1", "b2", "b3"):
        await store.create_key(key, SENDER)
    assert await store.reserve_nonce("b1", chain_latest=3, chain_pending=3) == 3
    assert await store.reserve_nonce("b2", chain_latest=3, chain_pending=4) == 4
    await store.release_nonce("b1")
    assert await store.reserve_nonce("b1", chain_latest=3, chain_pending=5) == 3
    assert await store.reserve_nonce("b3", chain_latest=3, chain_pending=5) == 5  # no gap: above everything


@pytest.mark.parametrize("outcome", ["finalized", "reverted"])
async def test_a_settled_nonce_above_a_stale_latest_count_is_no_gap(store: TxStore, outcome: str) -> None:
    """Several in flight: b1 holds 18 and b2 19 (both in the pool); b3 read the node's latest count (18)
    before b1's transaction was mined, and b1 was finalized (or reverted: its nonce is spent all the same)
    before b3 reserved. 18 is spent, not a gap: b3 takes 20, not 18 ("nonce too low")."""
    for key in ("b1", "b2", "b3"):
        await store.create_key(key, SENDER)
    assert await store.reserve_nonce("b1", chain_latest=18, chain_pending=18) == 18
    assert await store.reserve_nonce("b2", chain_latest=18, chain_pending=19) == 19
    await store.add_attempt(_attempt("b1", 1, 18, AttemptStatus.SENT))
    await store.add_attempt(_attempt("b2", 1, 19, AttemptStatus.SENT))
    if outcome == "finalized":
        await store.finalize("b1", 1, fee_paid_wei=1, block_number=58)
    else:
        await store.mark_reverted("b1", 1, error="reverted", block_number=58)
    assert await store.reserve_nonce("b3", chain_latest=18, chain_pending=20) == 20


async def test_a_settled_nonce_the_node_does_not_count_is_not_held(store: TxStore) -> None:
    """Keys finalized at nonces 5, 6 and 7 on a chain the node no longer has (a devnet started again: its
    counts are 5): the new key takes 5, not 8 (which would never be mined behind the gap)."""
    for nonce in (5, 6, 7):
        await store.create_key(f"old{nonce}", SENDER)
        assert await store.reserve_nonce(f"old{nonce}", chain_latest=nonce, chain_pending=nonce) == nonce
        await store.add_attempt(_attempt(f"old{nonce}", 1, nonce, AttemptStatus.SENT))
        await store.finalize(f"old{nonce}", 1, fee_paid_wei=1, block_number=nonce)
    await store.create_key("new", SENDER)
    assert await store.reserve_nonce("new", chain_latest=5, chain_pending=5) == 5


async def test_finalize_records_the_outcome_and_drops_raw_transactions(store: TxStore) -> None:
    await store.create_key("k", SENDER)
    await store.reserve_nonce("k", chain_latest=0, chain_pending=0)
    await store.add_attempt(_attempt("k", 1, 0, AttemptStatus.SENT))
    await store.set_attempt_status("k", 1, AttemptStatus.TIMED_OUT, error="timed out after 1s")
    await store.add_attempt(_attempt("k", 2, 0, AttemptStatus.REJECTED_UNDERPRICED))
    await store.add_attempt(_attempt("k", 3, 0, AttemptStatus.SENT))
    await store.add_attempt(_attempt("k", 4, 0, AttemptStatus.SENT))
    before = await store.attempts("k")
    assert before[0].raw == b"\x03raw" and before[0].gas_multiplier == 1.1
    await store.finalize("k", 3, fee_paid_wei=10**20, block_number=7)
    attempts = await store.attempts("k")
    assert [a.status for a in attempts] == [
        AttemptStatus.TIMED_OUT,
        AttemptStatus.REJECTED_UNDERPRICED,
        AttemptStatus.FINALIZED,
        AttemptStatus.REPLACED,
    ]
    assert attempts[0].error == "timed out after 1s" and attempts[0].max_fee_per_gas == 10**20 + 1
    assert all(a.raw is None for a in attempts)
    key = await store.get_key("k")
    assert key is not None and key.status is KeyStatus.FINALIZED
    assert key.final_tx_hash == f"0x{3:064x}" and key.fee_paid_wei == 10**20 and key.block_number == 7
    assert await store.pending_keys(SENDER) == []


async def test_finalize_of_an_unknown_attempt_is_not_found(store: TxStore) -> None:
    await store.create_key("k", SENDER)
    with pytest.raises(NotFound, match="attempt 9"):
        await store.finalize("k", 9, fee_paid_wei=None, block_number=None)


async def test_reverted_key_restarts_without_nonce(store: TxStore) -> None:
    await store.create_key("k", SENDER)
    await store.reserve_nonce("k", chain_latest=3, chain_pending=3)
    await store.add_attempt(_attempt("k", 1, 3, AttemptStatus.SENT))
    await store.add_attempt(_attempt("k", 2, 3, AttemptStatus.SENT))
    await store.add_attempt(_attempt("k", 3, 3, AttemptStatus.REJECTED_UNDERPRICED))
    await store.restart_key("k")  # not reverted: nothing changes
    assert (await store.get_key("k")).nonce == 3  # type: ignore[union-attr]
    await store.mark_reverted("k", 2, error="reverted", block_number=9)
    reverted = await store.get_key("k")
    assert reverted is not None and reverted.status is KeyStatus.REVERTED and reverted.block_number == 9
    assert reverted.error == "reverted" and reverted.nonce == 3
    history = await store.attempts("k")
    assert [(a.status, a.error, a.raw) for a in history] == [
        (AttemptStatus.REPLACED, None, None),
        (AttemptStatus.REVERTED, "reverted", None),
        (AttemptStatus.REJECTED_UNDERPRICED, None, b"\x03raw"),  # not in flight: left as it was
    ]
    await store.restart_key("k")
    key = await store.get_key("k")
    assert key is not None and key.status is KeyStatus.PENDING and key.nonce is None
    assert await store.attempts("k") == history, "its attempts stay as history"


async def test_unknown_key_cannot_reserve(store: TxStore) -> None:
    with pytest.raises(NotFound):
        await store.reserve_nonce("missing", chain_latest=0, chain_pending=0)


async def test_an_attempt_is_stored_once(store: TxStore) -> None:
    await store.create_key("k", SENDER)
    await store.add_attempt(_attempt("k", 1, 0))
    with pytest.raises(AlreadyExists, match="attempt 1 of settlement key 'k' is already stored"):
        await store.add_attempt(_attempt("k", 1, 5, AttemptStatus.SENT))
    assert [(a.nonce, a.status) for a in await store.attempts("k")] == [(0, AttemptStatus.SIGNED)]


async def test_an_attempt_of_an_unknown_key_is_refused(request: pytest.FixtureRequest, store: TxStore) -> None:
    if request.node.callspec.params["open_store"] == "sqlite":
        request.applymarker(
            pytest.mark.xfail(
                reason="SQLite does not enforce the attempts' foreign key (no PRAGMA foreign_keys)", strict=True
            )
        )
    with pytest.raises(NotFound, match="settlement key 'missing' is not in the tx store"):
        await store.add_attempt(_attempt("missing", 1, 0))


async def test_a_status_without_an_error_keeps_the_error_recorded(store: TxStore, clock: FakeClock) -> None:
    await store.create_key("k", SENDER)
    await store.add_attempt(_attempt("k", 1, 0, AttemptStatus.SENT))
    await store.set_attempt_status("k", 1, AttemptStatus.TIMED_OUT, error="timed out after 1s")
    clock.advance(3)
    await store.set_attempt_status("k", 1, AttemptStatus.SENT)
    await store.set_attempt_status("k", 9, AttemptStatus.SENT)  # no such attempt: nothing happens
    [attempt] = await store.attempts("k")
    assert (attempt.status, attempt.error, attempt.raw) == (AttemptStatus.SENT, "timed out after 1s", b"\x03raw")
    assert (attempt.created_at, attempt.updated_at) == (1.0, clock.t)


async def test_pending_keys_are_in_nonce_order_unreserved_first_then_by_creation_and_key(
    store: TxStore, clock: FakeClock
) -> None:
    for key in ("f", "d", "b", "a"):
        await store.create_key(key, SENDER)
    clock.advance(1)
    for key in ("c", "e"):
        await store.create_key(key, SENDER)
    await store.create_key("other", "0x" + "22" * 20)
    assert await store.reserve_nonce("e", chain_latest=7, chain_pending=7) == 7
    assert await store.reserve_nonce("d", chain_latest=7, chain_pending=7) == 8
    assert await store.reserve_nonce("b", chain_latest=7, chain_pending=7) == 9
    await store.add_attempt(_attempt("b", 1, 9))
    await store.finalize("b", 1, fee_paid_wei=None, block_number=None)  # settled: no longer pending
    assert [k.key for k in await store.pending_keys(SENDER.upper().replace("0X", "0x"))] == ["a", "f", "c", "e", "d"]


async def test_a_reopened_store_sees_the_same_records(open_store: OpenStore) -> None:
    """What a restarted sender finds: every key and attempt as it was written."""
    first = await open_store()
    await first.create_key("k", SENDER)
    await first.reserve_nonce("k", chain_latest=2, chain_pending=2)
    await first.add_attempt(_attempt("k", 1, 2, AttemptStatus.SENT))
    await first.add_attempt(_attempt("k", 2, 2, AttemptStatus.SIGNED))
    reopened = await open_store()
    assert await reopened.get_key("k") == await first.get_key("k")
    assert await reopened.attempts("k") == await first.attempts("k")
    assert [a.raw for a in await reopened.attempts("k")] == [b"\x03raw", b"\x03raw"]
    assert await reopened.pending_keys(SENDER) == await first.pending_keys(SENDER)


async def test_the_sqlite_store_shares_its_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    first, second = SqliteTxStore(path), SqliteTxStore(path)
    await first.create_key("a", SENDER)
    assert await second.get_key("a") == await first.get_key("a")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.close()
    second.close()


async def test_totals_for_a_summary(store: TxStore) -> None:
    for key, fee in (("a", 5), ("b", 7)):
        await store.create_key(key, SENDER)
        nonce = await store.reserve_nonce(key, chain_latest=0, chain_pending=0)
        await store.add_attempt(_attempt(key, 1, nonce))
        await store.add_attempt(_attempt(key, 2, nonce))
        await store.finalize(key, 2, fee_paid_wei=fee, block_number=1)
    await store.create_key("c", SENDER)
    totals = await store.totals(SENDER)
    assert (totals.settled, totals.pending, totals.attempts, totals.fee_paid_wei) == (2, 1, 4, 12)
    assert (await store.totals("0x" + "00" * 20)).settled == 0
    assert (await store.totals()).attempts == 4


async def test_two_handles_share_records(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    await first.create_key("a", SENDER)
    await second.create_key("b", SENDER)
    assert await first.reserve_nonce("a", chain_latest=0, chain_pending=0) == 0
    assert await second.reserve_nonce("b", chain_latest=0, chain_pending=0) == 1
    assert [k.key for k in await first.pending_keys(SENDER)] == ["a", "b"]


async def test_two_processes_reserving_for_one_sender_at_once_never_share_a_nonce(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    keys = [f"batch-{i}" for i in range(16)]
    for key in keys:
        await first.create_key(key, SENDER)
    other_sender = "0x" + "22" * 20
    await second.create_key("elsewhere", other_sender)

    async def reserve(i: int, key: str) -> int:
        store = first if i % 2 else second
        return await store.reserve_nonce(key, chain_latest=4, chain_pending=4)

    nonces = await asyncio.gather(*(reserve(i, key) for i, key in enumerate(keys)))
    assert sorted(nonces) == list(range(4, 4 + len(keys))), "every key its own nonce, none skipped"
    assert await first.reserve_nonce("elsewhere", chain_latest=0, chain_pending=0) == 0, "nonces are per sender"
    again = await asyncio.gather(*(reserve(i, key) for i, key in enumerate(keys)))
    assert again == nonces, "a reserved nonce is kept"
