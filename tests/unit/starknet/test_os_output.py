"""Parsing OS / aggregator program outputs: a real SNOS run, the recorded 0.13.1 outputs, and
cairo-lang's own encoder as an oracle for the compressed state diff."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import pytest
from starkware.starknet.core.aggregator.output_parser import ContractChanges, OsStateDiff
from starkware.starknet.core.aggregator.output_parser import parse_os_output as cairo_parse_os_output

from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.os_output import (
    MalformedProgramOutput,
    MessageToL1,
    MessageToL2,
    StorageChange,
    os_output_header_from_json,
    parse_aggregator_output,
    parse_bootloader_output,
    parse_legacy_os_output,
    parse_os_output,
    parse_program_output_text,
)
from tests.conftest import require

HEADER = [0x11, 0x22, 99, 100, 0x33, 0x44, 0, 0x55]


def pie_output_segment(path: Path) -> list[int]:
    """The output builtin segment of a Cairo PIE zip (8-byte LE address, 32-byte LE value pairs)."""
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        memory = archive.read("memory.bin")
    output = metadata["builtin_segments"]["output"]
    cells = {}
    for pos in range(0, len(memory), 40):
        address = int.from_bytes(memory[pos : pos + 8], "little")
        segment, offset = (address >> 47) & 0xFFFF, address & ((1 << 47) - 1)
        if segment == output["index"]:
            cells[offset] = int.from_bytes(memory[pos + 8 : pos + 40], "little")
    return [cells[i] for i in range(output["size"])]


def test_a_real_snos_output_with_full_output_is_parsed(vectors_dir: Path) -> None:
    pie = vectors_dir / "pie" / "sepolia_924016.zip"
    require(pie.is_file(), "vectors pie/sepolia_924016.zip")
    felts = pie_output_segment(pie)
    out = parse_os_output(felts)
    assert (out.header.prev_block_number, out.header.new_block_number) == (924015, 924016)
    assert not out.header.use_kzg_da and out.header.full_output and out.kzg is None
    assert out.messages_to_l1 == () and out.messages_to_l2 == ()
    assert out.state_diff is not None
    (contract,) = out.state_diff.contracts
    assert contract.address == 1
    assert contract.storage_changes == (StorageChange(key=0xE1966, prev_value=0, new_value=felts[21]),)
    assert out.state_diff.classes == ()
    expected = cairo_parse_os_output(iter(felts))
    assert contract.storage_changes[0].new_value == expected.state_diff.contracts[0].storage_changes[0][1][1]


def test_the_recorded_0_13_1_program_output_is_parsed(vectors_dir: Path) -> None:
    path = vectors_dir / "settlement" / "651053" / "program_output.txt"
    require(path.is_file(), "vectors settlement/651053/program_output.txt")
    felts = parse_program_output_text(path.read_text())
    out = parse_legacy_os_output(felts)
    assert out.block_number == felts[2] and out.use_kzg_da
    assert out.kzg is not None and out.kzg.n_blobs == 1
    assert out.kzg.z == felts[8]
    assert out.kzg.commitments[0] == (felts[7] * 2**192 + felts[6]).to_bytes(48, "big")
    assert out.kzg.evaluations[0] == felts[10] * 2**128 + felts[9]
    assert out.messages_to_l1 == () and out.messages_to_l2 == ()
    with pytest.raises(MalformedProgramOutput, match="1 felts left"):
        parse_legacy_os_output([*felts, 0])


def test_snos_output_json_header_is_read(vectors_dir: Path) -> None:
    path = vectors_dir / "settlement" / "651053" / "snos_output.json"
    require(path.is_file(), "vectors settlement/651053/snos_output.json")
    header = os_output_header_from_json(json.loads(path.read_text()))
    assert header.new_block_number == 651053 and header.prev_block_number == 651052
    assert header.use_kzg_da and not header.full_output


def random_os_state_diff(rng: random.Random) -> OsStateDiff:
    contracts = []
    for address in sorted(rng.sample(range(1, 2**40), rng.randint(0, 6))):
        keys = sorted(rng.sample(range(1, 2**60), rng.choice([0, 1, 4, 300])))
        contracts.append(
            ContractChanges(
                addr=address,
                prev_nonce=None,
                new_nonce=rng.choice([None, rng.randint(1, 2**64 - 1)]),
                prev_class_hash=None,
                new_class_hash=rng.choice([None, rng.randrange(1, STARKNET_PRIME)]),
                storage_changes=[(k, (None, rng.choice([0, 1, rng.randrange(STARKNET_PRIME)]))) for k in keys],
            )
        )
    classes = [(rng.randrange(1, 2**251), (None, rng.randrange(STARKNET_PRIME))) for _ in range(rng.randint(0, 3))]
    return OsStateDiff(contracts=contracts, classes=classes)


def test_a_compressed_state_diff_section_is_parsed_like_cairo_lang_does() -> None:
    to_l1 = [0x1234, 0xABCD, 2, 7, 8, 0x99, 0xAA, 0]
    to_l2 = [0xE1, 0xE2, 5, 0x5E1, 1, 42]
    for seed in range(30):
        diff = random_os_state_diff(random.Random(seed))
        felts = [*HEADER, 0, 0, len(to_l1), *to_l1, len(to_l2), *to_l2, *diff.encode(full_output=False)]
        out = parse_os_output(felts)
        expected = cairo_parse_os_output(iter(felts))
        assert out.messages_to_l1 == (
            MessageToL1(from_address=0x1234, to_address=0xABCD, payload=(7, 8)),
            MessageToL1(from_address=0x99, to_address=0xAA, payload=()),
        )
        assert out.messages_to_l2 == (
            MessageToL2(from_address=0xE1, to_address=0xE2, nonce=5, selector=0x5E1, payload=(42,)),
        )
        assert out.state_diff is not None and expected.state_diff is not None
        assert [
            (c.address, c.new_nonce, c.new_class_hash, [(s.key, (None, s.new_value)) for s in c.storage_changes])
            for c in out.state_diff.contracts
        ] == [(c.addr, c.new_nonce, c.new_class_hash, c.storage_changes) for c in expected.state_diff.contracts]
        assert [(c.class_hash, (None, c.new_compiled_class_hash)) for c in out.state_diff.classes] == list(
            expected.state_diff.classes
        )


def kzg_output(n_blobs: int) -> list[int]:
    section = [0x7, n_blobs, *(i + 1 for i in range(2 * n_blobs)), *(i + 100 for i in range(2 * n_blobs))]
    return [*HEADER[:6], 0xA9, HEADER[7], 1, 0, *section, 3, 0x1, 0x2, 0, 0]


def test_an_aggregator_output_with_kzg_da_is_parsed() -> None:
    out = parse_aggregator_output(kzg_output(2))
    assert out.header.os_program_hash == 0xA9 and out.header.use_kzg_da
    assert out.kzg is not None and (out.kzg.z, out.kzg.n_blobs) == (7, 2)
    assert out.kzg.commitments[1] == (4 * 2**192 + 3).to_bytes(48, "big")
    assert out.kzg.evaluations == (101 * 2**128 + 100, 103 * 2**128 + 102)
    assert out.messages_to_l1 == (MessageToL1(from_address=1, to_address=2, payload=()),)
    assert out.state_diff is None
    os_only = kzg_output(1)
    os_only[6] = 0
    with pytest.raises(MalformedProgramOutput, match="os_program_hash is 0"):
        parse_aggregator_output(os_only)


def test_a_bootloader_output_of_two_os_runs_is_parsed() -> None:
    first, second = kzg_output(1), kzg_output(3)
    felts = [2, len(first) + 2, 0xF00, *first, len(second) + 2, 0xF01, *second]  # size counts itself
    tasks = parse_bootloader_output(felts)
    assert [t.program_hash for t in tasks] == [0xF00, 0xF01]
    assert tasks[1].output.kzg is not None and tasks[1].output.kzg.n_blobs == 3
    bad = list(felts)
    bad[1] += 1
    with pytest.raises(MalformedProgramOutput, match="task #0 says its output is"):
        parse_bootloader_output(bad)


@pytest.mark.parametrize(
    ("felts", "message"),
    [
        (kzg_output(1)[:9], "ends at position 9, where full_output was expected"),
        ([*HEADER, 2, 0, 0, 0], "use_kzg_da at position 8 is 2"),
        ([*kzg_output(1), 5], "1 felts left after the OS output"),
        (kzg_output(1)[:15], "KZG evaluations: 2 felts expected at position 14"),
        ([*HEADER, 0, 1, 0, 0, 0], "ends at position 13, where number of classes"),
        ([*HEADER, 0, 0, 3, 1, 2, 5, 0], "message to L1 payload: 5 felts expected"),
        ([*HEADER[:7], STARKNET_PRIME, 0, 0, 0, 0], "felt #7 .* not in the Starknet field"),
    ],
)
def test_malformed_outputs_are_refused_with_the_position(felts: list[int], message: str) -> None:
    with pytest.raises(MalformedProgramOutput, match=message):
        parse_os_output(felts)
