"""End to end on a real local L1: blocks settled on anvil by blob transactions the core contract verified."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from madara_orchestrator.devnet.anvil import find_anvil_binary
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.jobs import JobStatus, JobType, StateUpdateMetadata
from madara_orchestrator.settlement.ethereum import EthereumSettlementClient
from tests.conftest import require
from tests.helpers.pipeline import eventually, start_pipeline


def anvil_available() -> bool:
    try:
        find_anvil_binary()
    except ConfigError:
        return False
    return True


BLOCKS = 4
"""Each its own batch and blob transaction: enough to show consecutive settlements, one nonce each, in order."""


@pytest.mark.slow
@pytest.mark.parametrize("hardfork", ["prague", "osaka"])
async def test_blocks_settle_on_anvil_through_verified_blob_transactions(tmp_path: Path, hardfork: str) -> None:
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    p = await start_pipeline(tmp_path, blocks=BLOCKS, l1_hardfork=hardfork)
    try:
        assert p.l1 is not None
        settlement = p.stack.settlement
        assert isinstance(settlement, EthereumSettlementClient)

        async def settled() -> bool:
            return await settlement.last_settled_block() == BLOCKS - 1

        await eventually(settled, 120, f"stateBlockNumber to reach block {BLOCKS - 1} on anvil")
        async with httpx.AsyncClient() as client:

            async def rpc(method: str, *params: object) -> dict:  # type: ignore[type-arg]
                reply = await client.post(
                    p.l1.anvil.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
                )
                return reply.json()["result"]  # type: ignore[no-any-return]

            for index in range(1, BLOCKS + 1):

                async def done(index: int = index) -> bool:
                    job = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, index)
                    return job is not None and job.status == JobStatus.COMPLETED

                await eventually(done, 30, f"StateTransition {index} to complete")
                job = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, index)
                assert job is not None and isinstance(job.metadata.specific, StateUpdateMetadata)
                meta = job.metadata.specific
                assert meta.tx_hash and meta.tx_attempts and meta.tx_attempts[-1]["status"] == "Finalized"
                tx = await rpc("eth_getTransactionByHash", meta.tx_hash)
                receipt = await rpc("eth_getTransactionReceipt", meta.tx_hash)
                assert int(tx["type"], 16) == 3, "a blob transaction"
                assert len(tx["blobVersionedHashes"]) >= 1
                assert tx["to"].lower() == p.l1.contracts.core_contract.lower()
                assert tx["input"].startswith("0x507ee528"), "updateStateKzgDA"
                assert int(receipt["status"], 16) == 1, "the contract accepted the blobs and the fact"
            nonces = []
            for index in range(1, BLOCKS + 1):
                tx = await rpc("eth_getTransactionByHash", await _tx_hash(p, index))
                nonces.append(int(tx["nonce"], 16))
            assert nonces == list(range(nonces[0], nonces[0] + BLOCKS)), "one nonce per batch, in order, no gap"
        summary = await p.stack.settlement_summary()
        assert summary.startswith(f"blob transactions: {BLOCKS} settled")
    finally:
        await p.close()


async def _tx_hash(p, index: int) -> str:  # type: ignore[no-untyped-def]
    job = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, index)
    return str(job.metadata.specific.tx_hash)
