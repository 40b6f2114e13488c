"""``eth_feeHistory`` against anvil (what the posting policy decides on, issue 20 item 2): base fees and blob
base fees per block as the block headers have them, then the next block's; a window longer than one call
is read in pages that join without a gap."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_keys.datatypes import PrivateKey

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.memory import MemoryStore
from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig
from madara_orchestrator.domain.posting import FeeCap, PostingPolicy
from madara_orchestrator.engine.posting import PAGE_BLOCKS, SettlementGate
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.settlement.blob_tx import Fees, Sidecar, SidecarForm, build_sidecar, sign_blob_tx
from madara_orchestrator.settlement.eth_rpc import EthRpc
from tests.helpers.engine import FakeClock
from tests.integration.settlement.conftest import STUFFER_KEY, write_genesis

pytestmark = pytest.mark.slow  # building the blob sidecars' proofs takes a while

PRAGUE_UPDATE_FRACTION = 5_007_716
EXCESS_BLOB_GAS = 12 * PRAGUE_UPDATE_FRACTION
"""A blob base fee of about e^12 wei at genesis, falling block by block while blocks carry no blob."""


def fake_exponential(factor: int, numerator: int, denominator: int) -> int:
    """EIP-4844's blob base fee from the excess blob gas."""
    i, output, accum = 1, 0, factor * denominator
    while accum > 0:
        output += accum
        accum = accum * numerator // (denominator * i)
        i += 1
    return output // denominator


@functools.cache
def nine_blobs() -> tuple[Sidecar, Sidecar]:
    """Sidecars of 6 and 3 blobs (built once: their KZG proofs take a while)."""
    blobs = [bytes(31) + bytes([i + 1]) + bytes(131072 - 32) for i in range(9)]
    return build_sidecar(blobs[:6], SidecarForm.EIP4844), build_sidecar(blobs[6:], SidecarForm.EIP4844)


async def send_nine_blobs(rpc: EthRpc) -> None:
    """Two blob transactions (6 + 3 blobs) from a dev account to itself, into the next block."""
    key = PrivateKey(bytes.fromhex(STUFFER_KEY[2:]))
    sender = key.public_key.to_checksum_address()
    fees = Fees(max_fee_per_gas=10**12, max_priority_fee_per_gas=10**9, max_fee_per_blob_gas=10**12)
    nonce = await rpc.transaction_count(sender, "pending")
    for n, sidecar in enumerate(nine_blobs()):
        signed = sign_blob_tx(
            private_key=key,
            chain_id=await rpc.chain_id(),
            nonce=nonce + n,
            to=sender,
            data=b"",
            gas_limit=30_000,
            fees=fees,
            sidecar=sidecar,
        )
        await rpc.send_raw_transaction(signed.raw)


def header(anvil: Anvil, number: int) -> dict[str, str]:
    block = anvil.rpc("eth_getBlockByNumber", [hex(number), False])
    assert isinstance(block, dict)
    return block


async def test_fee_history_matches_the_block_headers(
    tmp_path: Path, anvil_factory: Callable[[AnvilConfig], Anvil]
) -> None:
    genesis = write_genesis(tmp_path / "genesis.json", hardfork="prague", excess_blob_gas=EXCESS_BLOB_GAS)
    anvil = anvil_factory(AnvilConfig(hardfork="prague", genesis=genesis))
    rpc = EthRpc(anvil.url, timeout_s=30)
    try:
        await rpc.request("evm_setAutomine", [False])
        # Blocks of various base fees; some carry 9 blobs (over the target of 6): the blob base fee rises.
        for fee, stuffed in ((3, True), (7, False), (2, True), (9, False), (4, False), (6, False)):
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(fee * 10**9)])
            if stuffed:
                await send_nine_blobs(rpc)
            anvil.rpc("evm_mine")
        history = await rpc.fee_history(5)
        latest = await rpc.block_number()
        assert history.blocks == 5 and history.newest_block == latest == 6 and history.oldest_block == 2
        for i in range(history.blocks):
            block = header(anvil, history.oldest_block + i)
            assert history.base_fees[i] == int(block["baseFeePerGas"], 16)
            blob_fee = fake_exponential(1, int(block["excessBlobGas"], 16), PRAGUE_UPDATE_FRACTION)
            assert history.blob_base_fees[i] == blob_fee
        assert history.base_fees[:5] == (7 * 10**9, 2 * 10**9, 9 * 10**9, 4 * 10**9, 6 * 10**9)
        assert history.blob_base_fees[0] < history.blob_base_fees[2] == history.next_blob_base_fee
        assert min(history.blob_base_fees) > 1000 and history.blob_gas_used_ratio[:2] == (0.0, 1.0)
        assert history.next_blob_base_fee == await rpc.blob_base_fee()
        assert all(0 <= r <= 1 for r in (*history.gas_used_ratio, *history.blob_gas_used_ratio))
        # An older range, by number.
        older = await rpc.fee_history(2, 3)
        assert older.oldest_block == 2 and older.base_fees[:2] == history.base_fees[:2]
    finally:
        await rpc.aclose()


async def test_a_long_window_is_read_in_pages_that_join(
    tmp_path: Path, anvil_factory: Callable[[AnvilConfig], Anvil]
) -> None:
    anvil = anvil_factory(AnvilConfig(hardfork="prague", no_mining=True))
    anvil.rpc("anvil_mine", [hex(PAGE_BLOCKS + 200)])
    rpc = EthRpc(anvil.url, timeout_s=30)
    clock = FakeClock()
    gate = SettlementGate(
        policy=PostingPolicy(deadline_s=3600, window_blocks=PAGE_BLOCKS + 100),
        cap=FeeCap(max_total_fee_wei=10**16),
        fees=rpc,
        db=MemoryStore(),
        clock=clock,
        alerts=RecordingAlerts(),
        metrics=NoTelemetry(),
    )
    try:
        latest = await rpc.block_number()
        history = await gate.history()
        assert history.blocks == PAGE_BLOCKS + 100 and history.newest_block == latest
        whole = await rpc.fee_history(PAGE_BLOCKS, latest)
        assert history.base_fees[-PAGE_BLOCKS - 1 :] == whole.base_fees
        first = await rpc.fee_history(100, history.oldest_block + 99)
        assert history.base_fees[:100] == first.base_fees[:100]
    finally:
        await rpc.aclose()
