"""Stone proofs: the program output a proof attests is the tail of its main page (SPEC §8.4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from madara_orchestrator.starknet.stone_proof import (
    InvalidProof,
    parse_proof,
    program_output_of_proof,
    stone_proof_json,
    unwrap_proof,
    wrap_proof,
)

OUTPUT = [0x10, 0x20, 2**250 + 3, 0]


def proof_dict(output: list[int] = OUTPUT) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stone_proof_json(output))
    return data


def test_the_output_of_a_built_proof_is_read_back() -> None:
    assert program_output_of_proof(stone_proof_json(OUTPUT)) == OUTPUT
    assert program_output_of_proof(stone_proof_json(OUTPUT).encode()) == OUTPUT
    assert program_output_of_proof(stone_proof_json([])) == []


def test_extra_main_page_cells_and_other_pages_do_not_change_the_output() -> None:
    proof = proof_dict()
    memory = proof["public_input"]["public_memory"]
    # More non-output cells on the main page (before the output), and a cell of page 1 after the output.
    extra = [{"address": 100 + i, "value": hex(7 + i), "page": 0} for i in range(3)]
    proof["public_input"]["public_memory"] = extra + memory + [{"address": 500, "value": "0x99", "page": 1}]
    assert program_output_of_proof(proof) == OUTPUT
    assert program_output_of_proof(json.dumps(proof)) == OUTPUT


def test_a_cell_without_a_page_is_on_the_main_page() -> None:
    proof = proof_dict([5, 6])
    for cell in proof["public_input"]["public_memory"]:
        del cell["page"]
    assert program_output_of_proof(proof) == [5, 6]


def test_memory_segments_as_a_list_take_the_output_at_index_2() -> None:
    proof = proof_dict()
    segments = proof["public_input"]["memory_segments"]
    proof["public_input"]["memory_segments"] = [
        segments["program"],
        segments["execution"],
        segments["output"],
        segments["pedersen"],
    ]
    assert program_output_of_proof(proof) == OUTPUT
    # Decimal strings and hex strings are both numbers.
    proof["public_input"]["memory_segments"][2] = {
        "begin_addr": str(segments["output"]["begin_addr"]),
        "stop_ptr": hex(segments["output"]["stop_ptr"]),
    }
    assert program_output_of_proof(proof) == OUTPUT


def _without_output(proof: dict[str, Any]) -> dict[str, Any]:
    proof["public_input"]["memory_segments"] = [{"begin_addr": 1, "stop_ptr": 4}, {"begin_addr": 4, "stop_ptr": 6}]
    return proof


def _reversed_output(proof: dict[str, Any]) -> dict[str, Any]:
    output = proof["public_input"]["memory_segments"]["output"]
    output["begin_addr"], output["stop_ptr"] = output["stop_ptr"], output["begin_addr"]
    return proof


def _too_long_output(proof: dict[str, Any]) -> dict[str, Any]:
    proof["public_input"]["memory_segments"]["output"]["stop_ptr"] += 100
    return proof


def _bad_value(proof: dict[str, Any]) -> dict[str, Any]:
    proof["public_input"]["public_memory"][-1]["value"] = "0xnothex"
    return proof


def _no_memory(proof: dict[str, Any]) -> dict[str, Any]:
    del proof["public_input"]["public_memory"]
    return proof


def _no_segments(proof: dict[str, Any]) -> dict[str, Any]:
    del proof["public_input"]["memory_segments"]
    return proof


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (_without_output, "no output segment"),
        (_reversed_output, "before it begins"),
        (_too_long_output, "main page only"),
        (_bad_value, "not a number"),
        (_no_memory, "no public_memory"),
        (_no_segments, "no memory_segments"),
    ],
)
def test_a_public_input_without_a_readable_output_is_an_invalid_proof(broken: Any, message: str) -> None:
    with pytest.raises(InvalidProof, match=message):
        program_output_of_proof(broken(proof_dict()))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"public_input": {}}', "proof_parameters"),
        ('{"proof_parameters": {}, "public_input": []}', "public_input should be an object"),
    ],
)
def test_malformed_proofs_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidProof, match=message):
        parse_proof(text)


def test_wrapping_is_the_exact_text_and_unwraps_back() -> None:
    proof = stone_proof_json(OUTPUT)
    wrapped = wrap_proof(proof)
    assert wrapped == '{\n\t"proof": ' + proof + "\n}"
    assert unwrap_proof(wrapped) == json.loads(proof)
    with pytest.raises(InvalidProof):
        unwrap_proof(proof)
