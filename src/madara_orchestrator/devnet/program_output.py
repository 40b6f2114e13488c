"""Devnet program outputs in the Starknet OS layout (SPEC §6.6) with a REAL KZG section for the blobs.

The commitments are those of the blobs, x_0 is derived deterministically from them (below the BLS
modulus), and each y is the blob's evaluation at x_0 (``compute_point_proof``): so the devnet core
contract's checks (blob versioned hashes, point-evaluation precompile) pass only for the right blobs.
The fact the mock prover registers is ``program_output_fact(program_hash, output)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from eth_hash.auto import keccak

from madara_orchestrator.devnet.sequencer import CHAIN_ID, STRK_TOKEN
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.settlement.encoding import commitment_to_limbs, program_output_fact, y_to_limbs
from madara_orchestrator.starknet import kzg
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.os_config import os_config_hash
from madara_orchestrator.starknet.os_output import OsOutputHeader

DEVNET_OS_PROGRAM_HASH = int.from_bytes(keccak(b"madara-orchestrator devnet os program"), "big") % STARKNET_PRIME


@functools.cache
def devnet_config_hash() -> int:
    """The OS config hash of the devnet chain as it starts (its chain id and fee token, no DA keys); a Pedersen
    hash, computed at the first call (not at import: hashing loads crypto-cpp's library)."""
    return os_config_hash(CHAIN_ID, STRK_TOKEN)


__all__ = [
    "DEVNET_OS_PROGRAM_HASH",
    "build_program_output",
    "devnet_config_hash",
    "devnet_x0",
    "felt_from_int",
    "program_output_fact",
    "spanning_header",
]


def felt_from_int(value: int) -> int:
    """A signed integer as a felt (-1 → P - 1, how the OS writes the block before genesis)."""
    if not -STARKNET_PRIME < value < STARKNET_PRIME:
        raise InvalidInput(f"{value} does not fit a felt")
    return value % STARKNET_PRIME


def spanning_header(first: Sequence[int], last: Sequence[int]) -> OsOutputHeader:
    """The header of an aggregation of consecutive OS outputs, ``first`` to ``last`` (their felts): from where
    the first starts to where the last ends, with the first's program and config hashes, and KZG DA."""
    return OsOutputHeader(
        initial_root=first[0],
        final_root=last[1],
        prev_block_number=first[2],
        new_block_number=last[3],
        prev_block_hash=first[4],
        new_block_hash=last[5],
        os_program_hash=first[6],
        starknet_os_config_hash=first[7],
        use_kzg_da=True,
        full_output=False,
    )


def devnet_x0(commitments: Sequence[bytes], salt: bytes = b"") -> int:
    """A deterministic evaluation point bound to the blobs' commitments: a felt (so below the Starknet
    prime, which is itself below the BLS modulus), like the OS's Poseidon-derived z."""
    digest = keccak(b"madara-orchestrator devnet x_0" + salt + b"".join(commitments))
    return int.from_bytes(digest, "big") % STARKNET_PRIME


def build_program_output(
    header: OsOutputHeader,
    blobs: Sequence[bytes],
    *,
    x_0: int | None = None,
    rest: Sequence[int] = (0, 0),
) -> list[int]:
    """``[header(10), x_0, n_blobs, commitment limbs (2n), y limbs (2n), *rest]``: the header of one (batched)
    state transition, blocks prev_block_number+1 ..= new_block_number (P - 1 before the first block after
    genesis, ``felt_from_int(-1)``), with ``use_kzg_da``.

    ``rest`` follows the KZG section (by default empty L1→L2 and L2→L1 message segments).
    """
    if not header.use_kzg_da:
        raise InvalidInput("a KZG DA program output needs a header with use_kzg_da")
    if not blobs:
        raise InvalidInput("a KZG DA program output needs at least one blob")
    commitments = [kzg.blob_to_commitment(blob) for blob in blobs]
    z = devnet_x0(commitments) if x_0 is None else x_0
    if not 0 <= z < STARKNET_PRIME:
        raise InvalidInput("x_0 must be a felt (below the Starknet prime, hence below the BLS12-381 modulus)")
    commitment_limbs = [limb for c in commitments for limb in commitment_to_limbs(c)]
    y_limbs = [limb for blob in blobs for limb in y_to_limbs(kzg.compute_point_proof(blob, z)[1])]
    output = [*header.felts(), z, len(blobs), *commitment_limbs, *y_limbs, *rest]
    for index, value in enumerate(output):
        if not 0 <= value < STARKNET_PRIME:
            raise InvalidInput(f"program output word {index} ({value}) is not a felt")
    return output
