"""Builders for engine tests: the in-memory store and queue (a real SQLite file on request), and scriptable
job handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.memory import MemoryAtomicWrites, MemoryQueue, MemoryStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, Job, JobPolicy, JobType, ProvingMetadata
from madara_orchestrator.domain.queues import QueueNames
from madara_orchestrator.engine.runtime import RuntimeConfig
from madara_orchestrator.engine.service import JobService, RetryPolicy
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.jobs.base import Processed, Verified


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class ScriptedHandler:
    """A handler whose outcomes are queued by the test; by default it succeeds and verifies."""

    job_type: JobType = JobType.PROOF_CREATION
    process_outcomes: list[Any] = field(default_factory=list)
    verify_outcomes: list[Any] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)
    verified: list[int] = field(default_factory=list)
    ready_delay: float | None = None
    process_hook: Callable[[Job], Any] | None = None

    async def check_ready(self, job: Job) -> float | None:
        return self.ready_delay

    async def process(self, job: Job) -> Processed:
        self.processed.append(job.internal_id)
        if self.process_hook is not None:
            result = self.process_hook(job)
            if asyncio.iscoroutine(result):
                await result
        outcome = self.process_outcomes.pop(0) if self.process_outcomes else f"ext-{job.internal_id}"
        if isinstance(outcome, BaseException):
            raise outcome
        return Processed(external_id=str(outcome))

    async def verify(self, job: Job) -> Verified:
        self.verified.append(job.internal_id)
        outcome = self.verify_outcomes.pop(0) if self.verify_outcomes else Verified.verified()
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, Verified)
        return outcome


def proving_meta(block: int) -> ProvingMetadata:
    return ProvingMetadata(block_number=block, input_path={"CairoPie": f"{block}/cairo_pie.zip"})


@dataclass
class Harness:
    db: SqliteDatabase | None
    """The SQLite file, when the harness was asked for one (``sqlite=True``)."""
    store: SqliteStore | MemoryStore
    queue: SqliteQueue | MemoryQueue
    service: JobService
    alerts: RecordingAlerts
    clock: FakeClock
    names: QueueNames
    handler: ScriptedHandler

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()


async def make_harness(
    path: Path,
    *,
    handler: ScriptedHandler | None = None,
    policy: JobPolicy | None = None,
    clock: FakeClock | None = None,
    sqlite: bool = False,
    atomic: bool = False,
) -> Harness:
    """``path``: the SQLite file, used when ``sqlite`` (for a test about SQLite itself); else the store and
    queue are in memory. ``atomic``: the service writes a job and its messages together (``AtomicJobWrites``:
    in one transaction on SQLite), as a deployment whose queue is in its database does."""
    clock = clock or FakeClock()
    handler = handler or ScriptedHandler()
    policies = dict(DEFAULT_POLICIES)
    policies[handler.job_type] = policy or JobPolicy(
        max_process_attempts=2, max_verification_attempts=3, verification_delay_s=5, lease_s=30
    )
    config = RuntimeConfig(policies=policies)
    names = config.queue_names
    by_name, dead_letters = config.physical_queue_configs()
    db: SqliteDatabase | None = None
    store: SqliteStore | MemoryStore
    queue: SqliteQueue | MemoryQueue
    writes: SqliteStore | MemoryAtomicWrites
    if sqlite:
        db = SqliteDatabase(path)
        await db.open()
        store = writes = SqliteStore(db, clock=clock)
        queue = SqliteQueue(db, by_name, dead_letter_names=dead_letters, clock=clock, poll_interval_s=0.01)
    else:
        store = MemoryStore()
        queue = MemoryQueue(by_name, dead_letter_names=dead_letters, clock=clock)
        writes = MemoryAtomicWrites(store, queue)
    alerts = RecordingAlerts()
    service = JobService(
        db=store,
        queue=queue,
        queue_names=names,
        handlers={handler.job_type: handler},
        alerts=alerts,
        metrics=NoTelemetry(),
        clock=clock,
        policies=policies,
        retry=RetryPolicy(base_delay_s=1, max_delay_s=8),
        atomic_writes=writes if atomic else None,
        prover_webhooks=True,
    )
    return Harness(db, store, queue, service, alerts, clock, names, handler)
