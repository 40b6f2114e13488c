"""Durable record of settlement transactions: one row per idempotency key, one per signed attempt.

Every attempt is written, with its signed raw bytes, BEFORE it is broadcast; so after a crash the
transaction manager knows every transaction that may be in the mempool or mined, and can re-broadcast
or recognise it instead of signing a second one. Nonces are reserved per key inside a write transaction,
so two processes sharing the database never take the same nonce. One implementation (``SqlTxStore``) over
``sql.SqlDatabase``: ``SqliteTxStore`` (a file of its own, or the orchestrator's) and ``PostgresTxStore``
(the orchestrator's database); ``memory.MemoryTxStore`` keeps the same records in one process, for tests.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from madara_orchestrator.backends.sql import Row, SqlConnection, SqlDatabase, in_, placeholders, where
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.domain.errors import AlreadyExists, BackendUnavailable, InvalidInput, NotFound
from madara_orchestrator.domain.settlement_tx import (
    AttemptRecord,
    AttemptStatus,
    KeyStatus,
    TxKeyRecord,
    TxTotals,
    free_nonce,
)

if TYPE_CHECKING:  # psycopg is needed only where PostgreSQL is used
    from madara_orchestrator.backends.postgres_db import PostgresDatabase


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

SENDER_LOCK_SPACE = 0x5458
"""First key of PostgreSQL's two-key advisory locks on senders (the second is ``hashtext(sender)``); the
two-key space never meets the one-key locks (schema migrations)."""


def _key_from_row(row: Row) -> TxKeyRecord:
    return TxKeyRecord(
        key=row["key"],
        sender=row["sender"],
        nonce=None if row["nonce"] is None else int(row["nonce"]),
        status=KeyStatus(row["status"]),
        final_tx_hash=row["final_tx_hash"],
        fee_paid_wei=None if row["fee_paid_wei"] is None else int(row["fee_paid_wei"]),
        block_number=None if row["block_number"] is None else int(row["block_number"]),
        error=row["error"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


def _attempt_from_row(row: Row) -> AttemptRecord:
    return AttemptRecord(
        key=row["key"],
        attempt_no=int(row["attempt_no"]),
        nonce=int(row["nonce"]),
        tx_hash=row["tx_hash"],
        gas_multiplier=float(row["gas_multiplier"]),
        max_fee_per_gas=int(row["max_fee_per_gas"]),
        max_priority_fee_per_gas=int(row["max_priority_fee_per_gas"]),
        max_fee_per_blob_gas=int(row["max_fee_per_blob_gas"]),
        status=AttemptStatus(row["status"]),
        error=row["error"],
        raw=None if row["raw"] is None else bytes(row["raw"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


async def _key_row(conn: SqlConnection, key: str) -> Row | None:
    return await conn.fetch_one("SELECT * FROM settlement_tx_keys WHERE key = ?", (key,))


class SqlTxStore:
    """``TxStore`` on an ``SqlDatabase``, in the tables ``settlement_tx_keys`` and ``settlement_tx_attempts``.

    Nonces: ``reserve_nonce`` reads the nonces the sender's pending keys hold and takes the next one in
    one transaction, under a lock on the sender (SQLite: the write transaction; PostgreSQL: an advisory
    lock), so two processes reserving for one sender at once never get the same nonce.
    """

    def __init__(self, db: SqlDatabase, *, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self._clock: Callable[[], float] = clock if clock is not None else db.clock
        self._dialect = db.dialect

    async def get_key(self, key: str) -> TxKeyRecord | None:
        async with self.db.use() as conn:
            row = await _key_row(conn, key)
        return None if row is None else _key_from_row(row)

    async def create_key(self, key: str, sender: str) -> TxKeyRecord:
        now = self._clock()
        async with self.db.atomic() as conn:
            await conn.execute(
                "INSERT INTO settlement_tx_keys (key, sender, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, sender.lower(), KeyStatus.PENDING.value, now, now),
            )
            row = await _key_row(conn, key)
        assert row is not None
        return _key_from_row(row)

    async def reserve_nonce(self, key: str, *, chain_latest: int, chain_pending: int) -> int:
        now = self._clock()
        async with self.db.atomic() as conn:
            row = await _key_row(conn, key)
            if row is None:
                raise NotFound(f"settlement key {key!r} is not in the tx store")
            if row["nonce"] is not None:
                return int(row["nonce"])
            sender = row["sender"]
            if self._dialect.sender_lock is not None:
                await conn.execute(self._dialect.sender_lock, (SENDER_LOCK_SPACE, sender))
                # Read again under the lock: each statement sees what the previous holder committed.
                row = await conn.fetch_one(
                    f"SELECT nonce FROM settlement_tx_keys WHERE key = ?{self._dialect.for_update}", (key,)
                )
                assert row is not None
                if row["nonce"] is not None:
                    return int(row["nonce"])
            rows = await conn.fetch_all(
                "SELECT nonce, status FROM settlement_tx_keys WHERE sender = ? AND nonce >= ? AND key != ?",
                (sender, chain_latest, key),
            )
            pending = KeyStatus.PENDING.value
            nonce = free_nonce(
                {int(r["nonce"]) for r in rows if r["status"] == pending},
                settled=[int(r["nonce"]) for r in rows if r["status"] != pending],
                chain_latest=chain_latest,
                chain_pending=chain_pending,
            )
            await conn.execute(
                "UPDATE settlement_tx_keys SET nonce = ?, updated_at = ? WHERE key = ?", (nonce, now, key)
            )
            return nonce

    async def release_nonce(self, key: str) -> None:
        now = self._clock()
        in_flight, values = in_("status", _IN_FLIGHT)
        async with self.db.atomic() as conn:
            await conn.execute("UPDATE settlement_tx_keys SET nonce = NULL, updated_at = ? WHERE key = ?", (now, key))
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = ?, updated_at = ?, raw = NULL"
                f" WHERE key = ? AND {in_flight}",
                (AttemptStatus.REPLACED.value, now, key, *values),
            )

    async def add_attempt(self, attempt: AttemptRecord) -> None:
        big = self._dialect.big_int
        try:
            async with self.db.use() as conn:
                await conn.execute(
                    "INSERT INTO settlement_tx_attempts (key, attempt_no, nonce, tx_hash, gas_multiplier,"
                    " max_fee_per_gas, max_priority_fee_per_gas, max_fee_per_blob_gas, status, error, raw,"
                    f" created_at, updated_at) VALUES ({placeholders(13)})",
                    (
                        attempt.key,
                        attempt.attempt_no,
                        attempt.nonce,
                        attempt.tx_hash,
                        attempt.gas_multiplier,
                        big(attempt.max_fee_per_gas),
                        big(attempt.max_priority_fee_per_gas),
                        big(attempt.max_fee_per_blob_gas),
                        attempt.status.value,
                        attempt.error,
                        attempt.raw,
                        attempt.created_at,
                        attempt.updated_at,
                    ),
                )
        except self._dialect.integrity_errors:
            if await self.get_key(attempt.key) is None:
                raise NotFound(f"settlement key {attempt.key!r} is not in the tx store") from None
            raise AlreadyExists(
                f"attempt {attempt.attempt_no} of settlement key {attempt.key!r} is already stored"
            ) from None

    async def set_attempt_status(
        self, key: str, attempt_no: int, status: AttemptStatus, *, error: str | None = None
    ) -> None:
        now = self._clock()
        async with self.db.use() as conn:
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = ?, error = COALESCE(?, error), updated_at = ?"
                " WHERE key = ? AND attempt_no = ?",
                (status.value, error, now, key, attempt_no),
            )

    async def attempts(self, key: str) -> list[AttemptRecord]:
        async with self.db.use() as conn:
            rows = await conn.fetch_all(
                "SELECT * FROM settlement_tx_attempts WHERE key = ? ORDER BY attempt_no", (key,)
            )
        return [_attempt_from_row(r) for r in rows]

    async def finalize(self, key: str, attempt_no: int, *, fee_paid_wei: int | None, block_number: int | None) -> None:
        now = self._clock()
        in_flight, values = in_("status", _IN_FLIGHT)
        async with self.db.atomic() as conn:
            row = await conn.fetch_one(
                "SELECT tx_hash FROM settlement_tx_attempts WHERE key = ? AND attempt_no = ?", (key, attempt_no)
            )
            if row is None:
                raise NotFound(f"attempt {attempt_no} of settlement key {key!r} is not in the tx store")
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = ?, updated_at = ?"
                f" WHERE key = ? AND attempt_no != ? AND {in_flight} AND status != ?",
                (AttemptStatus.REPLACED.value, now, key, attempt_no, *values, AttemptStatus.TIMED_OUT.value),
            )
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = ?, updated_at = ? WHERE key = ? AND attempt_no = ?",
                (AttemptStatus.FINALIZED.value, now, key, attempt_no),
            )
            await conn.execute("UPDATE settlement_tx_attempts SET raw = NULL WHERE key = ?", (key,))
            await conn.execute(
                "UPDATE settlement_tx_keys SET status = ?, final_tx_hash = ?, fee_paid_wei = ?, block_number = ?,"
                " error = NULL, updated_at = ? WHERE key = ?",
                (
                    KeyStatus.FINALIZED.value,
                    row["tx_hash"],
                    self._dialect.big_int(fee_paid_wei),
                    block_number,
                    now,
                    key,
                ),
            )

    async def mark_reverted(self, key: str, attempt_no: int, *, error: str, block_number: int | None) -> None:
        now = self._clock()
        in_flight, values = in_("status", _IN_FLIGHT)
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = ?, updated_at = ?, raw = NULL"
                f" WHERE key = ? AND attempt_no != ? AND {in_flight}",
                (AttemptStatus.REPLACED.value, now, key, attempt_no, *values),
            )
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = ?, error = ?, updated_at = ?, raw = NULL"
                " WHERE key = ? AND attempt_no = ?",
                (AttemptStatus.REVERTED.value, error, now, key, attempt_no),
            )
            await conn.execute(
                "UPDATE settlement_tx_keys SET status = ?, error = ?, block_number = ?, updated_at = ? WHERE key = ?",
                (KeyStatus.REVERTED.value, error, block_number, now, key),
            )

    async def restart_key(self, key: str) -> None:
        """A reverted key is settled again from scratch: pending, no nonce (its attempts stay as history)."""
        now = self._clock()
        async with self.db.use() as conn:
            await conn.execute(
                "UPDATE settlement_tx_keys SET status = ?, nonce = NULL, updated_at = ? WHERE key = ? AND status = ?",
                (KeyStatus.PENDING.value, now, key, KeyStatus.REVERTED.value),
            )

    async def totals(self, sender: str | None = None) -> TxTotals:
        """For a summary line: keys settled and pending, attempts signed, fees paid (summed here: SQLite
        holds wei as text)."""
        clauses, params = (["sender = ?"], [sender.lower()]) if sender else ([], [])
        async with self.db.use() as conn:
            keys = await conn.fetch_one(
                "SELECT COUNT(*) FILTER (WHERE status = ?) AS settled, COUNT(*) FILTER (WHERE status = ?) AS pending"
                f" FROM settlement_tx_keys{where(clauses)}",
                (KeyStatus.FINALIZED.value, KeyStatus.PENDING.value, *params),
            )
            attempts = await conn.fetch_one(
                "SELECT COUNT(*) AS n FROM settlement_tx_attempts"
                f" WHERE key IN (SELECT key FROM settlement_tx_keys{where(clauses)})",
                params,
            )
            fees = await conn.fetch_all(
                f"SELECT fee_paid_wei FROM settlement_tx_keys{where([*clauses, 'fee_paid_wei IS NOT NULL'])}", params
            )
        assert keys is not None and attempts is not None
        return TxTotals(
            settled=int(keys["settled"]),
            pending=int(keys["pending"]),
            attempts=int(attempts["n"]),
            fee_paid_wei=sum(int(row["fee_paid_wei"]) for row in fees),
        )

    async def pending_keys(self, sender: str) -> list[TxKeyRecord]:
        async with self.db.use() as conn:
            rows = await conn.fetch_all(
                f"SELECT * FROM settlement_tx_keys WHERE sender = ? AND status = ?"
                f" ORDER BY nonce{self._dialect.nulls_first}, created_at, key",
                (sender.lower(), KeyStatus.PENDING.value),
            )
        return [_key_from_row(r) for r in rows]


class SqliteTxStore(SqlTxStore):
    """``TxStore`` in its own tables of a SQLite file (WAL; may be the orchestrator's database file), on a
    connection of its own: synchronous=FULL, a 30 s busy timeout. Opened at once; ``close()`` is synchronous."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        db = SqliteDatabase(path, busy_timeout_s=busy_timeout_s, synchronous="FULL", setup=_create_tables)
        try:
            db.open_now()
        except (BackendUnavailable, InvalidInput) as exc:
            raise BackendUnavailable(f"cannot open the settlement tx store {self.path}: {exc}") from exc
        self._sqlite = db
        super().__init__(db, clock=clock)

    def close(self) -> None:
        self._sqlite.close_now()


def _create_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)


class PostgresTxStore(SqlTxStore):
    """``TxStore`` on an open ``PostgresDatabase`` (it shares the pool; whoever opened the database closes it).
    Its tables are created by ``PostgresDatabase``'s migrations."""

    def __init__(self, db: PostgresDatabase, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(db, clock=clock)
