"""The job store, batch store and lock service on SQL: one implementation over ``sql.SqlDatabase``, for
SQLite (``SqliteStore``, the embedded default) and PostgreSQL (``PostgresStore``, several processes).

Every write that checks before it writes (version guards, batch overlaps) does both in one transaction,
on a row it locked where the database has row locks, so two writers (two processes) cannot split them.
Lock expiry is reckoned on the database's clock (``Dialect.now``); job leases are written as the caller
gives them (``now``, ``expires_at``).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from madara_orchestrator.backends.base import (
    SNOS_BATCHES,
    BatchQuery,
    JobKeys,
    JobQuery,
    StoreBase,
    batch_columns,
    batch_doc,
    batch_exists_error,
    batch_table,
    check_batch_version,
    describe_batch,
    job_from_row,
    job_row,
    overlap_error,
    stale_job_error,
)
from madara_orchestrator.backends.outbox import OUTBOX, insert_outbox
from madara_orchestrator.backends.sql import SqlConnection, SqlDatabase, in_, placeholders, where
from madara_orchestrator.backends.sql import limit as _limit
from madara_orchestrator.backends.sql_queue import insert_message
from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    SnosBatch,
)
from madara_orchestrator.domain.errors import AlreadyExists
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.domain.pause import Pause, Stage
from madara_orchestrator.interfaces import Outgoing

JOB_COLUMNS = (
    "id, internal_id, job_type, status, external_id, metadata, version, created_at, updated_at,"
    " lease_owner, lease_expires_at"
)


async def _refuse_overlap(conn: SqlConnection, batch: SnosBatch | AggregatorBatch) -> None:
    """``AlreadyExists`` when another batch holds a block of ``batch``'s range. The stored ranges are
    disjoint, so only the other batch with the greatest start at or below our end can overlap."""
    row = await conn.fetch_one(
        f"SELECT idx, start_block, end_block FROM {batch_table(batch)} WHERE start_block <= ? AND idx != ?"
        " ORDER BY start_block DESC LIMIT 1",
        (batch.end_block, batch.index),
    )
    if row is not None and row["end_block"] >= batch.start_block:
        raise overlap_error(batch, int(row["idx"]), int(row["start_block"]), int(row["end_block"]))


async def insert_job(db: SqlDatabase, conn: SqlConnection, job: Job) -> bool:
    """Insert ``job``; False when a job with its (job_type, internal_id) exists."""
    changed = await conn.execute(
        f"INSERT INTO jobs ({JOB_COLUMNS}, orchestrator_version) VALUES ({placeholders(12)})"
        " ON CONFLICT (job_type, internal_id) DO NOTHING",
        [*{**job_row(job), "id": db.dialect.uuid(job.id)}.values()],
    )
    return changed == 1


class SqlStore(StoreBase):
    """Implements ``Database`` (JobStore + BatchStore), ``LockService``, ``PauseStore`` and ``AtomicJobWrites``
    on an ``SqlDatabase``.

    ``AtomicJobWrites`` writes a job and its messages in one transaction: into the queue's table when the
    queue is in this database (``SqlQueue``), or with ``outbox`` into the outbox table, which an
    ``OutboxRelay`` sends on to a queue elsewhere (SQS). ``clock`` (default: the database's) stamps them."""

    def __init__(self, db: SqlDatabase, *, clock: Callable[[], float] | None = None, outbox: bool = False) -> None:
        self.db = db
        self._dialect = db.dialect
        self._job_order_tie = f"job_type{db.dialect.text_order}"
        """Ties on internal_id are broken on the job type's bytes, as SQLite compares text, whatever the collation."""
        self._clock: Callable[[], float] = clock if clock is not None else db.clock
        self.outbox = outbox

    async def _send_in(self, conn: SqlConnection, message: Outgoing) -> None:
        """Write ``message`` inside ``conn``'s transaction, and wake whoever takes it once that commits."""
        if self.outbox:
            await insert_outbox(conn, message, now=self._clock())
            await self.db.notify(conn, OUTBOX)
        else:
            await insert_message(conn, message.queue, message.body, now=self._clock(), delay_s=message.delay_s)
            await self.db.notify(conn, message.queue)

    async def create_job_and_send(self, job: Job, queue: str, body: str, *, delay_s: float = 0.0) -> bool:
        """Insert the job and its first queue message in one transaction: both or neither. False (and
        nothing sent) when a job with the same (job_type, internal_id) exists."""
        async with self.db.atomic() as conn:
            if not await insert_job(self.db, conn, job):
                return False
            await self._send_in(conn, Outgoing(queue, body, delay_s))
            return True

    async def update_job_and_send(
        self, job: Job, messages: Sequence[Outgoing], *, now: float, only_if_lease_expired: bool = False
    ) -> Job:
        """``update_job`` and ``messages`` in one transaction: a stale write (``StaleVersion``) sends nothing."""
        async with self.db.atomic() as conn:
            updated = await self._update_job(conn, job, now=now, only_if_lease_expired=only_if_lease_expired)
            for message in messages:
                await self._send_in(conn, message)
        return updated

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()

    # -- jobs -------------------------------------------------------------------------------------

    async def create_job(self, job: Job) -> bool:
        async with self.db.use() as conn:
            return await insert_job(self.db, conn, job)

    async def get_job(self, job_id: uuid.UUID) -> Job | None:
        return await self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", [self._dialect.uuid(job_id)])

    async def get_job_by_internal_id(self, job_type: JobType, internal_id: int) -> Job | None:
        return await self._one(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_type = ? AND internal_id = ?",
            [job_type.value, internal_id],
        )

    async def update_job(self, job: Job, *, now: float, only_if_lease_expired: bool = False) -> Job:
        async with self.db.use() as conn:
            return await self._update_job(conn, job, now=now, only_if_lease_expired=only_if_lease_expired)

    async def _update_job(self, conn: SqlConnection, job: Job, *, now: float, only_if_lease_expired: bool) -> Job:
        sql = (
            "UPDATE jobs SET status = ?, external_id = ?, metadata = ?, version = version + 1, updated_at = ?,"
            " lease_owner = ?, lease_expires_at = ? WHERE id = ? AND version = ?"
        )
        params: list[Any] = [
            job.status.value,
            job.external_id,
            json.dumps(job.metadata.to_json()),
            now,
            job.lease_owner,
            job.lease_expires_at,
            self._dialect.uuid(job.id),
            job.version,
        ]
        if only_if_lease_expired:
            sql += " AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"
            params.append(now)
        if await conn.execute(sql, params) != 1:
            raise stale_job_error(job)
        return dataclasses.replace(job, version=job.version + 1, updated_at=now)

    async def renew_lease(self, job_id: uuid.UUID, owner: str, expires_at: float) -> bool:
        async with self.db.use() as conn:
            changed = await conn.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status = ?",
                (expires_at, self._dialect.uuid(job_id), owner, JobStatus.LOCKED_FOR_PROCESSING.value),
            )
        return changed == 1

    async def _list_jobs(self, query: JobQuery) -> list[Job]:
        found = _Filters()
        found.within("status", query.statuses)
        found.within("job_type", query.job_types)
        if query.min_internal_id is not None:
            found.add("internal_id >= ?", query.min_internal_id)
        if query.without_successor is not None:
            found.add(
                "NOT EXISTS (SELECT 1 FROM jobs s WHERE s.job_type = ? AND s.internal_id = jobs.internal_id)",
                query.without_successor,
            )
        order = "DESC" if query.descending else "ASC"
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs{where(found.clauses)} ORDER BY internal_id {order}, {self._job_order_tie}"
            + _limit(query.limit),
            found.params,
        )

    async def oldest_job(self, job_type: JobType, *, excluding_statuses: Sequence[JobStatus] = ()) -> Job | None:
        clauses = ["job_type = ?"]
        params: list[Any] = [job_type.value]
        if excluding_statuses:
            clause, values = in_("status", [s.value for s in excluding_statuses])
            clauses.append("NOT " + clause)
            params += values
        return await self._one(
            f"SELECT {JOB_COLUMNS} FROM jobs{where(clauses)} ORDER BY internal_id ASC LIMIT 1", params
        )

    async def _jobs_with_keys(self, keys: JobKeys) -> list[Job]:
        clauses: list[str] = []
        params: list[Any] = []
        for job_types, internal_id in keys:
            clause, values = in_("job_type", job_types)
            clauses.append(f"({clause} AND internal_id = ?)")
            params += [*values, internal_id]
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' OR '.join(clauses)} ORDER BY internal_id, {self._job_order_tie}",
            params,
        )

    async def jobs_by_external_id(self, external_id: str, job_types: Sequence[JobType]) -> list[Job]:
        clause, values = in_("job_type", [t.value for t in job_types])
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE external_id = ? AND {clause}"
            f" ORDER BY internal_id, {self._job_order_tie}",
            [external_id, *values],
        )

    async def remember_prover_notice(
        self, external_id: str, job_types: Sequence[JobType], *, received_at: float, forget_before: float
    ) -> None:
        """Statement by statement (no transaction to hold): each of them is right alone."""
        async with self.db.use() as conn:
            await conn.execute("DELETE FROM prover_notices WHERE received_at < ?", (forget_before,))
            for job_type in job_types:
                await conn.execute(
                    "INSERT INTO prover_notices (external_id, job_type, received_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (external_id, job_type) DO UPDATE SET received_at = excluded.received_at",
                    (external_id, job_type.value, received_at),
                )

    async def take_prover_notice(self, external_id: str, job_type: JobType, *, received_after: float) -> bool:
        """A read first: most jobs had no early webhook, and a read writes nothing (SQLite's single writer)."""
        key = (external_id, job_type.value)
        async with self.db.use() as conn:
            row = await conn.fetch_one(
                "SELECT received_at FROM prover_notices WHERE external_id = ? AND job_type = ?", key
            )
            if row is None:
                return False
            taken = await conn.execute("DELETE FROM prover_notices WHERE external_id = ? AND job_type = ?", key)
        return taken == 1 and float(row["received_at"]) >= received_after

    async def count_jobs(self) -> dict[tuple[JobType, JobStatus], int]:
        async with self.db.use() as conn:
            rows = await conn.fetch_all("SELECT job_type, status, COUNT(*) AS n FROM jobs GROUP BY job_type, status")
        return {(JobType(r["job_type"]), JobStatus(r["status"])): int(r["n"]) for r in rows}

    async def stalled_jobs(self, statuses: Sequence[JobStatus], updated_before: float, limit: int) -> list[Job]:
        clause, values = in_("status", [s.value for s in statuses])
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {clause} AND updated_at < ? ORDER BY updated_at" + _limit(limit),
            [*values, updated_before],
        )

    async def _one(self, sql: str, params: Sequence[Any]) -> Job | None:
        async with self.db.use() as conn:
            row = await conn.fetch_one(sql, params)
        return job_from_row(row) if row else None

    async def _many(self, sql: str, params: Sequence[Any]) -> list[Job]:
        async with self.db.use() as conn:
            rows = await conn.fetch_all(sql, params)
        return [job_from_row(r) for r in rows]

    # -- batches ----------------------------------------------------------------------------------

    async def count_snos_batches(self, *, aggregator_index: int) -> int:
        async with self.db.use() as conn:
            row = await conn.fetch_one(
                f"SELECT COUNT(*) AS n FROM {SNOS_BATCHES} WHERE aggregator_batch_index = ?", (aggregator_index,)
            )
        return 0 if row is None else int(row["n"])

    async def _batch_doc_for_block(self, table: str, block_number: int) -> dict[str, Any] | None:
        """Ranges are disjoint, so the batch with the greatest start at or below the block is the only
        candidate: one probe of the UNIQUE index on start_block, whatever the number of batches."""
        async with self.db.use() as conn:
            row = await conn.fetch_one(
                f"SELECT doc, version, end_block FROM {table} WHERE start_block <= ? ORDER BY start_block DESC LIMIT 1",
                (block_number,),
            )
        return batch_doc(row) if row is not None and row["end_block"] >= block_number else None

    async def _write_new_batch(self, batch: SnosBatch | AggregatorBatch) -> None:
        what = describe_batch(batch)
        table = batch_table(batch)
        columns = batch_columns(batch)
        try:
            async with self.db.atomic() as conn:
                if await conn.fetch_one(f"SELECT 1 AS one FROM {table} WHERE idx = ?", (batch.index,)) is not None:
                    raise batch_exists_error(batch)
                await _refuse_overlap(conn, batch)
                await conn.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders(len(columns))})",
                    list(columns.values()),
                )
        except self._dialect.integrity_errors as exc:  # another writer got there between check and insert
            raise AlreadyExists(f"{what} (blocks {batch.start_block}-{batch.end_block}): {exc}") from exc

    async def _write_batch(self, read: SnosBatch | AggregatorBatch, stored: SnosBatch | AggregatorBatch) -> None:
        """The row is checked and written in one transaction, so another writer (another process included)
        cannot come in between."""
        what = describe_batch(read)
        table = batch_table(read)
        columns = batch_columns(stored)
        del columns["idx"], columns["version"]
        assignments = ", ".join(f"{name} = ?" for name in columns)
        try:
            async with self.db.atomic() as conn:
                row = await conn.fetch_one(
                    f"SELECT version FROM {table} WHERE idx = ?{self._dialect.for_update}", (read.index,)
                )
                check_batch_version(read, None if row is None else int(row["version"]))
                await _refuse_overlap(conn, stored)
                await conn.execute(
                    f"UPDATE {table} SET {assignments}, version = version + 1 WHERE idx = ?",
                    [*columns.values(), read.index],
                )
        except self._dialect.integrity_errors as exc:
            raise AlreadyExists(f"{what} (blocks {stored.start_block}-{stored.end_block}): {exc}") from exc

    async def _batch_docs(self, table: str, query: BatchQuery) -> list[dict[str, Any]]:
        found = _Filters()
        found.within("idx", query.indexes)
        found.within("status", query.statuses)
        if query.aggregator_index is not None:
            found.add("aggregator_batch_index = ?", query.aggregator_index)
        if query.min_index is not None:
            found.add("idx >= ?", query.min_index)
        if query.without_job is not None:
            found.add(
                f"NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_type = ? AND j.internal_id = {table}.idx)",
                query.without_job,
            )
        order = "DESC" if query.descending else "ASC"
        sql = f"SELECT doc, version FROM {table}{where(found.clauses)} ORDER BY idx {order}"
        async with self.db.use() as conn:
            rows = await conn.fetch_all(sql + _limit(query.limit), found.params)
        return [batch_doc(r) for r in rows]

    # -- locks ------------------------------------------------------------------------------------

    async def acquire(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take the lock until the database's now + ``ttl_s``; its owner takes it again (extends it); an
        expired lock is free at once."""
        now, now_params = self._dialect.now()
        async with self.db.use() as conn:
            changed = await conn.execute(
                f"INSERT INTO locks (key, owner, expires_at) VALUES (?, ?, {now} + ?)"
                " ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
                f" WHERE locks.expires_at <= {now} OR locks.owner = excluded.owner",
                (key, owner, *now_params, float(ttl_s), *now_params),
            )
        return changed == 1

    async def release(self, key: str, owner: str) -> bool:
        async with self.db.use() as conn:
            return await conn.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (key, owner)) == 1

    # -- pauses -----------------------------------------------------------------------------------

    async def pause(self, pause: Pause) -> tuple[Pause, bool]:
        async with self.db.atomic() as conn:
            changed = await conn.execute(
                "INSERT INTO pauses (stage, reason, paused_by, since) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (stage) DO NOTHING",
                (pause.stage.value, pause.reason, pause.by, pause.since),
            )
            row = await conn.fetch_one(
                "SELECT stage, reason, paused_by, since FROM pauses WHERE stage = ?", (pause.stage.value,)
            )
        assert row is not None
        return _pause(row), changed == 1

    async def resume(self, stage: Stage) -> Pause | None:
        async with self.db.atomic() as conn:
            row = await conn.fetch_one(
                f"SELECT stage, reason, paused_by, since FROM pauses WHERE stage = ?{self._dialect.for_update}",
                (stage.value,),
            )
            if row is None:
                return None
            await conn.execute("DELETE FROM pauses WHERE stage = ?", (stage.value,))
        return _pause(row)

    async def pauses(self) -> dict[Stage, Pause]:
        async with self.db.use() as conn:
            rows = await conn.fetch_all("SELECT stage, reason, paused_by, since FROM pauses ORDER BY stage")
        found = (_pause(row) for row in rows if row["stage"] in STAGES)
        return {p.stage: p for p in found}


STAGES = frozenset(s.value for s in Stage)
"""A stage a newer orchestrator may pause, which this one does not know, is not read."""


def _pause(row: Any) -> Pause:
    return Pause(stage=Stage(row["stage"]), reason=row["reason"], by=row["paused_by"], since=float(row["since"]))


class _Filters:
    """The clauses of a WHERE and their parameters, in order."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params += params

    def within(self, column: str, values: Sequence[Any]) -> None:
        """``column IN (values)``; no clause for no values (any value)."""
        if values:
            clause, params = in_(column, values)
            self.add(clause, *params)
