"""SQLite job store, batch store and lock service (embedded default)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from typing import Any

from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatch,
    SnosBatchStatus,
)
from madara_orchestrator.domain.errors import AlreadyExists, InvalidInput, NotFound, StaleVersion
from madara_orchestrator.domain.jobs import Job, JobMetadata, JobStatus, JobType

JOB_COLUMNS = (
    "id, internal_id, job_type, status, external_id, metadata, version, created_at, updated_at,"
    " lease_owner, lease_expires_at"
)

# Jobs keyed by a SNOS batch index; the others (Aggregator, and StateTransition on L2) by an
# aggregator batch index. Used to find the jobs of a block (fixes SPEC §22 quirk 18).
SNOS_KEYED = (JobType.SNOS_RUN, JobType.PROOF_CREATION, JobType.PROOF_REGISTRATION, JobType.DATA_SUBMISSION)


def job_from_row(row: sqlite3.Row | dict[str, Any]) -> Job:
    return Job(
        id=uuid.UUID(str(row["id"])),
        internal_id=int(row["internal_id"]),
        job_type=JobType(row["job_type"]),
        status=JobStatus(row["status"]),
        external_id=str(row["external_id"]),
        metadata=JobMetadata.from_json(
            row["metadata"] if isinstance(row["metadata"], dict) else json.loads(row["metadata"])
        ),
        version=int(row["version"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        lease_owner=row["lease_owner"],
        lease_expires_at=None if row["lease_expires_at"] is None else float(row["lease_expires_at"]),
    )


def _in(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def _where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


SNOS_BATCHES = "snos_batches"
AGGREGATOR_BATCHES = "aggregator_batches"


def _batch_table(batch: SnosBatch | AggregatorBatch) -> str:
    return SNOS_BATCHES if isinstance(batch, SnosBatch) else AGGREGATOR_BATCHES


def _describe_batch(batch: SnosBatch | AggregatorBatch) -> str:
    return f"{'SNOS' if isinstance(batch, SnosBatch) else 'aggregator'} batch {batch.index}"


def _batch_columns(batch: SnosBatch | AggregatorBatch) -> dict[str, Any]:
    """The row of a batch: the queried fields as columns, the whole record as ``doc``."""
    columns: dict[str, Any] = {
        "idx": batch.index,
        "start_block": batch.start_block,
        "end_block": batch.end_block,
        "status": batch.status.value,
        "version": batch.version,
        "doc": json.dumps(batch.to_json()),
    }
    if isinstance(batch, SnosBatch):
        columns["aggregator_batch_index"] = batch.aggregator_batch_index
    return columns


def _batch_doc(row: sqlite3.Row) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(row["doc"])
    doc["version"] = int(row["version"])  # the guarded column is the truth
    return doc


def _refuse_overlap(conn: sqlite3.Connection, batch: SnosBatch | AggregatorBatch) -> None:
    """``AlreadyExists`` when another batch holds a block of ``batch``'s range. The stored ranges are
    disjoint, so only the other batch with the greatest start at or below our end can overlap."""
    row = conn.execute(
        f"SELECT idx, start_block, end_block FROM {_batch_table(batch)} WHERE start_block <= ? AND idx != ?"
        " ORDER BY start_block DESC LIMIT 1",
        (batch.end_block, batch.index),
    ).fetchone()
    if row is not None and row["end_block"] >= batch.start_block:
        raise overlap_error(batch, row["idx"], row["start_block"], row["end_block"])


def overlap_error(batch: SnosBatch | AggregatorBatch, index: int, start_block: int, end_block: int) -> AlreadyExists:
    """The refusal of ``batch`` because the stored batch ``index`` (of the same kind) holds some of its blocks."""
    kind = "SNOS" if isinstance(batch, SnosBatch) else "aggregator"
    return AlreadyExists(
        f"{_describe_batch(batch)} (blocks {batch.start_block}-{batch.end_block}) overlaps {kind} batch"
        f" {index} (blocks {start_block}-{end_block}); a block belongs to one batch only"
    )


class SqliteStore:
    """Implements ``Database`` (JobStore + BatchStore) and ``LockService`` on one SQLite file."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()

    # -- jobs -------------------------------------------------------------------------------------

    async def create_job(self, job: Job) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"INSERT INTO jobs ({JOB_COLUMNS}, orchestrator_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (job_type, internal_id) DO NOTHING",
                (
                    str(job.id),
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
                ),
            )
            return cursor.rowcount == 1

        return await self.db.write(run)

    async def get_job(self, job_id: uuid.UUID) -> Job | None:
        return await self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", [str(job_id)])

    async def get_job_by_internal_id(self, job_type: JobType, internal_id: int) -> Job | None:
        return await self._one(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_type = ? AND internal_id = ?",
            [job_type.value, internal_id],
        )

    async def update_job(self, job: Job, *, now: float, only_if_lease_expired: bool = False) -> Job:
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
            str(job.id),
            job.version,
        ]
        if only_if_lease_expired:
            sql += " AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"
            params.append(now)

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(sql, params).rowcount

        if await self.db.write(run) != 1:
            raise StaleVersion(
                f"job {job.describe()} changed since version {job.version} was read; reload it and try again"
            )
        return dataclasses.replace(job, version=job.version + 1, updated_at=now)

    async def renew_lease(self, job_id: uuid.UUID, owner: str, expires_at: float) -> bool:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status = ?",
                (expires_at, str(job_id), owner, JobStatus.LOCKED_FOR_PROCESSING.value),
            ).rowcount

        return await self.db.write(run) == 1

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
            clause, values = _in("status", [s.value for s in statuses])
            clauses.append(clause)
            params += values
        if job_types:
            clause, values = _in("job_type", [t.value for t in job_types])
            clauses.append(clause)
            params += values
        if min_internal_id is not None:
            clauses.append("internal_id >= ?")
            params.append(min_internal_id)
        order = "DESC" if descending else "ASC"
        sql = f"SELECT {JOB_COLUMNS} FROM jobs{_where(clauses)} ORDER BY internal_id {order}, job_type"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return await self._many(sql, params)

    async def latest_job(self, job_type: JobType, *, statuses: Sequence[JobStatus] = ()) -> Job | None:
        jobs = await self.list_jobs(job_types=[job_type], statuses=statuses, limit=1, descending=True)
        return jobs[0] if jobs else None

    async def oldest_job(self, job_type: JobType, *, excluding_statuses: Sequence[JobStatus] = ()) -> Job | None:
        clauses = ["job_type = ?"]
        params: list[Any] = [job_type.value]
        if excluding_statuses:
            clause, values = _in("status", [s.value for s in excluding_statuses])
            clauses.append("NOT " + clause)
            params += values
        return await self._one(
            f"SELECT {JOB_COLUMNS} FROM jobs{_where(clauses)} ORDER BY internal_id ASC LIMIT 1", params
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
        sql = (
            f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.job_type = ? AND j.status = ? AND j.internal_id >= ?"
            " AND NOT EXISTS (SELECT 1 FROM jobs s WHERE s.job_type = ? AND s.internal_id = j.internal_id)"
            " ORDER BY j.internal_id ASC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return await self._many(sql, [job_type.value, status.value, min_internal_id, successor_type.value])

    async def jobs_for_block(self, block_number: int) -> list[Job]:
        snos = await self.snos_batch_for_block(block_number)
        aggregator = await self.aggregator_batch_for_block(block_number)
        clauses: list[str] = []
        params: list[Any] = []
        if snos is not None:
            snos_types = [*SNOS_KEYED] + ([] if aggregator is not None else [JobType.STATE_TRANSITION])
            clause, values = _in("job_type", [t.value for t in snos_types])
            clauses.append(f"({clause} AND internal_id = ?)")
            params += [*values, snos.index]
        if aggregator is not None:
            clauses.append("(job_type IN (?, ?) AND internal_id = ?)")
            params += [JobType.AGGREGATOR.value, JobType.STATE_TRANSITION.value, aggregator.index]
        if not clauses:
            return []
        return await self._many(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' OR '.join(clauses)}", params)

    async def jobs_by_external_id(self, external_id: str, job_types: Sequence[JobType]) -> list[Job]:
        clause, values = _in("job_type", [t.value for t in job_types])
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE external_id = ? AND {clause}", [external_id, *values]
        )

    async def count_jobs(self) -> dict[tuple[JobType, JobStatus], int]:
        def run(conn: sqlite3.Connection) -> dict[tuple[JobType, JobStatus], int]:
            rows = conn.execute("SELECT job_type, status, COUNT(*) FROM jobs GROUP BY job_type, status").fetchall()
            return {(JobType(r[0]), JobStatus(r[1])): int(r[2]) for r in rows}

        return await self.db.read(run)

    async def stalled_jobs(self, statuses: Sequence[JobStatus], updated_before: float, limit: int) -> list[Job]:
        clause, values = _in("status", [s.value for s in statuses])
        return await self._many(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {clause} AND updated_at < ? ORDER BY updated_at LIMIT {int(limit)}",
            [*values, updated_before],
        )

    async def _one(self, sql: str, params: Sequence[Any]) -> Job | None:
        def run(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(sql, params).fetchone()
            return job_from_row(row) if row else None

        return await self.db.read(run)

    async def _many(self, sql: str, params: Sequence[Any]) -> list[Job]:
        def run(conn: sqlite3.Connection) -> list[Job]:
            return [job_from_row(r) for r in conn.execute(sql, params).fetchall()]

        return await self.db.read(run)

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
            clauses.append("aggregator_batch_index = ?")
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
            "status = ?",
            "idx >= ?",
            "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_type = ? AND j.internal_id = snos_batches.idx)",
        ]
        docs = await self._docs(SNOS_BATCHES, clauses, [status.value, min_index, JobType.SNOS_RUN.value], limit, False)
        return [SnosBatch.from_json(d) for d in docs]

    async def count_snos_batches(self, *, aggregator_index: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                f"SELECT COUNT(*) FROM {SNOS_BATCHES} WHERE aggregator_batch_index = ?", (aggregator_index,)
            ).fetchone()
            return int(row[0])

        return await self.db.read(run)

    async def snos_batch_for_block(self, block_number: int) -> SnosBatch | None:
        doc = await self._batch_doc_for_block(SNOS_BATCHES, block_number)
        return None if doc is None else SnosBatch.from_json(doc)

    async def aggregator_batch_for_block(self, block_number: int) -> AggregatorBatch | None:
        doc = await self._batch_doc_for_block(AGGREGATOR_BATCHES, block_number)
        return None if doc is None else AggregatorBatch.from_json(doc)

    async def _batch_doc_for_block(self, table: str, block_number: int) -> dict[str, Any] | None:
        """Ranges are disjoint, so the batch with the greatest start at or below the block is the only
        candidate: one probe of the UNIQUE index on start_block, whatever the number of batches."""

        def run(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                f"SELECT doc, version, end_block FROM {table} WHERE start_block <= ? ORDER BY start_block DESC LIMIT 1",
                (block_number,),
            ).fetchone()
            return _batch_doc(row) if row is not None and row["end_block"] >= block_number else None

        return await self.db.read(run)

    async def _insert_batch(self, batch: SnosBatch | AggregatorBatch) -> None:
        what = _describe_batch(batch)
        if batch.version != 0:
            raise InvalidInput(f"{what}: a new batch must have version 0, got {batch.version}")
        if batch.start_block > batch.end_block:
            raise InvalidInput(f"{what}: start block {batch.start_block} is after end block {batch.end_block}")
        table = _batch_table(batch)
        columns = _batch_columns(batch)

        def run(conn: sqlite3.Connection) -> None:
            if conn.execute(f"SELECT 1 FROM {table} WHERE idx = ?", (batch.index,)).fetchone() is not None:
                raise AlreadyExists(f"{what} already exists; read it and update it instead of inserting it again")
            _refuse_overlap(conn, batch)
            try:
                conn.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                    list(columns.values()),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"{what} (blocks {batch.start_block}-{batch.end_block}): {exc}") from exc

        await self.db.write(run)

    async def _update_batch(self, read: SnosBatch | AggregatorBatch, stored: SnosBatch | AggregatorBatch) -> None:
        """Write ``stored`` over the row if it is still at ``read.version``; one transaction, so the
        checks and the write cannot be split by another writer (another process included)."""
        what = _describe_batch(read)
        if stored.start_block > stored.end_block:
            raise InvalidInput(f"{what}: start block {stored.start_block} is after end block {stored.end_block}")
        table = _batch_table(read)
        columns = _batch_columns(stored)
        del columns["idx"], columns["version"]
        assignments = ", ".join(f"{name} = ?" for name in columns)

        def run(conn: sqlite3.Connection) -> None:
            row = conn.execute(f"SELECT version FROM {table} WHERE idx = ?", (read.index,)).fetchone()
            if row is None:
                raise NotFound(f"{what} not found; it must be inserted before it is updated")
            if int(row[0]) != read.version:
                raise StaleVersion(
                    f"{what} changed since version {read.version} was read (now version {row[0]});"
                    " reload it and try again"
                )
            _refuse_overlap(conn, stored)
            try:
                changed = conn.execute(
                    f"UPDATE {table} SET {assignments}, version = version + 1 WHERE idx = ? AND version = ?",
                    [*columns.values(), read.index, read.version],
                ).rowcount
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"{what} (blocks {stored.start_block}-{stored.end_block}): {exc}") from exc
            if changed != 1:  # pragma: no cover - the checks above ran in this same transaction
                raise StaleVersion(f"{what} changed since version {read.version} was read; reload it and try again")

        await self.db.write(run)

    @staticmethod
    def _batch_filters(indexes: Sequence[int], statuses: Sequence[str]) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if indexes:
            clauses.append(f"idx IN ({','.join('?' * len(indexes))})")
            params += list(indexes)
        if statuses:
            clause, values = _in("status", statuses)
            clauses.append(clause)
            params += values
        return clauses, params

    async def _docs(
        self, table: str, clauses: list[str], params: list[Any], limit: int | None, descending: bool
    ) -> list[dict[str, Any]]:
        sql = f"SELECT doc, version FROM {table}{_where(clauses)} ORDER BY idx {'DESC' if descending else 'ASC'}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [_batch_doc(r) for r in conn.execute(sql, params).fetchall()]

        return await self.db.read(run)

    # -- locks ------------------------------------------------------------------------------------

    async def acquire(self, key: str, owner: str, ttl_s: float) -> bool:
        now = time.time()

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "INSERT INTO locks (key, owner, expires_at) VALUES (?,?,?) ON CONFLICT (key) DO UPDATE SET"
                " owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE locks.expires_at <= ? OR locks.owner = excluded.owner",
                (key, owner, now + ttl_s, now),
            ).rowcount

        return await self.db.write(run) == 1

    async def release(self, key: str, owner: str) -> bool:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (key, owner)).rowcount

        return await self.db.write(run) == 1
