"""Aggregator (L2): aggregate the child proofs of an aggregator batch (SPEC §7.10).

Local path (SHARP, mock): run the aggregator over the batch's SNOS outputs and PIEs (``--aggregator-runner``),
store its PIE, program output and DA segment, and submit it. The Atlantic bucket path closes the bucket instead.
"""

from __future__ import annotations

import asyncio
import dataclasses

from madara_orchestrator.domain.artifacts import (
    AggregatorFile,
    SnosFile,
    aggregator_batch_paths,
    aggregator_key,
    snos_key,
)
from madara_orchestrator.domain.batches import AggregatorBatchStatus
from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.domain.jobs import AggregatorMetadata, Job, JobType
from madara_orchestrator.domain.proving import RunAggregation, RunAggregationWithPie, TaskState, TaskType
from madara_orchestrator.interfaces import (
    AggregationChild,
    AggregationInput,
    AggregatorRunner,
    Clock,
    Database,
    ObjectStore,
    ProverClient,
)
from madara_orchestrator.jobs.artifacts import decode_program_output, encode_felts_json, encode_program_output
from madara_orchestrator.jobs.base import JobHandler, Processed, Verified
from madara_orchestrator.jobs.batch_status import move_aggregator_batch
from madara_orchestrator.starknet.facts import aggregator_fact_info
from madara_orchestrator.starknet.pie import read_pie

AGGREGATOR_NOT_READY_DELAY_S = 60.0
"""How long an Aggregator job waits when its runner is not ready (as a SnosRun job does, SPEC §9)."""


def aggregator_metadata(index: int, *, bucket_id: str | None = None, store_proof: bool = False) -> AggregatorMetadata:
    return AggregatorMetadata(
        batch_num=index,
        bucket_id=bucket_id,
        download_proof=aggregator_key(index, AggregatorFile.PROOF) if store_proof else None,
        blob_data_path=aggregator_batch_paths(index)[1],
        da_segment_path=aggregator_key(index, AggregatorFile.DA_SEGMENT),
        cairo_pie_path=aggregator_key(index, AggregatorFile.CAIRO_PIE),
        snos_output_path=aggregator_key(index, AggregatorFile.SNOS_OUTPUT),
        program_output_path=aggregator_key(index, AggregatorFile.PROGRAM_OUTPUT),
    )


@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class AggregatorJobHandler(JobHandler[AggregatorMetadata]):
    """With a ``runner`` aggregation is local; without one the prover aggregates (Atlantic buckets)."""

    job_type = JobType.AGGREGATOR
    metadata_type = AggregatorMetadata

    prover: ProverClient
    objects: ObjectStore
    db: Database
    clock: Clock
    runner: AggregatorRunner | None = None

    async def check_ready(self, job: Job) -> float | None:
        if self.runner is None or await self.runner.is_ready():
            return None
        return AGGREGATOR_NOT_READY_DELAY_S

    async def process_with(self, job: Job, meta: AggregatorMetadata) -> Processed:
        if self.runner is None:
            if not meta.bucket_id:
                raise JobError(f"aggregator batch {meta.batch_num} has no prover bucket", retryable=False)
            external_id = await self.prover.submit_task(RunAggregation(bucket_id=meta.bucket_id))
            await self._mark_submitted(meta.batch_num)
            return Processed(external_id=external_id)

        batch = await self.db.get_aggregator_batch(meta.batch_num)
        if batch is None:
            raise JobError(f"aggregator batch {meta.batch_num} not found", retryable=False)
        snos_batches = await self.db.list_snos_batches(aggregator_index=meta.batch_num)
        if not snos_batches:
            raise JobError(f"aggregator batch {meta.batch_num} has no SNOS batches", retryable=False)
        children: list[AggregationChild] = []
        keys: list[str] = []
        for child in snos_batches:
            proof_job = await self.db.get_job_by_internal_id(JobType.PROOF_CREATION, child.index)
            if proof_job is None:
                raise JobError(f"ProofCreation job of SNOS batch {child.index} not found")
            keys.append(proof_job.external_id)
            children.append(
                AggregationChild(
                    snos_batch_index=child.index,
                    start_block=child.start_block,
                    end_block=child.end_block,
                    os_output=decode_program_output(
                        await self.objects.get(snos_key(child.index, SnosFile.PROGRAM_OUTPUT))
                    ),
                    cairo_pie_zip=await self.objects.get(snos_key(child.index, SnosFile.CAIRO_PIE)),
                )
            )
        result = await self.runner.run(
            AggregationInput(
                batch_index=meta.batch_num,
                start_block=batch.start_block,
                end_block=batch.end_block,
                children=children,
            )
        )
        for path, data in (
            (meta.program_output_path, encode_program_output(result.program_output)),
            (meta.da_segment_path, encode_felts_json(result.da_segment)),
            (meta.cairo_pie_path, result.cairo_pie_zip),
        ):
            if path:
                await self.objects.put(path, data)
        external_id = await self.prover.submit_task(
            RunAggregationWithPie(
                cairo_pie_zip=result.cairo_pie_zip, children_cairo_job_keys=keys, fact_hash=result.fact
            )
        )
        await self._mark_submitted(meta.batch_num)
        return Processed(
            external_id=external_id,
            specific=dataclasses.replace(meta, ensure_on_chain_registration=result.fact),
        )

    async def verify_with(self, job: Job, meta: AggregatorMetadata) -> Verified:
        status = await self.prover.get_task_status(
            TaskType.AGGREGATION, job.external_id, meta.ensure_on_chain_registration
        )
        if status.state == TaskState.PROCESSING:
            return Verified.pending()
        if status.state == TaskState.FAILED:
            await self._set_batch(meta.batch_num, AggregatorBatchStatus.VERIFICATION_FAILED)
            return Verified.rejected(f"Aggregator job #{job.internal_id} failed: {status.message}")
        if self.runner is None:
            produced = await self.prover.get_aggregation_artifacts(
                job.external_id, include_proof=meta.download_proof is not None
            )
            if produced.cairo_pie is None or produced.da_segment is None:
                raise JobError(f"prover returned no aggregator PIE or DA segment for bucket {job.external_id}")
            # Settlement sends the aggregator's filtered output; the program hash takes seconds: off the loop.
            info = await asyncio.to_thread(aggregator_fact_info, read_pie(produced.cairo_pie))
            if meta.program_output_path:
                await self.objects.put(meta.program_output_path, encode_program_output(info.program_output))
            if meta.cairo_pie_path:
                await self.objects.put(meta.cairo_pie_path, produced.cairo_pie)
            if meta.da_segment_path:
                await self.objects.put(meta.da_segment_path, produced.da_segment)
            if meta.download_proof and produced.proof is not None:
                await self.objects.put(meta.download_proof, produced.proof)
        elif meta.download_proof:
            produced = await self.prover.get_aggregation_artifacts(job.external_id, include_proof=True)
            if produced.proof is not None:
                await self.objects.put(meta.download_proof, produced.proof)
        await self._set_batch(meta.batch_num, AggregatorBatchStatus.READY_FOR_STATE_UPDATE)
        return Verified.verified()

    async def _set_batch(self, index: int, status: AggregatorBatchStatus) -> None:
        await move_aggregator_batch(self.db, index, status, now=self.clock.now())

    async def _mark_submitted(self, index: int) -> None:
        """The trigger marks the batch PendingAggregatorRun after it creates the job, so the job can get
        here first: its existence is what that status records, so take the batch through it."""
        batch = await self.db.get_aggregator_batch(index)
        if batch is not None and batch.status == AggregatorBatchStatus.CLOSED:
            await self._set_batch(index, AggregatorBatchStatus.PENDING_AGGREGATOR_RUN)
        await self._set_batch(index, AggregatorBatchStatus.PENDING_AGGREGATOR_VERIFICATION)
