"""PostgreSQL job store, batch store and lock service: ``SqliteStore``'s semantics for several processes.

Rows are laid out as in SQLite (the same columns; ``metadata`` and batch ``doc`` as jsonb). Every write that
checks before it writes (version guards, batch overlaps) does both in one transaction on a row it locked,
so two processes cannot split them; the exclusion constraints on batch ranges hold even against a race.

Lock expiry is reckoned on the database server's clock (``clock_timestamp()`` in the statement), whatever
the caller's clock says. Job leases are written as the caller gives them (``now``, ``expires_at``): the
engine takes them from ``PostgresDatabase.clock``, the server's clock too.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from madara_orchestrator.backends.postgres_db import SQL_NOW, Connection, PostgresDatabase
from madara_orchestrator.backends.postgres_queue import insert_message
from madara_orchestrator.backends.sqlite import (
    AGGREGATOR_BATCHES,
    JOB_COLUMNS,
    SNOS_BATCHES,
    SNOS_KEYED,
    _batch_columns,
    _batch_table,
    _describe_batch,
    job_from_row,
    overlap_error,
)
from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatch,
    SnosBatchStatus,
)
from madara_orchestrator.domain.errors import AlreadyExists, InvalidInput, NotFound, StaleVersion
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType

JOB_ORDER_TIE = 'job_type COLLATE "C"'
"""Ties on internal_id are broken on the job type's bytes, as SQLite compares text, whatever the collation."""


def _where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _job_params(job: Job) -> list[Any]:
    return [
        job.id,
        job.internal_id,
        job.job_type.value,
        job.status.value,
        job.external_id,
        json.dumps(job.metadata.to_json()),
        job.version,
        job.created_at,
        job.updated_at,
        job.lease_owner,
        job.lease_expires_at,
        job.common.orchestrator_version,
    ]


async def _insert_job(conn: Connection, job: Job) -> bool:
    cursor = await conn.execute(
        f"INSERT INTO jobs ({JOB_COLUMNS}, orchestrator_version) VALUES ({', '.join(['%s'] * 12)})"
        " ON CONFLICT (job_type, internal_id) DO NOTHING",
        _job_params(job),
    )
    return cursor.rowcount == 1


def _batch_doc(row: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = dict(row["doc"])
    doc["version"] = int(row["version"])  # the guarded column is the truth
    return doc


async def _refuse_overlap(conn: Connection, batch: SnosBatch | AggregatorBatch) -> None:
    """``AlreadyExists`` when another batch holds a block of ``batch``'s range (ranges are disjoint, so only
    the other batch with the greatest start at or below our end can overlap)."""
    row = await (
        await conn.execute(
            f"SELECT idx, start_block, end_block FROM {_batch_table(batch)} WHERE start_block <= %s AND idx != %s"
            " ORDER BY start_block DESC LIMIT 1",
            (batch.end_block, batch.index),
        )
    ).fetchone()
    if row is not None and row["end_block"] >= batch.start_block:
        raise overlap_error(batch, int(row["idx"]), int(row["start_block"]), int(row["end_block"]))


class PostgresStore:
    """Implements ``Database`` (JobStore + BatchStore) and ``LockService`` on a ``PostgresDatabase``.

    ``clock`` (default: the database's) stamps the queue message of ``create_job_and_send``."""

    def __init__(self, db: PostgresDatabase, *, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self._clock: Callable[[], float] = clock if clock is not None else db.clock

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()

    # -- jobs -------------------------------------------------------------------------------------

    async def create_job(self, job: Job) -> bool:
        async with self.db.connection() as conn:
            return await _insert_job(conn, job)

    async def create_job_and_send(self, job: Job, queue: str, body: str, *, delay_s: float = 0.0) -> bool:
        """Insert the job and its first queue message in one transaction: both or neither. False (and
        nothing sent) when a job with the same (job_type, internal_id) exists."""
        async with self.db.transaction() as conn:
            if not await _insert_job(conn, job):
                return False
            await insert_message(conn, queue, body, now=self._clock(), delay_s=delay_s)
            return True

    async def get_job(self, job_id: uuid.UUID) -> Job | None:
        return await self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", [job_id])

    async def get_job_by_internal_id(self, job_type: JobType, internal_id: int) -> Job | None:
        return await self._one(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_type = %s AND internal_id = %s",
            [job_type.value, internal_id],
        )

    async def update_job(self, job: Job, *, now: float, only_if_lease_expired: bool = False) -> Job:
        sql = (
            "UPDATE jobs SET status = %s, external_id = %s, metadata = %s, version = version + 1, updated_at = %s,"
            " lease_owner = %s, lease_expires_at = %s WHERE id = %s AND version = %s"
        )
        params: list[Any] = [
            job.status.value,
            job.external_id,
            json.dumps(job.metadata.to_json()),
            now,
            job.lease_owner,
            job.lease_expires_at,
            job.id,
            job.version,
        ]
        if only_if_lease_expired:
            sql += " AND (lease_expires_at IS NULL OR lease_expires_at <= %s)"
            params.append(now)
        async with self.db.connection() as conn:
            changed = (await conn.execute(sql, params)).rowcount
        if changed != 1:
            raise StaleVersion(
                f"job {job.describe()} changed since version {job.version} was read; reload it and try again"
            )
        return dataclasses.replace(job, version=job.version + 1, updated_at=now)

    async def renew_lease(self, job_id: uuid.UUID, owner: str, expires_at: float) -> bool:
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET lease_expires_at = %s WHERE id = %s AND lease_owner = %s AND status = %s",
                (expires_at, job_id, owner, JobStatus.LOCKED_FOR_PROCESSING.value),
            )
            return cursor.rowcount == 1

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] = (),
        job_types: Sequence[JobType] = (),
        min_internal_id: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[Job]:
        clauses: list[str] = []
        params: list[Any] = []
        if statuses:
            clauses.append("status = ANY(%s)")
            params.append([s.value for s in statuses])
        if job_types:
            clauses.append("job_type = ANY(%s)")
            params.append([t.value for t in job_types])
        if min_internal_id is not None:
            clauses.append("internal_id >= %s")
            params.append(min_internal_id)
        order = "DESC" if descending else "ASC"
        params.append(limit)
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs{_where(clauses)} ORDER BY internal_id {order}, {JOB_ORDER_TIE} LIMIT %s",
            params,
        )

    async def latest_job(self, job_type: JobType, *, statuses: Sequence[JobStatus] = ()) -> Job | None:
        jobs = await self.list_jobs(job_types=[job_type], statuses=statuses, limit=1, descending=True)
        return jobs[0] if jobs else None

    async def oldest_job(self, job_type: JobType, *, excluding_statuses: Sequence[JobStatus] = ()) -> Job | None:
        return await self._one(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_type = %s AND NOT (status = ANY(%s))"
            " ORDER BY internal_id ASC LIMIT 1",
            [job_type.value, [s.value for s in excluding_statuses]],
        )

    async def jobs_without_successor(
        self,
        job_type: JobType,
        status: JobStatus,
        successor_type: JobType,
        *,
        min_internal_id: int = 0,
        limit: int | None = None,
    ) -> list[Job]:
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.job_type = %s AND j.status = %s AND j.internal_id >= %s"
            " AND NOT EXISTS (SELECT 1 FROM jobs s WHERE s.job_type = %s AND s.internal_id = j.internal_id)"
            " ORDER BY j.internal_id ASC LIMIT %s",
            [job_type.value, status.value, min_internal_id, successor_type.value, limit],
        )

    async def jobs_for_block(self, block_number: int) -> list[Job]:
        snos = await self.snos_batch_for_block(block_number)
        aggregator = await self.aggregator_batch_for_block(block_number)
        clauses: list[str] = []
        params: list[Any] = []
        if snos is not None:
            snos_types = [*SNOS_KEYED] + ([] if aggregator is not None else [JobType.STATE_TRANSITION])
            clauses.append("(job_type = ANY(%s) AND internal_id = %s)")
            params += [[t.value for t in snos_types], snos.index]
        if aggregator is not None:
            clauses.append("(job_type = ANY(%s) AND internal_id = %s)")
            params += [[JobType.AGGREGATOR.value, JobType.STATE_TRANSITION.value], aggregator.index]
        if not clauses:
            return []
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' OR '.join(clauses)} ORDER BY internal_id, {JOB_ORDER_TIE}",
            params,
        )

    async def jobs_by_external_id(self, external_id: str, job_types: Sequence[JobType]) -> list[Job]:
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE external_id = %s AND job_type = ANY(%s)"
            f" ORDER BY internal_id, {JOB_ORDER_TIE}",
            [external_id, [t.value for t in job_types]],
        )

    async def count_jobs(self) -> dict[tuple[JobType, JobStatus], int]:
        async with self.db.connection() as conn:
            rows = await (
                await conn.execute("SELECT job_type, status, COUNT(*) AS n FROM jobs GROUP BY job_type, status")
            ).fetchall()
        return {(JobType(r["job_type"]), JobStatus(r["status"])): int(r["n"]) for r in rows}

    async def stalled_jobs(self, statuses: Sequence[JobStatus], updated_before: float, limit: int) -> list[Job]:
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = ANY(%s) AND updated_at < %s ORDER BY updated_at LIMIT %s",
            [[s.value for s in statuses], updated_before, int(limit)],
        )

    async def _one(self, sql: str, params: Sequence[Any]) -> Job | None:
        async with self.db.connection() as conn:
            row = await (await conn.execute(sql, params)).fetchone()
        return job_from_row(row) if row else None

    async def _many(self, sql: str, params: Sequence[Any]) -> list[Job]:
        async with self.db.connection() as conn:
            rows = await (await conn.execute(sql, params)).fetchall()
        return [job_from_row(r) for r in rows]

    # -- batches ----------------------------------------------------------------------------------

    async def insert_snos_batch(self, batch: SnosBatch) -> SnosBatch:
        await self._insert_batch(batch)
        return batch

    async def update_snos_batch(self, batch: SnosBatch, *, now: float) -> SnosBatch:
        stored = dataclasses.replace(batch, version=batch.version + 1, updated_at=now)
        await self._update_batch(batch, stored)
        return stored

    async def insert_aggregator_batch(self, batch: AggregatorBatch) -> AggregatorBatch:
        await self._insert_batch(batch)
        return batch

    async def update_aggregator_batch(self, batch: AggregatorBatch, *, now: float) -> AggregatorBatch:
        stored = dataclasses.replace(batch, version=batch.version + 1, updated_at=now)
        await self._update_batch(batch, stored)
        return stored

    async def get_snos_batch(self, index: int) -> SnosBatch | None:
        found = await self.list_snos_batches(indexes=[index])
        return found[0] if found else None

    async def get_aggregator_batch(self, index: int) -> AggregatorBatch | None:
        found = await self.list_aggregator_batches(indexes=[index])
        return found[0] if found else None

    async def latest_snos_batch(self) -> SnosBatch | None:
        found = await self.list_snos_batches(limit=1, descending=True)
        return found[0] if found else None

    async def latest_aggregator_batch(self) -> AggregatorBatch | None:
        found = await self.list_aggregator_batches(limit=1, descending=True)
        return found[0] if found else None

    async def list_snos_batches(
        self,
        *,
        indexes: Sequence[int] = (),
        statuses: Sequence[SnosBatchStatus] = (),
        aggregator_index: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[SnosBatch]:
        clauses, params = self._batch_filters(indexes, [s.value for s in statuses])
        if aggregator_index is not None:
            clauses.append("aggregator_batch_index = %s")
            params.append(aggregator_index)
        docs = await self._docs(SNOS_BATCHES, clauses, params, limit, descending)
        return [SnosBatch.from_json(d) for d in docs]

    async def list_aggregator_batches(
        self,
        *,
        indexes: Sequence[int] = (),
        statuses: Sequence[AggregatorBatchStatus] = (),
        limit: int | None = None,
        descending: bool = False,
    ) -> list[AggregatorBatch]:
        clauses, params = self._batch_filters(indexes, [s.value for s in statuses])
        docs = await self._docs(AGGREGATOR_BATCHES, clauses, params, limit, descending)
        return [AggregatorBatch.from_json(d) for d in docs]

    async def snos_batches_without_jobs(
        self, status: SnosBatchStatus, *, min_index: int = 0, limit: int | None = None
    ) -> list[SnosBatch]:
        clauses = [
            "status = %s",
            "idx >= %s",
            "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_type = %s AND j.internal_id = snos_batches.idx)",
        ]
        docs = await self._docs(SNOS_BATCHES, clauses, [status.value, min_index, JobType.SNOS_RUN.value], limit, False)
        return [SnosBatch.from_json(d) for d in docs]

    async def count_snos_batches(self, *, aggregator_index: int) -> int:
        async with self.db.connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT COUNT(*) AS n FROM {SNOS_BATCHES} WHERE aggregator_batch_index = %s", (aggregator_index,)
                )
            ).fetchone()
        return 0 if row is None else int(row["n"])

    async def snos_batch_for_block(self, block_number: int) -> SnosBatch | None:
        doc = await self._batch_doc_for_block(SNOS_BATCHES, block_number)
        return None if doc is None else SnosBatch.from_json(doc)

    async def aggregator_batch_for_block(self, block_number: int) -> AggregatorBatch | None:
        doc = await self._batch_doc_for_block(AGGREGATOR_BATCHES, block_number)
        return None if doc is None else AggregatorBatch.from_json(doc)

    async def _batch_doc_for_block(self, table: str, block_number: int) -> dict[str, Any] | None:
        """Ranges are disjoint: the batch with the greatest start at or below the block is the only candidate
        (one probe of the unique index on start_block)."""
        async with self.db.connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT doc, version, end_block FROM {table} WHERE start_block <= %s"
                    " ORDER BY start_block DESC LIMIT 1",
                    (block_number,),
                )
            ).fetchone()
        return _batch_doc(row) if row is not None and row["end_block"] >= block_number else None

    async def _insert_batch(self, batch: SnosBatch | AggregatorBatch) -> None:
        what = _describe_batch(batch)
        if batch.version != 0:
            raise InvalidInput(f"{what}: a new batch must have version 0, got {batch.version}")
        if batch.start_block > batch.end_block:
            raise InvalidInput(f"{what}: start block {batch.start_block} is after end block {batch.end_block}")
        table = _batch_table(batch)
        columns = _batch_columns(batch)
        try:
            async with self.db.transaction() as conn:
                exists = await (await conn.execute(f"SELECT 1 FROM {table} WHERE idx = %s", (batch.index,))).fetchone()
                if exists is not None:
                    raise AlreadyExists(f"{what} already exists; read it and update it instead of inserting it again")
                await _refuse_overlap(conn, batch)
                await conn.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                    list(columns.values()),
                )
        except psycopg.IntegrityError as exc:  # a writer in another process got there between check and insert
            raise AlreadyExists(f"{what} (blocks {batch.start_block}-{batch.end_block}): {exc}") from exc

    async def _update_batch(self, read: SnosBatch | AggregatorBatch, stored: SnosBatch | AggregatorBatch) -> None:
        """Write ``stored`` over the row if it is still at ``read.version``: the row is locked, checked and
        written in one transaction."""
        what = _describe_batch(read)
        if stored.start_block > stored.end_block:
            raise InvalidInput(f"{what}: start block {stored.start_block} is after end block {stored.end_block}")
        table = _batch_table(read)
        columns = _batch_columns(stored)
        del columns["idx"], columns["version"]
        assignments = ", ".join(f"{name} = %s" for name in columns)
        try:
            async with self.db.transaction() as conn:
                row = await (
                    await conn.execute(f"SELECT version FROM {table} WHERE idx = %s FOR UPDATE", (read.index,))
                ).fetchone()
                if row is None:
                    raise NotFound(f"{what} not found; it must be inserted before it is updated")
                if int(row["version"]) != read.version:
                    raise StaleVersion(
                        f"{what} changed since version {read.version} was read (now version {row['version']});"
                        " reload it and try again"
                    )
                await _refuse_overlap(conn, stored)
                await conn.execute(
                    f"UPDATE {table} SET {assignments}, version = version + 1 WHERE idx = %s",
                    [*columns.values(), read.index],
                )
        except psycopg.IntegrityError as exc:
            raise AlreadyExists(f"{what} (blocks {stored.start_block}-{stored.end_block}): {exc}") from exc

    @staticmethod
    def _batch_filters(indexes: Sequence[int], statuses: Sequence[str]) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if indexes:
            clauses.append("idx = ANY(%s)")
            params.append(list(indexes))
        if statuses:
            clauses.append("status = ANY(%s)")
            params.append(list(statuses))
        return clauses, params

    async def _docs(
        self, table: str, clauses: list[str], params: list[Any], limit: int | None, descending: bool
    ) -> list[dict[str, Any]]:
        order = "DESC" if descending else "ASC"
        async with self.db.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT doc, version FROM {table}{_where(clauses)} ORDER BY idx {order} LIMIT %s",
                    [*params, limit],
                )
            ).fetchall()
        return [_batch_doc(r) for r in rows]

    # -- locks ------------------------------------------------------------------------------------

    async def acquire(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take the lock until the database's now + ``ttl_s``; its owner takes it again (extends it); an
        expired lock is free at once."""
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                f"INSERT INTO locks (key, owner, expires_at) VALUES (%s, %s, {SQL_NOW} + %s)"
                " ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
                f" WHERE locks.expires_at <= {SQL_NOW} OR locks.owner = excluded.owner",
                (key, owner, float(ttl_s)),
            )
            return cursor.rowcount == 1

    async def release(self, key: str, owner: str) -> bool:
        async with self.db.connection() as conn:
            cursor = await conn.execute("DELETE FROM locks WHERE key = %s AND owner = %s", (key, owner))
            return cursor.rowcount == 1
