"""Batching survives real crashes: a batching process SIGKILLed at random moments, restarted each time,
ends with exactly the batches (ranges, statuses, sizes, file bytes) of one uninterrupted run.

Each process is killed once it has batched up to a block drawn at random (seeded) from what is left. It
starts work once it took the batching lease, which it gets once the lease of the process killed before it
expired (2 s). After every kill the stored state is checked too (``check_batches(after_crash=True)``),
tolerating one known bug (see ``check_after_kill``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.devnet.sequencer import DevnetChain, DevnetSequencer
from madara_orchestrator.domain.batches import DEFAULT_BOUNCER_WEIGHT_LIMITS
from madara_orchestrator.domain.batching import BatchLimits
from madara_orchestrator.engine.batching import AGGREGATOR_LOCK
from tests.conftest import REPO_ROOT
from tests.helpers.batching import (
    check_batches,
    describe_differences,
    limits_from_json,
    limits_to_json,
    make_chain,
    make_rig,
    served,
    snapshot,
)
from tests.helpers.depth import chaos_seeds
from tests.helpers.engine import FakeClock

LEASE_S = 2.0
KILLS = 4
"""Per seed; each seed's kills land at other moments. ``make test`` runs two seeds (8 kills, at least 4 of
them in the middle of the work), ``MADARA_TEST_DEPTH=deep`` all three."""
BLOCKS = 80
# About 45 felts a block: aggregator batches close by blob size (~6 blocks) or count (8), SNOS batches by
# count (3) or by their aggregator batch.
TX_PER_BLOCK = 10
LIMITS = BatchLimits(
    max_batch_time_s=3600,
    max_batch_size=8,
    max_blocks_per_snos_batch=3,
    max_num_blobs=1,
    blob_size_buffer=4096 - 300,
    bouncer_weight_limits=DEFAULT_BOUNCER_WEIGHT_LIMITS,
)
PROCESSING_SIZE = 5
"""Blocks per run: small, so that a run saves often and a kill lands near a write more often."""


async def start_process(db_path: Path, objects: Path, url: str, owner: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.batching_process",
        "--sqlite",
        str(db_path),
        "--objects",
        str(objects),
        "--rpc-url",
        url,
        "--limits-json",
        limits_to_json(LIMITS),
        "--lease",
        str(LEASE_S),
        "--max-batch-processing-size",
        str(PROCESSING_SIZE),
        "--owner",
        owner,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO_ROOT / "src"), str(REPO_ROOT)))},
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", f"the batching process said {line!r}"
    return proc


async def blocks_batched(db_path: Path) -> int:
    """The last block in an aggregator batch (-1 for none), read from the shared file."""
    db = SqliteDatabase(db_path)
    try:
        latest = await SqliteStore(db).latest_aggregator_batch()
        return -1 if latest is None else latest.end_block
    finally:
        await db.close()


def lease_owner(db_path: Path) -> str | None:
    if not db_path.exists():
        return None
    with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as conn:
        try:
            row = conn.execute(
                "SELECT owner FROM locks WHERE key = ? AND expires_at > ?", (AGGREGATOR_LOCK, time.time())
            ).fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            return None
    return None if row is None else str(row[0])


def progress(db_path: Path) -> int:
    """The last block in an aggregator batch (-1 for none), read without the store (cheap enough to poll)."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as conn:
        try:
            row = conn.execute("SELECT max(end_block) FROM aggregator_batches").fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            return -1
    return -1 if row is None or row[0] is None else int(row[0])


async def until_batched(proc: asyncio.subprocess.Process, db_path: Path, block: int) -> None:
    """Until the process has batched ``block`` (or has exited)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.returncode is not None or progress(db_path) >= block:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the batching process did not reach block {block} within 60 s")


async def until_working(proc: asyncio.subprocess.Process, db_path: Path, owner: str) -> None:
    """Until the process holds the batching lease (a killed holder's lease has expired) or has exited."""
    deadline = time.monotonic() + 4 * LEASE_S + 10
    while time.monotonic() < deadline:
        if proc.returncode is not None or lease_owner(db_path) == owner:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{owner} did not get the batching lease within {4 * LEASE_S + 10} s")


async def check_after_kill(db_path: Path, objects_dir: Path, chain: DevnetChain) -> None:
    """What a kill leaves must pass ``check_batches(after_crash=True)``: at worst an open batch whose
    files are ahead of its record, which the next run repairs."""
    db = SqliteDatabase(db_path)
    try:
        await check_batches(SqliteStore(db), FilesystemObjectStore(objects_dir), chain, LIMITS, after_crash=True)
    finally:
        await db.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", chaos_seeds([11, 22, 33], default=2))
async def test_batching_killed_at_random_moments_ends_as_an_uninterrupted_run(tmp_path: Path, seed: int) -> None:
    chain = make_chain([TX_PER_BLOCK] * BLOCKS)
    rng = random.Random(seed)
    db_path, objects_dir = tmp_path / "shared" / "orchestrator.db", tmp_path / "shared" / "objects"
    async with served(DevnetSequencer(chain).app) as url:
        reference = await make_rig(tmp_path / "uninterrupted", url, LIMITS, clock=FakeClock())
        try:
            await reference.run_all()
            expected = await snapshot(reference.store, reference.objects)
        finally:
            await reference.close()

        interrupted = 0
        for attempt in range(KILLS):
            before = await blocks_batched(db_path)
            owner = f"process-{attempt}"
            proc = await start_process(db_path, objects_dir, url, owner)
            await until_working(proc, db_path, owner)
            # Somewhere in what is left of the work: once the process has batched up to a block drawn at random
            # from what is left (by its progress, not by a stopwatch, so a loaded machine moves the moment with it).
            target = rng.randint(before + 1, max(before + 1, chain.head - PROCESSING_SIZE))
            await until_batched(proc, db_path, target)
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            code = await asyncio.wait_for(proc.wait(), 10)
            after = await blocks_batched(db_path)
            await check_after_kill(db_path, objects_dir, chain)
            if code == -signal.SIGKILL and after < chain.head:
                interrupted += 1
        last = await start_process(db_path, objects_dir, url, "process-last")
        assert await asyncio.wait_for(last.wait(), 60) == 0

    db = SqliteDatabase(db_path)
    try:
        store, objects = SqliteStore(db), FilesystemObjectStore(objects_dir)
        await check_batches(store, objects, chain, LIMITS, through=chain.head)
        got = await snapshot(store, objects)
        assert got == expected, describe_differences(got, expected)
    finally:
        await db.close()
    assert interrupted >= 2, f"only {interrupted} of {KILLS} kills landed in the middle of the work"


def test_limits_go_to_the_process_unchanged() -> None:
    custom = dataclasses.replace(
        LIMITS, bouncer_weight_limits=dataclasses.replace(DEFAULT_BOUNCER_WEIGHT_LIMITS, n_txs=7)
    )
    assert limits_from_json(limits_to_json(custom)) == custom
