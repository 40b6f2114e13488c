"""Pure encoders of the Ethereum settlement path: the KZG section of the program output, the core
contract's calldata (SPEC §8.2), the point proofs at x_0 (SPEC §6.6) and the devnet fact.

Program output layout (Starknet OS >= 0.13.2), one felt per word:
``[0] initial_root, [1] final_root, [2] prev_block_number, [3] new_block_number, [4] prev_block_hash,
[5] new_block_hash, [6] os_program_hash, [7] starknet_os_config_hash, [8] use_kzg_da, [9] full_output,
[10] x_0, [11] n_blobs``, then two felts per blob for the 48-byte commitments, then two felts per blob
for the evaluations y, then the rest (messages, state diff, ...).

Commitment limbs: 192 bits each, low first: ``commitment = high.to_bytes(24) || low.to_bytes(24)``.
Established on the real mainnet output in vectors/settlement/651053/program_output.txt: of the two
orders only this one decodes to a point of the BLS12-381 G1 subgroup (the other is on the curve but
outside the subgroup), and it is the order the Starknet core contract reads. y limbs: 128 bits each,
low first, ``y = high·2^128 + low``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from madara_orchestrator.domain.errors import InvalidInput

USE_KZG_DA_INDEX = 8
X0_INDEX = 10
N_BLOBS_INDEX = 11
COMMITMENTS_INDEX = 12
HEADER_SIZE = 10

UPDATE_STATE_KZG_DA_SELECTOR = bytes.fromhex("507ee528")
"""``updateStateKzgDA(uint256[],bytes[])``."""
UPDATE_STATE_SELECTOR = keccak(b"updateState(uint256[],uint256,uint256)")[:4]
STATE_BLOCK_NUMBER_SELECTOR = keccak(b"stateBlockNumber()")[:4]
STATE_ROOT_SELECTOR = keccak(b"stateRoot()")[:4]
STATE_BLOCK_HASH_SELECTOR = keccak(b"stateBlockHash()")[:4]
REGISTER_FACT_SELECTOR = keccak(b"registerFact(bytes32)")[:4]
IS_VALID_SELECTOR = keccak(b"isValid(bytes32)")[:4]

_U192 = (1 << 192) - 1
_U128 = (1 << 128) - 1
_U256 = (1 << 256) - 1


class KzgEvaluationMismatch(InvalidInput):
    """The blob's evaluation at x_0 is not the y the program output commits to (SPEC §6.6)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KzgSection:
    x_0: int
    n_blobs: int
    commitments: list[bytes]
    """48-byte commitments, from the (low, high) 192-bit limbs."""
    evaluations: list[int]
    """y per blob, from the (low, high) 128-bit limbs."""


def commitment_to_limbs(commitment: bytes) -> tuple[int, int]:
    """(low, high) 192-bit limbs of a 48-byte KZG commitment, in program-output order."""
    if len(commitment) != 48:
        raise InvalidInput(f"a KZG commitment is 48 bytes, got {len(commitment)}")
    return int.from_bytes(commitment[24:], "big"), int.from_bytes(commitment[:24], "big")


def limbs_to_commitment(low: int, high: int) -> bytes:
    if not (0 <= low <= _U192 and 0 <= high <= _U192):
        raise InvalidInput("a KZG commitment limb of the program output exceeds 192 bits")
    return high.to_bytes(24, "big") + low.to_bytes(24, "big")


def y_to_limbs(y: int) -> tuple[int, int]:
    """(low, high) 128-bit limbs of an evaluation y."""
    return y & _U128, y >> 128


def _last_bytes(word: int, n: int) -> int:
    """The value of the last ``n`` bytes of the 32-byte big-endian word (how the original reads limbs)."""
    return word & ((1 << (8 * n)) - 1)


def parse_kzg_section(program_output: Sequence[int]) -> KzgSection:
    """The KZG DA section (SPEC §6.6): x_0, n_blobs, the commitments and the y values."""
    if len(program_output) <= N_BLOBS_INDEX:
        raise InvalidInput(f"Malformed program output: {len(program_output)} words, no KZG section")
    if program_output[USE_KZG_DA_INDEX] != 1:
        raise InvalidInput(
            f"program output's use_kzg_da flag (word {USE_KZG_DA_INDEX}) is {program_output[USE_KZG_DA_INDEX]}, "
            "not 1: it has no KZG section to settle blobs against"
        )
    n = _last_bytes(program_output[N_BLOBS_INDEX], 8)
    if len(program_output) <= 11 + 4 * n:
        raise InvalidInput(
            f"Malformed program output: {len(program_output)} words cannot hold the KZG section of {n} blobs"
        )
    commitments = [
        limbs_to_commitment(program_output[COMMITMENTS_INDEX + 2 * i], program_output[COMMITMENTS_INDEX + 2 * i + 1])
        for i in range(n)
    ]
    evaluations = [
        (_last_bytes(program_output[2 * (n + i) + 13], 16) << 128) | _last_bytes(program_output[2 * (n + i) + 12], 16)
        for i in range(n)
    ]
    return KzgSection(x_0=program_output[X0_INDEX], n_blobs=n, commitments=commitments, evaluations=evaluations)


def build_kzg_proofs(program_output: Sequence[int], blobs: Sequence[bytes]) -> list[bytes]:
    """The 48-byte point proofs at x_0, one per blob, after checking y and the proof (SPEC §6.6).

    Also checks each blob's commitment against the output's, so that a blob/output mix-up fails here
    with a clear message instead of as a revert on L1.
    """
    from madara_orchestrator.starknet import kzg

    section = parse_kzg_section(program_output)
    if section.n_blobs != len(blobs):
        raise InvalidInput(f"program output announces {section.n_blobs} blobs but {len(blobs)} were given")
    proofs = []
    for index, blob in enumerate(blobs):
        commitment = kzg.blob_to_commitment(blob)
        if commitment != section.commitments[index]:
            raise KzgEvaluationMismatch(
                f"blob #{index}: its KZG commitment 0x{commitment.hex()} is not the program output's "
                f"0x{section.commitments[index].hex()}: the blobs do not belong to this program output"
            )
        proof, y = kzg.compute_point_proof(blob, section.x_0)
        if y != section.evaluations[index]:
            raise KzgEvaluationMismatch(
                f"blob #{index}: y_0 value is different than expected: the blob evaluates to {hex(y)} at "
                f"x_0={hex(section.x_0)} but the program output says {hex(section.evaluations[index])}"
            )
        if not kzg.verify_point_proof(commitment, section.x_0, y, proof):
            raise InvalidInput(f"blob #{index}: the KZG point proof at x_0 does not verify")
        proofs.append(proof)
    return proofs


def _word(value: int) -> bytes:
    if not 0 <= value <= _U256:
        raise InvalidInput(f"value {value} does not fit a 256-bit word")
    return value.to_bytes(32, "big")


def encode_update_state_kzg_da(program_output: Sequence[int], kzg_proofs: Sequence[bytes]) -> bytes:
    """Calldata of ``updateStateKzgDA(uint256[] programOutput, bytes[] kzgProofs)``, SPEC §8.2 layout."""
    n = len(program_output)
    k = len(kzg_proofs)
    parts = [UPDATE_STATE_KZG_DA_SELECTOR, _word(0x40), _word(0x60 + 32 * n), _word(n)]
    parts += [_word(v) for v in program_output]
    parts.append(_word(k))
    parts += [_word(32 * k + 96 * i) for i in range(k)]
    for proof in kzg_proofs:
        if len(proof) != 48:
            raise InvalidInput(f"a KZG proof is 48 bytes, got {len(proof)}")
        parts += [_word(48), bytes(proof) + bytes(16)]
    return b"".join(parts)


def encode_update_state(program_output: Sequence[int], onchain_data_hash: int, onchain_data_size: int) -> bytes:
    """Calldata of ``updateState(uint256[] programOutput, uint256 onchainDataHash, uint256 onchainDataSize)``."""
    n = len(program_output)
    parts = [UPDATE_STATE_SELECTOR, _word(0x60), _word(onchain_data_hash), _word(onchain_data_size), _word(n)]
    parts += [_word(v) for v in program_output]
    return b"".join(parts)


def encode_bytes32_call(selector: bytes, value: bytes) -> bytes:
    if len(value) != 32:
        raise InvalidInput(f"expected 32 bytes, got {len(value)}")
    return selector + value


def program_output_fact(program_hash: int, program_output: Sequence[int]) -> bytes:
    """keccak256(programHash ‖ keccak256(programOutput words)): the fact the devnet core contract checks
    (a GPS fact with a single-page fact topology)."""
    output_hash = keccak(b"".join(_word(v) for v in program_output))
    return keccak(_word(program_hash) + output_hash)


def decode_int256(word: bytes) -> int:
    value = int.from_bytes(word[:32], "big")
    return value - (1 << 256) if value >> 255 else value
