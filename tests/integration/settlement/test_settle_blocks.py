"""End to end on anvil: consecutive blocks settled through blob transactions that the core contract
verifies (blob versioned hashes, point-evaluation precompile, fact, block number)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig
from madara_orchestrator.devnet.program_output import DEVNET_OS_PROGRAM_HASH
from madara_orchestrator.settlement.blob_tx import Fees, SidecarForm, build_sidecar, sign_blob_tx
from madara_orchestrator.settlement.contracts import wait_for_receipt
from madara_orchestrator.settlement.encoding import (
    build_kzg_proofs,
    encode_update_state_kzg_da,
    parse_kzg_section,
    program_output_fact,
)
from madara_orchestrator.settlement.errors import TxReverted
from madara_orchestrator.starknet import kzg
from tests.integration.settlement.conftest import OPERATOR_KEY, Devnet, block_hash, block_root, deploy, make_batch
from tests.integration.settlement.helpers import (
    make_client,
    operator_transactions,
    revert_reason,
    state_updates,
    transaction,
)

pytestmark = pytest.mark.slow

BLOCKS = 6
"""Settled one after the other with 1, 2, 3, 1, 2, 3 blobs: each blob count twice, a nonce per block."""


@pytest.mark.parametrize(
    ("hardfork", "disable_peerdas"),
    [("prague", True), ("osaka", False)],
    ids=["prague-eip4844-blob-proofs", "osaka-eip7594-cell-proofs"],
)
async def test_consecutive_blocks_settle_through_verified_blob_transactions(
    anvil_factory: Callable[[AnvilConfig], Anvil], tmp_path: Path, hardfork: str, disable_peerdas: bool
) -> None:
    devnet = await deploy(anvil_factory(AnvilConfig(hardfork=hardfork)))
    client = make_client(
        devnet.anvil.url,
        devnet.contracts.core_contract,
        tmp_path / "tx.db",
        OPERATOR_KEY,
        disable_peerdas=disable_peerdas,
    )
    assert client.sidecar_form is (SidecarForm.EIP4844 if disable_peerdas else SidecarForm.EIP7594)
    assert await client.last_settled_block() is None

    for block in range(BLOCKS):
        batch = make_batch(block, n_blobs=1 + block % 3)
        await devnet.register(batch)
        result = await client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key=str(block))

        assert not result.already_settled
        assert result.nonce == block  # one transaction per block, no gap
        assert [a.status for a in result.attempts] == ["Finalized"]
        receipt = await devnet.rpc.transaction_receipt(result.tx_hash)
        assert receipt is not None and receipt["status"] == "0x1" and receipt["type"] == "0x3"
        assert int(receipt["blobGasUsed"], 16) == 131072 * len(batch.blobs)
        tx = await transaction(devnet.rpc, result.tx_hash)
        expected_hashes = ["0x" + kzg.versioned_hash(kzg.blob_to_commitment(b)).hex() for b in batch.blobs]
        assert tx["blobVersionedHashes"] == expected_hashes
        assert tx["input"].startswith("0x507ee528")
        assert result.fee_paid_wei and result.fee_paid_wei > 0
        assert await client.last_settled_block() == block
        assert await client.verify_tx_inclusion(result.tx_hash) == "Verified"

    assert await client.last_settled_block() == BLOCKS - 1
    assert await client.state_root() == block_root(BLOCKS - 1)
    assert await client.state_block_hash() == block_hash(BLOCKS - 1)
    updates = await state_updates(devnet.rpc, devnet.contracts.core_contract)
    assert [u[1] for u in updates] == list(range(BLOCKS))
    sent = await operator_transactions(devnet.rpc, client.operator_address)
    assert [int(t["nonce"], 16) for t in sent] == list(range(BLOCKS))
    assert all(t["type"] == "0x3" for t in sent)
    await client.aclose()


async def test_a_settled_batch_is_not_sent_again(anvil_factory: Callable[[AnvilConfig], Anvil], tmp_path: Path) -> None:
    devnet = await deploy(anvil_factory(AnvilConfig(hardfork="prague")))
    client = make_client(devnet.anvil.url, devnet.contracts.core_contract, tmp_path / "tx.db", OPERATOR_KEY)
    batch = make_batch(0)
    await devnet.register(batch)
    first = await client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    again = await client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    assert again.already_settled and again.tx_hash == first.tx_hash
    # A second client on the same store (a restarted orchestrator) does not send either.
    other = make_client(devnet.anvil.url, devnet.contracts.core_contract, tmp_path / "tx.db", OPERATOR_KEY)
    third = await other.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    assert third.already_settled and third.tx_hash == first.tx_hash
    assert len(await operator_transactions(devnet.rpc, client.operator_address)) == 1
    await client.aclose()
    await other.aclose()


async def test_core_contract_refuses_an_unproven_state_update(
    anvil_factory: Callable[[AnvilConfig], Anvil], tmp_path: Path
) -> None:
    devnet = await deploy(anvil_factory(AnvilConfig(hardfork="prague")))
    client = make_client(devnet.anvil.url, devnet.contracts.core_contract, tmp_path / "tx.db", OPERATOR_KEY)
    batch = make_batch(0)  # fact NOT registered
    with pytest.raises(TxReverted) as info:
        await client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    assert "rejected by the settlement layer" in str(info.value)
    assert [a.status for a in info.value.attempts] == ["Reverted"]
    tx = await transaction(devnet.rpc, info.value.tx_hash or "")
    assert await revert_reason(devnet.rpc, tx) == "NO_STATE_TRANSITION_PROOF"
    assert await client.last_settled_block() is None

    # Once the fact is registered, the same batch key settles with the next nonce.
    await devnet.register(batch)
    result = await client.update_state_with_blobs(batch.program_output, batch.blobs, idempotency_key="batch-0")
    assert result.nonce == 1
    assert await client.last_settled_block() == 0
    await client.aclose()


async def _send_raw_state_update(
    devnet: Devnet, program_output: list[int], proofs: list[bytes], blobs: list[bytes]
) -> str:
    """Bypass the client's own checks: sign a blob tx with exactly this calldata and these blobs."""
    from eth_keys.datatypes import PrivateKey

    key = PrivateKey(bytes.fromhex(OPERATOR_KEY[2:]))
    nonce = await devnet.rpc.transaction_count(key.public_key.to_checksum_address(), "pending")
    signed = sign_blob_tx(
        private_key=key,
        chain_id=await devnet.rpc.chain_id(),
        nonce=nonce,
        to=devnet.contracts.core_contract,
        data=encode_update_state_kzg_da(program_output, proofs),
        gas_limit=1_500_000,
        fees=Fees(max_fee_per_gas=50 * 10**9, max_priority_fee_per_gas=10**9, max_fee_per_blob_gas=10**6),
        sidecar=build_sidecar(blobs, SidecarForm.EIP4844),
    )
    await devnet.rpc.send_raw_transaction(signed.raw)
    receipt = await wait_for_receipt(devnet.rpc, signed.tx_hash)
    assert receipt["status"] == "0x0", "the core contract accepted an invalid state update"
    return await revert_reason(devnet.rpc, await transaction(devnet.rpc, signed.tx_hash))


async def test_core_contract_checks_blob_hashes_evaluations_and_block_numbers(
    anvil_factory: Callable[[AnvilConfig], Anvil],
) -> None:
    devnet = await deploy(anvil_factory(AnvilConfig(hardfork="prague")))
    good = make_batch(0, n_blobs=2)
    other = make_batch(0, n_blobs=2, seed=7)
    await devnet.register(good)
    proofs = build_kzg_proofs(good.program_output, good.blobs)

    # Blobs that are not the ones the output commits to.
    assert await _send_raw_state_update(devnet, good.program_output, proofs, other.blobs) == "BLOB_HASH_MISMATCH"

    # An output whose y for blob 1 is off by one (fact registered, so only the precompile can refuse it).
    section = parse_kzg_section(good.program_output)
    tampered = list(good.program_output)
    tampered[12 + 2 * section.n_blobs + 2] += 1  # low limb of y_1 (the y limbs start at 12 + 2n)
    assert tampered != good.program_output
    await devnet.registry.register_fact(program_output_fact(DEVNET_OS_PROGRAM_HASH, tampered))
    assert (
        await _send_raw_state_update(devnet, tampered, proofs, good.blobs) == "POINT_EVALUATION_PRECOMPILE_CALL_FAILED"
    )

    # The right blobs with the wrong proof order: the precompile refuses too.
    assert (
        await _send_raw_state_update(devnet, good.program_output, proofs[::-1], good.blobs)
        == "POINT_EVALUATION_PRECOMPILE_CALL_FAILED"
    )

    # A block that does not follow the contract's state (genesis expects prev block -1).
    later = make_batch(3)
    await devnet.register(later)
    assert (
        await _send_raw_state_update(
            devnet, later.program_output, build_kzg_proofs(later.program_output, later.blobs), later.blobs
        )
        == "INVALID_PREV_BLOCK_NUMBER"
    )
    await devnet.rpc.aclose()
