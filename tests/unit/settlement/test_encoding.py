"""The KZG section of devnet program outputs, point proofs (SPEC §6.6) and their errors."""

from __future__ import annotations

import random

import pytest

from madara_orchestrator.devnet.program_output import (
    DEVNET_OS_PROGRAM_HASH,
    STARKNET_PRIME,
    build_program_output,
    devnet_config_hash,
    felt_from_int,
)
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.settlement.encoding import (
    KzgEvaluationMismatch,
    build_kzg_proofs,
    decode_int256,
    parse_kzg_section,
    program_output_fact,
)
from madara_orchestrator.starknet import kzg
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.os_output import OsOutputHeader

TRANSITION = OsOutputHeader(
    initial_root=11,
    final_root=12,
    prev_block_number=felt_from_int(-1),
    new_block_number=0,
    prev_block_hash=0,
    new_block_hash=13,
    os_program_hash=DEVNET_OS_PROGRAM_HASH,
    starknet_os_config_hash=devnet_config_hash(),
    use_kzg_da=True,
    full_output=False,
)


@pytest.fixture(scope="module")
def blobs() -> list[bytes]:
    rng = random.Random(5)
    return felts_to_blobs([rng.randrange(2**251) for _ in range(4096 + 10)])


def test_devnet_program_output_has_the_os_layout_and_a_real_kzg_section(blobs: list[bytes]) -> None:
    output = build_program_output(TRANSITION, blobs, rest=(0, 0))
    assert len(output) == 10 + 2 + 4 * len(blobs) + 2
    assert output[2] == STARKNET_PRIME - 1 and output[3] == 0  # block -1 → 0
    assert output[8] == 1
    section = parse_kzg_section(output)
    assert section.n_blobs == 2
    assert section.commitments == [kzg.blob_to_commitment(b) for b in blobs]
    for blob, y in zip(blobs, section.evaluations, strict=True):
        proof, expected_y = kzg.compute_point_proof(blob, section.x_0)
        assert y == expected_y
        assert kzg.verify_point_proof(kzg.blob_to_commitment(blob), section.x_0, y, proof)
    assert all(0 <= w < STARKNET_PRIME for w in output)
    # Deterministic: the same blobs give the same output.
    assert build_program_output(TRANSITION, blobs) == output


def test_build_kzg_proofs_returns_verified_proofs(blobs: list[bytes]) -> None:
    output = build_program_output(TRANSITION, blobs)
    proofs = build_kzg_proofs(output, blobs)
    section = parse_kzg_section(output)
    assert len(proofs) == 2 and all(len(p) == 48 for p in proofs)
    for commitment, y, proof in zip(section.commitments, section.evaluations, proofs, strict=True):
        assert kzg.verify_point_proof(commitment, section.x_0, y, proof)


def test_a_y_that_differs_from_the_blob_is_refused_with_a_clear_error(blobs: list[bytes]) -> None:
    output = build_program_output(TRANSITION, blobs)
    n = 2
    output[12 + 2 * n + 2] ^= 1  # low limb of y_1
    with pytest.raises(KzgEvaluationMismatch, match=r"blob #1: y_0 value is different than expected"):
        build_kzg_proofs(output, blobs)


def test_blobs_of_another_output_are_refused(blobs: list[bytes]) -> None:
    output = build_program_output(TRANSITION, blobs)
    with pytest.raises(KzgEvaluationMismatch, match="do not belong to this program output"):
        build_kzg_proofs(output, blobs[::-1])
    with pytest.raises(InvalidInput, match="announces 2 blobs but 1 were given"):
        build_kzg_proofs(output, blobs[:1])


def test_malformed_outputs_are_refused(blobs: list[bytes]) -> None:
    output = build_program_output(TRANSITION, blobs)
    with pytest.raises(InvalidInput, match="Malformed program output"):
        parse_kzg_section(output[:11])
    with pytest.raises(InvalidInput, match="Malformed program output"):
        parse_kzg_section(output[:15])
    no_kzg = list(output)
    no_kzg[8] = 0
    with pytest.raises(InvalidInput, match="use_kzg_da"):
        parse_kzg_section(no_kzg)


def test_fact_changes_with_every_word(blobs: list[bytes]) -> None:
    output = build_program_output(TRANSITION, blobs)
    fact = program_output_fact(7, output)
    assert len(fact) == 32
    assert program_output_fact(8, output) != fact
    changed = list(output)
    changed[-1] += 1
    assert program_output_fact(7, changed) != fact


def test_signed_helpers() -> None:
    assert felt_from_int(-1) == STARKNET_PRIME - 1 and felt_from_int(5) == 5
    assert decode_int256((2**256 - 1).to_bytes(32, "big")) == -1
    assert decode_int256((9).to_bytes(32, "big")) == 9
