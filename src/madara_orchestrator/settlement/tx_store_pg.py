"""``TxStore`` on PostgreSQL: the settlement transaction records of several orchestrator processes in one
database (tables ``settlement_tx_keys`` and ``settlement_tx_attempts``, created by ``PostgresDatabase``'s
migrations), with ``SqliteTxStore``'s semantics.

Nonces: ``reserve_nonce`` takes a transaction-scoped advisory lock on the sender before it reads the
nonces its pending keys hold, so two processes reserving for one sender at once are served one after the
other and never get the same nonce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from madara_orchestrator.backends.postgres_db import Connection, PostgresDatabase
from madara_orchestrator.domain.errors import AlreadyExists, NotFound
from madara_orchestrator.domain.settlement_tx import AttemptRecord, AttemptStatus, KeyStatus, TxKeyRecord, TxTotals

SENDER_LOCK_SPACE = 0x5458
"""First key of the two-key advisory locks on senders (the second is ``hashtext(sender)``); the two-key
space never meets the one-key locks (schema migrations)."""

_IN_FLIGHT = [s.value for s in AttemptStatus if s.is_in_flight]


def _key_from_row(row: dict[str, Any]) -> TxKeyRecord:
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


def _attempt_from_row(row: dict[str, Any]) -> AttemptRecord:
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


async def _key_row(conn: Connection, key: str) -> dict[str, Any] | None:
    return await (await conn.execute("SELECT * FROM settlement_tx_keys WHERE key = %s", (key,))).fetchone()


class PostgresTxStore:
    """``TxStore`` on an open ``PostgresDatabase`` (it shares the pool; whoever opened the database closes it)."""

    def __init__(self, db: PostgresDatabase, *, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self._clock: Callable[[], float] = clock if clock is not None else db.clock

    async def get_key(self, key: str) -> TxKeyRecord | None:
        async with self.db.connection() as conn:
            row = await _key_row(conn, key)
        return None if row is None else _key_from_row(row)

    async def create_key(self, key: str, sender: str) -> TxKeyRecord:
        now = self._clock()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO settlement_tx_keys (key, sender, status, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                (key, sender.lower(), KeyStatus.PENDING.value, now, now),
            )
            row = await _key_row(conn, key)
        assert row is not None
        return _key_from_row(row)

    async def reserve_nonce(self, key: str, *, chain_latest: int, chain_pending: int) -> int:
        now = self._clock()
        async with self.db.transaction() as conn:
            row = await _key_row(conn, key)
            if row is None:
                raise NotFound(f"settlement key {key!r} is not in the tx store")
            if row["nonce"] is not None:
                return int(row["nonce"])
            sender = row["sender"]
            await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (SENDER_LOCK_SPACE, sender))
            # Read again under the lock: each statement sees what the previous holder committed.
            row = await (
                await conn.execute("SELECT nonce FROM settlement_tx_keys WHERE key = %s FOR UPDATE", (key,))
            ).fetchone()
            assert row is not None
            if row["nonce"] is not None:
                return int(row["nonce"])
            held = await (
                await conn.execute(
                    "SELECT MAX(nonce) AS n FROM settlement_tx_keys WHERE sender = %s AND status = %s AND nonce >= %s",
                    (sender, KeyStatus.PENDING.value, chain_latest),
                )
            ).fetchone()
            highest = None if held is None or held["n"] is None else int(held["n"])
            nonce = max(chain_latest, chain_pending, highest + 1 if highest is not None else 0)
            await conn.execute(
                "UPDATE settlement_tx_keys SET nonce = %s, updated_at = %s WHERE key = %s", (nonce, now, key)
            )
            return nonce

    async def release_nonce(self, key: str) -> None:
        now = self._clock()
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE settlement_tx_keys SET nonce = NULL, updated_at = %s WHERE key = %s", (now, key))
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = %s, updated_at = %s, raw = NULL"
                " WHERE key = %s AND status = ANY(%s)",
                (AttemptStatus.REPLACED.value, now, key, _IN_FLIGHT),
            )

    async def add_attempt(self, attempt: AttemptRecord) -> None:
        try:
            await self._insert_attempt(attempt)
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound(f"settlement key {attempt.key!r} is not in the tx store") from None
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(
                f"attempt {attempt.attempt_no} of settlement key {attempt.key!r} is already stored"
            ) from None

    async def _insert_attempt(self, attempt: AttemptRecord) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "INSERT INTO settlement_tx_attempts (key, attempt_no, nonce, tx_hash, gas_multiplier,"
                " max_fee_per_gas, max_priority_fee_per_gas, max_fee_per_blob_gas, status, error, raw,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    attempt.key,
                    attempt.attempt_no,
                    attempt.nonce,
                    attempt.tx_hash,
                    attempt.gas_multiplier,
                    attempt.max_fee_per_gas,
                    attempt.max_priority_fee_per_gas,
                    attempt.max_fee_per_blob_gas,
                    attempt.status.value,
                    attempt.error,
                    attempt.raw,
                    attempt.created_at,
                    attempt.updated_at,
                ),
            )

    async def set_attempt_status(
        self, key: str, attempt_no: int, status: AttemptStatus, *, error: str | None = None
    ) -> None:
        now = self._clock()
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = %s, error = COALESCE(%s, error), updated_at = %s"
                " WHERE key = %s AND attempt_no = %s",
                (status.value, error, now, key, attempt_no),
            )

    async def attempts(self, key: str) -> list[AttemptRecord]:
        async with self.db.connection() as conn:
            rows = await (
                await conn.execute("SELECT * FROM settlement_tx_attempts WHERE key = %s ORDER BY attempt_no", (key,))
            ).fetchall()
        return [_attempt_from_row(r) for r in rows]

    async def finalize(self, key: str, attempt_no: int, *, fee_paid_wei: int | None, block_number: int | None) -> None:
        now = self._clock()
        async with self.db.transaction() as conn:
            row = await (
                await conn.execute(
                    "SELECT tx_hash FROM settlement_tx_attempts WHERE key = %s AND attempt_no = %s",
                    (key, attempt_no),
                )
            ).fetchone()
            if row is None:
                raise NotFound(f"attempt {attempt_no} of settlement key {key!r} is not in the tx store")
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = %s, updated_at = %s"
                " WHERE key = %s AND attempt_no != %s AND status = ANY(%s) AND status != %s",
                (AttemptStatus.REPLACED.value, now, key, attempt_no, _IN_FLIGHT, AttemptStatus.TIMED_OUT.value),
            )
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = %s, updated_at = %s WHERE key = %s AND attempt_no = %s",
                (AttemptStatus.FINALIZED.value, now, key, attempt_no),
            )
            await conn.execute("UPDATE settlement_tx_attempts SET raw = NULL WHERE key = %s", (key,))
            await conn.execute(
                "UPDATE settlement_tx_keys SET status = %s, final_tx_hash = %s, fee_paid_wei = %s, block_number = %s,"
                " error = NULL, updated_at = %s WHERE key = %s",
                (KeyStatus.FINALIZED.value, row["tx_hash"], fee_paid_wei, block_number, now, key),
            )

    async def mark_reverted(self, key: str, attempt_no: int, *, error: str, block_number: int | None) -> None:
        now = self._clock()
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = %s, updated_at = %s, raw = NULL"
                " WHERE key = %s AND attempt_no != %s AND status = ANY(%s)",
                (AttemptStatus.REPLACED.value, now, key, attempt_no, _IN_FLIGHT),
            )
            await conn.execute(
                "UPDATE settlement_tx_attempts SET status = %s, error = %s, updated_at = %s, raw = NULL"
                " WHERE key = %s AND attempt_no = %s",
                (AttemptStatus.REVERTED.value, error, now, key, attempt_no),
            )
            await conn.execute(
                "UPDATE settlement_tx_keys SET status = %s, error = %s, block_number = %s, updated_at = %s"
                " WHERE key = %s",
                (KeyStatus.REVERTED.value, error, block_number, now, key),
            )

    async def restart_key(self, key: str) -> None:
        """A reverted key is settled again from scratch: pending, no nonce (its attempts stay as history)."""
        now = self._clock()
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE settlement_tx_keys SET status = %s, nonce = NULL, updated_at = %s"
                " WHERE key = %s AND status = %s",
                (KeyStatus.PENDING.value, now, key, KeyStatus.REVERTED.value),
            )

    async def totals(self, sender: str | None = None) -> TxTotals:
        """For a summary line (as ``SqliteTxStore.totals``): keys settled and pending, attempts, fees paid."""
        async with self.db.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT COUNT(*) FILTER (WHERE status = %(finalized)s) AS settled,"
                    " COUNT(*) FILTER (WHERE status = %(pending)s) AS pending,"
                    " COALESCE(SUM(fee_paid_wei), 0) AS fees,"
                    " (SELECT COUNT(*) FROM settlement_tx_attempts a WHERE a.key IN"
                    "   (SELECT key FROM settlement_tx_keys WHERE %(sender)s::text IS NULL OR sender = %(sender)s))"
                    " AS attempts"
                    " FROM settlement_tx_keys WHERE %(sender)s::text IS NULL OR sender = %(sender)s",
                    {
                        "finalized": KeyStatus.FINALIZED.value,
                        "pending": KeyStatus.PENDING.value,
                        "sender": sender.lower() if sender else None,
                    },
                )
            ).fetchone()
        assert row is not None
        return TxTotals(
            settled=int(row["settled"]),
            pending=int(row["pending"]),
            attempts=int(row["attempts"]),
            fee_paid_wei=int(row["fees"]),
        )

    async def pending_keys(self, sender: str) -> list[TxKeyRecord]:
        async with self.db.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT * FROM settlement_tx_keys WHERE sender = %s AND status = %s"
                    " ORDER BY nonce NULLS FIRST, created_at, key",  # NULLS FIRST: as SQLite orders
                    (sender.lower(), KeyStatus.PENDING.value),
                )
            ).fetchall()
        return [_key_from_row(r) for r in rows]
