"""The devnet aggregator publishes what a real one does: the batch's squashed, compressed state diff."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from madara_orchestrator.devnet.adapters import DevnetAggregatorRunner, DevnetSnosRunner
from madara_orchestrator.devnet.sequencer import ALIAS_CONTRACT, DevnetChain, DevnetSequencer, RpcFailure
from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.starknet import kzg
from madara_orchestrator.starknet.aliases import compress_state_update
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.compression import decompress
from madara_orchestrator.starknet.da import parse_da_state_diff
from madara_orchestrator.starknet.os_output import parse_kzg_section
from madara_orchestrator.starknet.rpc import RpcCall, RpcError, StarknetRpcClient
from madara_orchestrator.starknet.squash import squash_state_updates
from madara_orchestrator.starknet.state_update import StateUpdate, parse_state_update


class InProcessRpc:
    """The expected values are computed without HTTP, straight from the sequencer's methods."""

    def __init__(self, sequencer: DevnetSequencer) -> None:
        self.sequencer = sequencer

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]:
        out: list[Any | RpcError] = []
        for call in calls:
            try:
                out.append(self.sequencer.call(call.method, call.params))
            except RpcFailure as failure:
                out.append(RpcError(failure.code, failure.message))
        return out


@dataclass
class Served:
    sequencer: DevnetSequencer
    rpc: StarknetRpcClient


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    chain = DevnetChain(tx_per_block=20)
    for _ in range(8):
        chain.produce_block()
    sequencer = DevnetSequencer(chain)
    server = BackgroundServer(sequencer.app)
    url = await server.start()
    rpc = StarknetRpcClient(url, retry_pause_s=0)
    yield Served(sequencer, rpc)
    await rpc.aclose()
    await server.stop()


async def children(rpc: StarknetRpcClient, ranges: Sequence[tuple[int, int]]) -> list[list[int]]:
    runner = DevnetSnosRunner(rpc)
    return [(await runner.run(start, end)).program_output for start, end in ranges]


async def expected_da_segment(sequencer: DevnetSequencer, start: int, end: int) -> tuple[StateUpdate, list[int]]:
    rpc = InProcessRpc(sequencer)
    updates = [
        parse_state_update(sequencer.call("starknet_getStateUpdate", {"block_id": {"block_number": b}}))
        for b in range(start, end + 1)
    ]
    version = sequencer.call("starknet_getBlockWithTxHashes", {"block_id": {"block_number": end}})["starknet_version"]
    squashed = await squash_state_updates(updates, pre_range_block=start - 1 if start > 0 else None, rpc=rpc)
    return squashed, await compress_state_update(squashed, starknet_version=version, reference_block=end, rpc=rpc)


@pytest.mark.parametrize(("ranges"), [[(0, 2), (3, 4)], [(3, 5), (6, 8)], [(7, 7)]])
async def test_the_da_segment_is_the_compressed_squashed_diff_and_the_kzg_section_commits_to_its_blobs(
    served: Served, ranges: list[tuple[int, int]]
) -> None:
    start, end = ranges[0][0], ranges[-1][1]
    outputs = await children(served.rpc, ranges)
    result = await DevnetAggregatorRunner(kzg_da=True, rpc=served.rpc).aggregate(outputs)

    squashed, expected = await expected_da_segment(served.sequencer, start, end)
    assert result.da_segment == expected
    blobs = felts_to_blobs(expected)
    section = parse_kzg_section(result.program_output)
    assert section.n_blobs == len(blobs)
    assert list(section.commitments) == [kzg.blob_to_commitment(b) for b in blobs]
    assert result.program_output[2:4] == outputs[0][2:3] + outputs[-1][3:4]

    # It is a real DA segment: it decompresses to the §5.8 encoding of the (aliased) squashed diff.
    diff = parse_da_state_diff(decompress(expected), legacy=False)
    changed = squashed.state_diff
    addresses = {s.address for s in changed.storage_diffs} | {n.contract_address for n in changed.nonces}
    addresses |= {d.address for d in changed.deployed_contracts}
    aliases = served.sequencer.chain.aliases
    assert {c.address for c in diff.contracts} == {aliases.get(a, a) for a in addresses}
    assert len(diff.classes) == len(changed.declared_classes)
    alias_contract = next(c for c in diff.contracts if c.address == ALIAS_CONTRACT)
    assert alias_contract.storage, "the range's new aliases are published"


async def test_without_kzg_the_output_is_the_header_and_the_segment_still_the_compressed_diff(served: Served) -> None:
    outputs = await children(served.rpc, [(2, 3), (4, 6)])
    result = await DevnetAggregatorRunner(rpc=served.rpc).aggregate(outputs)
    assert result.da_segment == (await expected_da_segment(served.sequencer, 2, 6))[1]
    assert result.program_output[8] == 0, "use_kzg_da"


async def test_without_rpc_the_children_diffs_are_appended_as_before(served: Served) -> None:
    outputs = await children(served.rpc, [(1, 1), (2, 3)])
    result = await DevnetAggregatorRunner().aggregate(outputs)
    assert result.da_segment == [2, *outputs[0][12:], *outputs[1][12:]]


async def test_blocks_the_sequencer_does_not_have_fail_the_aggregation_with_a_retryable_job_error(
    served: Served,
) -> None:
    outputs = await children(served.rpc, [(5, 6)])
    beyond = [*outputs[0][:3], 12, *outputs[0][4:]]
    with pytest.raises(JobError, match="block 9") as caught:
        await DevnetAggregatorRunner(rpc=served.rpc).aggregate([beyond])
    assert caught.value.retryable
