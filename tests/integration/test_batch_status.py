"""Moving a stored batch (jobs/batch_status.py) against a real SQLite file: the table is consulted, a
write lost to another writer (another process, here a second store on the same file) is retried."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.errors import InvalidTransition, NotFound, StaleVersion
from madara_orchestrator.jobs.batch_status import MAX_ATTEMPTS, move_aggregator_batch, move_snos_batch

A = AggregatorBatchStatus


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    """Two stores on one file, each with its own connection: two processes, as far as SQLite knows."""
    first = SqliteStore(SqliteDatabase(tmp_path / "batches.db"))
    await first.db.open()
    second = SqliteStore(SqliteDatabase(tmp_path / "batches.db"))
    await second.db.open()
    yield first, second
    await first.close()
    await second.close()


def aggregator(status: AggregatorBatchStatus = A.CLOSED) -> AggregatorBatch:
    return AggregatorBatch(index=1, start_block=0, end_block=9, status=status, created_at=1.0, updated_at=1.0)


def snos(status: SnosBatchStatus = SnosBatchStatus.OPEN) -> SnosBatch:
    return SnosBatch(index=1, start_block=0, end_block=4, status=status, created_at=1.0, updated_at=1.0)


class InterferingStore(SqliteStore):
    """``store``'s connection; before each of its first ``times`` batch writes, ``other`` (a second
    connection to the same file) writes the batch first, so the write arrives with a stale version."""

    def __init__(self, store: SqliteStore, other: SqliteStore, times: int) -> None:
        super().__init__(store.db)
        self.other = other
        self.times = times
        self.writes = 0

    async def _interfere(self) -> None:
        if self.writes < self.times:
            self.writes += 1
            current = await self.other.get_aggregator_batch(1)
            assert current is not None
            await self.other.update_aggregator_batch(dataclasses.replace(current, blob_len=current.blob_len + 1), now=5)

    async def update_aggregator_batch(self, batch: AggregatorBatch, *, now: float) -> AggregatorBatch:
        await self._interfere()
        return await super().update_aggregator_batch(batch, now=now)


async def test_moves_the_batch_and_bumps_its_version(stores: tuple[SqliteStore, SqliteStore]) -> None:
    store, _ = stores
    await store.insert_aggregator_batch(aggregator())
    moved = await move_aggregator_batch(store, 1, A.PENDING_AGGREGATOR_RUN, now=10.0)
    assert moved.status == A.PENDING_AGGREGATOR_RUN and moved.version == 1 and moved.updated_at == 10.0
    assert await store.get_aggregator_batch(1) == moved
    await store.insert_snos_batch(snos())
    closed = await move_snos_batch(store, 1, SnosBatchStatus.CLOSED, now=11.0)
    assert closed.status == SnosBatchStatus.CLOSED and closed.version == 1
    assert await store.get_snos_batch(1) == closed


async def test_a_batch_already_at_the_target_is_not_written(stores: tuple[SqliteStore, SqliteStore]) -> None:
    store, _ = stores
    await store.insert_aggregator_batch(aggregator(A.READY_FOR_STATE_UPDATE))
    same = await move_aggregator_batch(store, 1, A.READY_FOR_STATE_UPDATE, now=10.0)
    assert same.version == 0 and same.updated_at == 1.0
    await store.insert_snos_batch(snos(SnosBatchStatus.COMPLETED))
    assert (await move_snos_batch(store, 1, SnosBatchStatus.COMPLETED, now=10.0)).version == 0


async def test_a_missing_batch_is_not_found(stores: tuple[SqliteStore, SqliteStore]) -> None:
    store, _ = stores
    with pytest.raises(NotFound, match="aggregator batch 3 not found"):
        await move_aggregator_batch(store, 3, A.CLOSED, now=10.0)
    with pytest.raises(NotFound, match="SNOS batch 3 not found"):
        await move_snos_batch(store, 3, SnosBatchStatus.CLOSED, now=10.0)


async def test_a_forbidden_move_raises_and_writes_nothing(stores: tuple[SqliteStore, SqliteStore]) -> None:
    store, _ = stores
    await store.insert_aggregator_batch(aggregator(A.COMPLETED))
    with pytest.raises(InvalidTransition, match="aggregator batch 1 cannot move from Completed"):
        await move_aggregator_batch(store, 1, A.READY_FOR_STATE_UPDATE, now=10.0)
    await store.insert_snos_batch(snos(SnosBatchStatus.OPEN))
    with pytest.raises(InvalidTransition):
        await move_snos_batch(store, 1, SnosBatchStatus.COMPLETED, now=10.0)
    stored = await store.get_aggregator_batch(1)
    assert stored is not None and stored.version == 0 and stored.status == A.COMPLETED


async def test_a_write_lost_to_another_writer_is_retried(stores: tuple[SqliteStore, SqliteStore]) -> None:
    store, other = stores
    await store.insert_aggregator_batch(aggregator())
    interfering = InterferingStore(store, other, times=2)
    moved = await move_aggregator_batch(interfering, 1, A.PENDING_AGGREGATOR_RUN, now=10.0)
    assert interfering.writes == 2
    assert moved.status == A.PENDING_AGGREGATOR_RUN and moved.version == 3
    assert moved.blob_len == 2, "the other writer's changes are kept: the retry re-read the batch"
    assert await other.get_aggregator_batch(1) == moved


async def test_the_retry_rechecks_the_table(stores: tuple[SqliteStore, SqliteStore]) -> None:
    """Another writer moved the batch meanwhile to where our move is no longer allowed."""
    store, other = stores
    await store.insert_aggregator_batch(aggregator(A.PENDING_AGGREGATOR_VERIFICATION))

    class Racing(InterferingStore):
        async def _interfere(self) -> None:
            if self.writes == 0:
                self.writes += 1
                current = await self.other.get_aggregator_batch(1)
                assert current is not None
                await self.other.update_aggregator_batch(dataclasses.replace(current, status=A.COMPLETED), now=5)

    with pytest.raises(InvalidTransition, match="from Completed to VerificationFailed"):
        await move_aggregator_batch(Racing(store, other, times=1), 1, A.VERIFICATION_FAILED, now=10.0)


async def test_gives_up_after_the_last_attempt(stores: tuple[SqliteStore, SqliteStore]) -> None:
    store, other = stores
    await store.insert_aggregator_batch(aggregator())
    interfering = InterferingStore(store, other, times=MAX_ATTEMPTS)
    with pytest.raises(StaleVersion, match=f"changed it {MAX_ATTEMPTS} times in a row"):
        await move_aggregator_batch(interfering, 1, A.PENDING_AGGREGATOR_RUN, now=10.0)
    stored = await store.get_aggregator_batch(1)
    assert stored is not None and stored.status == A.CLOSED and stored.version == MAX_ATTEMPTS
