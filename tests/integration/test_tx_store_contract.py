"""Contract tests of the settlement transaction store (``TxStore``), for every backend: nonce reservation per
sender, attempt records, finalization, reverts; and two handles on one store (two processes) reserving
nonces for one sender at once never get the same nonce."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.tx_store import PostgresTxStore, SqliteTxStore
from madara_orchestrator.domain.errors import NotFound
from madara_orchestrator.domain.settlement_tx import AttemptRecord, AttemptStatus, KeyStatus

SENDER = "0xAbC0000000000000000000000000000000000001"

AnyTxStore = SqliteTxStore | PostgresTxStore
OpenStore = Callable[[], Awaitable[AnyTxStore]]


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Opens a new handle on the test's store each call (a new connection pool for PostgreSQL)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    databases: list[PostgresDatabase] = []
    sqlite_stores: list[SqliteTxStore] = []

    async def open_one() -> AnyTxStore:
        if url is None:
            sqlite_stores.append(SqliteTxStore(tmp_path / "tx.db"))
            return sqlite_stores[-1]
        db = PostgresDatabase(url, max_size=10)
        await db.open()
        databases.append(db)
        return PostgresTxStore(db)

    yield open_one
    for store in sqlite_stores:
        store.close()
    for db in databases:
        await db.close()


@pytest.fixture
async def store(open_store: OpenStore) -> AnyTxStore:
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


async def test_create_key_is_idempotent_and_lowercases_the_sender(store: AnyTxStore) -> None:
    first = await store.create_key("a", SENDER)
    again = await store.create_key("a", "0x" + "ff" * 20)
    assert again == first and first.sender == SENDER.lower() and first.status is KeyStatus.PENDING
    assert first.nonce is None
    assert await store.get_key("a") == first
    assert await store.get_key("missing") is None


async def test_each_key_gets_its_own_nonce_and_keeps_it(store: AnyTxStore) -> None:
    for key in ("a", "b", "c"):
        await store.create_key(key, SENDER)
    assert await store.reserve_nonce("a", chain_latest=5, chain_pending=5) == 5
    assert await store.reserve_nonce("b", chain_latest=5, chain_pending=5) == 6  # a holds 5
    assert await store.reserve_nonce("a", chain_latest=9, chain_pending=9) == 5  # pinned
    assert await store.reserve_nonce("c", chain_latest=5, chain_pending=8) == 8  # unknown txs in the pool
    assert [k.key for k in await store.pending_keys(SENDER)] == ["a", "b", "c"]


async def test_a_released_nonce_is_reused_and_finalized_keys_do_not_hold_one(store: AnyTxStore) -> None:
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


async def test_a_nonce_released_below_held_ones_is_taken_again_not_skipped(store: AnyTxStore) -> None:
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


async def test_finalize_records_the_outcome_and_drops_raw_transactions(store: AnyTxStore) -> None:
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


async def test_finalize_of_an_unknown_attempt_is_not_found(store: AnyTxStore) -> None:
    await store.create_key("k", SENDER)
    with pytest.raises(NotFound, match="attempt 9"):
        await store.finalize("k", 9, fee_paid_wei=None, block_number=None)


async def test_reverted_key_restarts_without_nonce(store: AnyTxStore) -> None:
    await store.create_key("k", SENDER)
    await store.reserve_nonce("k", chain_latest=3, chain_pending=3)
    await store.add_attempt(_attempt("k", 1, 3, AttemptStatus.SENT))
    await store.add_attempt(_attempt("k", 2, 3, AttemptStatus.SENT))
    await store.mark_reverted("k", 2, error="reverted", block_number=9)
    reverted = await store.get_key("k")
    assert reverted is not None and reverted.status is KeyStatus.REVERTED and reverted.block_number == 9
    assert [a.status for a in await store.attempts("k")] == [AttemptStatus.REPLACED, AttemptStatus.REVERTED]
    await store.restart_key("k")
    key = await store.get_key("k")
    assert key is not None and key.status is KeyStatus.PENDING and key.nonce is None


async def test_unknown_key_cannot_reserve(store: AnyTxStore) -> None:
    with pytest.raises(NotFound):
        await store.reserve_nonce("missing", chain_latest=0, chain_pending=0)


async def test_totals_for_a_summary(store: AnyTxStore) -> None:
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
