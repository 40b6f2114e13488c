"""Type-3 transactions signed here: byte-identical to eth-account's, in both network forms."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import rlp
from eth_account import Account
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey
from hexbytes import HexBytes

from madara_orchestrator.settlement.blob_tx import (
    Fees,
    SidecarForm,
    build_sidecar,
    decode_pooled_blob_tx,
    sign_blob_tx,
    sign_dynamic_fee_tx,
)
from madara_orchestrator.starknet import kzg

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TO = "0x" + "11" * 20
BLOB = bytes(31) + b"\x05" + bytes(131072 - 32)
FEES = Fees(max_fee_per_gas=30, max_priority_fee_per_gas=2, max_fee_per_blob_gas=9)


def _sign(form: SidecarForm) -> tuple[bytes, str]:
    signed = sign_blob_tx(
        private_key=PrivateKey(bytes.fromhex(KEY[2:])),
        chain_id=31337,
        nonce=7,
        to=TO,
        data=bytes.fromhex("1234"),
        gas_limit=100_000,
        fees=FEES,
        sidecar=build_sidecar([BLOB], form),
    )
    return signed.raw, signed.tx_hash


@pytest.mark.slow
def test_eip4844_network_form_is_byte_identical_to_eth_account(monkeypatch: pytest.MonkeyPatch) -> None:
    # eth-account loads its trusted setup (the same file, precompute 0) again for each blob's commitment and
    # proof: 2.5 s of CPU each time. Loaded once here; its own computations are unchanged.
    import eth_account.typed_transactions.base as eth_account_blobs

    assert Path(eth_account_blobs.TRUSTED_SETUP) == kzg.trusted_setup_path()
    monkeypatch.setattr(eth_account_blobs, "load_trusted_setup", functools.cache(eth_account_blobs.load_trusted_setup))
    raw, _ = _sign(SidecarForm.EIP4844)
    theirs = Account.sign_transaction(
        {
            "type": 3,
            "chainId": 31337,
            "nonce": 7,
            "maxPriorityFeePerGas": 2,
            "maxFeePerGas": 30,
            "gas": 100_000,
            "to": TO,
            "value": 0,
            "data": "0x1234",
            "accessList": [],
            "maxFeePerBlobGas": 9,
        },
        KEY,
        blobs=[BLOB],
    )
    assert bytes(theirs.raw_transaction) == raw


@pytest.mark.parametrize("form", list(SidecarForm))
def test_both_forms_carry_the_same_signed_transaction(form: SidecarForm) -> None:
    raw, tx_hash = _sign(form)
    decoded = decode_pooled_blob_tx(raw)
    assert decoded["form"] is form
    assert decoded["nonce"] == 7 and decoded["chain_id"] == 31337 and decoded["to"] == TO
    assert decoded["max_fee_per_blob_gas"] == 9 and decoded["data"] == bytes.fromhex("1234")
    commitment = kzg.blob_to_commitment(BLOB)
    assert decoded["blobs"] == [BLOB] and decoded["commitments"] == [commitment]
    assert decoded["blob_versioned_hashes"] == [kzg.versioned_hash(commitment)]
    assert decoded["tx_hash"] == tx_hash
    if form is SidecarForm.EIP4844:
        assert decoded["proofs"] == [kzg.compute_blob_proof(BLOB, commitment)]
        assert rlp.decode(raw[1:])[0] is not None and len(rlp.decode(raw[1:])) == 4
    else:
        assert decoded["proofs"] == kzg.compute_cell_proofs(BLOB) and len(decoded["proofs"]) == 128
        assert rlp.decode(raw[1:])[1] == b"\x01"  # wrapper version 1
    # The hash is over the signed body only (the same for both forms), and the signer recovers.
    body = rlp.decode(raw[1:])[0]
    assert tx_hash == "0x" + keccak(b"\x03" + rlp.encode(body)).hex()
    assert Account.recover_transaction(HexBytes(b"\x03" + rlp.encode(body))) == SENDER


def test_both_forms_have_the_same_hash() -> None:
    assert _sign(SidecarForm.EIP4844)[1] == _sign(SidecarForm.EIP7594)[1]


def test_dynamic_fee_tx_recovers_its_sender() -> None:
    signed = sign_dynamic_fee_tx(
        private_key=PrivateKey(bytes.fromhex(KEY[2:])),
        chain_id=1,
        nonce=0,
        to=None,
        data=b"\x60\x00",
        gas_limit=60_000,
        max_fee_per_gas=10,
        max_priority_fee_per_gas=1,
    )
    assert Account.recover_transaction(HexBytes(signed.raw)) == SENDER
    assert signed.tx_hash == "0x" + keccak(signed.raw).hex()
