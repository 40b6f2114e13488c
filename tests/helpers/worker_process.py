"""A worker process for the crash test: consumes ProofCreation messages from a shared SQLite file.

``--hang-on N`` makes the handler block forever on job N (so the test can SIGKILL it mid-job).
Every handler run appends ``<pid> <internal_id>`` to ``--effects`` (the side effect being counted).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, Job, JobPolicy, JobType
from madara_orchestrator.domain.queues import parse_job_message
from madara_orchestrator.engine.consumers import QueueConsumer
from madara_orchestrator.engine.metrics import Metrics
from madara_orchestrator.engine.runtime import RuntimeConfig
from madara_orchestrator.engine.service import JobService
from madara_orchestrator.interfaces import Processed, QueueMessage, Verified

PT = JobType.PROOF_CREATION


class EffectHandler:
    job_type = PT

    def __init__(self, effects: Path, hang_on: int | None) -> None:
        self.effects = effects
        self.hang_on = hang_on

    async def check_ready(self, job: Job) -> float | None:
        return None

    async def process(self, job: Job) -> Processed:
        with self.effects.open("a") as handle:
            handle.write(f"{os.getpid()} {job.internal_id}\n")
        if job.internal_id == self.hang_on:
            await asyncio.Event().wait()
        return Processed(external_id=f"done-by-{os.getpid()}")

    async def verify(self, job: Job) -> Verified:
        return Verified.verified()


def config(lease_s: float) -> RuntimeConfig:
    policies = dict(DEFAULT_POLICIES)
    policies[PT] = JobPolicy(
        max_process_attempts=1, max_verification_attempts=5, verification_delay_s=0, lease_s=lease_s
    )
    return RuntimeConfig(policies=policies)


async def build(
    db_path: Path, lease_s: float, handler: EffectHandler
) -> tuple[SqliteDatabase, JobService, SqliteQueue]:
    cfg = config(lease_s)
    db = SqliteDatabase(db_path)
    await db.open()
    by_name, dead = cfg.physical_queue_configs()
    queue = SqliteQueue(db, by_name, dead_letter_names=dead, poll_interval_s=0.05)
    service = JobService(
        db=SqliteStore(db),
        queue=queue,
        queue_names=cfg.queue_names,
        handlers={PT: handler},
        alerts=RecordingAlerts(),
        metrics=Metrics(),
        policies=cfg.policies,
    )
    return db, service, queue


def consumers(service: JobService, queue: SqliteQueue, lease_s: float) -> list[QueueConsumer]:
    cfg = config(lease_s)

    async def process(message: QueueMessage):  # type: ignore[no-untyped-def]
        return await service.process_job(parse_job_message(message.body), receive_count=message.receive_count)

    async def verify(message: QueueMessage):  # type: ignore[no-untyped-def]
        return await service.verify_job(parse_job_message(message.body))

    return [
        QueueConsumer(
            queue,
            cfg.queue_names.processing(PT),
            process,
            concurrency=4,
            visibility_s=cfg.lease_visibility_s(PT),
            receive_wait_s=0.2,
        ),
        QueueConsumer(
            queue, cfg.queue_names.verification(PT), verify, concurrency=4, visibility_s=10, receive_wait_s=0.2
        ),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--effects", required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--hang-on", type=int, default=None)
    args = parser.parse_args()
    handler = EffectHandler(Path(args.effects), args.hang_on)
    _, service, queue = await build(Path(args.db), args.lease, handler)
    stop = asyncio.Event()
    await asyncio.gather(*(c.run(stop) for c in consumers(service, queue, args.lease)))


if __name__ == "__main__":
    asyncio.run(main())
