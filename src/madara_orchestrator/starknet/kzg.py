"""KZG commitments and proofs for blobs (EIP-4844, EIP-7594) with ``ckzg`` (SPEC §6.6, §8.2).

The mainnet trusted setup shipped by eth-account is loaded once per process (thread-safe, precompute 0
like the original). ``ckzg`` holds the GIL while it works: the load takes seconds (ckzg 2 builds the cell
proofs' tables whatever the precompute), a blob's cell proofs about 0.1 s. A process with an event loop
(``orchestrator run``) therefore computes in a worker process (``compute_in_worker_process``, called by
cli/compose.py): one process, started at the first computation, which loads the trusted setup there; every
call below is then sent to it and its caller's thread waits without the GIL. Callers run these functions
off the event loop's thread (``asyncio.to_thread``); while the worker is on, a call on that thread is refused.
Without the worker (the other commands, the tests, a library user) they compute in the calling process.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ckzg

from madara_orchestrator.domain.chain import BYTES_PER_BLOB
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput
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

log = logging.getLogger(__name__)


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
    if _worker.wanted and _on_event_loop():
        raise RuntimeError(f"{what} on the event loop's thread: call it through asyncio.to_thread")
    try:
        if _worker.wanted:
            return _worker.run(call.__name__, args)
        return call(*args, kzg_settings())
    except (RuntimeError, ValueError, TypeError) as exc:
        raise KzgError(f"{what} failed: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# The worker process


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _in_worker(name: str, args: tuple[Any, ...]) -> Any:
    """In the worker: the ckzg function ``name`` on ``args`` and this process's trusted setup."""
    return getattr(ckzg, name)(*args, kzg_settings())


def _worker_started(parent: int) -> None:
    """The worker's initializer: load the trusted setup, and end with the process that started it (a parent
    killed with SIGKILL leaves its pool's worker waiting for work that never comes)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="kzg-parent-watch", daemon=True).start()
    kzg_settings()


class _Worker:
    """The one worker process of ``compute_in_worker_process``: started at the first call, started again
    after it died (the call that found it dead fails as an outage, and is retried by its job)."""

    def __init__(self) -> None:
        self.wanted = False
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def run(self, name: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            pool, fresh = self._pool, self._pool is None
            if pool is None:
                context = multiprocessing.get_context("spawn")
                pool = ProcessPoolExecutor(1, context, initializer=_worker_started, initargs=(os.getpid(),))
                self._pool = pool
        started = time.monotonic()
        try:
            result = pool.submit(_in_worker, name, args).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise BackendUnavailable(
                "the KZG worker process ended; it is started again at the next computation"
            ) from exc
        if fresh:
            log.info("KZG worker process started, trusted setup loaded in %.1f s (blob DA)", time.monotonic() - started)
        return result

    def stop(self) -> None:
        with self._lock:
            pool, self._pool, self.wanted = self._pool, None, False
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_worker = _Worker()


def compute_in_worker_process() -> None:
    """From now on this process's KZG computations run in one worker process, started at the first of them
    (``stop_worker_process`` ends it)."""
    _worker.wanted = True


def stop_worker_process() -> None:
    """End the worker process (waiting for the computation it is doing) and compute in-process again."""
    _worker.stop()


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


def compute_sidecars(
    blobs: Sequence[bytes], *, with_blob_proof: bool = True, with_cell_proofs: bool = True
) -> list[BlobSidecar]:
    """One sidecar per blob, in order."""
    return [compute_sidecar(b, with_blob_proof=with_blob_proof, with_cell_proofs=with_cell_proofs) for b in blobs]


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
