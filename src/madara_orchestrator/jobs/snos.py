"""SnosRun: run the Starknet OS on a SNOS batch and store the PIE and outputs (SPEC §9)."""

from __future__ import annotations

import dataclasses

from madara_orchestrator.domain.artifacts import SnosFile, snos_key
from madara_orchestrator.domain.errors import JobError, classify
from madara_orchestrator.domain.jobs import Job, JobType, SnosMetadata
from madara_orchestrator.interfaces import ObjectStore, SnosRunner
from madara_orchestrator.jobs.artifacts import encode_felts_json, encode_program_output
from madara_orchestrator.jobs.base import JobHandler, Processed, Verified

SNOS_NOT_READY_DELAY_S = 60.0


@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class SnosJobHandler(JobHandler[SnosMetadata]):
    job_type = JobType.SNOS_RUN
    metadata_type = SnosMetadata

    snos: SnosRunner
    objects: ObjectStore

    async def check_ready(self, job: Job) -> float | None:
        return None if await self.snos.is_ready() else SNOS_NOT_READY_DELAY_S

    async def process_with(self, job: Job, meta: SnosMetadata) -> Processed:
        try:
            result = await self.snos.run(meta.start_block, meta.end_block)
        except JobError:
            raise
        except Exception as exc:
            # SPEC §2.8: retry what may pass (an outside service down, RPC trouble, a block not there yet),
            # fail fast on the rest. The runner types its failures (snos/contract.py ``typed_run``).
            message = f"Snos Error: Error while running SNOS (snos job #{job.internal_id}): {exc}"
            raise JobError(message, retryable=classify(exc).temporary) from exc
        for path, data in (
            (meta.cairo_pie_path, result.cairo_pie_zip),
            (meta.snos_output_path, encode_felts_json(result.os_output)),
            (meta.program_output_path, encode_program_output(result.program_output)),
        ):
            if path:
                await self.objects.put(path, data)
        specific = dataclasses.replace(meta, snos_fact=result.fact, snos_n_steps=result.n_steps)
        return Processed(external_id=str(meta.snos_batch_index), specific=specific)

    async def verify_with(self, job: Job, meta: SnosMetadata) -> Verified:
        return Verified.verified()


def snos_metadata(index: int, start_block: int, end_block: int, *, full_output: bool = False) -> SnosMetadata:
    return SnosMetadata(
        snos_batch_index=index,
        start_block=start_block,
        end_block=end_block,
        num_blocks=end_block - start_block + 1,
        full_output=full_output,
        cairo_pie_path=snos_key(index, SnosFile.CAIRO_PIE),
        on_chain_data_path=snos_key(index, SnosFile.ON_CHAIN_DATA),
        snos_output_path=snos_key(index, SnosFile.SNOS_OUTPUT),
        program_output_path=snos_key(index, SnosFile.PROGRAM_OUTPUT),
    )
