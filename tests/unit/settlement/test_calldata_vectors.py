"""``updateStateKzgDA`` calldata against the word layout of SPEC §8.2, on the real program outputs and KZG
proofs of vectors/settlement; and the commitment limb order established on the same real output."""

from __future__ import annotations

from pathlib import Path

import ckzg
import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode

from madara_orchestrator.settlement.encoding import (
    UPDATE_STATE_KZG_DA_SELECTOR,
    commitment_to_limbs,
    encode_update_state,
    encode_update_state_kzg_da,
    limbs_to_commitment,
)
from madara_orchestrator.starknet import kzg

VECTORS = ["651053", "651054"]


def _load(vectors_dir: Path, name: str) -> tuple[list[int], bytes, bytes, int]:
    folder = vectors_dir / "settlement" / name
    output = [int(line) for line in (folder / "program_output.txt").read_text().split()]
    proof = bytes.fromhex((folder / "kzg_proof.txt").read_text().strip().removeprefix("0x"))
    blob = bytes.fromhex((folder / "blob_data.txt").read_text().strip().removeprefix("0x"))
    x_0 = int((folder / "x_0.txt").read_text().strip(), 16)
    return output, proof, blob, x_0


def _words(data: bytes) -> list[int]:
    assert len(data) % 32 == 0
    return [int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data), 32)]


@pytest.mark.parametrize("name", VECTORS)
def test_update_state_kzg_da_calldata_follows_the_spec_layout(vectors_dir: Path, name: str) -> None:
    output, proof, _blob, _x0 = _load(vectors_dir, name)
    assert len(output) == 13 and len(proof) == 48
    for k, proofs in [(1, [proof]), (3, [proof, bytes(reversed(proof)), proof])]:
        data = encode_update_state_kzg_da(output, proofs)
        assert data[:4] == UPDATE_STATE_KZG_DA_SELECTOR == bytes.fromhex("507ee528")
        words = _words(data[4:])
        n = len(output)
        assert words[0] == 0x40
        assert words[1] == 0x60 + 32 * n
        assert words[2] == n
        assert words[3 : 3 + n] == output
        assert words[3 + n] == k
        offsets = words[4 + n : 4 + n + k]
        assert offsets == [32 * k + 96 * i for i in range(k)]
        tail = data[4 + 32 * (4 + n + k) :]
        assert len(tail) == 96 * k
        for i in range(k):
            chunk = tail[96 * i : 96 * (i + 1)]
            assert int.from_bytes(chunk[:32], "big") == 48
            assert chunk[32:80] == proofs[i] and chunk[80:] == bytes(16)
        # The same bytes as the standard ABI encoder, and they decode back.
        assert data[4:] == abi_encode(["uint256[]", "bytes[]"], [output, proofs])
        decoded_output, decoded_proofs = abi_decode(["uint256[]", "bytes[]"], data[4:])
        assert list(decoded_output) == output and list(decoded_proofs) == proofs


@pytest.mark.parametrize("name", VECTORS)
def test_the_recorded_kzg_proof_is_the_point_proof_of_the_blob_at_x0(vectors_dir: Path, name: str) -> None:
    _output, proof, blob, x_0 = _load(vectors_dir, name)
    computed, y = kzg.compute_point_proof(blob, x_0)
    assert computed == proof
    assert kzg.verify_point_proof(kzg.blob_to_commitment(blob), x_0, y, proof)
    assert not kzg.verify_point_proof(kzg.blob_to_commitment(blob), x_0, y + 1, proof)


def test_commitment_limbs_are_192_bit_low_then_high(vectors_dir: Path) -> None:
    """In the real output, words 6 and 7 are a commitment's limbs: read (low, high), they decode to a point
    of the G1 subgroup (ckzg accepts it as a commitment); read (high, low), they do not."""
    output, proof, _blob, _x0 = _load(vectors_dir, "651053")
    low, high = output[6], output[7]
    assert low < 2**192 and high < 2**192
    settings = kzg.kzg_settings()
    z, y = (1).to_bytes(32, "big"), (2).to_bytes(32, "big")
    right = limbs_to_commitment(low, high)
    assert ckzg.verify_kzg_proof(right, z, y, proof, settings) is False  # a valid point, just not this proof
    swapped = limbs_to_commitment(high, low)
    with pytest.raises(RuntimeError):
        ckzg.verify_kzg_proof(swapped, z, y, proof, settings)
    assert commitment_to_limbs(right) == (low, high)


def test_update_state_calldata_layout() -> None:
    output = [5, 2**251, 7]
    data = encode_update_state(output, 0xAB, 3)
    assert data[4:] == abi_encode(["uint256[]", "uint256", "uint256"], [output, 0xAB, 3])
