"""DataSubmission (L3): encode a SNOS batch's state diff as blobs and publish them (SPEC §6.1).

Differences from the original, on purpose:

- The job's internal id is the SNOS batch index, and the whole batch is encoded: the blocks'
  state updates are squashed into one (SPEC §5.5) when the batch has more than one block. The original
  takes the internal id as a block number and encodes that one block. A one-block batch is encoded
  as it is, with no squash step in between, so its blob is the same as the original's for that block.
- The DA word uses the batch's Starknet version (the pinned 0.14.2 only when the batch has none). From
  0.13.3 on the words are the same as the original's; older blocks get the legacy word they need.
- Data beyond one blob is not dropped. The original silently keeps only the first 4096 felts. Here up to
  ``max_blobs_per_txn`` blobs (6) are made, and ``blob_data.txt`` holds them one after another
  (131072 bytes each). More data than that fails the job (MaxBlobsLimitExceeded), with no retry.
- Blobs are published 32-byte aligned, exactly as stored. The original re-splits the values' minimal bytes.

Publishing: the original's DA clients publish nothing (``"NA"``; the blobs ride on settlement). Without a
DA client, so does this job: ``tx_hash`` is ``"NA"``, and verification checks that the blob file is stored.
"""

from __future__ import annotations

import asyncio
import dataclasses

from madara_orchestrator.domain.artifacts import SnosFile, snos_key
from madara_orchestrator.domain.chain import BYTES_PER_BLOB, MAX_BLOBS_PER_TXN
from madara_orchestrator.domain.errors import InvalidInput, JobError, NotFound
from madara_orchestrator.domain.jobs import DaMetadata, Job, JobType
from madara_orchestrator.interfaces import BatchRpc, BatchStore, DaClient, ObjectStore, SequencerRpc
from madara_orchestrator.jobs.base import JobHandler, Processed, Verified
from madara_orchestrator.starknet.blob import MaxBlobsLimitExceeded, felts_to_blobs
from madara_orchestrator.starknet.da import DA_JOB_PINNED_VERSION, encode_state_update_for_da, parse_starknet_version
from madara_orchestrator.starknet.squash import squash_state_updates
from madara_orchestrator.starknet.state_update import PendingBlock, StateUpdate, parse_state_update

NOT_PUBLISHED = "NA"
"""The ``tx_hash`` of a batch whose blobs no DA client published (what the original's clients return)."""
ZERO_ADDRESS = bytes(32)


@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class DataSubmissionJobHandler(JobHandler[DaMetadata]):
    """``rpc``: the sequencer's JSON-RPC batch calls, needed to squash a batch of several blocks that
    does not start at block 0 (its pre-range state is read). ``da_client``: where blobs are published;
    none on L3, where the blob file is the record."""

    job_type = JobType.DATA_SUBMISSION
    metadata_type = DaMetadata

    sequencer: SequencerRpc
    objects: ObjectStore
    db: BatchStore
    da_client: DaClient | None = None
    rpc: BatchRpc | None = None

    async def process_with(self, job: Job, meta: DaMetadata) -> Processed:
        batch = await self.db.get_snos_batch(job.internal_id)
        if batch is None:
            raise JobError(
                f"SNOS batch {job.internal_id} not found: its state diff cannot be published", retryable=False
            )
        version = batch.starknet_version or DA_JOB_PINNED_VERSION
        try:
            parse_starknet_version(version)
        except InvalidInput as exc:
            raise JobError(f"SNOS batch {batch.index}: {exc}", retryable=False) from exc
        blocks = range(batch.start_block, batch.end_block + 1)
        updates = await asyncio.gather(*(self._state_update(job, b) for b in blocks))
        update = await self._squash(list(updates), batch.index, batch.start_block)
        felts = await encode_state_update_for_da(
            update, block_number=batch.end_block, nonce_source=self.sequencer, starknet_version=version
        )
        max_blobs = self.da_client.max_blobs_per_txn if self.da_client is not None else MAX_BLOBS_PER_TXN
        try:
            blobs = felts_to_blobs(felts, max_blobs=max_blobs)
        except MaxBlobsLimitExceeded as exc:
            raise JobError(
                f"MaxBlobsLimitExceeded: the state diff of SNOS batch {batch.index} (blocks {blocks.start}.."
                f"{blocks.stop - 1}): {exc}",
                retryable=False,
            ) from exc
        path = meta.blob_data_path or snos_key(job.internal_id, SnosFile.BLOB_DATA)
        data = b"".join(blobs)
        if data:
            await self.objects.put(path, data)
        if self.da_client is not None:
            tx_hash = await self.da_client.publish_state_diff(blobs, to=ZERO_ADDRESS)
        else:
            tx_hash = NOT_PUBLISHED
        return Processed(external_id=tx_hash, specific=dataclasses.replace(meta, blob_data_path=path, tx_hash=tx_hash))

    async def _state_update(self, job: Job, block: int) -> StateUpdate:
        try:
            return parse_state_update(await self.sequencer.get_state_update(block), f"state update of block {block}")
        except PendingBlock as exc:
            raise JobError(
                f"Cannot process block {block} for job id {job.id} as it's still in pending state.", retryable=True
            ) from exc

    async def _squash(self, updates: list[StateUpdate], index: int, start_block: int) -> StateUpdate:
        if len(updates) == 1:
            return updates[0]
        pre_range_block = start_block - 1 if start_block > 0 else None
        if pre_range_block is not None and self.rpc is None:
            raise JobError(
                f"SNOS batch {index} has {len(updates)} blocks: squashing them needs the sequencer's batch RPC "
                "to read the state before the batch; configure the DataSubmission handler with one",
                retryable=False,
            )
        return await squash_state_updates(updates, pre_range_block=pre_range_block, rpc=self.rpc)

    async def verify_with(self, job: Job, meta: DaMetadata) -> Verified:
        if self.da_client is not None:
            answer = await self.da_client.verify_inclusion(job.external_id)
            if answer == "Verified":
                return Verified.verified()
            if answer == "Pending":
                return Verified.pending()
            return Verified.rejected(answer.removeprefix("Rejected: "))
        path = meta.blob_data_path or snos_key(job.internal_id, SnosFile.BLOB_DATA)
        try:
            data = await self.objects.get(path)
        except NotFound:
            return Verified.rejected(f"blob data file {path} of SNOS batch {job.internal_id} is missing")
        if not data or len(data) % BYTES_PER_BLOB:
            return Verified.rejected(
                f"blob data file {path} of SNOS batch {job.internal_id} holds {len(data)} bytes, "
                f"not whole blobs of {BYTES_PER_BLOB} bytes"
            )
        return Verified.verified()
