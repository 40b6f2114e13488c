"""What ties an L3's settlement together: the bootloaded outputs, the layout bridge's output and the L2 fact.

On a real L2 (read from Piltover's ``appchain.cairo`` and ``config/interface.cairo``, and Integrity's fact
registry):

- Atlantic proves the SNOS PIE through the bootloader, so the SNOS proof's output is bootloaded:
  ``[1, len(os_output) + 2, snos_program_hash, *os_output]`` ("the 3rd element is the program hash of the
  bootloaded program, in our case SNOS"; Piltover skips these 3 words before reading the OS output).
- An L2 verification runs the layout bridge (the Cairo verifier, ``--cairo-verifier-program-hash``) on that
  proof, itself bootloaded; the verifier outputs the verified proof's program hash and the hash of its
  output, so the layout bridge output is ``[1, 4, layout_bridge_program_hash, verified_program_hash,
  poseidon(snos_output)]`` ("the 3rd element is the program hash", "the 5th element is the hash of the
  output of the program that has been layout-bridged").
- Integrity verifies the layout bridge proof on the L2 and registers the fact of a bootloaded proof,
  ``poseidon(bootloader_program_hash, poseidon(output))`` (Piltover recomputes it with its configured
  bootloader program hash), with the security bits of the proof (``n_queries * log_n_cosets +
  proof_of_work_bits``) and the verifier configuration it was checked with.

The mock Atlantic server builds these outputs and registers the fact; the settlement-layer double checks them
as Piltover does. The devnet's programs are stand-ins, so their hashes are labels, except the bootloader's,
which is the real one the original uses for the same fact (``BOOT_LOADER_PROGRAM_CONTRACT``, SPEC §7.7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from Crypto.Hash import keccak
from poseidon_py.poseidon_hash import poseidon_hash_many

from madara_orchestrator.starknet.facts import BOOT_LOADER_PROGRAM_CONTRACT
from madara_orchestrator.starknet.felt import STARKNET_PRIME as FELT_PRIME


def _felt(label: bytes) -> int:
    return int.from_bytes(keccak.new(digest_bits=256, data=label).digest(), "big") % FELT_PRIME


BOOTLOADER_PROGRAM_HASH = BOOT_LOADER_PROGRAM_CONTRACT
"""The bootloader that runs the SNOS and the layout bridge: Piltover's ``bootloader_program_hash``."""
DEVNET_CAIRO_VERIFIER_PROGRAM_HASH = _felt(b"madara-orchestrator devnet cairo verifier")
"""The devnet's layout bridge program (the Cairo verifier): what it passes as ``--cairo-verifier-program-hash``
and Piltover's ``layout_bridge_program_hash`` on its L2."""


def short_string(text: str) -> int:
    """A Cairo short string (at most 31 ASCII characters) as a felt."""
    raw = text.encode("ascii")
    if len(raw) > 31:
        raise ValueError(f"{text!r} is longer than a short string (31 characters)")
    return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class VerifierConfiguration:
    """Integrity's ``VerifierConfiguration``: what a fact was verified with (short strings)."""

    layout: int
    hasher: int
    stone_version: int
    memory_verification: int

    def to_felts(self) -> list[int]:
        return [self.layout, self.hasher, self.stone_version, self.memory_verification]


BRIDGE_VERIFIER_CONFIG = VerifierConfiguration(
    layout=short_string("recursive_with_poseidon"),
    hasher=short_string("keccak_160_lsb"),
    stone_version=short_string("stone6"),
    memory_verification=short_string("strict"),
)
"""How Integrity verifies a layout bridge proof (the layout Atlantic proves it in)."""


def output_hash(output: Sequence[int]) -> int:
    return int(poseidon_hash_many(list(output)))


def bootloaded_output(program_hash: int, output: Sequence[int]) -> list[int]:
    """The simple bootloader's output for one task: ``[1, len(output) + 2, program_hash, *output]``."""
    return [1, len(output) + 2, program_hash, *output]


def bridge_output(
    snos_output: Sequence[int],
    *,
    layout_bridge_program_hash: int,
    verified_program_hash: int = BOOTLOADER_PROGRAM_HASH,
) -> list[int]:
    """The layout bridge's (bootloaded) output for a verified SNOS proof of ``snos_output`` (itself bootloaded:
    its program is the bootloader)."""
    return bootloaded_output(layout_bridge_program_hash, [verified_program_hash, output_hash(snos_output)])


def l2_fact(program_hash: int, output: Sequence[int]) -> int:
    """Integrity's fact of a proof of ``program_hash`` with ``output``: ``poseidon(program_hash,
    poseidon(output))``; for a bootloaded proof ``program_hash`` is the bootloader's."""
    return int(poseidon_hash_many([program_hash, output_hash(output)]))


def security_bits(proof_parameters: Mapping[str, Any]) -> int:
    """Integrity's security bits of a Stone proof: ``n_queries * log_n_cosets + proof_of_work_bits``."""
    stark = proof_parameters["stark"]
    fri = stark["fri"]
    return int(fri["n_queries"]) * int(stark["log_n_cosets"]) + int(fri["proof_of_work_bits"])
