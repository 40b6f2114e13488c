"""The helper programs' KZG memo (tests/helpers/kzg_memo.py): ckzg's values the first time, the same values
read back after, and nothing read from a folder that is not the user's alone."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.domain.chain import BYTES_PER_BLOB
from madara_orchestrator.starknet import kzg
from tests.helpers import kzg_memo

NAMES = ("blob_to_commitment", "compute_blob_proof", "compute_cell_proofs", "compute_point_proof", "verify_point_proof")


@pytest.fixture
def memo_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The memo in this test's temp directory; the kzg module's functions restored afterwards."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name in NAMES:
        monkeypatch.setattr(kzg, name, getattr(kzg, name))
    return tmp_path / f"madara-tests-{os.getuid()}"


def blob(seed: int) -> bytes:
    return b"".join((seed * 7919 + i).to_bytes(32, "big") for i in range(BYTES_PER_BLOB // 32))


def test_values_are_ckzgs_then_read_back(memo_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, z = blob(1), 12345
    commitment = kzg.blob_to_commitment(data)
    proof = kzg.compute_blob_proof(data, commitment)
    point = kzg.compute_point_proof(data, z)
    kzg_memo.remember_kzg_between_runs()
    assert kzg.blob_to_commitment(data) == commitment
    assert kzg.compute_blob_proof(data, commitment) == proof
    assert kzg.compute_point_proof(data, z) == point
    assert kzg.verify_point_proof(commitment, z, point[1], point[0]) is True
    assert kzg.verify_point_proof(commitment, z, point[1] + 1, point[0]) is False
    assert memo_in.is_dir() and (memo_in.stat().st_mode & 0o777) == 0o700
    assert len(list(memo_in.glob("*.json"))) == 5

    def refuse(*_: Any) -> Any:
        raise AssertionError("computed again instead of read back")

    for name in NAMES:  # a later run: ckzg is not asked again for what the memo holds
        monkeypatch.setattr(kzg, name, refuse)
    kzg_memo.remember_kzg_between_runs()
    assert kzg.blob_to_commitment(data) == commitment
    assert kzg.compute_blob_proof(data, commitment) == proof
    assert kzg.compute_point_proof(data, z) == point
    assert kzg.verify_point_proof(commitment, z, point[1], point[0]) is True
    with pytest.raises(AssertionError, match="computed again"):
        kzg.blob_to_commitment(blob(3))


def test_a_folder_that_is_not_the_users_alone_is_not_read(memo_in: Path) -> None:
    memo_in.mkdir(mode=0o777)
    memo_in.chmod(0o777)
    data = blob(2)
    expected = kzg.blob_to_commitment(data)
    kzg_memo.remember_kzg_between_runs()
    assert kzg.blob_to_commitment(data) == expected
    assert list(memo_in.iterdir()) == [], "nothing written to (or read from) a folder others can write"
