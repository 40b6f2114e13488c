"""ProofCreation: submit the SNOS PIE to the prover and wait for the proof (SPEC §7.8)."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.domain.jobs import Job, JobType, ProvingMetadata, SnosMetadata
from madara_orchestrator.domain.proving import CreateJob, TaskState, TaskType
from madara_orchestrator.interfaces import JobStore, ObjectStore, ProverClient
from madara_orchestrator.jobs.base import JobHandler, Processed, Verified


@dataclass(kw_only=True, eq=False, repr=False)
class ProvingJobHandler(JobHandler[ProvingMetadata]):
    """``dedup_by_job_id``: Atlantic deduplicates on the job's UUID; SHARP and the mock on the SNOS fact."""

    job_type = JobType.PROOF_CREATION
    metadata_type = ProvingMetadata

    prover: ProverClient
    objects: ObjectStore
    jobs: JobStore
    dedup_by_job_id: bool = False

    async def _dedup_id(self, job: Job) -> str:
        if self.dedup_by_job_id:
            return str(job.id)
        snos = await self.jobs.get_job_by_internal_id(JobType.SNOS_RUN, job.internal_id)
        fact = snos.metadata.specific.snos_fact if snos and isinstance(snos.metadata.specific, SnosMetadata) else None
        if not fact:
            raise JobError(f"SNOS fact for batch {job.internal_id} not found: cannot track the proof", retryable=False)
        return fact

    async def process_with(self, job: Job, meta: ProvingMetadata) -> Processed:
        if not meta.input_path:
            raise JobError("Input path not found in job metadata", retryable=False)
        if "CairoPie" not in meta.input_path:
            raise JobError(f"ProofCreation needs a Cairo PIE input, got {meta.input_path}", retryable=False)
        pie = await self.objects.get(meta.input_path["CairoPie"])
        task = CreateJob(
            cairo_pie_zip=pie,
            dedup_id=await self._dedup_id(job),
            bucket_id=meta.bucket_id,
            bucket_job_index=meta.bucket_job_index,
            num_steps=meta.n_steps,
        )
        return Processed(external_id=await self.prover.submit_task(task))

    async def verify_with(self, job: Job, meta: ProvingMetadata) -> Verified:
        return await verify_proof_task(self.prover, self.objects, job, meta, what="Prover job")


async def verify_proof_task(
    prover: ProverClient, objects: ObjectStore, job: Job, meta: ProvingMetadata, *, what: str
) -> Verified:
    """A prover query (ProofCreation, ProofRegistration): pending while it runs, rejected with the prover's
    reason when it failed; once done, its proof is stored at ``download_proof`` when the metadata asks."""
    status = await prover.get_task_status(TaskType.JOB, job.external_id, meta.ensure_on_chain_registration)
    if status.state == TaskState.PROCESSING:
        return Verified.pending()
    if status.state == TaskState.FAILED:
        return Verified.rejected(f"{what} #{job.internal_id} failed with error: {status.message}")
    if meta.download_proof:
        proof = await prover.get_proof(job.external_id)
        await objects.put(meta.download_proof, proof.encode())
    return Verified.verified()
