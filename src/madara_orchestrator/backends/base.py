"""What every job/batch store and every queue of ours shares, whatever holds the data (SQL, memory): the
rows as stored, the methods that follow from a store's primitives, a queue's receive loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from madara_orchestrator.domain import dead_letters
from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatch,
    SnosBatchStatus,
)
from madara_orchestrator.domain.errors import AlreadyExists, InvalidInput, NotFound, StaleVersion
from madara_orchestrator.domain.jobs import Job, JobMetadata, JobStatus, JobType
from madara_orchestrator.domain.queues import QueueConfig
from madara_orchestrator.interfaces import QueueMessage

K = TypeVar("K")
B = TypeVar("B", SnosBatch, AggregatorBatch)

# Jobs keyed by a SNOS batch index; the others (Aggregator, and StateTransition on L2) by an
# aggregator batch index. Used to find the jobs of a block (fixes SPEC §22 quirk 18).
SNOS_KEYED = (JobType.SNOS_RUN, JobType.PROOF_CREATION, JobType.PROOF_REGISTRATION, JobType.DATA_SUBMISSION)


def job_from_row(row: Mapping[str, Any]) -> Job:
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


SNOS_BATCHES = "snos_batches"
AGGREGATOR_BATCHES = "aggregator_batches"


def batch_table(batch: SnosBatch | AggregatorBatch) -> str:
    return SNOS_BATCHES if isinstance(batch, SnosBatch) else AGGREGATOR_BATCHES


def describe_batch(batch: SnosBatch | AggregatorBatch) -> str:
    return f"{'SNOS' if isinstance(batch, SnosBatch) else 'aggregator'} batch {batch.index}"


def batch_columns(batch: SnosBatch | AggregatorBatch) -> dict[str, Any]:
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


def batch_doc(row: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = dict(row["doc"]) if isinstance(row["doc"], dict) else json.loads(row["doc"])
    doc["version"] = int(row["version"])  # the guarded column is the truth
    return doc


def overlap_error(batch: SnosBatch | AggregatorBatch, index: int, start_block: int, end_block: int) -> AlreadyExists:
    """The refusal of ``batch`` because the stored batch ``index`` (of the same kind) holds some of its blocks."""
    kind = "SNOS" if isinstance(batch, SnosBatch) else "aggregator"
    return AlreadyExists(
        f"{describe_batch(batch)} (blocks {batch.start_block}-{batch.end_block}) overlaps {kind} batch"
        f" {index} (blocks {start_block}-{end_block}); a block belongs to one batch only"
    )


def batch_exists_error(batch: SnosBatch | AggregatorBatch) -> AlreadyExists:
    """The refusal to insert ``batch`` again."""
    return AlreadyExists(f"{describe_batch(batch)} already exists; read it and update it instead of inserting it again")


def check_batch_version(read: SnosBatch | AggregatorBatch, stored_version: int | None) -> None:
    """That the stored batch (``None``: there is none) is still at the version ``read`` was read at."""
    what = describe_batch(read)
    if stored_version is None:
        raise NotFound(f"{what} not found; it must be inserted before it is updated")
    if stored_version != read.version:
        raise StaleVersion(
            f"{what} changed since version {read.version} was read (now version {stored_version});"
            " reload it and try again"
        )


def stale_job_error(job: Job) -> StaleVersion:
    """The refusal to write ``job`` over a stored job no longer at ``job.version`` (or with a live lease)."""
    return StaleVersion(f"job {job.describe()} changed since version {job.version} was read; reload it and try again")


def job_row(job: Job) -> dict[str, Any]:
    """The row of a job (its columns, in the table's order)."""
    return {
        "id": str(job.id),
        "internal_id": job.internal_id,
        "job_type": job.job_type.value,
        "status": job.status.value,
        "external_id": job.external_id,
        "metadata": json.dumps(job.metadata.to_json()),
        "version": job.version,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "lease_owner": job.lease_owner,
        "lease_expires_at": job.lease_expires_at,
        "orchestrator_version": job.common.orchestrator_version,
    }


JobKeys = list[tuple[list[str], int]]
"""(job types, internal id) pairs: the jobs of one of the types with that internal id."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobQuery:
    """The jobs a ``list_jobs`` or a ``jobs_without_successor`` asks for, as column values: those of
    ``statuses`` and ``job_types`` (any when empty), by internal id then job type."""

    statuses: list[str]
    job_types: list[str]
    min_internal_id: int | None = None
    without_successor: str | None = None
    """A job type: only the jobs that have no job of that type at their internal id."""
    limit: int | None = None
    descending: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BatchQuery:
    """The batches of one table a ``list_*_batches`` or a ``snos_batches_without_jobs`` asks for, by index:
    those of ``indexes`` and ``statuses`` (any when empty)."""

    statuses: list[str]
    indexes: Sequence[int] = ()
    aggregator_index: int | None = None
    """SNOS batches only: those of that aggregator batch."""
    min_index: int | None = None
    without_job: str | None = None
    """A job type: only the batches that have no job of that type at their index."""
    limit: int | None = None
    descending: bool = False


class StoreBase:
    """The ``Database`` methods that follow from a store's primitives (``_list_jobs``, ``_batch_docs``,
    ``_jobs_with_keys``, ``_batch_doc_for_block``, ``_write_new_batch``, ``_write_batch``)."""

    async def _list_jobs(self, query: JobQuery) -> list[Job]:
        """The jobs ``query`` asks for."""
        raise NotImplementedError

    async def _batch_docs(self, table: str, query: BatchQuery) -> list[dict[str, Any]]:
        """The records of the batches of ``table`` that ``query`` asks for."""
        raise NotImplementedError

    async def _jobs_with_keys(self, keys: JobKeys) -> list[Job]:
        """The jobs matching any of ``keys``, by internal id then job type."""
        raise NotImplementedError

    async def _batch_doc_for_block(self, table: str, block_number: int) -> dict[str, Any] | None:
        """The record of the batch of ``table`` holding the block."""
        raise NotImplementedError

    async def _write_new_batch(self, batch: SnosBatch | AggregatorBatch) -> None:
        """Insert a checked new batch: ``AlreadyExists`` if its index is taken or its blocks overlap another."""
        raise NotImplementedError

    async def _write_batch(self, read: SnosBatch | AggregatorBatch, stored: SnosBatch | AggregatorBatch) -> None:
        """Write ``stored`` over the row if it is still at ``read.version``, in one step no writer can split."""
        raise NotImplementedError

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] = (),
        job_types: Sequence[JobType] = (),
        min_internal_id: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[Job]:
        query = JobQuery(
            statuses=[s.value for s in statuses],
            job_types=[t.value for t in job_types],
            min_internal_id=min_internal_id,
            limit=limit,
            descending=descending,
        )
        return await self._list_jobs(query)

    async def jobs_without_successor(
        self,
        job_type: JobType,
        status: JobStatus,
        successor_type: JobType,
        *,
        min_internal_id: int = 0,
        limit: int | None = None,
    ) -> list[Job]:
        query = JobQuery(
            statuses=[status.value],
            job_types=[job_type.value],
            min_internal_id=min_internal_id,
            without_successor=successor_type.value,
            limit=limit,
        )
        return await self._list_jobs(query)

    async def latest_job(self, job_type: JobType, *, statuses: Sequence[JobStatus] = ()) -> Job | None:
        jobs = await self.list_jobs(job_types=[job_type], statuses=statuses, limit=1, descending=True)
        return jobs[0] if jobs else None

    async def jobs_for_block(self, block_number: int) -> list[Job]:
        snos = await self.snos_batch_for_block(block_number)
        aggregator = await self.aggregator_batch_for_block(block_number)
        keys: JobKeys = []
        if snos is not None:
            snos_types = [*SNOS_KEYED] + ([] if aggregator is not None else [JobType.STATE_TRANSITION])
            keys.append(([t.value for t in snos_types], snos.index))
        if aggregator is not None:
            keys.append(([JobType.AGGREGATOR.value, JobType.STATE_TRANSITION.value], aggregator.index))
        return await self._jobs_with_keys(keys) if keys else []

    async def insert_snos_batch(self, batch: SnosBatch) -> SnosBatch:
        return await self._insert_batch(batch)

    async def update_snos_batch(self, batch: SnosBatch, *, now: float) -> SnosBatch:
        return await self._update_batch(batch, now)

    async def insert_aggregator_batch(self, batch: AggregatorBatch) -> AggregatorBatch:
        return await self._insert_batch(batch)

    async def update_aggregator_batch(self, batch: AggregatorBatch, *, now: float) -> AggregatorBatch:
        return await self._update_batch(batch, now)

    async def list_snos_batches(
        self,
        *,
        indexes: Sequence[int] = (),
        statuses: Sequence[SnosBatchStatus] = (),
        aggregator_index: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[SnosBatch]:
        query = BatchQuery(
            statuses=[s.value for s in statuses],
            indexes=indexes,
            aggregator_index=aggregator_index,
            limit=limit,
            descending=descending,
        )
        return [SnosBatch.from_json(doc) for doc in await self._batch_docs(SNOS_BATCHES, query)]

    async def list_aggregator_batches(
        self,
        *,
        indexes: Sequence[int] = (),
        statuses: Sequence[AggregatorBatchStatus] = (),
        limit: int | None = None,
        descending: bool = False,
    ) -> list[AggregatorBatch]:
        query = BatchQuery(statuses=[s.value for s in statuses], indexes=indexes, limit=limit, descending=descending)
        return [AggregatorBatch.from_json(doc) for doc in await self._batch_docs(AGGREGATOR_BATCHES, query)]

    async def snos_batches_without_jobs(
        self, status: SnosBatchStatus, *, min_index: int = 0, limit: int | None = None
    ) -> list[SnosBatch]:
        query = BatchQuery(
            statuses=[status.value], min_index=min_index, without_job=JobType.SNOS_RUN.value, limit=limit
        )
        return [SnosBatch.from_json(doc) for doc in await self._batch_docs(SNOS_BATCHES, query)]

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

    async def snos_batch_for_block(self, block_number: int) -> SnosBatch | None:
        doc = await self._batch_doc_for_block(SNOS_BATCHES, block_number)
        return None if doc is None else SnosBatch.from_json(doc)

    async def aggregator_batch_for_block(self, block_number: int) -> AggregatorBatch | None:
        doc = await self._batch_doc_for_block(AGGREGATOR_BATCHES, block_number)
        return None if doc is None else AggregatorBatch.from_json(doc)

    async def _insert_batch(self, batch: B) -> B:
        what = describe_batch(batch)
        if batch.version != 0:
            raise InvalidInput(f"{what}: a new batch must have version 0, got {batch.version}")
        if batch.start_block > batch.end_block:
            raise InvalidInput(f"{what}: start block {batch.start_block} is after end block {batch.end_block}")
        await self._write_new_batch(batch)
        return batch

    async def _update_batch(self, read: B, now: float) -> B:
        """``read`` written back at the next version, if the stored batch is still at ``read.version``."""
        stored = dataclasses.replace(read, version=read.version + 1, updated_at=now)
        if stored.start_block > stored.end_block:
            raise InvalidInput(
                f"{describe_batch(read)}: start block {stored.start_block} is after end block {stored.end_block}"
            )
        await self._write_batch(read, stored)
        return stored


class WakeEvents(Generic[K]):
    """One ``asyncio.Event`` per key, set (and forgotten) by the next ``fire`` of that key: a waiter takes
    it before looking for work, so that what is fired between its look and its wait still wakes it."""

    def __init__(self) -> None:
        self._events: dict[K, asyncio.Event] = {}

    def event(self, key: K) -> asyncio.Event:
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        return event

    def fire(self, key: K) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def fire_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()


CONTENDED_PAUSE_S = 0.02
"""How long to wait before looking again when the visible messages were all being claimed by others."""


class QueueBase:
    """A queue's configs and receive loop over its ``_try_receive`` and ``_wake_event``. Sends and nacks
    wake the queue's receivers; a receiver with nothing to take waits for that, or until the earliest hidden
    message of its queue becomes visible, never longer than ``max_idle_s``."""

    def __init__(
        self,
        configs: Mapping[str, QueueConfig],
        *,
        dead_letter_names: Mapping[str, str] | None,
        clock: Callable[[], float],
        max_idle_s: float,
    ) -> None:
        self._configs = dict(configs)
        self._dead_letter = dict(dead_letter_names or {})
        self._clock = clock
        self._max_idle_s = max_idle_s

    def _config(self, queue: str) -> QueueConfig:
        try:
            return self._configs[queue]
        except KeyError:
            raise InvalidInput(f"unknown queue {queue!r}; known: {sorted(self._configs)}") from None

    def _dead_letter_of(self, queue: str, config: QueueConfig) -> str | None:
        return self._dead_letter.get(queue) if config.dead_letter is not None else None

    async def _wake_event(self, queue: str) -> asyncio.Event:
        """The event the next send or nack of ``queue`` sets: taken BEFORE looking for work."""
        raise NotImplementedError

    async def _try_receive(self, queue: str, config: QueueConfig) -> tuple[QueueMessage | None, float | None]:
        """Claim the first visible message (dead-lettering those received too often on the way); else the
        time the next message of the queue becomes visible, if any."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def _wait_scope(self) -> AsyncIterator[None]:
        """Around a receive that may wait, from before its first look."""
        yield

    async def receive(self, queue: str, *, wait_s: float = 0.0) -> QueueMessage | None:
        config = self._config(queue)
        if wait_s <= 0:
            message, _ = await self._try_receive(queue, config)
            return message
        async with self._wait_scope():
            return await self._receive_waiting(queue, config, wait_s)

    async def _receive_waiting(self, queue: str, config: QueueConfig, wait_s: float) -> QueueMessage | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            # Taken before looking, so that a send between the look and the wait still wakes us.
            wake = await self._wake_event(queue)
            message, next_visible = await self._try_receive(queue, config)
            if message is not None:
                return message
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            pause = min(remaining, self._max_idle_s)
            if next_visible is not None:
                pause = min(pause, max(next_visible - self._clock(), CONTENDED_PAUSE_S))
            try:
                await asyncio.wait_for(wake.wait(), timeout=pause)
            except TimeoutError:
                pass


def received(attributes: Mapping[str, str], now: float) -> dict[str, str]:
    """A message's attributes after a receive at ``now``: its first and last receive times (those in the
    queue it was dead-lettered from, once it was)."""
    updated = dict(attributes)
    if dead_letters.SOURCE in updated:
        return updated
    updated.setdefault(dead_letters.FIRST_RECEIVE_AT, repr(now))
    updated[dead_letters.LAST_RECEIVE_AT] = repr(now)
    return updated


def delivered(attributes: Mapping[str, str]) -> dict[str, str]:
    """The attributes a delivery shows: as sent, plus, for a dead letter, what ``dead_letter_attributes`` and
    the receive times say of it (kept on every message, shown only on dead letters)."""
    if dead_letters.SOURCE in attributes:
        return dict(attributes)
    hidden = (dead_letters.FIRST_RECEIVE_AT, dead_letters.LAST_RECEIVE_AT)
    return {k: v for k, v in attributes.items() if k not in hidden}


def dead_letter_attributes(queue: str, receive_count: int, sent_at: float, now: float) -> dict[str, str]:
    """What a message moved to the dead-letter queue at ``now`` carries there: where from, after how many
    receives, when (``domain/dead_letters.py``)."""
    return {
        dead_letters.SOURCE: queue,
        dead_letters.RECEIVE_COUNT: str(receive_count),
        dead_letters.DEAD_LETTERED_AT: repr(now),
        dead_letters.SENT_AT: repr(sent_at),
    }


def message_attributes(value: Any) -> dict[str, str]:
    """A message's attributes as stored (a JSON object, or its text)."""
    stored = json.loads(value) if isinstance(value, str) else value
    return {str(k): str(v) for k, v in stored.items()}
