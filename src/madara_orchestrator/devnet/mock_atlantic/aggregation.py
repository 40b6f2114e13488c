"""A consistent mock aggregation: the aggregator PIE and DA segment for children OS outputs (SPEC §6.6)."""

from __future__ import annotations

import functools
import io
import itertools
import json
import zipfile
from collections.abc import Sequence

from madara_orchestrator.devnet.program_output import build_program_output, spanning_header
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.facts import (
    add_aggregator_prefix,
    compute_program_hash,
)
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.pie import (
    CairoPie,
    ExecutionResources,
    PieMemory,
    PieMetadata,
    PieProgram,
    Relocatable,
    SegmentInfo,
    read_pie,
    write_pie,
)

AGGREGATOR_PROGRAM_HASH = "0x" + "ab" * 31 + "01"
"""Placeholder program hash reported for the mock aggregator query when the children are not OS outputs."""
MOCK_AGGREGATOR_PROGRAM = PieProgram(
    data=(0x40780017FFF7FFF, 1, 0x208B7FFF7FFF7FFE, int.from_bytes(b"mock atlantic aggregator", "big")),
    builtins=("output",),
    main=0,
)
"""The program of the mock aggregator PIE: never run, only hashed (a core contract is deployed with its hash)."""
OS_HEADER_SIZE = 10


@functools.cache
def mock_aggregator_program_hash() -> int:
    """The aggregator program hash with the ``AGGREGATOR`` prefix: what the mock's facts are made with."""
    return add_aggregator_prefix(compute_program_hash(MOCK_AGGREGATOR_PROGRAM))


def devnet_stand_in_output(data: bytes) -> list[int] | None:
    """The output of the devnet SNOS runner's stand-in PIE (a zip with ``devnet.json``), else None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            body = json.loads(archive.read("devnet.json"))
        output = body["output"]
        return [int(word, 16) for word in output] if isinstance(output, list) else None
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError):
        return None


def devnet_stand_in_program_hash(data: bytes) -> int | None:
    """The program hash a devnet stand-in PIE records (``devnet_pie(..., program_hash=...)``), if any."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            value = json.loads(archive.read("devnet.json")).get("program_hash")
        return int(value, 16) if isinstance(value, str) else None
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError, OSError):
        return None


def child_output(pie: bytes | None) -> list[int] | None:
    """A child's program output: the PIE's output segment, or the devnet stand-in's output."""
    if pie is None:
        return None
    try:
        return read_pie(pie).output_segment()
    except InvalidInput:
        return devnet_stand_in_output(pie)


def _os_sections(output: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """``(L2→L1 message words, L1→L2 message words, state-diff area)`` of an OS output (SPEC §6.6)."""
    at = OS_HEADER_SIZE
    if output[8] == 1:
        at += 2 + 4 * output[OS_HEADER_SIZE + 1]
    to_l1 = list(output[at + 1 : at + 1 + output[at]])
    at += 1 + output[at]
    to_l2 = list(output[at + 1 : at + 1 + output[at]])
    at += 1 + output[at]
    if at > len(output):
        raise InvalidInput(f"OS output of {len(output)} words ends inside its message segments")
    return to_l1, to_l2, list(output[at:])


def is_os_output(output: Sequence[int]) -> bool:
    if len(output) < OS_HEADER_SIZE + 2 or output[8] not in (0, 1) or output[9] not in (0, 1):
        return False
    if any(not 0 <= w < STARKNET_PRIME for w in output):
        return False
    try:
        _os_sections(output)
    except (InvalidInput, IndexError):
        return False
    return True


def _block(felt: int) -> int:
    """A block number felt as an int (P - 1 is the block before genesis, -1)."""
    return felt - STARKNET_PRIME if felt > STARKNET_PRIME // 2 else felt


def are_consecutive(outputs: Sequence[Sequence[int]]) -> bool:
    """Each child starts where the previous one ended, and each moves forward."""
    if any(_block(o[3]) <= _block(o[2]) for o in outputs):
        return False
    return all(later[2] == earlier[3] for earlier, later in itertools.pairwise(outputs))


def build_mock_aggregation(children: Sequence[Sequence[int]]) -> tuple[bytes, list[int]]:
    """The aggregator PIE zip and DA segment for children OS outputs of consecutive block ranges.

    Output: ``[n, (len_i + 2, os_program_hash_i, child_i…)…]`` then the aggregator's own output in the
    OS layout, with a real KZG section for the DA segment's blobs and the children's messages."""
    if not children:
        raise InvalidInput("an aggregation needs at least one child")
    first, last = children[0], children[-1]
    to_l1: list[int] = []
    to_l2: list[int] = []
    diffs: list[int] = [len(children)]
    for child in children:
        messages_to_l1, messages_to_l2, diff = _os_sections(child)
        to_l1 += messages_to_l1
        to_l2 += messages_to_l2
        diffs += diff
    header = spanning_header(first, last)
    own = build_program_output(header, felts_to_blobs(diffs), rest=(len(to_l1), *to_l1, len(to_l2), *to_l2))
    output: list[int] = [len(children)]
    for child in children:
        output += [len(child) + 2, child[6], *child]
    output += own
    return _pie_with_output(MOCK_AGGREGATOR_PROGRAM, output), diffs


def _pie_with_output(program: PieProgram, output: Sequence[int]) -> bytes:
    """A structurally valid Cairo PIE: program segment 0, execution 1, output 2 holding ``output``."""
    cells: dict[Relocatable, int | Relocatable] = {Relocatable(0, i): w for i, w in enumerate(program.data)}
    cells[Relocatable(1, 0)] = Relocatable(2, 0)
    cells[Relocatable(1, 1)] = Relocatable(2, len(output))
    cells.update({Relocatable(2, i): w for i, w in enumerate(output)})
    pie = CairoPie(
        metadata=PieMetadata(
            program=program,
            program_segment=SegmentInfo(index=0, size=len(program.data)),
            execution_segment=SegmentInfo(index=1, size=2),
            ret_fp_segment=SegmentInfo(index=3, size=0),
            ret_pc_segment=SegmentInfo(index=4, size=0),
            builtin_segments={"output": SegmentInfo(index=2, size=len(output))},
        ),
        memory=PieMemory(cells),
        additional_data={"output_builtin": {"pages": {}, "attributes": {}}},
        execution_resources=ExecutionResources(
            n_steps=1000 + 10 * len(output), builtin_instance_counter={"output_builtin": len(output)}
        ),
    )
    return write_pie(pie)
