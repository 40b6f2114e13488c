"""The SQLite tx store: nonce reservation, attempt records, finalization."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.domain.settlement_tx import AttemptRecord, AttemptStatus, KeyStatus

SENDER = "0xAbC0000000000000000000000000000000000001"


def _attempt(key: str, no: int, nonce: int, status: AttemptStatus = AttemptStatus.SIGNED) -> AttemptRecord:
    return AttemptRecord(
        key=key,
        attempt_no=no,
        nonce=nonce,
        tx_hash=f"0x{no:064x}",
        gas_multiplier=1.1 * 2 ** (no - 1),
        max_fee_per_gas=10**20 + no,  # above 2^63: stored as text
        max_priority_fee_per_gas=2,
        max_fee_per_blob_gas=3,
        status=status,
        error=None,
        raw=b"\x03raw",
        created_at=1.0,
        updated_at=1.0,
    )


async def test_each_key_gets_its_own_nonce_and_keeps_it(tmp_path: Path) -> None:
    store = SqliteTxStore(tmp_path / "db.sqlite")
    for key in ("a", "b", "c"):
        await store.create_key(key, SENDER)
    assert await store.reserve_nonce("a", chain_latest=5, chain_pending=5) == 5
    assert await store.reserve_nonce("b", chain_latest=5, chain_pending=5) == 6  # a holds 5
    assert await store.reserve_nonce("a", chain_latest=9, chain_pending=9) == 5  # pinned
    assert await store.reserve_nonce("c", chain_latest=5, chain_pending=8) == 8  # unknown txs in the pool
    assert (await store.get_key("a")).sender == SENDER.lower()  # type: ignore[union-attr]


async def test_a_released_nonce_is_reused_and_finalized_keys_do_not_hold_one(tmp_path: Path) -> None:
    store = SqliteTxStore(tmp_path / "db.sqlite")
    await store.create_key("a", SENDER)
    await store.create_key("b", SENDER)
    assert await store.reserve_nonce("a", chain_latest=0, chain_pending=0) == 0
    await store.add_attempt(_attempt("a", 1, 0))
    await store.finalize("a", 1, fee_paid_wei=123, block_number=4)
    assert await store.reserve_nonce("b", chain_latest=1, chain_pending=1) == 1
    await store.release_nonce("b")
    assert (await store.get_key("b")).nonce is None  # type: ignore[union-attr]
    assert await store.reserve_nonce("b", chain_latest=1, chain_pending=1) == 1


async def test_finalize_records_the_outcome_and_drops_raw_transactions(tmp_path: Path) -> None:
    store = SqliteTxStore(tmp_path / "db.sqlite")
    await store.create_key("k", SENDER)
    await store.reserve_nonce("k", chain_latest=0, chain_pending=0)
    await store.add_attempt(_attempt("k", 1, 0, AttemptStatus.SENT))
    await store.set_attempt_status("k", 1, AttemptStatus.TIMED_OUT, error="timed out after 1s")
    await store.add_attempt(_attempt("k", 2, 0, AttemptStatus.REJECTED_UNDERPRICED))
    await store.add_attempt(_attempt("k", 3, 0, AttemptStatus.SENT))
    await store.add_attempt(_attempt("k", 4, 0, AttemptStatus.SENT))
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


async def test_reverted_key_restarts_without_nonce(tmp_path: Path) -> None:
    store = SqliteTxStore(tmp_path / "db.sqlite")
    await store.create_key("k", SENDER)
    await store.reserve_nonce("k", chain_latest=3, chain_pending=3)
    await store.add_attempt(_attempt("k", 1, 3, AttemptStatus.SENT))
    await store.mark_reverted("k", 1, error="reverted", block_number=9)
    assert (await store.get_key("k")).status is KeyStatus.REVERTED  # type: ignore[union-attr]
    await store.restart_key("k")
    key = await store.get_key("k")
    assert key is not None and key.status is KeyStatus.PENDING and key.nonce is None
    assert [a.status for a in await store.attempts("k")] == [AttemptStatus.REVERTED]


async def test_two_stores_on_one_file_share_records_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    first, second = SqliteTxStore(path), SqliteTxStore(path)
    await first.create_key("a", SENDER)
    await second.create_key("b", SENDER)
    assert await first.reserve_nonce("a", chain_latest=0, chain_pending=0) == 0
    assert await second.reserve_nonce("b", chain_latest=0, chain_pending=0) == 1
    assert [k.key for k in await first.pending_keys(SENDER)] == ["a", "b"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.close()
    second.close()


async def test_unknown_key_cannot_reserve(tmp_path: Path) -> None:
    from madara_orchestrator.domain.errors import NotFound

    store = SqliteTxStore(tmp_path / "db.sqlite")
    with pytest.raises(NotFound):
        await store.reserve_nonce("missing", chain_latest=0, chain_pending=0)


async def test_totals_for_a_summary(tmp_path: Path) -> None:
    store = SqliteTxStore(tmp_path / "db.sqlite")
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
