"""Contract tests every job and batch store must pass (SQLite, PostgreSQL, memory; a new backend joins the
parameter list)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from madara_orchestrator.backends.memory import MemoryStore
from madara_orchestrator.backends.postgres import PostgresStore
from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SCHEMA, SqliteDatabase
from madara_orchestrator.domain.batches import (
    AGGREGATOR_WEIGHT_FIELDS,
    AggregatorBatch,
    AggregatorBatchStatus,
    BouncerWeights,
    SnosBatch,
    SnosBatchStatus,
    transition_aggregator_batch,
    transition_snos_batch,
)
from madara_orchestrator.domain.errors import AlreadyExists, InvalidInput, NotFound, StaleVersion
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, ProvingMetadata, SnosMetadata, transition
from madara_orchestrator.domain.pause import Pause, Stage
from madara_orchestrator.interfaces import Database


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    store: SqliteStore | PostgresStore | MemoryStore
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "postgres":
        pg = PostgresDatabase(request.getfixturevalue("postgres_url"))
        await pg.open()
        store = PostgresStore(pg)
    else:
        db = SqliteDatabase(tmp_path / "store.db")
        await db.open()
        store = SqliteStore(db)
    yield store
    await store.close()


def snos_job(i: int, now: float = 1000.0) -> Job:
    meta = SnosMetadata(snos_batch_index=i, start_block=i - 1, end_block=i - 1, num_blocks=1)
    return Job.new(JobType.SNOS_RUN, i, meta, now=now, orchestrator_version="0.1.0")


async def test_created_job_reads_back_equal(database: Database) -> None:
    job = snos_job(1)
    assert await database.create_job(job) is True
    assert await database.get_job(job.id) == job
    assert await database.get_job_by_internal_id(JobType.SNOS_RUN, 1) == job


async def test_duplicate_creation_is_a_no_op(database: Database) -> None:
    first = snos_job(1)
    assert await database.create_job(first)
    second = snos_job(1)
    assert await database.create_job(second) is False
    assert await database.get_job(second.id) is None
    assert (await database.get_job_by_internal_id(JobType.SNOS_RUN, 1)) == first
    assert await database.count_jobs() == {(JobType.SNOS_RUN, JobStatus.CREATED): 1}


async def test_update_bumps_version_and_a_stale_write_is_refused(database: Database) -> None:
    job = snos_job(1)
    await database.create_job(job)
    locked = await database.update_job(transition(job, JobStatus.LOCKED_FOR_PROCESSING), now=1001.0)
    assert locked.version == 1 and locked.updated_at == 1001.0
    with pytest.raises(StaleVersion, match="changed since version 0"):
        await database.update_job(transition(job, JobStatus.FAILED), now=1002.0)
    stored = await database.get_job(job.id)
    assert stored is not None and stored.status == JobStatus.LOCKED_FOR_PROCESSING and stored.version == 1


async def test_concurrent_writers_on_one_version_exactly_one_wins(database: Database) -> None:
    job = snos_job(1)
    await database.create_job(job)

    async def attempt(target: JobStatus) -> bool:
        try:
            await database.update_job(transition(job, target), now=1001.0)
            return True
        except StaleVersion:
            return False

    results = await asyncio.gather(*(attempt(JobStatus.LOCKED_FOR_PROCESSING) for _ in range(10)))
    assert sum(results) == 1


async def test_lease_take_over_refused_while_the_lease_is_live(database: Database) -> None:
    job = snos_job(1)
    await database.create_job(job)
    held = await database.update_job(
        transition(job, JobStatus.LOCKED_FOR_PROCESSING, lease_owner="a", lease_expires_at=1100.0), now=1000.0
    )
    healed = transition(held, JobStatus.CREATED, lease_owner=None, lease_expires_at=None)
    with pytest.raises(StaleVersion):
        await database.update_job(healed, now=1050.0, only_if_lease_expired=True)
    assert await database.renew_lease(job.id, "a", 1200.0)
    assert not await database.renew_lease(job.id, "b", 1200.0), "only the owner renews"
    with pytest.raises(StaleVersion):
        await database.update_job(healed, now=1150.0, only_if_lease_expired=True)
    taken = await database.update_job(healed, now=1201.0, only_if_lease_expired=True)
    assert taken.status == JobStatus.CREATED and taken.version == held.version + 1


async def test_queries_used_by_the_triggers(database: Database) -> None:
    for i in range(1, 6):
        job = snos_job(i, now=1000.0 + i)
        await database.create_job(job)
        if i <= 3:
            await database.update_job(dataclasses.replace(job, status=JobStatus.COMPLETED), now=1010.0)
    proving = Job.new(JobType.PROOF_CREATION, 2, ProvingMetadata(block_number=1), now=1020.0, orchestrator_version="")
    await database.create_job(proving)
    missing = await database.jobs_without_successor(JobType.SNOS_RUN, JobStatus.COMPLETED, JobType.PROOF_CREATION)
    assert [j.internal_id for j in missing] == [1, 3]
    missing = await database.jobs_without_successor(
        JobType.SNOS_RUN, JobStatus.COMPLETED, JobType.PROOF_CREATION, min_internal_id=2
    )
    assert [j.internal_id for j in missing] == [3]
    latest = await database.latest_job(JobType.SNOS_RUN)
    assert latest is not None and latest.internal_id == 5
    latest_done = await database.latest_job(JobType.SNOS_RUN, statuses=[JobStatus.COMPLETED])
    assert latest_done is not None and latest_done.internal_id == 3
    oldest = await database.oldest_job(JobType.SNOS_RUN, excluding_statuses=[JobStatus.COMPLETED])
    assert oldest is not None and oldest.internal_id == 4
    listed = await database.list_jobs(statuses=[JobStatus.CREATED], job_types=[JobType.SNOS_RUN])
    assert [j.internal_id for j in listed] == [4, 5]
    stalled = await database.stalled_jobs([JobStatus.CREATED], updated_before=1004.5, limit=10)
    assert [j.internal_id for j in stalled] == [4]


def agg_batch(index: int, start: int, end: int, **fields: Any) -> AggregatorBatch:
    values: dict[str, Any] = {"status": AggregatorBatchStatus.CLOSED, "created_at": 1.0, "updated_at": 1.0}
    return AggregatorBatch(index=index, start_block=start, end_block=end, **{**values, **fields})


def snos_batch(index: int, start: int, end: int, **fields: Any) -> SnosBatch:
    values: dict[str, Any] = {"status": SnosBatchStatus.CLOSED, "created_at": 1.0, "updated_at": 1.0}
    return SnosBatch(index=index, start_block=start, end_block=end, **{**values, **fields})


async def test_batches_and_jobs_for_a_block(database: Database) -> None:
    for i in (1, 2):
        await database.insert_aggregator_batch(agg_batch(i, (i - 1) * 10, i * 10 - 1))
    for i in (1, 2, 3):
        await database.insert_snos_batch(
            snos_batch(i, (i - 1) * 5, i * 5 - 1, aggregator_batch_index=1 if i <= 2 else 2)
        )
    agg = await database.aggregator_batch_for_block(12)
    assert agg is not None and agg.index == 2
    snos = await database.snos_batch_for_block(7)
    assert snos is not None and snos.index == 2
    assert [b.index for b in await database.list_snos_batches(aggregator_index=1)] == [1, 2]
    assert await database.aggregator_batch_for_block(99) is None
    first = await database.get_aggregator_batch(1)
    assert first is not None
    await database.update_aggregator_batch(
        transition_aggregator_batch(first, AggregatorBatchStatus.PENDING_AGGREGATOR_RUN, now=5.0), now=5.0
    )
    updated = await database.get_aggregator_batch(1)
    assert updated is not None and updated.status == AggregatorBatchStatus.PENDING_AGGREGATOR_RUN
    assert updated.updated_at == 5.0
    closed = await database.list_aggregator_batches(statuses=[AggregatorBatchStatus.CLOSED])
    assert [b.index for b in closed] == [2]
    job = snos_job(2)
    await database.create_job(job)
    without = await database.snos_batches_without_jobs(SnosBatchStatus.CLOSED)
    assert [b.index for b in without] == [1, 3]
    assert [j.id for j in await database.jobs_for_block(6)] == [job.id]
    assert await database.jobs_for_block(1000) == []


async def test_inserted_batches_read_back_with_every_field(database: Database) -> None:
    weights = BouncerWeights(
        l1_gas=1,
        message_segment_length=2,
        n_events=3,
        state_diff_size=4,
        sierra_gas=5,
        n_txs=6,
        proving_gas=7,
        receipt_l2_gas=2**64 - 1,
    )
    snos = snos_batch(
        1,
        10,
        14,
        status=SnosBatchStatus.OPEN,
        created_at=100.5,
        updated_at=101.25,
        starknet_version="0.14.1",
        orchestrator_version="0.1.0",
        aggregator_batch_index=3,
        builtin_weights=weights,
    )
    assert await database.insert_snos_batch(snos) == snos
    assert await database.get_snos_batch(1) == snos
    assert await database.snos_batch_for_block(12) == snos
    assert await database.latest_snos_batch() == snos
    aggregator = agg_batch(
        3,
        10,
        20,
        status=AggregatorBatchStatus.OPEN,
        created_at=100.5,
        updated_at=102.0,
        starknet_version="0.14.1",
        orchestrator_version="0.1.0",
        bucket_id="bucket-1",
        squashed_state_updates_path="state_update/batch/3.json",
        blob_path="blob/batch/3",
        blob_len=77,
        aggregator_input_size_upper_bound=1234,
        builtin_weights=weights.only(AGGREGATOR_WEIGHT_FIELDS),
    )
    assert await database.insert_aggregator_batch(aggregator) == aggregator
    assert await database.get_aggregator_batch(3) == aggregator
    assert await database.aggregator_batch_for_block(20) == aggregator
    assert await database.latest_aggregator_batch() == aggregator
    moved = await database.update_snos_batch(dataclasses.replace(snos, end_block=15), now=200.0)
    assert await database.get_snos_batch(1) == moved
    assert moved.version == 1 and moved.updated_at == 200.0 and moved.builtin_weights == weights


async def test_a_new_batch_must_have_version_zero(database: Database) -> None:
    with pytest.raises(InvalidInput, match="version 0"):
        await database.insert_snos_batch(snos_batch(1, 0, 4, version=2))
    assert await database.get_snos_batch(1) is None


async def test_duplicate_batch_index_is_refused(database: Database) -> None:
    await database.insert_snos_batch(snos_batch(1, 0, 4))
    with pytest.raises(AlreadyExists, match="SNOS batch 1 already exists"):
        await database.insert_snos_batch(snos_batch(1, 5, 9))
    await database.insert_aggregator_batch(agg_batch(1, 0, 4))
    with pytest.raises(AlreadyExists, match="aggregator batch 1 already exists"):
        await database.insert_aggregator_batch(agg_batch(1, 5, 9))
    stored = await database.get_snos_batch(1)
    assert stored is not None and (stored.start_block, stored.end_block) == (0, 4)


@pytest.mark.parametrize(
    ("start", "end"),
    [(10, 19), (5, 12), (15, 25), (19, 19), (12, 14), (0, 100)],
    ids=["same", "over-start", "over-end", "last-block", "inside", "around"],
)
async def test_overlapping_block_range_is_refused(database: Database, start: int, end: int) -> None:
    await database.insert_snos_batch(snos_batch(1, 10, 19))
    await database.insert_aggregator_batch(agg_batch(1, 10, 19))
    with pytest.raises(AlreadyExists, match="overlaps SNOS batch 1"):
        await database.insert_snos_batch(snos_batch(2, start, end))
    with pytest.raises(AlreadyExists, match="overlaps aggregator batch 1"):
        await database.insert_aggregator_batch(agg_batch(2, start, end))
    assert await database.get_snos_batch(2) is None
    assert await database.get_aggregator_batch(2) is None


async def test_adjacent_ranges_do_not_overlap(database: Database) -> None:
    await database.insert_snos_batch(snos_batch(2, 10, 19))
    await database.insert_snos_batch(snos_batch(1, 0, 9))
    await database.insert_snos_batch(snos_batch(3, 20, 20))
    assert [b.index for b in await database.list_snos_batches()] == [1, 2, 3]


async def test_update_growing_into_the_next_batch_is_refused(database: Database) -> None:
    first = await database.insert_snos_batch(snos_batch(1, 0, 9, status=SnosBatchStatus.OPEN))
    await database.insert_snos_batch(snos_batch(2, 12, 19))
    with pytest.raises(AlreadyExists, match="overlaps SNOS batch 2"):
        await database.update_snos_batch(dataclasses.replace(first, end_block=12), now=2.0)
    assert await database.get_snos_batch(1) == first
    grown = await database.update_snos_batch(dataclasses.replace(first, end_block=11), now=2.0)
    assert grown.end_block == 11 and grown.version == 1


async def test_batch_update_bumps_the_version(database: Database) -> None:
    batch = await database.insert_snos_batch(snos_batch(1, 0, 4, status=SnosBatchStatus.OPEN))
    first = await database.update_snos_batch(dataclasses.replace(batch, end_block=5), now=2.0)
    assert first == dataclasses.replace(batch, end_block=5, version=1, updated_at=2.0)
    second = await database.update_snos_batch(transition_snos_batch(first, SnosBatchStatus.CLOSED, now=3.0), now=3.0)
    assert second.version == 2 and second.status == SnosBatchStatus.CLOSED
    assert await database.get_snos_batch(1) == second
    aggregator = await database.insert_aggregator_batch(agg_batch(1, 0, 4))
    moved = await database.update_aggregator_batch(dataclasses.replace(aggregator, blob_len=9), now=4.0)
    assert moved.version == 1 and await database.get_aggregator_batch(1) == moved


async def test_batch_update_from_a_stale_copy_is_refused(database: Database) -> None:
    batch = await database.insert_snos_batch(snos_batch(1, 0, 4, status=SnosBatchStatus.OPEN))
    fresh = await database.update_snos_batch(dataclasses.replace(batch, end_block=6), now=2.0)
    with pytest.raises(StaleVersion, match=r"SNOS batch 1 changed since version 0.*reload"):
        await database.update_snos_batch(transition_snos_batch(batch, SnosBatchStatus.CLOSED, now=3.0), now=3.0)
    assert await database.get_snos_batch(1) == fresh, "nothing written"
    aggregator = await database.insert_aggregator_batch(agg_batch(1, 0, 4))
    fresh_agg = await database.update_aggregator_batch(dataclasses.replace(aggregator, blob_len=1), now=2.0)
    with pytest.raises(StaleVersion, match="aggregator batch 1 changed since version 0"):
        await database.update_aggregator_batch(dataclasses.replace(aggregator, blob_len=2), now=3.0)
    assert await database.get_aggregator_batch(1) == fresh_agg


async def test_update_of_an_unknown_batch_is_not_found(database: Database) -> None:
    with pytest.raises(NotFound, match="SNOS batch 7 not found"):
        await database.update_snos_batch(snos_batch(7, 0, 4), now=2.0)
    with pytest.raises(NotFound, match="aggregator batch 7 not found"):
        await database.update_aggregator_batch(agg_batch(7, 0, 4), now=2.0)
    assert await database.get_snos_batch(7) is None and await database.get_aggregator_batch(7) is None


@pytest.mark.parametrize("kind", ["snos", "aggregator"])
async def test_batch_for_block_at_the_range_edges(database: Database, kind: str) -> None:
    ranges = {1: (3, 5), 2: (6, 6), 3: (10, 14)}  # blocks 0-2 before the first, 7-9 a gap, 15+ after the last
    for index, (start, end) in ranges.items():
        if kind == "snos":
            await database.insert_snos_batch(snos_batch(index, start, end))
        else:
            await database.insert_aggregator_batch(agg_batch(index, start, end))

    async def found(block: int) -> int | None:
        lookup = database.snos_batch_for_block if kind == "snos" else database.aggregator_batch_for_block
        batch = await lookup(block)
        return None if batch is None else batch.index

    expected = {0: None, 2: None, 3: 1, 4: 1, 5: 1, 6: 2, 7: None, 9: None, 10: 3, 14: 3, 15: None, 10**6: None}
    assert {block: await found(block) for block in expected} == expected


async def test_count_snos_batches_of_an_aggregator_batch(database: Database) -> None:
    for index, parent in ((1, 1), (2, 1), (3, 2), (4, None)):
        await database.insert_snos_batch(snos_batch(index, index * 10, index * 10 + 9, aggregator_batch_index=parent))
    assert await database.count_snos_batches(aggregator_index=1) == 2
    assert await database.count_snos_batches(aggregator_index=2) == 1
    assert await database.count_snos_batches(aggregator_index=3) == 0


async def test_schema_2_database_with_batches_migrates_to_versioned_batches(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_snos: dict[str, Any] = {
        "index": 1,
        "start_block": 0,
        "end_block": 4,
        "status": "Closed",
        "created_at": 1.0,
        "updated_at": 2.0,
        "starknet_version": "0.13.5",
        "orchestrator_version": "0.1.0",
        "aggregator_batch_index": 1,
        "builtin_weights": {"l1_gas": 5, "proving_gas": 9},
        "id": str(uuid.uuid4()),
        "num_blocks": 5,
    }
    old_aggregator: dict[str, Any] = {
        "index": 1,
        "start_block": 0,
        "end_block": 9,
        "status": "Open",
        "created_at": 1.0,
        "updated_at": 2.0,
        "bucket_id": None,
        "squashed_state_updates_path": "state_update/batch/1.json",
        "blob_path": "blob/batch/1",
        "blob_len": 0,
        "aggregator_input_size_upper_bound": 0,
        "builtin_weights": {},
        "id": str(uuid.uuid4()),
        "num_blocks": 10,
    }
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(SCHEMA[:2], start=1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    conn.execute(
        "INSERT INTO snos_batches (idx, aggregator_batch_index, start_block, end_block, status, doc)"
        " VALUES (1, 1, 0, 4, 'Closed', ?)",
        (json.dumps(old_snos),),
    )
    conn.execute(
        "INSERT INTO aggregator_batches (idx, start_block, end_block, status, doc) VALUES (1, 0, 9, 'Open', ?)",
        (json.dumps(old_aggregator),),
    )
    conn.close()

    store = SqliteStore(SqliteDatabase(path))
    try:
        snos = await store.get_snos_batch(1)
        assert snos is not None and snos.version == 0 and snos.status == SnosBatchStatus.CLOSED
        assert snos.builtin_weights == BouncerWeights(l1_gas=5, proving_gas=9)
        assert snos.id == uuid.UUID(old_snos["id"]) and snos.aggregator_batch_index == 1
        aggregator = await store.aggregator_batch_for_block(9)
        assert aggregator is not None and aggregator.version == 0 and aggregator.status == AggregatorBatchStatus.OPEN
        closed = await store.update_aggregator_batch(
            transition_aggregator_batch(aggregator, AggregatorBatchStatus.CLOSED, now=3.0), now=3.0
        )
        assert closed.version == 1 and await store.get_aggregator_batch(1) == closed
        await store.insert_snos_batch(snos_batch(2, 5, 9, aggregator_batch_index=1))
        assert await store.count_snos_batches(aggregator_index=1) == 2
    finally:
        await store.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == len(SCHEMA)
        [(doc, version)] = check.execute("SELECT doc, version FROM snos_batches WHERE idx = 1").fetchall()
        assert version == 0 and json.loads(doc)["version"] == 0, "the doc carries the column's version"
    finally:
        check.close()


async def test_locks_are_exclusive_and_free_again_at_expiry(database: Database) -> None:
    locks = database
    assert await locks.acquire("k", "a", 0.3)  # type: ignore[attr-defined]
    assert not await locks.acquire("k", "b", 10)  # type: ignore[attr-defined]
    await asyncio.sleep(0.35)
    assert await locks.acquire("k", "b", 10), "an expired lock is free at once"  # type: ignore[attr-defined]
    assert not await locks.release("k", "a")  # type: ignore[attr-defined]
    assert await locks.release("k", "b")  # type: ignore[attr-defined]


async def test_the_first_pause_of_a_stage_stands_until_resumed(database: Database) -> None:
    store = cast(SqliteStore | PostgresStore | MemoryStore, database)
    first = Pause(stage=Stage.SETTLEMENT, reason="incident 42", by="ops@pager", since=1000.5)
    assert await store.pause(first) == (first, True)
    again = dataclasses.replace(first, reason="another reason", by="someone else", since=2000.0)
    assert await store.pause(again) == (first, False), "the stage's pause stands"
    proving = Pause(stage=Stage.PROVING, reason="prover bill", by="finance", since=1500.0)
    await store.pause(proving)
    assert await store.pauses() == {Stage.PROVING: proving, Stage.SETTLEMENT: first}
    assert await store.resume(Stage.SETTLEMENT) == first
    assert await store.resume(Stage.SETTLEMENT) is None
    assert await store.pauses() == {Stage.PROVING: proving}


async def test_a_prover_notice_is_taken_once_by_its_job_type_and_forgotten_when_old(database: Database) -> None:
    pt, pr = JobType.PROOF_CREATION, JobType.PROOF_REGISTRATION
    await database.remember_prover_notice("q-1", [pt, pr], received_at=1000.0, forget_before=0.0)
    assert not await database.take_prover_notice("q-1", JobType.AGGREGATOR, received_after=0.0), "another type's"
    assert not await database.take_prover_notice("q-2", pt, received_after=0.0), "another query's"
    assert await database.take_prover_notice("q-1", pt, received_after=1000.0)
    assert not await database.take_prover_notice("q-1", pt, received_after=0.0), "taken once"
    assert not await database.take_prover_notice("q-1", pr, received_after=1000.5), "too old for the taker"
    assert not await database.take_prover_notice("q-1", pr, received_after=0.0), "and dropped by that look"
    await database.remember_prover_notice("q-3", [pt], received_at=1000.0, forget_before=0.0)
    await database.remember_prover_notice("q-3", [pt], received_at=2000.0, forget_before=0.0)
    assert await database.take_prover_notice("q-3", pt, received_after=1500.0), "a repeated webhook renews it"
    await database.remember_prover_notice("q-4", [pt], received_at=1000.0, forget_before=0.0)
    await database.remember_prover_notice("q-5", [pt], received_at=5000.0, forget_before=4000.0)
    assert not await database.take_prover_notice("q-4", pt, received_after=0.0), "dropped as old by the next keep"
    assert await database.take_prover_notice("q-5", pt, received_after=0.0)


async def test_a_prover_notice_taken_by_several_at_once_goes_to_one(database: Database) -> None:
    await database.remember_prover_notice("q-1", [JobType.AGGREGATOR], received_at=1000.0, forget_before=0.0)
    takers = (database.take_prover_notice("q-1", JobType.AGGREGATOR, received_after=0.0) for _ in range(8))
    assert sum(await asyncio.gather(*takers)) == 1
