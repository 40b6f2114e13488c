"""Felts ↔ blobs (SPEC §5.11, §6.3): the NTT gives exactly the original's bit-reversed evaluations."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madara_orchestrator.domain.chain import BYTES_PER_BLOB, FELTS_PER_BLOB
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.blob import (
    GENERATOR,
    InvalidBlob,
    MaxBlobsLimitExceeded,
    bit_reverse,
    blob_from_hex,
    blob_to_felts,
    blobs_to_felts,
    evaluation_point,
    felts_to_blobs,
    inverse_ntt_bit_reversed,
    naive_evaluations,
    ntt_bit_reversed,
)
from madara_orchestrator.starknet.felt import BLS_MODULUS, STARKNET_PRIME
from tests.conftest import require

N = FELTS_PER_BLOB


def vector_blobs(vectors_dir: Path) -> list[Path]:
    paths = sorted((vectors_dir / "da" / "blob").glob("*.hex"))
    paths += sorted((vectors_dir / "settlement").glob("*/blob_data.txt"))
    require(len(paths) >= 5, "recorded blobs under vectors/da/blob and vectors/settlement")
    return paths


def test_generator_is_a_primitive_4096th_root_of_unity() -> None:
    assert pow(GENERATOR, N, BLS_MODULUS) == 1
    assert pow(GENERATOR, N // 2, BLS_MODULUS) == BLS_MODULUS - 1


def test_bit_reverse_reverses_twelve_bits() -> None:
    assert [bit_reverse(i) for i in (0, 1, 2, 3, 2048, 4095)] == [0, 2048, 1024, 3072, 1, 4095]
    assert evaluation_point(1) == BLS_MODULUS - 1  # g^2048 = -1


def test_ntt_matches_the_naive_evaluation_at_sampled_points() -> None:
    rng = random.Random(7)
    coefficients = [rng.randrange(BLS_MODULUS) for _ in range(N)]
    evaluations = ntt_bit_reversed(coefficients)
    positions = [0, 1, 2, 3, 4, 1000, 2047, 2048, 4094, 4095, *rng.sample(range(N), 6)]
    assert [evaluations[i] for i in positions] == naive_evaluations(coefficients, positions)


def test_ntt_of_a_sparse_polynomial_is_its_value_at_every_point() -> None:
    coefficients = [0] * N
    coefficients[0], coefficients[1], coefficients[5] = 3, 2, 1  # 3 + 2x + x^5
    evaluations = ntt_bit_reversed(coefficients)
    for i in range(0, N, 97):
        x = evaluation_point(i)
        assert evaluations[i] == (3 + 2 * x + pow(x, 5, BLS_MODULUS)) % BLS_MODULUS


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), n_nonzero=st.integers(min_value=0, max_value=N))
def test_inverse_ntt_undoes_ntt(seed: int, n_nonzero: int) -> None:
    rng = random.Random(seed)
    coefficients = [rng.randrange(BLS_MODULUS) for _ in range(n_nonzero)] + [0] * (N - n_nonzero)
    rng.shuffle(coefficients)
    assert inverse_ntt_bit_reversed(ntt_bit_reversed(coefficients)) == coefficients


def test_every_recorded_blob_round_trips_through_felts(vectors_dir: Path) -> None:
    for path in vector_blobs(vectors_dir):
        blob = blob_from_hex(path.read_text())
        felts = blob_to_felts(blob)
        assert len(felts) == N
        assert all(f < STARKNET_PRIME for f in felts), path  # real DA data are Starknet felts
        assert felts_to_blobs(felts) == [blob], path


def test_felts_are_split_over_as_many_blobs_as_needed() -> None:
    felts = list(range(1, 2 * N + 11))
    blobs = felts_to_blobs(felts)
    assert len(blobs) == 3
    assert all(len(b) == BYTES_PER_BLOB for b in blobs)
    assert blob_to_felts(blobs[0]) == felts[:N]
    assert blob_to_felts(blobs[2]) == felts[2 * N :] + [0] * (N - 10)
    assert blobs_to_felts(blobs) == felts


def test_no_felts_make_no_blob() -> None:
    assert felts_to_blobs([]) == []


def test_more_data_than_the_allowed_blobs_is_refused() -> None:
    with pytest.raises(MaxBlobsLimitExceeded, match=r"8193 felts need 3 blobs but at most 2 are allowed"):
        felts_to_blobs([1] * (2 * N + 1), max_blobs=2)
    assert len(felts_to_blobs([1] * (2 * N), max_blobs=2)) == 2
    assert issubclass(MaxBlobsLimitExceeded, InvalidInput)


def test_a_felt_outside_the_blob_field_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"felt #2 .* BLS12-381"):
        felts_to_blobs([1, 2, BLS_MODULUS])
    with pytest.raises(InvalidInput, match=r"felt #0"):
        felts_to_blobs([-1])


def test_a_blob_with_a_wrong_size_or_a_non_canonical_element_is_refused() -> None:
    with pytest.raises(InvalidBlob, match="131072 bytes, got 10"):
        blob_to_felts(b"\x00" * 10)
    bad = bytearray(BYTES_PER_BLOB)
    bad[32 * 5 : 32 * 6] = BLS_MODULUS.to_bytes(32, "big")
    with pytest.raises(InvalidBlob, match="element #5"):
        blob_to_felts(bytes(bad))
    with pytest.raises(InvalidBlob, match="not valid hexadecimal"):
        blob_from_hex("zz" * BYTES_PER_BLOB)
    with pytest.raises(InvalidBlob, match="262144 hex characters"):
        blob_from_hex("00" * 100)
