"""In-memory job/batch store and lock service, queue, object store and settlement tx store, for fast tests: one
process, nothing kept. They pass the same contract tests as the real ones, and keep rows as the SQL store does (the same
columns, the record read back through the same decoding), so what a test reads back is what SQL would give.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.backends.base import (
    AGGREGATOR_BATCHES,
    SNOS_BATCHES,
    BatchQuery,
    JobKeys,
    JobQuery,
    QueueBase,
    StoreBase,
    WakeEvents,
    batch_columns,
    batch_doc,
    batch_exists_error,
    batch_table,
    check_batch_version,
    dead_letter_attributes,
    delivered,
    job_from_row,
    job_row,
    overlap_error,
    received,
    stale_job_error,
)
from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    SnosBatch,
)
from madara_orchestrator.domain.errors import AlreadyExists, InvalidInput, NotFound
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.domain.pause import Pause, Stage
from madara_orchestrator.domain.queues import QueueConfig
from madara_orchestrator.domain.settlement_tx import (
    AttemptRecord,
    AttemptStatus,
    KeyStatus,
    TxKeyRecord,
    TxTotals,
    free_nonce,
)
from madara_orchestrator.interfaces import Outgoing, QueueDepth, QueueMessage

Row = dict[str, Any]


def _job_order(row: Mapping[str, Any]) -> tuple[int, bytes]:
    return int(row["internal_id"]), str(row["job_type"]).encode()


def _first(rows: list[Row], limit: int | None) -> list[Row]:
    return rows if limit is None else rows[: max(0, int(limit))]


class MemoryStore(StoreBase):
    """Implements ``Database`` (JobStore + BatchStore), ``LockService`` and ``PauseStore`` in this process's memory."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        """``clock`` (default: ``time.time``, looked up at each use) reckons lock expiry."""
        self._jobs: dict[str, Row] = {}
        self._job_keys: dict[tuple[str, int], str] = {}
        self._batches: dict[str, dict[int, Row]] = {SNOS_BATCHES: {}, AGGREGATOR_BATCHES: {}}
        self._locks: dict[str, tuple[str, float]] = {}
        self._pauses: dict[Stage, Pause] = {}
        self._notices: dict[tuple[str, str], float] = {}
        self._clock = clock

    def _now(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- jobs -------------------------------------------------------------------------------------

    async def create_job(self, job: Job) -> bool:
        row = job_row(job)
        key = (row["job_type"], row["internal_id"])
        if key in self._job_keys:
            return False
        if row["id"] in self._jobs:
            raise AlreadyExists(f"job {job.id} already exists")
        self._jobs[row["id"]] = row
        self._job_keys[key] = row["id"]
        return True

    async def get_job(self, job_id: uuid.UUID) -> Job | None:
        row = self._jobs.get(str(job_id))
        return None if row is None else job_from_row(row)

    async def get_job_by_internal_id(self, job_type: JobType, internal_id: int) -> Job | None:
        job_id = self._job_keys.get((job_type.value, internal_id))
        return None if job_id is None else job_from_row(self._jobs[job_id])

    async def update_job(self, job: Job, *, now: float, only_if_lease_expired: bool = False) -> Job:
        row = self._jobs.get(str(job.id))
        lease = None if row is None else row["lease_expires_at"]
        if (
            row is None
            or row["version"] != job.version
            or (only_if_lease_expired and lease is not None and lease > now)
        ):
            raise stale_job_error(job)
        new = job_row(job)
        for column in ("status", "external_id", "metadata", "lease_owner", "lease_expires_at"):
            row[column] = new[column]
        row["version"] += 1
        row["updated_at"] = now
        return dataclasses.replace(job, version=job.version + 1, updated_at=now)

    async def renew_lease(self, job_id: uuid.UUID, owner: str, expires_at: float) -> bool:
        row = self._jobs.get(str(job_id))
        if row is None or row["lease_owner"] != owner or row["status"] != JobStatus.LOCKED_FOR_PROCESSING.value:
            return False
        row["lease_expires_at"] = expires_at
        return True

    def _select(
        self, *, statuses: Sequence[str] = (), job_types: Sequence[str] = (), min_internal_id: int | None = None
    ) -> list[Row]:
        return [
            row
            for row in self._jobs.values()
            if (not statuses or row["status"] in statuses)
            and (not job_types or row["job_type"] in job_types)
            and (min_internal_id is None or row["internal_id"] >= min_internal_id)
        ]

    async def _list_jobs(self, query: JobQuery) -> list[Job]:
        rows = [
            row
            for row in self._select(
                statuses=query.statuses, job_types=query.job_types, min_internal_id=query.min_internal_id
            )
            if query.without_successor is None or (query.without_successor, row["internal_id"]) not in self._job_keys
        ]
        rows.sort(key=lambda row: str(row["job_type"]).encode())  # ties: the job type, ascending either way
        rows.sort(key=lambda row: int(row["internal_id"]), reverse=query.descending)
        return [job_from_row(row) for row in _first(rows, query.limit)]

    async def oldest_job(self, job_type: JobType, *, excluding_statuses: Sequence[JobStatus] = ()) -> Job | None:
        excluded = {s.value for s in excluding_statuses}
        rows = [row for row in self._select(job_types=[job_type.value]) if row["status"] not in excluded]
        return job_from_row(min(rows, key=_job_order)) if rows else None

    async def _jobs_with_keys(self, keys: JobKeys) -> list[Job]:
        rows = [
            row
            for row in self._jobs.values()
            if any(row["job_type"] in types and row["internal_id"] == index for types, index in keys)
        ]
        return [job_from_row(row) for row in sorted(rows, key=_job_order)]

    async def jobs_by_external_id(self, external_id: str, job_types: Sequence[JobType]) -> list[Job]:
        rows = [
            row for row in self._select(job_types=[t.value for t in job_types]) if row["external_id"] == external_id
        ]
        return [job_from_row(row) for row in sorted(rows, key=_job_order)] if job_types else []

    async def remember_prover_notice(
        self, external_id: str, job_types: Sequence[JobType], *, received_at: float, forget_before: float
    ) -> None:
        self._notices = {key: at for key, at in self._notices.items() if at >= forget_before}
        for job_type in job_types:
            self._notices[(external_id, job_type.value)] = received_at

    async def take_prover_notice(self, external_id: str, job_type: JobType, *, received_after: float) -> bool:
        received_at = self._notices.pop((external_id, job_type.value), None)
        return received_at is not None and received_at >= received_after

    async def count_jobs(self) -> dict[tuple[JobType, JobStatus], int]:
        counts: dict[tuple[JobType, JobStatus], int] = {}
        for row in self._jobs.values():
            key = (JobType(row["job_type"]), JobStatus(row["status"]))
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def stalled_jobs(self, statuses: Sequence[JobStatus], updated_before: float, limit: int) -> list[Job]:
        rows = [row for row in self._select(statuses=[s.value for s in statuses]) if row["updated_at"] < updated_before]
        rows = rows if statuses else []
        return [job_from_row(row) for row in _first(sorted(rows, key=lambda row: row["updated_at"]), limit)]

    # -- batches ----------------------------------------------------------------------------------

    async def _batch_docs(self, table: str, query: BatchQuery) -> list[dict[str, Any]]:
        rows = [
            row
            for index, row in sorted(self._batches[table].items(), reverse=query.descending)
            if (not query.indexes or index in query.indexes)
            and (not query.statuses or row["status"] in query.statuses)
            and (query.aggregator_index is None or row["aggregator_batch_index"] == query.aggregator_index)
            and (query.min_index is None or index >= query.min_index)
            and (query.without_job is None or (query.without_job, index) not in self._job_keys)
        ]
        return [batch_doc(row) for row in _first(rows, query.limit)]

    async def count_snos_batches(self, *, aggregator_index: int) -> int:
        return sum(
            1 for row in self._batches[SNOS_BATCHES].values() if row["aggregator_batch_index"] == aggregator_index
        )

    def _holder(self, table: str, block_number: int, *, other_than: int | None = None) -> Row | None:
        """The batch with the greatest start at or below the block (ranges are disjoint: the only candidate)."""
        rows = [
            row
            for row in self._batches[table].values()
            if row["start_block"] <= block_number and row["idx"] != other_than
        ]
        return max(rows, key=lambda row: row["start_block"]) if rows else None

    async def _batch_doc_for_block(self, table: str, block_number: int) -> dict[str, Any] | None:
        row = self._holder(table, block_number)
        return batch_doc(row) if row is not None and row["end_block"] >= block_number else None

    def _refuse_overlap(self, batch: SnosBatch | AggregatorBatch) -> None:
        row = self._holder(batch_table(batch), batch.end_block, other_than=batch.index)
        if row is not None and row["end_block"] >= batch.start_block:
            raise overlap_error(batch, row["idx"], row["start_block"], row["end_block"])

    async def _write_new_batch(self, batch: SnosBatch | AggregatorBatch) -> None:
        rows = self._batches[batch_table(batch)]
        if batch.index in rows:
            raise batch_exists_error(batch)
        self._refuse_overlap(batch)
        rows[batch.index] = batch_columns(batch)

    async def _write_batch(self, read: SnosBatch | AggregatorBatch, stored: SnosBatch | AggregatorBatch) -> None:
        rows = self._batches[batch_table(read)]
        row = rows.get(read.index)
        check_batch_version(read, None if row is None else row["version"])
        self._refuse_overlap(stored)
        rows[read.index] = {**batch_columns(stored), "idx": read.index, "version": read.version + 1}

    # -- locks ------------------------------------------------------------------------------------

    async def acquire(self, key: str, owner: str, ttl_s: float) -> bool:
        now = self._now()
        held = self._locks.get(key)
        if held is not None and held[1] > now and held[0] != owner:
            return False
        self._locks[key] = (owner, now + ttl_s)
        return True

    async def release(self, key: str, owner: str) -> bool:
        held = self._locks.get(key)
        if held is None or held[0] != owner:
            return False
        del self._locks[key]
        return True

    # -- pauses -----------------------------------------------------------------------------------

    async def pause(self, pause: Pause) -> tuple[Pause, bool]:
        stored = self._pauses.setdefault(pause.stage, pause)
        return stored, stored is pause

    async def resume(self, stage: Stage) -> Pause | None:
        return self._pauses.pop(stage, None)

    async def pauses(self) -> dict[Stage, Pause]:
        return dict(sorted(self._pauses.items()))


class MemoryQueue(QueueBase):
    """A queue with SQS semantics (``SqlQueue``'s) in this process's memory."""

    def __init__(
        self,
        configs: Mapping[str, QueueConfig],
        *,
        dead_letter_names: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        max_idle_s: float = 5.0,
    ) -> None:
        super().__init__(configs, dead_letter_names=dead_letter_names, clock=clock, max_idle_s=max_idle_s)
        self._messages: dict[str, Row] = {}
        """By message id, in the order sent (a sequence number breaks ties on visibility)."""
        self._seq = 0
        self._wakeups: WakeEvents[str] = WakeEvents()

    async def _wake_event(self, queue: str) -> asyncio.Event:
        return self._wakeups.event(queue)

    def _of(self, queue: str) -> list[Row]:
        return [m for m in self._messages.values() if m["queue"] == queue]

    async def send(self, queue: str, body: str, *, delay_s: float = 0.0) -> str:
        self._config(queue)
        now = self._clock()
        message_id = str(uuid.uuid4())
        self._seq += 1
        self._messages[message_id] = {
            "seq": self._seq,
            "message_id": message_id,
            "queue": queue,
            "body": body,
            "attributes": {"OrchestratorVersion": ORCHESTRATOR_VERSION},
            "sent_at": now,
            "visible_at": now + max(0.0, delay_s),
            "receive_count": 0,
            "receipt": None,
        }
        self._wakeups.fire(queue)
        return message_id

    async def _try_receive(self, queue: str, config: QueueConfig) -> tuple[QueueMessage | None, float | None]:
        now = self._clock()
        if config.retention_s is not None:
            for message in self._of(queue):
                if message["sent_at"] < now - config.retention_s:
                    del self._messages[message["message_id"]]
        dead_letter = self._dead_letter_of(queue, config)
        while True:
            visible = [m for m in self._of(queue) if m["visible_at"] <= now]
            if not visible:
                upcoming = [m["visible_at"] for m in self._of(queue)]
                return None, min(upcoming) if upcoming else None
            message = min(visible, key=lambda m: (m["visible_at"], m["seq"]))
            if dead_letter is not None and message["receive_count"] >= config.max_receive_count:
                attributes = dead_letter_attributes(queue, message["receive_count"], message["sent_at"], now)
                message.update(queue=dead_letter, visible_at=now, receive_count=0, receipt=None)
                message["attributes"] = {**message["attributes"], **attributes}
                self._wakeups.fire(dead_letter)
                continue
            message.update(
                visible_at=now + config.visibility_timeout_s,
                receive_count=message["receive_count"] + 1,
                receipt=uuid.uuid4().hex,
                attributes=received(message["attributes"], now),
            )
            delivery = QueueMessage(
                queue=queue,
                message_id=message["message_id"],
                body=message["body"],
                receipt=message["receipt"],
                receive_count=message["receive_count"],
                attributes=delivered(message["attributes"]),
            )
            return delivery, None

    def _delivered(self, message: QueueMessage) -> Row | None:
        stored = self._messages.get(message.message_id)
        return stored if stored is not None and stored["receipt"] == message.receipt else None

    async def ack(self, message: QueueMessage) -> None:
        if self._delivered(message) is not None:
            del self._messages[message.message_id]

    async def nack(self, message: QueueMessage, *, delay_s: float = 0.0) -> None:
        stored = self._delivered(message)
        if stored is not None:
            stored.update(visible_at=self._clock() + max(0.0, delay_s), receipt=None)
            self._wakeups.fire(message.queue)

    async def extend(self, message: QueueMessage, *, visibility_s: float) -> None:
        stored = self._delivered(message)
        if stored is not None:
            stored["visible_at"] = self._clock() + visibility_s

    async def depth(self, queue: str) -> QueueDepth:
        now = self._clock()
        messages = self._of(queue)
        return QueueDepth(
            visible=sum(1 for m in messages if m["visible_at"] <= now),
            in_flight=sum(1 for m in messages if m["visible_at"] > now and m["receipt"] is not None),
            delayed=sum(1 for m in messages if m["visible_at"] > now and m["receipt"] is None),
        )


@dataclasses.dataclass(eq=False, repr=False)
class MemoryAtomicWrites:
    """``AtomicJobWrites`` over a ``MemoryStore`` and a ``MemoryQueue``: nothing between the write and the sends
    awaits, so no other task sees one without the other (and a crash loses both alike)."""

    store: MemoryStore
    queue: MemoryQueue

    async def create_job_and_send(self, job: Job, queue: str, body: str, *, delay_s: float = 0.0) -> bool:
        self.queue._config(queue)
        if not await self.store.create_job(job):
            return False
        await self.queue.send(queue, body, delay_s=delay_s)
        return True

    async def update_job_and_send(
        self, job: Job, messages: Sequence[Outgoing], *, now: float, only_if_lease_expired: bool = False
    ) -> Job:
        for message in messages:
            self.queue._config(message.queue)  # checked first: an unknown queue writes nothing
        updated = await self.store.update_job(job, now=now, only_if_lease_expired=only_if_lease_expired)
        for message in messages:
            await self.queue.send(message.queue, message.body, delay_s=message.delay_s)
        return updated


class MemoryObjectStore:
    """``ObjectStore`` in this process's memory (keys as the filesystem store takes them)."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}

    @staticmethod
    def _check(key: str) -> str:
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            raise InvalidInput(f"invalid object key {key!r}")
        return key

    async def put(self, key: str, data: bytes) -> None:
        self._objects[self._check(key)] = bytes(data)

    async def get(self, key: str) -> bytes:
        try:
            return self._objects[self._check(key)]
        except KeyError:
            raise NotFound(f"object {key!r} not found in memory") from None

    async def exists(self, key: str) -> bool:
        return self._check(key) in self._objects

    async def size(self, key: str) -> int | None:
        data = self._objects.get(self._check(key))
        return None if data is None else len(data)

    async def delete(self, key: str) -> None:
        self._objects.pop(self._check(key), None)

    async def list(self, prefix: str) -> list[str]:
        return sorted(key for key in self._objects if key.startswith(prefix))


class MemoryTxStore:
    """``TxStore`` (``tx_store.SqlTxStore``'s semantics) in this process's memory. A restart of the sender is a new
    sender on this same object (it sees every record); a process's two handles are this one object too.

    Nothing between a read and its write awaits, so each call is one transaction, and reserving a nonce needs no
    lock. An attempt of an unknown key is refused (``NotFound``), as PostgreSQL's foreign key refuses it.
    """

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        """``clock`` (default: ``time.time``, looked up at each use) stamps ``created_at``/``updated_at``."""
        self._keys: dict[str, TxKeyRecord] = {}
        self._attempts: dict[str, dict[int, AttemptRecord]] = {}
        """By key, then attempt number."""
        self._clock = clock

    def _now(self) -> float:
        return float(self._clock() if self._clock is not None else time.time())

    def _update_attempts(self, key: str, which: Callable[[AttemptRecord], bool], **changes: Any) -> None:
        attempts = self._attempts.get(key, {})
        for no, attempt in attempts.items():
            if which(attempt):
                attempts[no] = dataclasses.replace(attempt, **changes)

    def _update_key(self, key: str, **changes: Any) -> None:
        record = self._keys.get(key)
        if record is not None:
            self._keys[key] = dataclasses.replace(record, **changes)

    async def get_key(self, key: str) -> TxKeyRecord | None:
        return self._keys.get(key)

    async def create_key(self, key: str, sender: str) -> TxKeyRecord:
        if key not in self._keys:
            now = self._now()
            self._keys[key] = TxKeyRecord(
                key=key,
                sender=sender.lower(),
                nonce=None,
                status=KeyStatus.PENDING,
                final_tx_hash=None,
                fee_paid_wei=None,
                block_number=None,
                error=None,
                created_at=now,
                updated_at=now,
            )
        return self._keys[key]

    async def reserve_nonce(self, key: str, *, chain_latest: int, chain_pending: int) -> int:
        record = self._keys.get(key)
        if record is None:
            raise NotFound(f"settlement key {key!r} is not in the tx store")
        if record.nonce is not None:
            return record.nonce
        others = [
            (other.nonce, other.status)
            for other in self._keys.values()
            if other.sender == record.sender
            and other.key != key
            and other.nonce is not None
            and other.nonce >= chain_latest
        ]
        nonce = free_nonce(
            {n for n, status in others if status is KeyStatus.PENDING},
            settled=[n for n, status in others if status is not KeyStatus.PENDING],
            chain_latest=chain_latest,
            chain_pending=chain_pending,
        )
        self._update_key(key, nonce=nonce, updated_at=self._now())
        return nonce

    async def release_nonce(self, key: str) -> None:
        now = self._now()
        self._update_key(key, nonce=None, updated_at=now)
        self._update_attempts(
            key, lambda a: a.status.is_in_flight, status=AttemptStatus.REPLACED, updated_at=now, raw=None
        )

    async def add_attempt(self, attempt: AttemptRecord) -> None:
        if attempt.key not in self._keys:
            raise NotFound(f"settlement key {attempt.key!r} is not in the tx store")
        attempts = self._attempts.setdefault(attempt.key, {})
        if attempt.attempt_no in attempts:
            raise AlreadyExists(f"attempt {attempt.attempt_no} of settlement key {attempt.key!r} is already stored")
        attempts[int(attempt.attempt_no)] = dataclasses.replace(  # as a row read back: the columns' types
            attempt,
            attempt_no=int(attempt.attempt_no),
            nonce=int(attempt.nonce),
            gas_multiplier=float(attempt.gas_multiplier),
            max_fee_per_gas=int(attempt.max_fee_per_gas),
            max_priority_fee_per_gas=int(attempt.max_priority_fee_per_gas),
            max_fee_per_blob_gas=int(attempt.max_fee_per_blob_gas),
            status=AttemptStatus(attempt.status),
            raw=None if attempt.raw is None else bytes(attempt.raw),
            created_at=float(attempt.created_at),
            updated_at=float(attempt.updated_at),
        )

    async def set_attempt_status(
        self, key: str, attempt_no: int, status: AttemptStatus, *, error: str | None = None
    ) -> None:
        attempt = self._attempts.get(key, {}).get(attempt_no)
        if attempt is not None:
            self._attempts[key][attempt_no] = dataclasses.replace(
                attempt,
                status=AttemptStatus(status),
                error=attempt.error if error is None else error,
                updated_at=self._now(),
            )

    async def attempts(self, key: str) -> list[AttemptRecord]:
        return [attempt for _, attempt in sorted(self._attempts.get(key, {}).items())]

    async def finalize(self, key: str, attempt_no: int, *, fee_paid_wei: int | None, block_number: int | None) -> None:
        now = self._now()
        final = self._attempts.get(key, {}).get(attempt_no)
        if final is None:
            raise NotFound(f"attempt {attempt_no} of settlement key {key!r} is not in the tx store")
        self._update_attempts(
            key,
            lambda a: a.attempt_no != attempt_no and a.status.is_in_flight and a.status is not AttemptStatus.TIMED_OUT,
            status=AttemptStatus.REPLACED,
            updated_at=now,
        )
        self._update_attempts(key, lambda a: a.attempt_no == attempt_no, status=AttemptStatus.FINALIZED, updated_at=now)
        self._update_attempts(key, lambda a: True, raw=None)
        self._update_key(
            key,
            status=KeyStatus.FINALIZED,
            final_tx_hash=final.tx_hash,
            fee_paid_wei=fee_paid_wei,
            block_number=block_number,
            error=None,
            updated_at=now,
        )

    async def mark_reverted(self, key: str, attempt_no: int, *, error: str, block_number: int | None) -> None:
        now = self._now()
        self._update_attempts(
            key,
            lambda a: a.attempt_no != attempt_no and a.status.is_in_flight,
            status=AttemptStatus.REPLACED,
            updated_at=now,
            raw=None,
        )
        self._update_attempts(
            key,
            lambda a: a.attempt_no == attempt_no,
            status=AttemptStatus.REVERTED,
            error=error,
            updated_at=now,
            raw=None,
        )
        self._update_key(key, status=KeyStatus.REVERTED, error=error, block_number=block_number, updated_at=now)

    async def restart_key(self, key: str) -> None:
        """A reverted key is settled again from scratch: pending, no nonce (its attempts stay as history)."""
        record = self._keys.get(key)
        if record is not None and record.status is KeyStatus.REVERTED:
            self._update_key(key, status=KeyStatus.PENDING, nonce=None, updated_at=self._now())

    async def totals(self, sender: str | None = None) -> TxTotals:
        """For a summary line: keys settled and pending, attempts signed, fees paid."""
        keys = [k for k in self._keys.values() if not sender or k.sender == sender.lower()]
        return TxTotals(
            settled=sum(1 for k in keys if k.status is KeyStatus.FINALIZED),
            pending=sum(1 for k in keys if k.status is KeyStatus.PENDING),
            attempts=sum(len(self._attempts.get(k.key, {})) for k in keys),
            fee_paid_wei=sum(k.fee_paid_wei for k in keys if k.fee_paid_wei is not None),
        )

    async def pending_keys(self, sender: str) -> list[TxKeyRecord]:
        """In nonce order (keys without one first), then by creation time, then by key (as bytes, as SQL sorts)."""
        pending = [k for k in self._keys.values() if k.sender == sender.lower() and k.status is KeyStatus.PENDING]
        return sorted(pending, key=lambda k: (k.nonce is not None, k.nonce or 0, k.created_at, k.key.encode()))
