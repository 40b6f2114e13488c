"""KZG with the mainnet trusted setup: recorded commitments and proofs, and the §6.6 check of y."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import ckzg
import pytest

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet import kzg
from madara_orchestrator.starknet.blob import blob_from_hex, felts_to_blobs
from madara_orchestrator.starknet.felt import BLS_MODULUS
from madara_orchestrator.starknet.os_output import parse_kzg_section
from tests.conftest import require


def read_hex(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip().removeprefix("0x"))


def settlement_dir(vectors_dir: Path, name: str) -> Path:
    path = vectors_dir / "settlement" / name
    require(path.is_dir(), f"vectors settlement/{name}")
    return path


def test_trusted_setup_is_loaded_once_even_under_concurrent_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kzg, "_settings", None)  # as in a fresh process
    loads: list[int] = []
    real_load = ckzg.load_trusted_setup

    def counting_load(path: str, precompute: int) -> object:
        loads.append(precompute)
        return real_load(path, precompute)

    monkeypatch.setattr(ckzg, "load_trusted_setup", counting_load)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(kzg.kzg_settings())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in results}) == 1
    assert kzg.kzg_settings() is results[0]
    assert loads == [0]  # one load, precompute 0 like the original
    assert kzg.trusted_setup_path().is_file()


def test_commitment_and_blob_proof_equal_the_recorded_mainnet_values(vectors_dir: Path) -> None:
    d = settlement_dir(vectors_dir, "mainnet_20462788")
    blob = blob_from_hex((d / "blob_data.txt").read_text())
    commitment = kzg.blob_to_commitment(blob)
    assert commitment == read_hex(d / "blob_commitment.txt")
    proof = kzg.compute_blob_proof(blob, commitment)
    assert proof == read_hex(d / "blob_proof.txt")
    assert kzg.verify_blob_proof(blob, commitment, proof)
    assert not kzg.verify_blob_proof(blob, commitment, kzg.blob_to_commitment(bytes(kzg.BYTES_PER_BLOB)))


@pytest.mark.parametrize("name", ["651053", "651054"])
def test_point_proof_at_x0_equals_the_recorded_proof_and_verifies(vectors_dir: Path, name: str) -> None:
    d = settlement_dir(vectors_dir, name)
    blob = blob_from_hex((d / "blob_data.txt").read_text())
    z = int((d / "x_0.txt").read_text().strip(), 16)
    proof, y = kzg.compute_point_proof(blob, z)
    assert proof == read_hex(d / "kzg_proof.txt")
    commitment = kzg.blob_to_commitment(blob)
    assert kzg.verify_point_proof(commitment, z, y, proof)
    assert not kzg.verify_point_proof(commitment, z, (y + 1) % BLS_MODULUS, proof)


def test_versioned_hash_is_version_byte_and_sha256_tail() -> None:
    commitment = kzg.blob_to_commitment(felts_to_blobs([1, 2, 3])[0])
    digest = hashlib.sha256(commitment).digest()
    assert kzg.versioned_hash(commitment) == b"\x01" + digest[1:]
    with pytest.raises(InvalidInput, match="48 bytes, got 47"):
        kzg.versioned_hash(commitment[:47])


def test_cell_proofs_are_128_and_verify(vectors_dir: Path) -> None:
    blob = blob_from_hex((settlement_dir(vectors_dir, "651053") / "blob_data.txt").read_text())
    proofs = kzg.compute_cell_proofs(blob)
    assert len(proofs) == kzg.CELLS_PER_EXT_BLOB and all(len(p) == 48 for p in proofs)
    cells, _ = ckzg.compute_cells_and_kzg_proofs(blob, kzg.kzg_settings())
    commitment = kzg.blob_to_commitment(blob)
    assert ckzg.verify_cell_kzg_proof_batch([commitment] * 128, list(range(128)), cells, proofs, kzg.kzg_settings())


def test_sidecars_carry_commitment_hash_and_both_proof_kinds() -> None:
    blobs = felts_to_blobs(list(range(5000)))
    sidecars = kzg.compute_sidecars(blobs, with_cell_proofs=False)
    assert [s.commitment for s in sidecars] == [kzg.blob_to_commitment(b) for b in blobs]
    assert all(s.blob_proof is not None and s.cell_proofs == () for s in sidecars)
    assert sidecars[1].versioned_hash == kzg.versioned_hash(sidecars[1].commitment)


def test_bad_inputs_are_kzg_errors() -> None:
    with pytest.raises(kzg.KzgError, match="131072 bytes, got 3"):
        kzg.blob_to_commitment(b"abc")
    with pytest.raises(kzg.KzgError, match="KZG commitment failed"):
        kzg.blob_to_commitment(b"\xff" * kzg.BYTES_PER_BLOB)  # elements above the modulus
    with pytest.raises(kzg.KzgError, match=r"point z .* BLS12-381"):
        kzg.compute_point_proof(bytes(kzg.BYTES_PER_BLOB), BLS_MODULUS)


# --------------------------------------------------------------------------------------------------
# §6.6: proofs against the program output


def kzg_program_output(z: int, commitments: list[bytes], ys: list[int]) -> list[int]:
    """A minimal OS output header + KZG section + empty message segments."""
    header = [0x11, 0x22, 9, 10, 0x33, 0x44, 0, 0x55, 1, 0]
    limbs_c = []
    for c in commitments:
        value = int.from_bytes(c, "big")
        limbs_c += [value % 2**192, value >> 192]
    limbs_y = []
    for y in ys:
        limbs_y += [y % 2**128, y >> 128]
    return [*header, z, len(commitments), *limbs_c, *limbs_y, 0, 0]


def test_proofs_for_program_output_check_each_y(vectors_dir: Path) -> None:
    blobs = [
        blob_from_hex((settlement_dir(vectors_dir, name) / "blob_data.txt").read_text())
        for name in ("651053", "651054")
    ]
    z = int((settlement_dir(vectors_dir, "651053") / "x_0.txt").read_text().strip(), 16)
    ys = [kzg.compute_point_proof(b, z)[1] for b in blobs]
    commitments = [kzg.blob_to_commitment(b) for b in blobs]
    output = kzg_program_output(z, commitments, ys)

    proofs = kzg.kzg_proofs_for_program_output(output, blobs, check_commitments=True)
    assert proofs[0] == read_hex(settlement_dir(vectors_dir, "651053") / "kzg_proof.txt")
    assert all(kzg.verify_point_proof(c, z, y, p) for c, y, p in zip(commitments, ys, proofs, strict=True))
    section = parse_kzg_section(output)
    assert section.commitments == tuple(commitments) and section.evaluations == tuple(ys)

    wrong = kzg_program_output(z, commitments, [ys[0], (ys[1] + 1) % BLS_MODULUS])
    with pytest.raises(kzg.KzgEvaluationMismatch, match="blob #1: y_0 value is different than expected"):
        kzg.kzg_proofs_for_program_output(wrong, blobs)
    swapped = kzg_program_output(z, commitments[::-1], ys)
    with pytest.raises(kzg.KzgEvaluationMismatch, match="blob #0: KZG commitment"):
        kzg.kzg_proofs_for_program_output(swapped, blobs, check_commitments=True)
    with pytest.raises(InvalidInput, match="announces 2 blobs but 1 were given"):
        kzg.kzg_proofs_for_program_output(output, blobs[:1])
    with pytest.raises(InvalidInput, match="Malformed program output"):
        kzg.kzg_proofs_for_program_output(output[:15], blobs)
    no_kzg = list(output)
    no_kzg[8] = 0
    with pytest.raises(InvalidInput, match="does not use KZG DA"):
        kzg.kzg_proofs_for_program_output(no_kzg, blobs)
