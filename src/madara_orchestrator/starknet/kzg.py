"""KZG commitments and proofs for blobs (EIP-4844, EIP-7594) with ``ckzg`` (SPEC §6.6, §8.2).

The mainnet trusted setup shipped by eth-account is loaded once per process (thread-safe, precompute 0
like the original). ``ckzg`` holds the GIL, so parallel work over several blobs goes through a process
pool: pass an executor to ``compute_sidecars``. The GIL is held for most of the load too (seconds): a
process with an event loop loads it before it serves (``warm_up``, from cli/compose.py), not at first use.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ckzg

from madara_orchestrator.domain.chain import BYTES_PER_BLOB
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.felt import BLS_MODULUS

BYTES_PER_COMMITMENT = 48
BYTES_PER_PROOF = 48
CELLS_PER_EXT_BLOB = 128
VERSIONED_HASH_VERSION_KZG = 0x01

_SETUP_PACKAGE = "eth_account.typed_transactions.blob_transactions"
_SETUP_FILE = "kzg_trusted_setup.txt"
_PRECOMPUTE = 0

_setup_lock = threading.Lock()
_settings: Any = None


class KzgError(InvalidInput):
    """A blob, commitment, proof or point that ckzg refuses (wrong size, not canonical, ...)."""


class KzgEvaluationMismatch(InvalidInput):
    """The blob's evaluation at x_0 is not the y the program output commits to (SPEC §6.6)."""


def trusted_setup_path() -> Path:
    """The EIP-4844 mainnet trusted setup file that eth-account ships."""
    return Path(str(importlib.resources.files(_SETUP_PACKAGE).joinpath(_SETUP_FILE)))


def kzg_settings() -> Any:
    """The loaded trusted setup: read from disk on first use only (about 2 s), then shared."""
    global _settings
    settings = _settings
    if settings is not None:
        return settings
    with _setup_lock:
        if _settings is None:
            _settings = ckzg.load_trusted_setup(str(trusted_setup_path()), _PRECOMPUTE)
        return _settings


def _check_blob(blob: bytes) -> bytes:
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise KzgError(f"a blob must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) != BYTES_PER_BLOB:
        raise KzgError(f"a blob is {BYTES_PER_BLOB} bytes, got {len(blob)}")
    return blob


def _check_48(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != 48:
        size = len(value) if isinstance(value, bytes | bytearray | memoryview) else type(value).__name__
        raise KzgError(f"a KZG {what} is 48 bytes, got {size}")
    return bytes(value)


def _field_bytes(value: int, what: str) -> bytes:
    if not isinstance(value, int) or value < 0 or value >= BLS_MODULUS:
        raise KzgError(f"{what} {value!r:.80} is not an element of the BLS12-381 scalar field")
    return value.to_bytes(32, "big")


def _ckzg(call: Any, *args: Any, what: str) -> Any:
    try:
        return call(*args, kzg_settings())
    except (RuntimeError, ValueError, TypeError) as exc:
        raise KzgError(f"{what} failed: {exc}") from exc


def blob_to_commitment(blob: bytes) -> bytes:
    """The 48-byte KZG commitment of a blob."""
    return bytes(_ckzg(ckzg.blob_to_kzg_commitment, _check_blob(blob), what="KZG commitment"))


def compute_blob_proof(blob: bytes, commitment: bytes) -> bytes:
    """The EIP-4844 blob proof (``compute_blob_kzg_proof``), 48 bytes."""
    return bytes(
        _ckzg(
            ckzg.compute_blob_kzg_proof,
            _check_blob(blob),
            _check_48(commitment, "commitment"),
            what="KZG blob proof",
        )
    )


def verify_blob_proof(blob: bytes, commitment: bytes, proof: bytes) -> bool:
    return bool(
        _ckzg(
            ckzg.verify_blob_kzg_proof,
            _check_blob(blob),
            _check_48(commitment, "commitment"),
            _check_48(proof, "proof"),
            what="KZG blob proof verification",
        )
    )


def compute_point_proof(blob: bytes, z: int) -> tuple[bytes, int]:
    """The proof that the blob's polynomial takes the value y at z; returns (48-byte proof, y)."""
    proof, y = _ckzg(ckzg.compute_kzg_proof, _check_blob(blob), _field_bytes(z, "point z"), what="KZG point proof")
    return bytes(proof), int.from_bytes(y, "big")


def verify_point_proof(commitment: bytes, z: int, y: int, proof: bytes) -> bool:
    return bool(
        _ckzg(
            ckzg.verify_kzg_proof,
            _check_48(commitment, "commitment"),
            _field_bytes(z, "point z"),
            _field_bytes(y, "value y"),
            _check_48(proof, "proof"),
            what="KZG point proof verification",
        )
    )


def compute_cell_proofs(blob: bytes) -> list[bytes]:
    """The EIP-7594 (PeerDAS) proofs of the blob's 128 cells, 48 bytes each."""
    _cells, proofs = _ckzg(ckzg.compute_cells_and_kzg_proofs, _check_blob(blob), what="KZG cell proofs")
    return [bytes(p) for p in proofs]


def versioned_hash(commitment: bytes) -> bytes:
    """EIP-4844 versioned hash: 0x01 ‖ sha256(commitment)[1:]."""
    return bytes([VERSIONED_HASH_VERSION_KZG]) + hashlib.sha256(_check_48(commitment, "commitment")).digest()[1:]


# --------------------------------------------------------------------------------------------------
# Sidecars for many blobs, optionally in parallel


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobSidecar:
    """What a blob transaction carries for one blob."""

    commitment: bytes
    versioned_hash: bytes
    blob_proof: bytes | None
    """EIP-4844 proof (legacy sidecar); None when only cell proofs were asked for."""
    cell_proofs: tuple[bytes, ...]
    """EIP-7594 cell proofs; empty when only the legacy proof was asked for."""


def compute_sidecar(blob: bytes, *, with_blob_proof: bool = True, with_cell_proofs: bool = True) -> BlobSidecar:
    commitment = blob_to_commitment(blob)
    return BlobSidecar(
        commitment=commitment,
        versioned_hash=versioned_hash(commitment),
        blob_proof=compute_blob_proof(blob, commitment) if with_blob_proof else None,
        cell_proofs=tuple(compute_cell_proofs(blob)) if with_cell_proofs else (),
    )


def _sidecar_task(args: tuple[bytes, bool, bool]) -> BlobSidecar:
    blob, with_blob_proof, with_cell_proofs = args
    return compute_sidecar(blob, with_blob_proof=with_blob_proof, with_cell_proofs=with_cell_proofs)


def compute_sidecars(
    blobs: Sequence[bytes],
    *,
    with_blob_proof: bool = True,
    with_cell_proofs: bool = True,
    executor: Executor | None = None,
) -> list[BlobSidecar]:
    """One sidecar per blob, in order. With a ``ProcessPoolExecutor`` the blobs are spread over its
    workers (each loads the trusted setup once; ``warm_up`` does it ahead of time)."""
    tasks = [(_check_blob(b), with_blob_proof, with_cell_proofs) for b in blobs]
    if executor is None:
        return [_sidecar_task(t) for t in tasks]
    return list(executor.map(_sidecar_task, tasks))


def warm_up() -> None:
    """Load the trusted setup now, so the first use does not pay for it: a process-pool initializer, or the
    composition root before the HTTP API serves (a load holds the GIL, and would stop the event loop)."""
    kzg_settings()


# --------------------------------------------------------------------------------------------------
# Point proofs against the program output (SPEC §6.6)


def kzg_proofs_for_program_output(
    program_output: Sequence[int], blobs: Sequence[bytes], *, check_commitments: bool = False
) -> list[bytes]:
    """For each blob: the proof at x_0 = program_output[10], after checking that y equals the
    evaluation the program output commits to and that the proof verifies (SPEC §6.6).

    Raises ``InvalidInput`` for a malformed output or a blob count that differs from n_blobs, and
    ``KzgEvaluationMismatch`` when a y (or, with ``check_commitments``, a commitment) differs.
    """
    from madara_orchestrator.starknet.os_output import parse_kzg_section

    section = parse_kzg_section(program_output)
    if section.n_blobs != len(blobs):
        raise InvalidInput(f"program output announces {section.n_blobs} blobs but {len(blobs)} were given")
    proofs = []
    for index, blob in enumerate(blobs):
        commitment = blob_to_commitment(blob)
        proof, y = compute_point_proof(blob, section.z)
        expected = section.evaluations[index]
        if y != expected:
            raise KzgEvaluationMismatch(
                f"blob #{index}: y_0 value is different than expected: the blob evaluates to {hex(y)} at "
                f"x_0={hex(section.z)} but the program output says {hex(expected)}"
            )
        if check_commitments and section.commitments[index] != commitment:
            raise KzgEvaluationMismatch(
                f"blob #{index}: KZG commitment 0x{commitment.hex()} differs from the program output's "
                f"0x{section.commitments[index].hex()}"
            )
        if not verify_point_proof(commitment, section.z, y, proof):
            raise KzgError(f"blob #{index}: the KZG point proof at x_0 does not verify")
        proofs.append(proof)
    return proofs
