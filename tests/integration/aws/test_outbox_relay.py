"""The outbox relayed to SQS (moto): jobs and their messages written in PostgreSQL transactions, two relays
(two processes' worth of connections) sending them on; each message reaches SQS once, the outbox empties."""

from __future__ import annotations

import asyncio

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.backends.aws_names import QueueAddressing
from madara_orchestrator.backends.aws_sqs import SqsQueue
from madara_orchestrator.backends.outbox import OutboxRelay
from madara_orchestrator.backends.postgres import PostgresStore
from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, SnosMetadata, transition
from madara_orchestrator.domain.queues import QueueConfig, QueueType
from madara_orchestrator.interfaces import Outgoing
from tests.helpers.moto import create_sqs_queues

JOBS = 30


class CountingSqs(SqsQueue):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sends: list[str] = []

    async def send(self, queue: str, body: str, *, delay_s: float = 0.0) -> str:
        self.sends.append(body)
        return await super().send(queue, body, delay_s=delay_s)


def snos_job(i: int) -> Job:
    meta = SnosMetadata(snos_batch_index=i, start_block=i - 1, end_block=i - 1, num_blocks=1)
    return Job.new(JobType.SNOS_RUN, i, meta, now=1000.0, orchestrator_version="0.1.0")


async def test_two_relays_send_each_outbox_message_to_sqs_once(
    moto_reset: str, aws_prefix: str, postgres_url: str
) -> None:
    work = f"{aws_prefix}_work"
    configs = {work: QueueConfig(queue_type=QueueType.SNOS_JOB_PROCESSING, visibility_timeout_s=30, concurrency=1)}
    aws = Aws()
    dbs = [PostgresDatabase(postgres_url), PostgresDatabase(postgres_url)]
    stop = asyncio.Event()
    running: list[asyncio.Future[None]] = []
    try:
        create_sqs_queues(aws, configs)
        sqs = CountingSqs(aws, QueueAddressing.parse(), configs)
        for db in dbs:
            await db.open()
        relays = [OutboxRelay(db, sqs, batch=4, max_idle_s=3600) for db in dbs]
        running += [asyncio.ensure_future(relay.run(stop)) for relay in relays]
        store = PostgresStore(dbs[0], outbox=True)
        expected = []
        for i in range(1, JOBS + 1):
            job = snos_job(i)
            assert await store.create_job_and_send(job, work, f"create {i}")
            locked = transition(job, JobStatus.LOCKED_FOR_PROCESSING)
            await store.update_job_and_send(locked, [Outgoing(work, f"locked {i}")], now=1001.0)
            expected += [f"create {i}", f"locked {i}"]
        received: list[str] = []
        while len(received) < len(expected):
            message = await sqs.receive(work, wait_s=10)
            assert message is not None, f"SQS has {len(received)} of {len(expected)} messages"
            received.append(message.body)
            await sqs.ack(message)
        assert sorted(received) == sorted(expected)
        assert sorted(sqs.sends) == sorted(expected), "each row sent once"
        assert await relays[0].pending() == 0
        assert await sqs.receive(work, wait_s=0) is None
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 30)
        for db in dbs:
            await db.close()
        aws.close()
