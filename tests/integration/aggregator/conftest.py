"""An aggregator batch of a devnet chain served over HTTP (blocks 0..3 in SNOS batches 0..1 and 2..3),
its SNOS artifacts as the tests' SNOS runner leaves them, and Aggregator jobs run through the real handler,
database and object store."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.jobs import AggregatorMetadata, Job, JobType, ProvingMetadata
from madara_orchestrator.interfaces import AggregatorRunner, Processed
from madara_orchestrator.jobs.aggregator import AggregatorJobHandler, aggregator_metadata
from madara_orchestrator.jobs.artifacts import encode_program_output
from madara_orchestrator.provers.mock import MockProverClient
from tests.conftest import REPO_ROOT
from tests.helpers.engine import FakeClock
from tests.helpers.snos_runner_program import build_os_output, build_os_pie, n_steps_for
from tests.integration.snos.conftest import Chain, chain

__all__ = ["PROGRAM", "AggregatorRun", "Chain", "chain", "run_aggregator_job"]

PROGRAM = [sys.executable, str(REPO_ROOT / "tests" / "helpers" / "aggregator_runner_program.py")]
"""The tests' aggregator runner program by path, with this interpreter (the venv's)."""
SNOS_BATCHES = ((1, 0, 1), (2, 2, 3))
"""(index, first block, last block) of the aggregator batch's SNOS batches."""


@dataclass
class AggregatorRun:
    processed: Processed
    objects: FilesystemObjectStore
    meta: AggregatorMetadata


async def run_aggregator_job(
    runner: AggregatorRunner,
    chain: Chain,
    tmp_path: Path,
    *,
    tamper: Callable[[int, list[int]], list[int]] | None = None,
    ready: bool = True,
) -> AggregatorRun:
    """Aggregator batch 1 through ``AggregatorJobHandler`` with the mock prover (no fact registry).
    ``tamper(snos batch index, OS output)`` changes a SNOS output before it is stored (its PIE holds it);
    ``ready``: whether the handler must find the runner ready (it is processed either way)."""
    objects = FilesystemObjectStore(tmp_path / "objects")
    db = SqliteDatabase(tmp_path / "orchestrator.db")
    store = SqliteStore(db)
    try:
        await store.insert_aggregator_batch(
            AggregatorBatch(
                index=1, start_block=0, end_block=3, status=AggregatorBatchStatus.CLOSED, created_at=0, updated_at=0
            )
        )
        for index, start, end in SNOS_BATCHES:
            output = await build_os_output(chain.url, start, end)
            if tamper is not None:
                output = tamper(index, output)
            await objects.put(f"{index}/program_output.txt", encode_program_output(output))
            await objects.put(f"{index}/cairo_pie.zip", build_os_pie(output, n_steps=n_steps_for(output)))
            await store.insert_snos_batch(
                SnosBatch(
                    index=index,
                    start_block=start,
                    end_block=end,
                    status=SnosBatchStatus.COMPLETED,
                    created_at=0,
                    updated_at=0,
                    aggregator_batch_index=1,
                )
            )
            proof = Job.new(
                JobType.PROOF_CREATION, index, ProvingMetadata(block_number=end), now=0, orchestrator_version="0.1.0"
            )
            await store.create_job(dataclasses.replace(proof, external_id=f"child-{index}"))
        handler = AggregatorJobHandler(
            prover=MockProverClient(), objects=objects, db=store, clock=FakeClock(), runner=runner
        )
        meta = aggregator_metadata(1)
        job = Job.new(JobType.AGGREGATOR, 1, meta, now=0, orchestrator_version="0.1.0")
        assert (await handler.check_ready(job) is None) is ready
        processed = await handler.process(job)
        return AggregatorRun(processed=processed, objects=objects, meta=meta)
    finally:
        await db.close()
