"""Contract tests of the queue's SQS semantics: delay, visibility timeout, ack/nack, extend, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.backends.memory import MemoryQueue
from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.postgres_queue import PostgresQueue
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.queues import QueueConfig, QueueType
from madara_orchestrator.interfaces import QueueClient
from tests.helpers.engine import FakeClock
from tests.helpers.moto import sqs_contract_queue

WORK = "work"
DLQ = "dead"
TRIGGERS = "triggers"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres", "sqs", "memory"])
async def queue(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[QueueClient]:
    configs = {
        WORK: QueueConfig(
            queue_type=QueueType.SNOS_JOB_PROCESSING, visibility_timeout_s=30, concurrency=1, max_receive_count=3
        ),
        DLQ: QueueConfig(
            queue_type=QueueType.JOB_HANDLE_FAILURE, visibility_timeout_s=30, concurrency=1, dead_letter=None
        ),
        TRIGGERS: QueueConfig(
            queue_type=QueueType.WORKER_TRIGGER,
            visibility_timeout_s=30,
            concurrency=1,
            dead_letter=None,
            retention_s=60,
        ),
    }
    if request.param == "sqs":  # moto, in real time: the tests that drive the fake clock skip
        async with sqs_contract_queue(request, configs, {WORK: DLQ}) as sqs:
            yield sqs
        return
    if request.param == "memory":
        yield MemoryQueue(configs, dead_letter_names={WORK: DLQ}, clock=clock)
        return
    if request.param == "postgres":  # the fake clock stands for the database's (the default)
        pg = PostgresDatabase(request.getfixturevalue("postgres_url"))
        await pg.open()
        yield PostgresQueue(pg, configs, dead_letter_names={WORK: DLQ}, clock=clock)
        await pg.close()
        return
    db = SqliteDatabase(tmp_path / "queue.db")
    yield SqliteQueue(db, configs, dead_letter_names={WORK: DLQ}, clock=clock, poll_interval_s=0.01)
    await db.close()


async def test_fifo_delivery_and_ack_deletes(queue: QueueClient) -> None:
    for body in ("a", "b", "c"):
        await queue.send(WORK, body)
    got = [await queue.receive(WORK) for _ in range(3)]
    assert [m.body for m in got if m] == ["a", "b", "c"]
    assert await queue.receive(WORK) is None
    for m in got:
        assert m is not None
        await queue.ack(m)
    depth = await queue.depth(WORK)
    assert (depth.visible, depth.in_flight, depth.delayed) == (0, 0, 0)


async def test_delayed_message_is_invisible_until_its_delay(queue: QueueClient, clock: FakeClock) -> None:
    await queue.send(WORK, "later", delay_s=10)
    assert await queue.receive(WORK) is None
    assert (await queue.depth(WORK)).delayed == 1
    clock.advance(9.9)
    assert await queue.receive(WORK) is None
    clock.advance(0.2)
    message = await queue.receive(WORK)
    assert message is not None and message.body == "later"


async def test_unacked_message_reappears_after_the_visibility_timeout(queue: QueueClient, clock: FakeClock) -> None:
    await queue.send(WORK, "x")
    first = await queue.receive(WORK)
    assert first is not None and first.receive_count == 1
    assert (await queue.depth(WORK)).in_flight == 1
    clock.advance(29)
    assert await queue.receive(WORK) is None
    clock.advance(2)
    second = await queue.receive(WORK)
    assert second is not None and second.message_id == first.message_id and second.receive_count == 2
    await queue.ack(first)  # a stale receipt deletes nothing
    clock.advance(31)
    third = await queue.receive(WORK)
    assert third is not None and third.receive_count == 3


async def test_extend_keeps_a_message_hidden(queue: QueueClient, clock: FakeClock) -> None:
    await queue.send(WORK, "long job")
    message = await queue.receive(WORK)
    assert message is not None
    for _ in range(5):
        clock.advance(20)
        await queue.extend(message, visibility_s=30)
        assert await queue.receive(WORK) is None
    await queue.ack(message)
    clock.advance(100)
    assert await queue.receive(WORK) is None


async def test_nack_with_delay_redelivers_later(queue: QueueClient, clock: FakeClock) -> None:
    await queue.send(WORK, "retry me")
    message = await queue.receive(WORK)
    assert message is not None
    await queue.nack(message, delay_s=5)
    assert await queue.receive(WORK) is None
    clock.advance(5.1)
    again = await queue.receive(WORK)
    assert again is not None and again.receive_count == 2


async def test_message_moves_to_dead_letter_after_max_receives(queue: QueueClient) -> None:
    await queue.send(WORK, "poison")
    for expected in (1, 2, 3):
        message = await queue.receive(WORK)
        assert message is not None and message.receive_count == expected
        await queue.nack(message)
    assert await queue.receive(WORK) is None, "the fourth receive dead-letters instead of delivering"
    dead = await queue.receive(DLQ)
    assert dead is not None and dead.body == "poison" and dead.receive_count >= 1  # SQS keeps counting


async def test_retention_drops_old_trigger_messages(queue: QueueClient, clock: FakeClock) -> None:
    await queue.send(TRIGGERS, "Snos")
    clock.advance(61)
    await queue.send(TRIGGERS, "Proving")
    message = await queue.receive(TRIGGERS)
    assert message is not None and message.body == "Proving"
    assert await queue.receive(TRIGGERS) is None


async def test_receive_waits_for_a_local_send(queue: QueueClient) -> None:
    import asyncio

    async def send_soon() -> None:
        await asyncio.sleep(0.05)
        await queue.send(WORK, "woken")

    task = asyncio.create_task(send_soon())
    message = await queue.receive(WORK, wait_s=5)
    await task
    assert message is not None and message.body == "woken"


async def test_unknown_queue_is_a_clear_error(queue: QueueClient) -> None:
    with pytest.raises(InvalidInput, match="unknown queue 'nope'"):
        await queue.send("nope", "x")


async def test_messages_carry_the_orchestrator_version(queue: QueueClient) -> None:
    await queue.send(WORK, "x")
    message = await queue.receive(WORK)
    assert message is not None and message.attributes == {"OrchestratorVersion": ORCHESTRATOR_VERSION}


# -- SQLite only: waiting costs no writes, and work from another process wakes the receiver ------------


def _sqlite_queue(db: SqliteDatabase) -> SqliteQueue:
    config = QueueConfig(queue_type=QueueType.SNOS_JOB_PROCESSING, visibility_timeout_s=30, concurrency=1)
    return SqliteQueue(db, {WORK: config}, poll_interval_s=0.02)


async def test_sqlite_receivers_waiting_on_an_empty_queue_write_nothing(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "idle.db")
    await db.open()
    queue = _sqlite_queue(db)
    await queue.send(WORK, "later", delay_s=3600)  # a delayed message must not make the wait write either
    before = db.write_transactions
    results = await asyncio.gather(*(queue.receive(WORK, wait_s=0.3) for _ in range(4)))
    assert results == [None] * 4
    assert db.write_transactions == before, "an idle receive took the write lock"
    await db.close()


async def test_sqlite_a_message_from_another_process_wakes_a_waiting_receiver(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    mine, theirs = SqliteDatabase(path), SqliteDatabase(path)  # two connections, as two processes have
    await mine.open()
    await theirs.open()
    receiver, sender = _sqlite_queue(mine), _sqlite_queue(theirs)
    waiting = asyncio.create_task(receiver.receive(WORK, wait_s=30))
    while receiver._waiting == 0:  # noqa: ASYNC110 (until it waits; it would find the message at once otherwise)
        await asyncio.sleep(0.001)
    await sender.send(WORK, "from elsewhere")
    message = await asyncio.wait_for(waiting, timeout=5)
    assert message is not None and message.body == "from elsewhere"
    await mine.close()
    await theirs.close()
