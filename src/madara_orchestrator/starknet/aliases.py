"""The alias reads of stateful compression (SPEC §5.7): contract 0x2's storage at the reference block,
read through the ``BatchRpc`` port, around the pure codecs of ``starknet.compression``.

``read_aliases`` is the one place the reads are made; ``compress_state_update`` and
``compressed_state_update_length`` are the aggregator-batch path (§5.6) of a whole update;
``BatchLength`` keeps a growing batch's compressed length block by block.
"""

from __future__ import annotations

from collections.abc import Sequence

from madara_orchestrator.domain.errors import BackendUnavailable, RpcError
from madara_orchestrator.interfaces import BatchRpc, RpcCall
from madara_orchestrator.starknet.compression import (
    ALIAS_CONTRACT_ADDRESS,
    BatchFeltCounts,
    LengthChange,
    apply_aliases,
    batch_felts,
    batch_felts_length,
    needed_aliases,
    uses_aliases,
)
from madara_orchestrator.starknet.felt import parse_felt
from madara_orchestrator.starknet.rpc_types import block_id
from madara_orchestrator.starknet.squash import DiffChange, SquashedDiff
from madara_orchestrator.starknet.state_update import StateUpdate


async def read_aliases(rpc: BatchRpc, keys: Sequence[int], reference_block: int) -> dict[int, int]:
    """The chain's alias of each key at the block (one batched read of contract 0x2); an unassigned
    alias reads as 0, as in the original. A failed read is ``BackendUnavailable``."""
    calls = [
        RpcCall("starknet_getStorageAt", [hex(ALIAS_CONTRACT_ADDRESS), hex(k), block_id(reference_block)]) for k in keys
    ]
    results = await rpc.batch(calls)
    aliases: dict[int, int] = {}
    for key, result in zip(keys, results, strict=True):
        if isinstance(result, RpcError):
            raise BackendUnavailable(
                f"reading the alias of {hex(key)} (contract 0x2) at block {reference_block} failed: {result}"
            )
        aliases[key] = 0 if result is None else parse_felt(result, f"alias of {hex(key)}")
    return aliases


async def compress_state_update_stateful(update: StateUpdate, *, reference_block: int, rpc: BatchRpc) -> StateUpdate:
    """Replace addresses and storage keys ≥ 0x80 by their aliases (SPEC §5.7).

    Aliases come from the update's own writes to contract 0x2, else from contract 0x2's storage at
    ``reference_block`` (one batched read); an unassigned alias reads as 0, as in the original.
    """
    aliases, to_read = needed_aliases(update)
    if to_read:
        aliases.update(await read_aliases(rpc, to_read, reference_block))
    return apply_aliases(update, aliases)


async def compressed_state_update_length(
    update: StateUpdate, *, starknet_version: str, reference_block: int, rpc: BatchRpc
) -> int:
    """``len(compress_state_update(...))``, without building the compressed felts."""
    if uses_aliases(starknet_version):
        update = await compress_state_update_stateful(update, reference_block=reference_block, rpc=rpc)
    return batch_felts_length(update, starknet_version=starknet_version)


async def compress_state_update(
    update: StateUpdate, *, starknet_version: str, reference_block: int, rpc: BatchRpc
) -> list[int]:
    """The aggregator-batch path (SPEC §5.6): aliasing from 0.13.4, batch encoding, stateless
    compression from 0.13.3. The length of the result is the batch's ``blob_len``."""
    if uses_aliases(starknet_version):
        update = await compress_state_update_stateful(update, reference_block=reference_block, rpc=rpc)
    return batch_felts(update, starknet_version=starknet_version)


class BatchLength(BatchFeltCounts):
    """``BatchFeltCounts`` with the aliases it needs read from the chain (and the non-zero ones kept:
    an alias never changes once assigned)."""

    def __init__(self, *, starknet_version: str, rpc: BatchRpc) -> None:
        super().__init__(starknet_version=starknet_version)
        self.rpc = rpc
        self._assigned: dict[int, tuple[int, int]] = {}
        """Non-zero aliases read from the chain: key → (the block read at, the alias)."""

    async def _read_aliases(self, keys: Sequence[int], reference_block: int) -> dict[int, int]:
        """The chain's aliases of ``keys`` at the block, as ``compress_state_update_stateful`` reads them."""
        found: dict[int, int] = {}
        to_read = []
        for key in keys:
            seen = self._assigned.get(key)
            if seen is not None and seen[0] <= reference_block:
                found[key] = seen[1]
            else:
                to_read.append(key)
        if to_read:
            for key, value in (await read_aliases(self.rpc, to_read, reference_block)).items():
                found[key] = value
                if value != 0:
                    seen = self._assigned.get(key)
                    if seen is None or reference_block < seen[0]:
                        self._assigned[key] = (reference_block, value)
        return found

    async def propose(self, diff: SquashedDiff, change: DiffChange, *, reference_block: int) -> LengthChange:
        """The length of ``diff`` with ``change`` applied, aliases read at ``reference_block``; neither
        ``diff`` nor this object changes (``apply`` takes the result when the block joins the batch)."""
        plan = self.plan(diff, change, reference_block=reference_block)
        read = await self._read_aliases(plan.to_read, reference_block) if plan.to_read else {}
        proposal = self.count(diff, change, plan, read)
        if proposal.collisions:
            candidate = diff.copy()
            candidate.apply(change)
            proposal.length = await compressed_state_update_length(
                candidate.to_state_update(),
                starknet_version=self.starknet_version,
                reference_block=reference_block,
                rpc=self.rpc,
            )
        return proposal

    async def compressed(self, diff: SquashedDiff, *, reference_block: int) -> list[int]:
        """``compress_state_update(diff.to_state_update(), ...)`` of the diff this length was kept for
        (the batch's blob felts), built from the diff and the aliases already resolved. When an alias
        could differ at ``reference_block`` (a key the chain had no alias for) or two contracts share an
        aliased address, it is ``compress_state_update`` itself."""
        if self.needs_whole_diff(reference_block):
            return await compress_state_update(
                diff.to_state_update(),
                starknet_version=self.starknet_version,
                reference_block=reference_block,
                rpc=self.rpc,
            )
        return self.compressed_felts(diff)
