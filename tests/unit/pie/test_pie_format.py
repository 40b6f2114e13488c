"""Reading and writing Cairo PIE zips: the recorded PIEs round-trip, damaged files give clear errors."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.pie import (
    MEMBERS,
    PieError,
    PieMemory,
    Relocatable,
    encode_memory,
    read_pie,
    write_pie,
)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def test_fibonacci_pie_is_read_into_typed_values(fibonacci_zip: bytes) -> None:
    pie = read_pie(fibonacci_zip)
    assert pie.version == {"cairo_pie": "1.1"}
    assert pie.program.builtins == ("output",)
    assert pie.program.main == 0
    assert len(pie.program.data) == pie.metadata.program_segment.size == 27
    assert pie.n_steps == 72
    assert pie.execution_resources.builtin_instance_counter == {"output_builtin": 1}
    assert pie.metadata.builtin_segments["output"].size == 1
    assert pie.output_segment() == [89]  # fib(11): the program's one output word
    assert len(pie.memory) == len(members(fibonacci_zip)["memory.bin"]) // 40


@pytest.mark.parametrize("fixture", ["fibonacci_zip", "sepolia_zip"])
def test_rewriting_a_recorded_pie_gives_back_the_same_members(fixture: str, request: pytest.FixtureRequest) -> None:
    original: bytes = request.getfixturevalue(fixture)
    rewritten = write_pie(read_pie(original))
    before, after = members(original), members(rewritten)
    assert list(after) == list(MEMBERS)
    assert after["memory.bin"] == before["memory.bin"]
    for name in MEMBERS:
        if name.endswith(".json"):
            assert json.loads(after[name]) == json.loads(before[name]), name
    assert read_pie(rewritten) == read_pie(original)


def test_cairo_lang_reads_the_zip_we_write(sepolia_zip: bytes) -> None:
    from starkware.cairo.lang.vm.cairo_pie import CairoPie as CairoLangPie

    ours = read_pie(sepolia_zip)
    theirs = CairoLangPie.from_file(io.BytesIO(write_pie(ours)))
    assert theirs.metadata.program.data == list(ours.program.data)
    assert theirs.execution_resources.n_steps == ours.n_steps
    assert len(theirs.memory) == len(ours.memory)
    from starkware.cairo.bootloaders.generate_fact import get_program_output

    assert get_program_output(theirs) == ours.output_segment()


felts = st.integers(min_value=0, max_value=2**251)
addresses = st.builds(Relocatable, st.integers(0, 2**16 - 1), st.integers(0, 2**47 - 1))
values = st.one_of(felts, addresses)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(addresses, values, max_size=40))
def test_memory_encoding_round_trips(cells: dict[Relocatable, int | Relocatable]) -> None:
    from madara_orchestrator.starknet.pie import _parse_memory

    memory = PieMemory(cells)
    encoded = encode_memory(memory)
    assert len(encoded) == 40 * len(cells)
    decoded = _parse_memory(encoded)
    assert decoded == memory
    assert list(decoded) == list(memory)  # file order is kept


# -- damaged files ---------------------------------------------------------------------------------


def test_bytes_that_are_not_a_zip_are_refused() -> None:
    with pytest.raises(PieError, match="not a zip archive"):
        read_pie(b"definitely not a zip")


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a zip"):
        read_pie(b"")


@pytest.mark.parametrize("missing", MEMBERS)
def test_a_missing_member_is_named(fibonacci_zip: bytes, missing: str) -> None:
    files = members(fibonacci_zip)
    del files[missing]
    with pytest.raises(PieError, match=missing):
        read_pie(rezip(files))


def test_truncated_memory_is_refused(fibonacci_zip: bytes) -> None:
    files = members(fibonacci_zip)
    files["memory.bin"] = files["memory.bin"][:-7]
    with pytest.raises(PieError, match=r"memory.bin: truncated"):
        read_pie(rezip(files))


def test_an_absolute_memory_address_is_refused(fibonacci_zip: bytes) -> None:
    files = members(fibonacci_zip)
    files["memory.bin"] = (5).to_bytes(8, "little") + (1).to_bytes(32, "little") + files["memory.bin"]
    with pytest.raises(PieError, match="absolute address"):
        read_pie(rezip(files))


def test_an_address_written_twice_with_different_values_is_refused(fibonacci_zip: bytes) -> None:
    files = members(fibonacci_zip)
    first = files["memory.bin"][:40]
    changed = first[:8] + ((int.from_bytes(first[8:], "little") + 1) % 2**250).to_bytes(32, "little")
    files["memory.bin"] += changed
    with pytest.raises(PieError, match="written twice"):
        read_pie(rezip(files))


@pytest.mark.parametrize(
    ("member", "content", "message"),
    [
        ("metadata.json", b"{not json", "metadata.json: not valid JSON"),
        ("metadata.json", b"[1, 2]", "metadata.json: expected a JSON object"),
        ("metadata.json", b'{"program": {}}', "metadata.json: missing"),
        ("additional_data.json", b"\xff\xfe", "additional_data.json: not valid JSON"),
        ("execution_resources.json", b'{"n_memory_holes": 0}', "missing n_steps"),
        ("execution_resources.json", b'{"n_steps": "many"}', "n_steps: expected an integer"),
        ("version.json", b'{"cairo_pie": 1}', "version.json"),
    ],
)
def test_bad_json_members_are_named(fibonacci_zip: bytes, member: str, content: bytes, message: str) -> None:
    files = members(fibonacci_zip)
    files[member] = content
    with pytest.raises(PieError, match=message):
        read_pie(rezip(files))


def test_program_words_outside_the_field_are_refused(fibonacci_zip: bytes) -> None:
    files = members(fibonacci_zip)
    metadata = json.loads(files["metadata.json"])
    metadata["program"]["data"][3] = metadata["program"]["prime"]
    files["metadata.json"] = json.dumps(metadata).encode()
    with pytest.raises(PieError, match=r"program.data\[3\] is not a field element"):
        read_pie(rezip(files))


def test_hex_string_felts_written_by_cairo_lang_are_accepted(fibonacci_zip: bytes) -> None:
    files = members(fibonacci_zip)
    metadata = json.loads(files["metadata.json"])
    metadata["program"]["data"] = [hex(x) for x in metadata["program"]["data"]]
    metadata["program"]["prime"] = hex(metadata["program"]["prime"])
    files["metadata.json"] = json.dumps(metadata).encode()
    assert read_pie(rezip(files)).program == read_pie(fibonacci_zip).program


def test_a_corrupted_archive_body_is_an_input_error_not_a_crash(sepolia_zip: bytes) -> None:
    data = bytearray(sepolia_zip)
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    with pytest.raises(PieError):
        read_pie(bytes(data))


def test_an_output_cell_holding_a_pointer_is_refused() -> None:
    from tests.unit.pie.conftest import build_pie

    pie = read_pie(build_pie([1, 2, 3]))
    cells = dict(pie.memory)
    cells[Relocatable(2, 1)] = Relocatable(1, 0)
    broken = type(pie)(
        metadata=pie.metadata,
        memory=PieMemory(cells),
        additional_data=pie.additional_data,
        execution_resources=pie.execution_resources,
    )
    with pytest.raises(PieError, match="holds a pointer"):
        read_pie(write_pie(broken)).output_segment()
