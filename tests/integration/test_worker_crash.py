"""Crash and concurrency: a worker killed mid-job, and several consumers racing over many jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from madara_orchestrator.domain.jobs import JobStatus
from tests.conftest import REPO_ROOT
from tests.helpers.engine import proving_meta
from tests.helpers.worker_process import PT, EffectHandler, build, consumers

LEASE_S = 2.0


def effects_of(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


async def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def test_job_of_a_killed_worker_is_completed_by_another_within_the_lease(tmp_path: Path) -> None:
    db_path, effects = tmp_path / "shared.db", tmp_path / "effects.txt"
    db, service, queue = await build(db_path, LEASE_S, EffectHandler(effects, None))
    job = await service.create_job(PT, 7, proving_meta(7))
    assert job is not None
    args = ["--db", str(db_path), "--effects", str(effects), "--lease", str(LEASE_S), "--hang-on", "7"]
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.worker_process",
        *args,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])},
    )
    try:

        async def started() -> bool:
            return any(internal == 7 for _, internal in effects_of(effects))

        await wait_for(started, 30, "the worker to start job 7")
        locked = await service.db.get_job(job.id)
        assert locked is not None and locked.status == JobStatus.LOCKED_FOR_PROCESSING
        assert locked.lease_owner is not None
        worker.send_signal(signal.SIGKILL)
        await asyncio.wait_for(worker.wait(), 10)
        killed_at = time.monotonic()

        stop = asyncio.Event()
        tasks = [asyncio.create_task(c.run(stop)) for c in consumers(service, queue, LEASE_S)]

        async def completed() -> bool:
            fresh = await service.db.get_job(job.id)
            return fresh is not None and fresh.status == JobStatus.COMPLETED

        await wait_for(completed, 20, "job 7 to be completed by the second worker")
        recovery = time.monotonic() - killed_at
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        if worker.returncode is None:
            worker.kill()
    done = await service.db.get_job(job.id)
    assert done is not None and done.external_id == f"done-by-{os.getpid()}"
    assert [pid for pid, _ in effects_of(effects)] == [worker.pid, os.getpid()]
    # Taken over once the lease (2 s) and the message's grace (1 s) ran out: within about a lease.
    assert recovery < 2 * LEASE_S + 2, f"recovery took {recovery:.1f} s"
    await db.close()


async def test_four_consumers_over_200_jobs_run_each_handler_once(tmp_path: Path) -> None:
    db_path, effects = tmp_path / "shared.db", tmp_path / "effects.txt"
    workers = [await build(db_path, 10.0, EffectHandler(effects, None)) for _ in range(4)]
    _, creator, queue0 = workers[0]
    jobs = []
    for i in range(1, 201):
        job = await creator.create_job(PT, i, proving_meta(i))
        assert job is not None
        jobs.append(job)
    # At-least-once delivery: duplicate every message; the side effect must still happen once per job.
    from madara_orchestrator.domain.queues import job_message

    for job in jobs:
        await queue0.send(creator.names.processing(PT), job_message(job.id))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for _, service, queue in workers for c in consumers(service, queue, 10.0)]

    async def all_done() -> bool:
        counts = await creator.db.count_jobs()
        return counts.get((PT, JobStatus.COMPLETED), 0) == 200

    await wait_for(all_done, 90, "200 jobs to complete")
    stop.set()
    await asyncio.gather(*tasks)
    per_job = Counter(internal for _, internal in effects_of(effects))
    assert sorted(per_job) == list(range(1, 201))
    assert set(per_job.values()) == {1}, f"jobs processed more than once: {[k for k, v in per_job.items() if v > 1]}"
    for db, _, _ in workers:
        await db.close()
