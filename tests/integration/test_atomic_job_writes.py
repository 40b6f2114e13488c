"""Contract of ``AtomicJobWrites``: a job's change and its messages written together (SQLite and PostgreSQL in
one transaction with the queue's table, memory with nothing awaited in between), and the outbox that takes
their place when the queue is elsewhere (SQS), with its relay."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import madara_orchestrator.backends.sql_store as sql_store
from madara_orchestrator.backends.memory import MemoryAtomicWrites, MemoryQueue, MemoryStore
from madara_orchestrator.backends.outbox import OutboxRelay
from madara_orchestrator.backends.postgres import PostgresStore
from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.postgres_queue import PostgresQueue
from madara_orchestrator.backends.sql import SqlConnection, SqlDatabase
from madara_orchestrator.backends.sql_queue import SqlQueue, insert_message
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.domain.errors import StaleVersion
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, SnosMetadata, transition
from madara_orchestrator.domain.queues import QueueConfig, QueueType
from madara_orchestrator.interfaces import AtomicJobWrites, JobStore, Outgoing, QueueClient
from tests.helpers.engine import FakeClock

WORK, CHECK = "work", "check"
CONFIGS = {
    name: QueueConfig(queue_type=QueueType.SNOS_JOB_PROCESSING, visibility_timeout_s=30, concurrency=1)
    for name in (WORK, CHECK)
}


@dataclasses.dataclass
class Backend:
    store: JobStore
    writes: AtomicJobWrites
    queue: QueueClient
    clock: FakeClock
    db: SqlDatabase | None


async def _open_sql(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> SqlDatabase:
    if kind == "postgres":
        pg = PostgresDatabase(request.getfixturevalue("postgres_url"))
        await pg.open()
        return pg
    sqlite = SqliteDatabase(tmp_path / "store.db")
    await sqlite.open()
    return sqlite


def _store(db: SqlDatabase, clock: FakeClock, *, outbox: bool = False) -> SqliteStore | PostgresStore:
    if isinstance(db, PostgresDatabase):
        return PostgresStore(db, clock=clock, outbox=outbox)
    assert isinstance(db, SqliteDatabase)
    return SqliteStore(db, clock=clock, outbox=outbox)


def _queue(db: SqlDatabase, clock: FakeClock) -> SqlQueue:
    if isinstance(db, PostgresDatabase):
        return PostgresQueue(db, CONFIGS, clock=clock)
    assert isinstance(db, SqliteDatabase)
    return SqliteQueue(db, CONFIGS, clock=clock)


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    clock = FakeClock()
    if request.param == "memory":
        memory, queue = MemoryStore(), MemoryQueue(CONFIGS, clock=clock)
        yield Backend(memory, MemoryAtomicWrites(memory, queue), queue, clock, None)
        return
    db = await _open_sql(request.param, tmp_path, request)
    store = _store(db, clock)
    yield Backend(store, store, _queue(db, clock), clock, db)
    await db.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlDatabase]:
    db = await _open_sql(request.param, tmp_path, request)
    yield db
    await db.close()


def snos_job(i: int, now: float) -> Job:
    meta = SnosMetadata(snos_batch_index=i, start_block=i - 1, end_block=i - 1, num_blocks=1)
    return Job.new(JobType.SNOS_RUN, i, meta, now=now, orchestrator_version="0.1.0")


async def _bodies(queue: QueueClient, name: str) -> list[str]:
    bodies = []
    while (message := await queue.receive(name)) is not None:
        bodies.append(message.body)
        await queue.ack(message)
    return bodies


async def test_the_change_and_its_messages_are_written_together(backend: Backend) -> None:
    now = backend.clock()
    job = snos_job(1, now)
    assert await backend.writes.create_job_and_send(job, WORK, "created")
    locked = await backend.store.update_job(transition(job, JobStatus.LOCKED_FOR_PROCESSING), now=now)
    done = transition(locked, JobStatus.PENDING_VERIFICATION, external_id="ext-1")
    written = await backend.writes.update_job_and_send(
        done, [Outgoing(CHECK, "verify", 5.0), Outgoing(WORK, "again")], now=now + 1
    )
    assert written.version == locked.version + 1 and written.updated_at == now + 1
    assert await backend.store.get_job(job.id) == written
    assert await _bodies(backend.queue, WORK) == ["created", "again"]
    assert await _bodies(backend.queue, CHECK) == [], "the delay is kept"
    backend.clock.advance(5.0)
    assert await _bodies(backend.queue, CHECK) == ["verify"]


async def test_a_stale_write_sends_nothing(backend: Backend) -> None:
    now = backend.clock()
    job = snos_job(1, now)
    await backend.store.create_job(job)
    await backend.store.update_job(transition(job, JobStatus.LOCKED_FOR_PROCESSING), now=now)
    with pytest.raises(StaleVersion):
        await backend.writes.update_job_and_send(
            transition(job, JobStatus.LOCKED_FOR_PROCESSING), [Outgoing(CHECK, "verify")], now=now + 1
        )
    stored = await backend.store.get_job(job.id)
    assert stored is not None and stored.status == JobStatus.LOCKED_FOR_PROCESSING
    assert await _bodies(backend.queue, CHECK) == []


async def test_a_take_over_under_a_live_lease_sends_nothing(backend: Backend) -> None:
    now = backend.clock()
    job = snos_job(1, now)
    await backend.store.create_job(job)
    locked = await backend.store.update_job(
        transition(job, JobStatus.LOCKED_FOR_PROCESSING, lease_owner="a", lease_expires_at=now + 30), now=now
    )
    healed = transition(locked, JobStatus.CREATED, lease_owner=None, lease_expires_at=None)
    with pytest.raises(StaleVersion):
        await backend.writes.update_job_and_send(
            healed, [Outgoing(WORK, "process")], now=now + 1, only_if_lease_expired=True
        )
    assert await _bodies(backend.queue, WORK) == []
    assert (await backend.writes.update_job_and_send(healed, [Outgoing(WORK, "process")], now=now + 31)).version == 2
    assert await _bodies(backend.queue, WORK) == ["process"]


async def test_a_failure_after_the_update_leaves_neither_change_nor_message(
    sql_db: SqlDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dying between the job's update and its message: the transaction takes both back."""
    clock = FakeClock()
    store = _store(sql_db, clock)
    job = snos_job(1, clock())
    await store.create_job(job)
    written: list[str] = []

    async def insert_then_die(conn: SqlConnection, queue: str, body: str, *, now: float, delay_s: float = 0.0) -> str:
        written.append(await insert_message(conn, queue, body, now=now, delay_s=delay_s))
        raise RuntimeError("the process died between the two writes")

    monkeypatch.setattr(sql_store, "insert_message", insert_then_die)
    with pytest.raises(RuntimeError, match="died"):
        await store.update_job_and_send(
            transition(job, JobStatus.LOCKED_FOR_PROCESSING), [Outgoing(CHECK, "verify")], now=clock()
        )
    assert written, "the message was written, then rolled back with the change"
    assert await store.get_job(job.id) == job
    assert await _bodies(_queue(sql_db, clock), CHECK) == []


# -- the outbox (the queue elsewhere) ---------------------------------------------------------------------


class RecordingQueue(MemoryQueue):
    """A queue elsewhere: records each send; ``fail_at`` makes the n-th send (from 1) fail, as SQS down."""

    def __init__(self, clock: FakeClock, *, fail_at: int | None = None) -> None:
        super().__init__(CONFIGS, clock=clock)
        self.sent: list[tuple[str, str, float]] = []
        self.fail_at = fail_at

    async def send(self, queue: str, body: str, *, delay_s: float = 0.0) -> str:
        if self.fail_at is not None and len(self.sent) + 1 == self.fail_at:
            self.fail_at = None
            raise ConnectionError("SQS unreachable")
        self.sent.append((queue, body, delay_s))
        await asyncio.sleep(0)  # a network call: the other relay runs meanwhile
        return await super().send(queue, body, delay_s=delay_s)


async def test_with_an_outbox_the_messages_wait_in_the_database_until_relayed(sql_db: SqlDatabase) -> None:
    clock = FakeClock()
    store = _store(sql_db, clock, outbox=True)
    job = snos_job(1, clock())
    assert await store.create_job_and_send(job, WORK, "created")
    await store.update_job_and_send(
        transition(job, JobStatus.LOCKED_FOR_PROCESSING), [Outgoing(CHECK, "verify", 10.0)], now=clock()
    )
    assert await _bodies(_queue(sql_db, clock), WORK) == [], "nothing in the database's own queue"
    remote = RecordingQueue(clock)
    relay = OutboxRelay(sql_db, remote, clock=clock)
    assert await relay.pending() == 2
    clock.advance(4.0)
    assert await relay.relay_once() == 2
    assert remote.sent == [(WORK, "created", 0.0), (CHECK, "verify", 6.0)], "what is left of the delay"
    assert await relay.pending() == 0 and await relay.relay_once() == 0


async def test_a_relay_that_fails_half_way_leaves_its_rows_to_be_sent_again(sql_db: SqlDatabase) -> None:
    clock = FakeClock()
    store = _store(sql_db, clock, outbox=True)
    for i in range(1, 4):
        assert await store.create_job_and_send(snos_job(i, clock()), WORK, f"job {i}")
    remote = RecordingQueue(clock, fail_at=3)
    with pytest.raises(ConnectionError):
        await OutboxRelay(sql_db, remote, clock=clock).relay_once()
    assert await OutboxRelay(sql_db, remote, clock=clock).pending() == 3, "the deletes were rolled back"
    assert await OutboxRelay(sql_db, remote, clock=clock).relay_once() == 3
    assert [body for _, body, _ in remote.sent] == ["job 1", "job 2", "job 1", "job 2", "job 3"], "at least once"


async def test_two_relays_on_postgres_send_every_row_once(postgres_url: str) -> None:
    clock = FakeClock()
    dbs = [PostgresDatabase(postgres_url), PostgresDatabase(postgres_url)]
    for db in dbs:
        await db.open()
    try:
        store = PostgresStore(dbs[0], clock=clock, outbox=True)
        for i in range(1, 121):
            assert await store.create_job_and_send(snos_job(i, clock()), WORK, f"job {i}")
        remote = RecordingQueue(clock)
        relays = [OutboxRelay(db, remote, clock=clock, batch=7) for db in dbs]

        async def drain(relay: OutboxRelay) -> int:
            total = 0
            while (sent := await relay.relay_once()) > 0:
                total += sent
            return total

        counts = await asyncio.gather(*(drain(r) for r in relays))
        bodies = sorted(body for _, body, _ in remote.sent)
        assert bodies == sorted(f"job {i}" for i in range(1, 121)), "every row, once"
        assert all(c > 0 for c in counts), f"both relays took rows: {counts}"
    finally:
        for db in dbs:
            await db.close()


async def test_a_running_relay_sends_what_is_committed_at_once(sql_db: SqlDatabase) -> None:
    """``run`` waits on the commit's notification, not on its timer (an hour here)."""
    clock = FakeClock()
    store = _store(sql_db, clock, outbox=True)
    remote = RecordingQueue(clock)
    relay = OutboxRelay(sql_db, remote, clock=clock, max_idle_s=3600)
    stop = asyncio.Event()
    running = asyncio.ensure_future(relay.run(stop))
    try:
        assert await store.create_job_and_send(snos_job(1, clock()), WORK, "created")
        message = await remote.receive(WORK, wait_s=30)
        assert message is not None and message.body == "created"
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
