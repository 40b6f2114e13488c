"""A devnet chain served over HTTP, and SnosRun jobs run through the real handler and object store."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.devnet.sequencer import DevnetChain, DevnetSequencer
from madara_orchestrator.domain.jobs import Job, JobType, SnosMetadata
from madara_orchestrator.interfaces import Processed, SnosRunner
from madara_orchestrator.jobs.snos import SnosJobHandler, snos_metadata
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.starknet.rpc import StarknetRpcClient
from tests.conftest import REPO_ROOT

PROGRAM = [sys.executable, str(REPO_ROOT / "tests" / "helpers" / "snos_runner_program.py")]
"""The tests' runner program by path, with this interpreter (the venv's)."""
BLOCKS = 6


@dataclass
class Chain:
    sequencer: DevnetSequencer
    url: str
    rpc: StarknetRpcClient


@pytest.fixture
async def chain() -> AsyncIterator[Chain]:
    devnet = DevnetChain(tx_per_block=5)
    for _ in range(BLOCKS - 1):
        devnet.produce_block()
    sequencer = DevnetSequencer(devnet)
    server = BackgroundServer(sequencer.app)
    url = await server.start()
    rpc = StarknetRpcClient(url, attempts=1, retry_pause_s=0)
    try:
        yield Chain(sequencer, url, rpc)
    finally:
        await rpc.aclose()
        await server.stop()


@dataclass
class SnosRun:
    processed: Processed
    objects: FilesystemObjectStore
    meta: SnosMetadata


async def run_snos_job(runner: SnosRunner, tmp_path: Path, start: int, end: int, index: int = 1) -> SnosRun:
    """One SnosRun job through ``SnosJobHandler`` (its error classification, its artifacts)."""
    objects = FilesystemObjectStore(tmp_path / "objects")
    meta = snos_metadata(index, start, end)
    job = Job.new(JobType.SNOS_RUN, index, meta, now=1000.0, orchestrator_version="test")
    processed = await SnosJobHandler(snos=runner, objects=objects).process(job)
    return SnosRun(processed, objects, meta)
