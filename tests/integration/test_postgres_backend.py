"""What the PostgreSQL backend does beyond the contracts: opening (migrations, refusals in one line, no
password shown), the database clock, the job-and-message transaction, LISTEN/NOTIFY wake-ups across
processes (each process a connection pool of its own here)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import psycopg
import pytest

import madara_orchestrator.backends.sql_store as sql_store
from madara_orchestrator.backends.postgres import PostgresStore
from madara_orchestrator.backends.postgres_db import MIGRATIONS, Connection, PostgresDatabase, mask_url
from madara_orchestrator.backends.postgres_queue import PostgresQueue, insert_message
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput
from madara_orchestrator.domain.jobs import Job, JobType, SnosMetadata
from madara_orchestrator.domain.queues import QueueConfig, QueueType
from madara_orchestrator.interfaces import QueueMessage
from tests.helpers.postgres import PostgresCluster

WORK = "work"
CONFIGS = {WORK: QueueConfig(queue_type=QueueType.SNOS_JOB_PROCESSING, visibility_timeout_s=30, concurrency=1)}

OpenDatabase = Callable[[], Awaitable[PostgresDatabase]]


@pytest.fixture
async def open_database(postgres_url: str) -> AsyncIterator[OpenDatabase]:
    """Opens a new handle (a pool of its own, as another process has) on the test's database each call."""
    opened: list[PostgresDatabase] = []

    async def open_one() -> PostgresDatabase:
        db = PostgresDatabase(postgres_url)
        await db.open()
        opened.append(db)
        return db

    yield open_one
    for db in opened:
        await db.close()


def snos_job(i: int) -> Job:
    meta = SnosMetadata(snos_batch_index=i, start_block=i - 1, end_block=i - 1, num_blocks=1)
    return Job.new(JobType.SNOS_RUN, i, meta, now=1000.0, orchestrator_version="0.1.0")


async def _messages(db: PostgresDatabase) -> list[str]:
    async with db.connection() as conn:
        rows = await (await conn.execute("SELECT body FROM queue_messages ORDER BY seq")).fetchall()
    return [row["body"] for row in rows]


# -- opening -------------------------------------------------------------------------------------


async def test_two_processes_opening_at_once_migrate_once(postgres_url: str) -> None:
    first, second = PostgresDatabase(postgres_url), PostgresDatabase(postgres_url)
    await asyncio.gather(first.open(), second.open())
    try:
        async with first.connection() as conn:
            rows = await (await conn.execute("SELECT version FROM schema_migrations ORDER BY version")).fetchall()
        assert [row["version"] for row in rows] == list(range(1, len(MIGRATIONS) + 1))
        assert await second.schema_version() == len(MIGRATIONS)
    finally:
        await first.close()
        await second.close()


async def test_reopening_a_migrated_database_changes_nothing(open_database: OpenDatabase) -> None:
    first = await open_database()
    await PostgresStore(first).create_job(snos_job(1))
    second = await open_database()
    assert await second.schema_version() == len(MIGRATIONS)
    assert await PostgresStore(second).get_job_by_internal_id(JobType.SNOS_RUN, 1) is not None


async def test_a_database_of_a_newer_orchestrator_is_refused(postgres_url: str, open_database: OpenDatabase) -> None:
    db = await open_database()
    async with db.connection() as conn:
        await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(InvalidInput, match=r"schema version \d+, newer than this orchestrator's"):
        await PostgresDatabase(postgres_url).open()


async def test_a_database_holding_other_tables_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE jobs (name text)")
    db = PostgresDatabase(postgres_url)
    with pytest.raises(InvalidInput, match="already holds tables this orchestrator did not create"):
        await db.open()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('queue_messages')").fetchone() == (None,), "nothing half-created"


async def test_a_wrong_password_is_refused_in_one_line_without_the_password(postgres_server: PostgresCluster) -> None:
    postgres_server.create_role("orchestrator", "right-password")
    url = postgres_server.url(user="orchestrator", password="wrong-Pa55word")
    with pytest.raises(InvalidInput) as refused:
        await PostgresDatabase(url).open()
    message = str(refused.value)
    assert "password authentication failed" in message and "\n" not in message
    assert "wrong-Pa55word" not in message and "orchestrator:***@127.0.0.1" in message
    assert refused.value.__cause__ is None and refused.value.__suppress_context__, "no driver traceback attached"


async def test_a_missing_database_is_refused(postgres_server: PostgresCluster) -> None:
    with pytest.raises(InvalidInput, match='database "no_such_db" does not exist'):
        await PostgresDatabase(postgres_server.url("no_such_db")).open()


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A TCP port of 127.0.0.1 where nothing listens (bound, not listening: connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def test_an_unreachable_server_is_an_outage() -> None:
    with refusing_port() as port:
        url = f"postgresql://user:s3cret-pw@127.0.0.1:{port}/db"
        with pytest.raises(
            BackendUnavailable, match=r"PostgreSQL postgresql://user:\*\*\*@127.0.0.1:\d+/db is unreachable"
        ):
            await PostgresDatabase(url, connect_timeout_s=2).open()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://user:pw-in-url@host/db", "must start with postgresql://"),
        ("postgresql://user:pw-in-url@host:port/db", "the port 'port' is not a number"),
        ("postgresql://user:pw-in-url@[::1/db", "is malformed"),
        ("", "must start with postgresql://"),
    ],
)
def test_a_malformed_url_is_refused_at_once(url: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected) as refused:
        PostgresDatabase(url)
    assert "pw-in-url" not in str(refused.value)


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("postgresql://me:p%40ss@db.example:5433/orch?sslmode=require") == (
        "postgresql://me:***@db.example:5433/orch?sslmode=require"
    )
    assert mask_url("postgresql://me@db/orch") == "postgresql://me@db/orch"
    assert mask_url("postgresql://me:p@ss@db/orch") == "postgresql://me:***@db/orch"
    assert mask_url("postgresql://me@db/orch?sslmode=require&password=pw") == (
        "postgresql://me@db/orch?sslmode=require&password=***"
    )


# -- the database clock ----------------------------------------------------------------------------


async def test_the_database_clock_reads_the_server_without_a_round_trip(open_database: OpenDatabase) -> None:
    db = await open_database()
    before = await db.server_time()
    reading = db.clock()
    after = await db.server_time()
    assert before - 0.05 <= reading <= after + 0.05
    assert db.clock.now() >= reading and not db.clock.due


async def test_locks_follow_the_database_clock_not_the_callers(
    open_database: OpenDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStore(await open_database())
    assert await store.acquire("k", "a", 60)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 86_400)  # this machine's clock runs a day ahead
    assert not await store.acquire("k", "b", 60), "held for 60 s of the server's clock"


# -- one transaction for a job and its first message ---------------------------------------------------


async def test_create_job_and_send_writes_both_or_neither(open_database: OpenDatabase) -> None:
    db = await open_database()
    store = PostgresStore(db)
    job = snos_job(1)
    assert await store.create_job_and_send(job, WORK, f'{{"id": "{job.id}"}}')
    assert await store.get_job(job.id) == job
    assert await _messages(db) == [f'{{"id": "{job.id}"}}']
    assert not await store.create_job_and_send(snos_job(1), WORK, "duplicate"), "the job exists"
    assert await _messages(db) == [f'{{"id": "{job.id}"}}'], "nothing sent for an existing job"
    message = await PostgresQueue(db, CONFIGS).receive(WORK)
    assert message is not None and message.attributes == {"OrchestratorVersion": "0.1.0"}


async def test_a_failure_after_the_job_insert_leaves_neither_job_nor_message(
    open_database: OpenDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await open_database()
    store = PostgresStore(db)
    sent: list[str] = []

    async def insert_then_fail(conn: Connection, queue: str, body: str, *, now: float, delay_s: float = 0.0) -> str:
        sent.append(await insert_message(conn, queue, body, now=now, delay_s=delay_s))
        raise RuntimeError("the process died between the two writes")

    monkeypatch.setattr(sql_store, "insert_message", insert_then_fail)
    job = snos_job(1)
    with pytest.raises(RuntimeError, match="died"):
        await store.create_job_and_send(job, WORK, "first message")
    assert sent, "the message was written, then rolled back with the job"
    assert await store.get_job(job.id) is None
    assert await _messages(db) == []


async def test_a_value_postgres_cannot_store_is_invalid_input_and_nothing_is_written(
    open_database: OpenDatabase,
) -> None:
    db = await open_database()
    store = PostgresStore(db)
    job = snos_job(1)
    with pytest.raises(InvalidInput, match="NUL"):
        await store.create_job_and_send(job, WORK, "a NUL \x00 byte")
    assert await store.get_job(job.id) is None and await _messages(db) == []


# -- LISTEN/NOTIFY ---------------------------------------------------------------------------------------

LISTENERS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%%'"


class WatchedQueue(PostgresQueue):
    """Sets ``looked`` each time a look finds nothing: from then on its receive is waiting."""

    def __init__(self, db: PostgresDatabase) -> None:
        super().__init__(db, CONFIGS, max_idle_s=60)  # a wake-up by timer would come too late for the tests
        self.looked = asyncio.Event()

    async def _try_receive(self, queue: str, config: QueueConfig) -> tuple[QueueMessage | None, float | None]:
        found = await super()._try_receive(queue, config)
        if found[0] is None:
            self.looked.set()
        return found


async def test_a_waiting_receiver_is_woken_by_a_send_from_another_process(open_database: OpenDatabase) -> None:
    receiver = WatchedQueue(await open_database())
    sender = PostgresQueue(await open_database(), CONFIGS)
    waiting = asyncio.create_task(receiver.receive(WORK, wait_s=10))
    await asyncio.wait_for(receiver.looked.wait(), timeout=5)
    await sender.send(WORK, "from elsewhere")
    message = await asyncio.wait_for(waiting, timeout=2)  # without the notification it would wait 10 s
    assert message is not None and message.body == "from elsewhere"


async def test_a_nack_from_another_process_wakes_a_waiting_receiver(open_database: OpenDatabase) -> None:
    receiver = WatchedQueue(await open_database())
    other = PostgresQueue(await open_database(), CONFIGS)
    await other.send(WORK, "retry me")
    taken = await other.receive(WORK)
    assert taken is not None
    waiting = asyncio.create_task(receiver.receive(WORK, wait_s=10))
    await asyncio.wait_for(receiver.looked.wait(), timeout=5)
    await other.nack(taken)
    message = await asyncio.wait_for(waiting, timeout=2)
    assert message is not None and message.body == "retry me" and message.receive_count == 2


async def test_a_delayed_message_is_received_on_time_without_a_notification(open_database: OpenDatabase) -> None:
    db = await open_database()
    queue = PostgresQueue(db, CONFIGS, max_idle_s=60)
    async with db.connection() as conn:  # written as another process would, but its NOTIFY never arrives
        await conn.execute(
            "INSERT INTO queue_messages (message_id, queue, body, sent_at, visible_at)"
            " VALUES ('m', %s, 'late', %s, %s)",
            (WORK, db.clock(), db.clock() + 0.2),
        )
    message = await asyncio.wait_for(queue.receive(WORK, wait_s=10), timeout=2)
    assert message is not None and message.body == "late"


async def test_receivers_in_one_process_share_one_listening_connection(open_database: OpenDatabase) -> None:
    db = await open_database()
    queue = WatchedQueue(db)
    sender = PostgresQueue(await open_database(), CONFIGS)
    receivers = [asyncio.create_task(queue.receive(WORK, wait_s=10)) for _ in range(5)]
    await asyncio.wait_for(queue.looked.wait(), timeout=5)
    async with db.connection() as conn:
        row = await (await conn.execute(LISTENERS.replace("pid", "COUNT(*) AS n", 1))).fetchone()
    assert row is not None and row["n"] == 1
    for i in range(5):
        await sender.send(WORK, f"m{i}")
    got = await asyncio.wait_for(asyncio.gather(*receivers), timeout=5)
    assert sorted(m.body for m in got if m is not None) == [f"m{i}" for i in range(5)]


async def test_a_lost_listening_connection_is_made_again(open_database: OpenDatabase) -> None:
    db = await open_database()
    receiver = WatchedQueue(db)
    sender = PostgresQueue(await open_database(), CONFIGS)
    waiting = asyncio.create_task(receiver.receive(WORK, wait_s=10))
    await asyncio.wait_for(receiver.looked.wait(), timeout=5)
    receiver.looked.clear()
    async with db.connection() as conn:
        await conn.execute(LISTENERS.replace("pid", "pg_terminate_backend(pid)", 1))
    await asyncio.wait_for(receiver.looked.wait(), timeout=5)  # woken by the loss, it looked again and waits again
    await sender.send(WORK, "after the loss")  # its NOTIFY may reach no one: the listener is not back yet
    message = await asyncio.wait_for(waiting, timeout=5)  # woken when the connection is back, not at 10 s
    assert message is not None and message.body == "after the loss"
    async with db.connection() as conn:
        rows = await (await conn.execute(LISTENERS)).fetchall()
    assert len(rows) == 1, "listening again, on one connection"
