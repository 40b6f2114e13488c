"""A fee spike while a settlement is pending (automine off): the replacement respects the 2.1× floor on
every fee cap and lands; above the hard cap nothing more is signed, the error says what to do, and the
settlement resumes when fees fall."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_keys.datatypes import PrivateKey

from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig
from madara_orchestrator.domain.settlement_tx import AttemptRecord, AttemptStatus
from madara_orchestrator.settlement.blob_tx import Fees, SidecarForm, build_sidecar, sign_blob_tx
from madara_orchestrator.settlement.errors import FeeCapExceeded
from madara_orchestrator.settlement.ethereum import EthereumSettlementClient
from madara_orchestrator.settlement.txmgr import FeePolicy
from tests.integration.settlement.conftest import (
    OPERATOR_KEY,
    STUFFER_KEY,
    Devnet,
    deploy,
    make_batch,
    write_genesis,
)
from tests.integration.settlement.helpers import SteppedClock, make_client, operator_transactions, transaction

pytestmark = pytest.mark.slow


async def _wait_for_attempt(client: EthereumSettlementClient, key: str, attempt_no: int) -> AttemptRecord:
    """Until attempt ``attempt_no`` of ``key`` has been accepted by the node (status Sent)."""
    for _ in range(600):
        for a in await client.txmgr.store.attempts(key):
            if a.attempt_no == attempt_no and a.status is AttemptStatus.SENT:
                return a
        await asyncio.sleep(0.02)
    raise AssertionError(f"attempt {attempt_no} of {key} was never sent")


async def _base_fee(devnet: Devnet) -> int:
    return int((await devnet.rpc.latest_block())["baseFeePerGas"], 16)


async def _stuff_blob_blocks(devnet: Devnet, blocks: int) -> None:
    """Mine ``blocks`` blocks holding 9 blobs each (above the target of 6): the blob base fee rises."""
    key = PrivateKey(bytes.fromhex(STUFFER_KEY[2:]))
    sender = key.public_key.to_checksum_address()
    blobs = [bytes(31) + bytes([i + 1]) + bytes(131072 - 32) for i in range(9)]
    six, three = build_sidecar(blobs[:6], SidecarForm.EIP4844), build_sidecar(blobs[6:], SidecarForm.EIP4844)
    chain_id = await devnet.rpc.chain_id()
    nonce = await devnet.rpc.transaction_count(sender, "pending")
    fees = Fees(max_fee_per_gas=10**12, max_priority_fee_per_gas=10**11, max_fee_per_blob_gas=10**12)
    for _ in range(blocks):
        for sidecar in (six, three):
            signed = sign_blob_tx(
                private_key=key,
                chain_id=chain_id,
                nonce=nonce,
                to=sender,
                data=b"",
                gas_limit=30_000,
                fees=fees,
                sidecar=sidecar,
            )
            await devnet.rpc.send_raw_transaction(signed.raw)
            nonce += 1
        await devnet.rpc.request("evm_mine")


async def test_replacement_after_a_fee_spike_respects_the_2x_floor_and_lands(
    anvil_factory: Callable[[AnvilConfig], Anvil], tmp_path: Path
) -> None:
    # Start with a non-trivial blob base fee (excess blob gas in the genesis) so its spike is visible.
    genesis = write_genesis(tmp_path / "genesis.json", hardfork="prague", excess_blob_gas=60_000_000)
    devnet = await deploy(anvil_factory(AnvilConfig(hardfork="prague", genesis=genesis)))
    batch = make_batch(0, n_blobs=2)
    await devnet.register(batch)
    await devnet.rpc.request("evm_setAutomine", [False])
    clock = SteppedClock()  # the first confirmation window ends when the spike is in place, not before
    client = make_client(
        devnet.anvil.url,
        devnet.contracts.core_contract,
        tmp_path / "tx.db",
        OPERATOR_KEY,
        timeout_s=60,
        monotonic=clock,
    )
    base_before, blob_before = await _base_fee(devnet), await devnet.rpc.blob_base_fee()
    assert blob_before > 1000

    settle = asyncio.create_task(
        client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    )
    first = await _wait_for_attempt(client, "batch-0", 1)

    # Spike: 20× the execution base fee, and blob-stuffed blocks until the blob base fee has doubled.
    await devnet.rpc.request("anvil_setNextBlockBaseFeePerGas", [hex(20 * base_before)])
    await _stuff_blob_blocks(devnet, 10)
    base_spiked, blob_spiked = await _base_fee(devnet), await devnet.rpc.blob_base_fee()
    assert base_spiked > 4 * base_before and blob_spiked >= 2 * blob_before
    assert await devnet.rpc.transaction_receipt(first.tx_hash or "") is None  # priced out: still pending

    clock.advance(60)
    second = await _wait_for_attempt(client, "batch-0", 2)
    floor = FeePolicy()
    assert second.nonce == first.nonce
    assert second.max_fee_per_gas >= math.ceil(first.max_fee_per_gas * 21 / 10)
    assert second.max_priority_fee_per_gas >= math.ceil(first.max_priority_fee_per_gas * 21 / 10)
    assert second.max_fee_per_blob_gas >= math.ceil(first.max_fee_per_blob_gas * 21 / 10)
    assert second.max_fee_per_gas >= floor.fresh_fees(base_spiked, blob_spiked).max_fee_per_gas
    assert second.max_fee_per_blob_gas > blob_spiked

    await devnet.rpc.request("evm_mine")
    result = await asyncio.wait_for(settle, 30)
    assert [(a.attempt_no, a.status, f"{a.gas_multiplier:.2f}") for a in result.attempts] == [
        (1, "TimedOut", "1.10"),
        (2, "Finalized", "2.20"),
    ]
    assert result.tx_hash == second.tx_hash
    mined = await transaction(devnet.rpc, result.tx_hash)
    assert int(mined["maxFeePerGas"], 16) == second.max_fee_per_gas
    assert int(mined["maxFeePerBlobGas"], 16) == second.max_fee_per_blob_gas
    assert await devnet.rpc.transaction_receipt(first.tx_hash or "") is None
    assert await client.last_settled_block() == 0
    assert [int(t["nonce"], 16) for t in await operator_transactions(devnet.rpc, client.operator_address)] == [0]
    await client.aclose()


async def test_above_the_hard_cap_it_stops_then_resumes_when_fees_fall(
    anvil_factory: Callable[[AnvilConfig], Anvil], tmp_path: Path
) -> None:
    devnet = await deploy(anvil_factory(AnvilConfig(hardfork="prague")))
    batch = make_batch(0, n_blobs=1)
    await devnet.register(batch)
    await devnet.rpc.request("evm_setAutomine", [False])
    base = await _base_fee(devnet)
    policy = FeePolicy()
    first_liability = policy.liability(policy.fresh_fees(base, await devnet.rpc.blob_base_fee()), 1)
    cap = first_liability * 3 // 2  # the first attempt fits; no 2.1× replacement can
    client = make_client(
        devnet.anvil.url,
        devnet.contracts.core_contract,
        tmp_path / "tx.db",
        OPERATOR_KEY,
        timeout_s=1.0,
        max_fee_wei=cap,
    )

    settle = asyncio.create_task(
        client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    )
    first = await _wait_for_attempt(client, "batch-0", 1)
    await devnet.rpc.request("anvil_setNextBlockBaseFeePerGas", [hex(20 * base)])
    await devnet.rpc.request("evm_mine")

    with pytest.raises(FeeCapExceeded) as info:
        await asyncio.wait_for(settle, 30)
    message = str(info.value)
    assert "exceeds configured hard cap" in message and str(cap) in message
    assert "--ethereum-l2-state-update-max-fee-wei" in message and "Retry when L1 fees fall" in message
    assert first.tx_hash and first.tx_hash in message and info.value.tx_hash == first.tx_hash
    assert info.value.retryable
    assert [(a.attempt_no, a.status) for a in info.value.attempts] == [(1, "TimedOut")]
    assert len(await client.txmgr.store.attempts("batch-0")) == 1  # nothing above the cap was signed

    # Still expensive: a retry stops again, still without signing anything new.
    with pytest.raises(FeeCapExceeded):
        await client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    assert len(await client.txmgr.store.attempts("batch-0")) == 1

    # Fees fall: the retry resumes the pending transaction, which lands.
    await devnet.rpc.request("anvil_setNextBlockBaseFeePerGas", [hex(base)])
    resume = asyncio.create_task(
        client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    )
    await _wait_for_attempt(client, "batch-0", 1)
    await devnet.rpc.request("evm_mine")
    result = await asyncio.wait_for(resume, 30)
    assert result.tx_hash == first.tx_hash and result.nonce == first.nonce
    assert [(a.attempt_no, a.status) for a in result.attempts] == [(1, "Finalized")]
    assert await client.last_settled_block() == 0
    assert len(await operator_transactions(devnet.rpc, client.operator_address)) == 1
    await client.aclose()
