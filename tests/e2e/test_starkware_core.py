"""``orchestrator run`` settling on StarkWare's own Starknet core contract (the compiled ``Starknet.sol`` of the
shared vectors), deployed on anvil and initialised for the devnet's outputs, its verifier the devnet fact
registry in which the mock prover registers the aggregator facts.

The contract is the real thing: it checks each batch's output header against its stored state (block number,
root, block hash), the OS program hash and config hash, every blob's versioned hash against the output's KZG
commitment and the point evaluation at x_0, and the fact ``keccak(aggregatorProgramHash, keccak(output))``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from eth_abi import decode as abi_decode
from eth_hash.auto import keccak

from madara_orchestrator.devnet.adapters import DEVNET_AGGREGATOR_PROGRAM_HASH
from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS, AnvilConfig
from madara_orchestrator.devnet.l1_contracts import DevnetContracts
from madara_orchestrator.devnet.program_output import DEVNET_OS_PROGRAM_HASH, devnet_config_hash
from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.server.background import BackgroundServer, free_port
from madara_orchestrator.settlement.contracts import deploy_contract, deploy_starkware_core
from madara_orchestrator.settlement.encoding import STATE_BLOCK_HASH_SELECTOR, STATE_ROOT_SELECTOR
from madara_orchestrator.settlement.eth_rpc import EthRpc
from tests.conftest import require
from tests.e2e.test_run_provers import (
    LocalL1,
    anvil_available,
    jobs_by_status,
    orchestrator_run,
    settlement_args,
    wait_until_settled,
)
from tests.helpers import anvil_pool

BLOCKS = 12
BATCH_BLOCKS = 4
"""Three aggregator batches of four blocks (SNOS batches of two)."""
TX_PER_BLOCK = 800
"""Enough state diff per block that each batch's DA segment needs more than one blob."""
LOG_STATE_UPDATE = keccak(b"LogStateUpdate(uint256,int256,uint256)")


@asynccontextmanager
async def starkware_l1(tmp_path: Path, artifact: Path) -> AsyncIterator[LocalL1]:
    """anvil with the devnet fact registry and StarkWare's core contract verifying with it, at block -1."""
    anvil = await asyncio.to_thread(anvil_pool.lease, AnvilConfig(hardfork="prague"), tmp_path / "anvil.log")
    rpc = EthRpc(anvil.url)
    try:
        registry = await deploy_contract(rpc, DEV_PRIVATE_KEYS[1], "FactRegistry")
        core = await deploy_starkware_core(
            rpc,
            DEV_PRIVATE_KEYS[1],
            artifact,
            program_hash=DEVNET_OS_PROGRAM_HASH,
            aggregator_program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH,
            verifier=registry,
            config_hash=devnet_config_hash(),
        )
        contracts = DevnetContracts(
            fact_registry=registry,
            core_contract=core,
            program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH,
            config_hash=devnet_config_hash(),
        )
        yield LocalL1(anvil, rpc, contracts)
    finally:
        await rpc.aclose()
        await asyncio.to_thread(anvil_pool.give_back, anvil)


@pytest.mark.slow
async def test_run_settles_multi_blob_batches_on_starkwares_core_contract(tmp_path: Path, vectors_dir: Path) -> None:
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    artifact = vectors_dir / "contracts" / "StarknetCore.starkware.json"
    sequencer = DevnetSequencer(block_time_s=0.1, tx_per_block=TX_PER_BLOCK)
    server = BackgroundServer(sequencer.app)
    await server.start()
    try:
        async with starkware_l1(tmp_path, artifact) as l1:
            rpc, core = l1.rpc, l1.contracts.core_contract
            assert await l1.state_block_number() == -1, "initialised at genesis"
            sequencer.start_producing(max_blocks=BLOCKS)
            args = [
                "--snos-runner",
                "devnet",
                "--aggregator-runner",
                "devnet",
                "--prover",
                "mock",
                "--mock-verifier-address",
                l1.contracts.fact_registry,
                "--mock-verifier-private-key",
                DEV_PRIVATE_KEYS[2],
                "--max-batch-size",
                str(BATCH_BLOCKS),
                *settlement_args(l1),
            ]
            async with orchestrator_run(tmp_path, server.url, free_port(), args) as run:
                await wait_until_settled(l1, run, BLOCKS - 1)
                assert await jobs_by_status(run, "Failed") == []

            last = sequencer.chain.blocks[BLOCKS - 1]
            assert await l1.state_block_number() == BLOCKS - 1
            assert int.from_bytes(await rpc.call(core, STATE_ROOT_SELECTOR), "big") == last.new_root
            assert int.from_bytes(await rpc.call(core, STATE_BLOCK_HASH_SELECTOR), "big") == last.block_hash
            logs = await rpc.request(
                "eth_getLogs",
                [{"address": core, "fromBlock": "0x0", "toBlock": "latest", "topics": ["0x" + LOG_STATE_UPDATE.hex()]}],
            )
            updates = [abi_decode(["uint256", "int256", "uint256"], bytes.fromhex(log["data"][2:])) for log in logs]
            ends = [BATCH_BLOCKS * i - 1 for i in range(1, BLOCKS // BATCH_BLOCKS + 1)]
            assert [number for _, number, _ in updates] == ends, "one LogStateUpdate per batch, in order"
            for (root, _, block_hash), end in zip(updates, ends, strict=True):
                block = sequencer.chain.blocks[end]
                assert (root, block_hash) == (block.new_root, block.block_hash), f"batch ending at block {end}"
            for log in logs:
                tx = await rpc.request("eth_getTransactionByHash", [log["transactionHash"]])
                assert tx["input"].startswith("0x507ee528"), "updateStateKzgDA"
                assert len(tx["blobVersionedHashes"]) >= 2, "a multi-blob batch"
    finally:
        await sequencer.stop_producing()
        await server.stop()
