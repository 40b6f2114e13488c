"""ProofRegistration (L3): have the SNOS proof verified on the settlement layer's prover (SPEC §7.9).

The SNOS proof (``<id>/proof.json``, written by ProofCreation) is sent as an L2 verification query; once
the query is done, the "bridge" proof it yields is stored (``<id>/proof_part2.json``) for StateTransition.
"""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.domain.jobs import Job, JobType, ProvingMetadata
from madara_orchestrator.interfaces import ObjectStore, ProverClient
from madara_orchestrator.jobs.base import JobHandler, Processed, Verified
from madara_orchestrator.jobs.proving import verify_proof_task
from madara_orchestrator.starknet.stone_proof import InvalidProof, parse_proof, wrap_proof


@dataclass(kw_only=True, eq=False, repr=False)
class ProofRegistrationJobHandler(JobHandler[ProvingMetadata]):
    job_type = JobType.PROOF_REGISTRATION
    metadata_type = ProvingMetadata

    prover: ProverClient
    objects: ObjectStore

    async def process_with(self, job: Job, meta: ProvingMetadata) -> Processed:
        if not meta.input_path or "Proof" not in meta.input_path:
            raise JobError(
                f"ProofRegistration needs a proof input ({{'Proof': path}}), got {meta.input_path}", retryable=False
            )
        path = meta.input_path["Proof"]
        data = await self.objects.get(path)
        try:
            proof_text = data.decode()
            parse_proof(proof_text)
        except (UnicodeDecodeError, InvalidProof) as exc:
            raise JobError(f"the proof {path} is not a valid Stark proof: {exc}", retryable=False) from exc
        # Deduplicated on the job's id: a retry after a crash finds the query instead of sending a second one.
        query_id = await self.prover.submit_l2_query(
            str(job.internal_id), wrap_proof(proof_text), meta.n_steps, dedup_id=str(job.id)
        )
        return Processed(external_id=query_id)

    async def verify_with(self, job: Job, meta: ProvingMetadata) -> Verified:
        """Done: the bridge proof is stored at ``download_proof`` (``<id>/proof_part2.json``)."""
        return await verify_proof_task(self.prover, self.objects, job, meta, what="Proof registration job")
