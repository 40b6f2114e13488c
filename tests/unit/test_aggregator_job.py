"""Aggregator job, bucket path (Atlantic): on success the artifacts are stored, with the filtered output
settlement needs, computed from the downloaded aggregator PIE."""

from __future__ import annotations

import dataclasses

from madara_orchestrator.backends.memory import MemoryObjectStore, MemoryStore
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus
from madara_orchestrator.domain.jobs import Job, JobType
from madara_orchestrator.domain.proving import AggregationArtifacts, RunAggregation, TaskStatus, TaskType
from madara_orchestrator.jobs.aggregator import AggregatorJobHandler, aggregator_metadata
from madara_orchestrator.jobs.artifacts import decode_program_output
from madara_orchestrator.jobs.base import Verification
from madara_orchestrator.starknet.facts import filter_aggregator_output
from tests.helpers.engine import FakeClock
from tests.unit.pie.conftest import build_pie
from tests.unit.pie.test_facts import aggregator_output


class BucketProver:
    def __init__(self, pie: bytes) -> None:
        self.pie = pie
        self.tasks: list[object] = []

    async def submit_task(self, task: object) -> str:
        self.tasks.append(task)
        assert isinstance(task, RunAggregation)
        return task.bucket_id

    async def get_task_status(self, task_type: TaskType, job_key: str, fact: str | None = None) -> TaskStatus:
        assert task_type == TaskType.AGGREGATION and job_key == "bucket-7"
        return TaskStatus.succeeded()

    async def get_proof(self, task_id: str) -> str:  # pragma: no cover
        raise AssertionError("no proof requested")

    async def submit_l2_query(self, task_id: str, proof: str, n_steps: int | None) -> str:  # pragma: no cover
        raise AssertionError

    async def get_aggregation_artifacts(self, external_id: str, include_proof: bool) -> AggregationArtifacts:
        return AggregationArtifacts(cairo_pie=self.pie, da_segment=b'["0x1", "0x2"]')


async def test_bucket_aggregation_stores_the_filtered_program_output() -> None:
    output = aggregator_output([[1, 2, 3], [4, 5]], [7, 8, 1, 9], [6, 5, 4, 3, 0], tail=4)
    prover = BucketProver(build_pie(output))
    store = MemoryStore()
    objects = MemoryObjectStore()
    clock = FakeClock()
    await store.insert_aggregator_batch(
        AggregatorBatch(
            index=3,
            start_block=5,
            end_block=5,
            status=AggregatorBatchStatus.PENDING_AGGREGATOR_RUN,
            created_at=0,
            updated_at=0,
            bucket_id="bucket-7",
        )
    )
    handler = AggregatorJobHandler(prover=prover, objects=objects, db=store, clock=clock, runner=None)
    job = Job.new(
        JobType.AGGREGATOR, 3, aggregator_metadata(3, bucket_id="bucket-7"), now=0, orchestrator_version="0.1.0"
    )
    processed = await handler.process(job)
    assert processed.external_id == "bucket-7"
    result = await handler.verify(dataclasses.replace(job, external_id=processed.external_id))
    assert result.status == Verification.VERIFIED
    stored = decode_program_output(await objects.get("artifacts/batch/3/program_output.txt"))
    assert stored == filter_aggregator_output(output)
    assert await objects.get("artifacts/batch/3/da_blob.json") == b'["0x1", "0x2"]'
    assert await objects.exists("artifacts/batch/3/cairo_pie.zip")
    batch = await store.get_aggregator_batch(3)
    assert batch is not None and batch.status == AggregatorBatchStatus.READY_FOR_STATE_UPDATE


async def test_a_job_processed_before_the_trigger_marks_its_batch_takes_the_batch_through_pending_run() -> None:
    """The Aggregator trigger creates the job, then marks the batch PendingAggregatorRun: a fast consumer
    can process the job while the batch is still Closed."""
    prover = BucketProver(b"")
    store = MemoryStore()
    await store.insert_aggregator_batch(
        AggregatorBatch(
            index=3,
            start_block=5,
            end_block=5,
            status=AggregatorBatchStatus.CLOSED,
            created_at=0,
            updated_at=0,
            bucket_id="bucket-7",
        )
    )
    handler = AggregatorJobHandler(prover=prover, objects=MemoryObjectStore(), db=store, clock=FakeClock(), runner=None)
    job = Job.new(
        JobType.AGGREGATOR, 3, aggregator_metadata(3, bucket_id="bucket-7"), now=0, orchestrator_version="0.1.0"
    )
    await handler.process(job)
    batch = await store.get_aggregator_batch(3)
    assert batch is not None and batch.status == AggregatorBatchStatus.PENDING_AGGREGATOR_VERIFICATION
    assert batch.version == 2
    await handler.process(job)  # processed again (a lost lease): the batch is already there
    again = await store.get_aggregator_batch(3)
    assert again == batch
