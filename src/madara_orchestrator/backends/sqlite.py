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
from madara_orchestrator.domain.errors import StaleVersion
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

    async def save_snos_batch(self, batch: SnosBatch) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO snos_batches (idx, aggregator_batch_index, start_block, end_block, status, doc)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT (idx) DO UPDATE SET aggregator_batch_index ="
                " excluded.aggregator_batch_index, start_block = excluded.start_block, end_block ="
                " excluded.end_block, status = excluded.status, doc = excluded.doc",
                (
                    batch.index,
                    batch.aggregator_batch_index,
                    batch.start_block,
                    batch.end_block,
                    batch.status.value,
                    json.dumps(batch.to_json()),
                ),
            )

        await self.db.write(run)

    async def save_aggregator_batch(self, batch: AggregatorBatch) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO aggregator_batches (idx, start_block, end_block, status, doc) VALUES (?,?,?,?,?)"
                " ON CONFLICT (idx) DO UPDATE SET start_block = excluded.start_block, end_block ="
                " excluded.end_block, status = excluded.status, doc = excluded.doc",
                (
                    batch.index,
                    batch.start_block,
                    batch.end_block,
                    batch.status.value,
                    json.dumps(batch.to_json()),
                ),
            )

        await self.db.write(run)

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
        docs = await self._docs("snos_batches", clauses, params, limit, descending)
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
        docs = await self._docs("aggregator_batches", clauses, params, limit, descending)
        return [AggregatorBatch.from_json(d) for d in docs]

    async def snos_batches_without_jobs(
        self, status: SnosBatchStatus, *, min_index: int = 0, limit: int | None = None
    ) -> list[SnosBatch]:
        clauses = [
            "status = ?",
            "idx >= ?",
            "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_type = ? AND j.internal_id = snos_batches.idx)",
        ]
        docs = await self._docs(
            "snos_batches", clauses, [status.value, min_index, JobType.SNOS_RUN.value], limit, False
        )
        return [SnosBatch.from_json(d) for d in docs]

    async def snos_batch_for_block(self, block_number: int) -> SnosBatch | None:
        docs = await self._docs("snos_batches", ["start_block <= ?", "end_block >= ?"], [block_number] * 2, 1, True)
        return SnosBatch.from_json(docs[0]) if docs else None

    async def aggregator_batch_for_block(self, block_number: int) -> AggregatorBatch | None:
        docs = await self._docs(
            "aggregator_batches", ["start_block <= ?", "end_block >= ?"], [block_number] * 2, 1, True
        )
        return AggregatorBatch.from_json(docs[0]) if docs else None

    async def set_snos_batch_status(self, index: int, status: SnosBatchStatus, *, now: float) -> None:
        await self._set_status("snos_batches", index, status.value, now)

    async def set_aggregator_batch_status(self, index: int, status: AggregatorBatchStatus, *, now: float) -> None:
        await self._set_status("aggregator_batches", index, status.value, now)

    async def _set_status(self, table: str, index: int, status: str, now: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"UPDATE {table} SET status = ?, doc = json_set(doc, '$.status', ?, '$.updated_at', ?) WHERE idx = ?",
                (status, status, now, index),
            )

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
        sql = f"SELECT doc FROM {table}{_where(clauses)} ORDER BY idx {'DESC' if descending else 'ASC'}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [json.loads(r[0]) for r in conn.execute(sql, params).fetchall()]

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
