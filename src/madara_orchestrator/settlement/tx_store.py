"""Durable record of settlement transactions: one row per idempotency key, one per signed attempt.

Every attempt is written, with its signed raw bytes, BEFORE it is broadcast; so after a crash the
transaction manager knows every transaction that may be in the mempool or mined, and can re-broadcast
or recognise it instead of signing a second one. Nonces are reserved per key inside a write transaction,
so two processes sharing the file never take the same nonce.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from madara_orchestrator.domain.errors import BackendUnavailable, NotFound
from madara_orchestrator.domain.settlement_tx import AttemptRecord, AttemptStatus, KeyStatus, TxKeyRecord, TxTotals

T = TypeVar("T")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS settlement_tx_keys (
    key TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    nonce INTEGER,
    status TEXT NOT NULL,
    final_tx_hash TEXT,
    fee_paid_wei TEXT,
    block_number INTEGER,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS settlement_tx_keys_sender ON settlement_tx_keys (sender, status, nonce);
CREATE TABLE IF NOT EXISTS settlement_tx_attempts (
    key TEXT NOT NULL REFERENCES settlement_tx_keys (key),
    attempt_no INTEGER NOT NULL,
    nonce INTEGER NOT NULL,
    tx_hash TEXT,
    gas_multiplier REAL NOT NULL,
    max_fee_per_gas TEXT NOT NULL,
    max_priority_fee_per_gas TEXT NOT NULL,
    max_fee_per_blob_gas TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    raw BLOB,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (key, attempt_no)
);
"""

_IN_FLIGHT = tuple(s.value for s in AttemptStatus if s.is_in_flight)


def _key_from_row(row: sqlite3.Row) -> TxKeyRecord:
    return TxKeyRecord(
        key=row["key"],
        sender=row["sender"],
        nonce=row["nonce"],
        status=KeyStatus(row["status"]),
        final_tx_hash=row["final_tx_hash"],
        fee_paid_wei=int(row["fee_paid_wei"]) if row["fee_paid_wei"] is not None else None,
        block_number=row["block_number"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _attempt_from_row(row: sqlite3.Row) -> AttemptRecord:
    return AttemptRecord(
        key=row["key"],
        attempt_no=row["attempt_no"],
        nonce=row["nonce"],
        tx_hash=row["tx_hash"],
        gas_multiplier=row["gas_multiplier"],
        max_fee_per_gas=int(row["max_fee_per_gas"]),
        max_priority_fee_per_gas=int(row["max_priority_fee_per_gas"]),
        max_fee_per_blob_gas=int(row["max_fee_per_blob_gas"]),
        status=AttemptStatus(row["status"]),
        error=row["error"],
        raw=bytes(row["raw"]) if row["raw"] is not None else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SqliteTxStore:
    """``TxStore`` in its own tables of a SQLite file (WAL; may be the orchestrator's database file).

    One connection, used under a lock from worker threads; writes take ``BEGIN IMMEDIATE``.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"cannot open the settlement tx store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    return fn(self._conn)
                except sqlite3.Error as exc:
                    raise BackendUnavailable(f"settlement tx store {self.path}: {exc}") from exc

        return await asyncio.to_thread(locked)

    def _write(self, conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def get_key(self, key: str) -> TxKeyRecord | None:
        def q(conn: sqlite3.Connection) -> TxKeyRecord | None:
            row = conn.execute("SELECT * FROM settlement_tx_keys WHERE key = ?", (key,)).fetchone()
            return _key_from_row(row) if row else None

        return await self._run(q)

    async def create_key(self, key: str, sender: str) -> TxKeyRecord:
        now = self._clock()

        def w(conn: sqlite3.Connection) -> TxKeyRecord:
            def body(c: sqlite3.Connection) -> TxKeyRecord:
                c.execute(
                    "INSERT OR IGNORE INTO settlement_tx_keys (key, sender, status, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, sender.lower(), KeyStatus.PENDING.value, now, now),
                )
                return _key_from_row(c.execute("SELECT * FROM settlement_tx_keys WHERE key = ?", (key,)).fetchone())

            return self._write(conn, body)

        return await self._run(w)

    async def reserve_nonce(self, key: str, *, chain_latest: int, chain_pending: int) -> int:
        now = self._clock()

        def w(conn: sqlite3.Connection) -> int:
            def body(c: sqlite3.Connection) -> int:
                row = c.execute("SELECT sender, nonce FROM settlement_tx_keys WHERE key = ?", (key,)).fetchone()
                if row is None:
                    raise NotFound(f"settlement key {key!r} is not in the tx store")
                if row["nonce"] is not None:
                    return int(row["nonce"])
                held = c.execute(
                    "SELECT MAX(nonce) FROM settlement_tx_keys WHERE sender = ? AND status = ? AND nonce >= ?",
                    (row["sender"], KeyStatus.PENDING.value, chain_latest),
                ).fetchone()[0]
                nonce = max(chain_latest, chain_pending, (held + 1) if held is not None else 0)
                c.execute("UPDATE settlement_tx_keys SET nonce = ?, updated_at = ? WHERE key = ?", (nonce, now, key))
                return nonce

            return self._write(conn, body)

        return await self._run(w)

    async def release_nonce(self, key: str) -> None:
        now = self._clock()

        def w(conn: sqlite3.Connection) -> None:
            def body(c: sqlite3.Connection) -> None:
                c.execute("UPDATE settlement_tx_keys SET nonce = NULL, updated_at = ? WHERE key = ?", (now, key))
                c.execute(
                    f"UPDATE settlement_tx_attempts SET status = ?, updated_at = ?, raw = NULL "
                    f"WHERE key = ? AND status IN ({','.join('?' * len(_IN_FLIGHT))})",
                    (AttemptStatus.REPLACED.value, now, key, *_IN_FLIGHT),
                )

            self._write(conn, body)

        await self._run(w)

    async def add_attempt(self, attempt: AttemptRecord) -> None:
        def w(conn: sqlite3.Connection) -> None:
            def body(c: sqlite3.Connection) -> None:
                c.execute(
                    "INSERT INTO settlement_tx_attempts (key, attempt_no, nonce, tx_hash, gas_multiplier, "
                    "max_fee_per_gas, max_priority_fee_per_gas, max_fee_per_blob_gas, status, error, raw, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        attempt.key,
                        attempt.attempt_no,
                        attempt.nonce,
                        attempt.tx_hash,
                        attempt.gas_multiplier,
                        str(attempt.max_fee_per_gas),
                        str(attempt.max_priority_fee_per_gas),
                        str(attempt.max_fee_per_blob_gas),
                        attempt.status.value,
                        attempt.error,
                        attempt.raw,
                        attempt.created_at,
                        attempt.updated_at,
                    ),
                )

            self._write(conn, body)

        await self._run(w)

    async def set_attempt_status(
        self, key: str, attempt_no: int, status: AttemptStatus, *, error: str | None = None
    ) -> None:
        now = self._clock()

        def w(conn: sqlite3.Connection) -> None:
            def body(c: sqlite3.Connection) -> None:
                c.execute(
                    "UPDATE settlement_tx_attempts SET status = ?, error = COALESCE(?, error), updated_at = ? "
                    "WHERE key = ? AND attempt_no = ?",
                    (status.value, error, now, key, attempt_no),
                )

            self._write(conn, body)

        await self._run(w)

    async def attempts(self, key: str) -> list[AttemptRecord]:
        def q(conn: sqlite3.Connection) -> list[AttemptRecord]:
            rows = conn.execute(
                "SELECT * FROM settlement_tx_attempts WHERE key = ? ORDER BY attempt_no", (key,)
            ).fetchall()
            return [_attempt_from_row(r) for r in rows]

        return await self._run(q)

    async def finalize(self, key: str, attempt_no: int, *, fee_paid_wei: int | None, block_number: int | None) -> None:
        now = self._clock()

        def w(conn: sqlite3.Connection) -> None:
            def body(c: sqlite3.Connection) -> None:
                row = c.execute(
                    "SELECT tx_hash FROM settlement_tx_attempts WHERE key = ? AND attempt_no = ?", (key, attempt_no)
                ).fetchone()
                if row is None:
                    raise NotFound(f"attempt {attempt_no} of settlement key {key!r} is not in the tx store")
                c.execute(
                    f"UPDATE settlement_tx_attempts SET status = ?, updated_at = ? "
                    f"WHERE key = ? AND attempt_no != ? AND status IN ({','.join('?' * len(_IN_FLIGHT))}) "
                    f"AND status != ?",
                    (
                        AttemptStatus.REPLACED.value,
                        now,
                        key,
                        attempt_no,
                        *_IN_FLIGHT,
                        AttemptStatus.TIMED_OUT.value,
                    ),
                )
                c.execute(
                    "UPDATE settlement_tx_attempts SET status = ?, updated_at = ? WHERE key = ? AND attempt_no = ?",
                    (AttemptStatus.FINALIZED.value, now, key, attempt_no),
                )
                c.execute("UPDATE settlement_tx_attempts SET raw = NULL WHERE key = ?", (key,))
                c.execute(
                    "UPDATE settlement_tx_keys SET status = ?, final_tx_hash = ?, fee_paid_wei = ?, block_number = ?, "
                    "error = NULL, updated_at = ? WHERE key = ?",
                    (
                        KeyStatus.FINALIZED.value,
                        row["tx_hash"],
                        str(fee_paid_wei) if fee_paid_wei is not None else None,
                        block_number,
                        now,
                        key,
                    ),
                )

            self._write(conn, body)

        await self._run(w)

    async def mark_reverted(self, key: str, attempt_no: int, *, error: str, block_number: int | None) -> None:
        now = self._clock()

        def w(conn: sqlite3.Connection) -> None:
            def body(c: sqlite3.Connection) -> None:
                c.execute(
                    f"UPDATE settlement_tx_attempts SET status = ?, updated_at = ?, raw = NULL "
                    f"WHERE key = ? AND attempt_no != ? AND status IN ({','.join('?' * len(_IN_FLIGHT))})",
                    (AttemptStatus.REPLACED.value, now, key, attempt_no, *_IN_FLIGHT),
                )
                c.execute(
                    "UPDATE settlement_tx_attempts SET status = ?, error = ?, updated_at = ?, raw = NULL "
                    "WHERE key = ? AND attempt_no = ?",
                    (AttemptStatus.REVERTED.value, error, now, key, attempt_no),
                )
                c.execute(
                    "UPDATE settlement_tx_keys SET status = ?, error = ?, block_number = ?, updated_at = ? "
                    "WHERE key = ?",
                    (KeyStatus.REVERTED.value, error, block_number, now, key),
                )

            self._write(conn, body)

        await self._run(w)

    async def restart_key(self, key: str) -> None:
        """A reverted key is settled again from scratch: pending, no nonce (its attempts stay as history)."""
        now = self._clock()

        def w(conn: sqlite3.Connection) -> None:
            def body(c: sqlite3.Connection) -> None:
                c.execute(
                    "UPDATE settlement_tx_keys SET status = ?, nonce = NULL, updated_at = ? "
                    "WHERE key = ? AND status = ?",
                    (KeyStatus.PENDING.value, now, key, KeyStatus.REVERTED.value),
                )

            self._write(conn, body)

        await self._run(w)

    async def totals(self, sender: str | None = None) -> TxTotals:
        def q(conn: sqlite3.Connection) -> TxTotals:
            where, args = ("WHERE sender = ?", (sender.lower(),)) if sender else ("", ())
            keys = conn.execute(f"SELECT status, fee_paid_wei FROM settlement_tx_keys {where}", args).fetchall()
            attempts = conn.execute(
                "SELECT COUNT(*) FROM settlement_tx_attempts "
                f"WHERE key IN (SELECT key FROM settlement_tx_keys {where})",
                args,
            ).fetchone()[0]
            return TxTotals(
                settled=sum(1 for k in keys if k["status"] == KeyStatus.FINALIZED.value),
                pending=sum(1 for k in keys if k["status"] == KeyStatus.PENDING.value),
                attempts=int(attempts),
                fee_paid_wei=sum(int(k["fee_paid_wei"]) for k in keys if k["fee_paid_wei"] is not None),
            )

        return await self._run(q)

    async def pending_keys(self, sender: str) -> list[TxKeyRecord]:
        def q(conn: sqlite3.Connection) -> list[TxKeyRecord]:
            rows = conn.execute(
                "SELECT * FROM settlement_tx_keys WHERE sender = ? AND status = ? ORDER BY nonce",
                (sender.lower(), KeyStatus.PENDING.value),
            ).fetchall()
            return [_key_from_row(r) for r in rows]

        return await self._run(q)


def attempts_summary(attempts: Sequence[AttemptRecord]) -> str:
    """One line per attempt, like the original's error message ("1. 1.10x attempted, nonce=N, ...")."""
    lines = []
    for a in attempts:
        what = {
            AttemptStatus.FINALIZED: "finalized",
            AttemptStatus.TIMED_OUT: "timed out",
            AttemptStatus.REPLACED: "replaced",
            AttemptStatus.REJECTED_UNDERPRICED: "rejected as underpriced",
            AttemptStatus.SUBMISSION_FAILED: "submission failed",
            AttemptStatus.REVERTED: "reverted",
            AttemptStatus.SENT: "pending",
            AttemptStatus.SIGNED: "signed, not known to be sent",
        }[a.status]
        tx = f"tx hash {a.tx_hash}" if a.tx_hash else "no hash"
        err = f" ({a.error})" if a.error else ""
        lines.append(f"{a.attempt_no}. {a.gas_multiplier:.2f}x attempted, nonce={a.nonce}, {tx}, {what}{err}.")
    return " ".join(lines)
