"""KZG values kept between the test helper programs' runs (not the orchestrator's: its processes compute
their own).

Each run of a helper program (the aggregator runner program, the settlement workers the crash tests kill)
is a new process, which would load the KZG trusted setup again (2.5 s of CPU) for a batch an earlier run
already computed: the failure-mode and crash tests run them many times on the same few batches. The values
are kept in the user's own folder in the temp directory (mode 0700, checked) by the hash of the function's
name and inputs, written whole (a temporary file renamed), and read back by a later run: ckzg's own bytes
the first time, the same bytes after. A blob or batch that no run has seen is computed by ckzg, as without
the memo.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from madara_orchestrator.starknet import kzg


def private_folder() -> Path | None:
    """This user's own folder for the test helpers' caches in the temp directory (made with mode 0700), or
    None where that folder is not this user's alone: then nothing is cached (nobody else's files are read)."""
    folder = Path(tempfile.gettempdir()) / f"madara-tests-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077
    return folder if private else None


def _kept(name: str, key: bytes, compute: Callable[[], Any]) -> Any:
    folder = private_folder()
    if folder is None:
        return compute()
    path = folder / f"kzg-{name}-{hashlib.sha256(key).hexdigest()[:32]}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    value = compute()
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=path.name + ".")
    with os.fdopen(handle, "w") as out:
        json.dump(value, out)
    os.replace(tmp, path)
    return value


def remember_kzg_between_runs() -> None:
    """From now on this process's ``starknet.kzg`` computations are read from the memo when an earlier run
    made them: commitments, blob proofs, cell proofs, point proofs and point-proof checks."""
    commitment, blob_proof, cell_proofs = kzg.blob_to_commitment, kzg.compute_blob_proof, kzg.compute_cell_proofs
    point_proof, verify_point = kzg.compute_point_proof, kzg.verify_point_proof

    def blob_to_commitment(blob: bytes) -> bytes:
        return bytes.fromhex(_kept("commitment", bytes(blob), lambda: commitment(blob).hex()))

    def compute_blob_proof(blob: bytes, commitment_: bytes) -> bytes:
        key = bytes(blob) + bytes(commitment_)
        return bytes.fromhex(_kept("blob-proof", key, lambda: blob_proof(blob, commitment_).hex()))

    def compute_cell_proofs(blob: bytes) -> list[bytes]:
        hexes = _kept("cell-proofs", bytes(blob), lambda: [p.hex() for p in cell_proofs(blob)])
        return [bytes.fromhex(h) for h in hexes]

    def compute_point_proof(blob: bytes, z: int) -> tuple[bytes, int]:
        def compute() -> list[Any]:
            proof, y = point_proof(blob, z)
            return [proof.hex(), y]

        proof, y = _kept("point", bytes(blob) + z.to_bytes(32, "big"), compute)
        return bytes.fromhex(proof), int(y)

    def verify_point_proof(commitment_: bytes, z: int, y: int, proof: bytes) -> bool:
        if not (0 <= z < 2**256 and 0 <= y < 2**256):
            return verify_point(commitment_, z, y, proof)  # let ckzg refuse it with its own reason
        key = bytes(commitment_) + z.to_bytes(32, "big") + y.to_bytes(32, "big") + bytes(proof)
        return bool(_kept("point-check", key, lambda: verify_point(commitment_, z, y, proof)))

    kzg.blob_to_commitment = blob_to_commitment
    kzg.compute_blob_proof = compute_blob_proof
    kzg.compute_cell_proofs = compute_cell_proofs
    kzg.compute_point_proof = compute_point_proof
    kzg.verify_point_proof = verify_point_proof
