"""What ties an L3's settlement together on the devnet: the layout bridge's output and the L2 fact.

On a real L2, Atlantic verifies the SNOS proof on Starknet (Integrity) through the "layout bridge", a
Cairo verifier program whose output commits to the SNOS output, and registers the fact of that output;
the Piltover core contract's ``update_state(snos_output, layout_bridge_output, …)`` then checks that the
fact is registered and that the bridge output commits to the SNOS output it is given.

The devnet keeps that chain of checks with its own definitions, shared by the mock Atlantic server
(which builds the bridge output and registers its fact) and the settlement-layer double (which checks):

- bridge output = ``[verifier_program_hash, poseidon(snos_output)]``;
- fact of a program's output = ``poseidon(program_hash, poseidon(output))``, with ``BRIDGE_PROGRAM_HASH``.
"""

from __future__ import annotations

from collections.abc import Sequence

from Crypto.Hash import keccak
from poseidon_py.poseidon_hash import poseidon_hash_many

FELT_PRIME = 2**251 + 17 * 2**192 + 1


def _felt(label: bytes) -> int:
    return int.from_bytes(keccak.new(digest_bits=256, data=label).digest(), "big") % FELT_PRIME


BRIDGE_PROGRAM_HASH = _felt(b"madara-orchestrator devnet layout bridge")
"""The layout bridge program's hash: the double's core contract is deployed with it."""
DEVNET_CAIRO_VERIFIER_PROGRAM_HASH = _felt(b"madara-orchestrator devnet cairo verifier")
"""What the devnet passes as ``--cairo-verifier-program-hash``."""


def output_hash(output: Sequence[int]) -> int:
    return int(poseidon_hash_many(list(output)))


def bridge_output(snos_output: Sequence[int], *, verifier_program_hash: int) -> list[int]:
    """The layout bridge's output for a verified SNOS proof."""
    return [verifier_program_hash, output_hash(snos_output)]


def l2_fact(program_hash: int, output: Sequence[int]) -> int:
    """The fact registered on the L2 for a program's output."""
    return int(poseidon_hash_many([program_hash, output_hash(output)]))
