"""Stone proofs (the prover's JSON) and the program output they attest (SPEC §7.9, §8.4).

A Stone proof is a JSON object with ``proof_parameters``, ``public_input`` (``layout``, ``n_steps``,
``rc_min``/``rc_max``, ``memory_segments`` by name in the layout's order — program, execution, output,
builtins… — each ``{begin_addr, stop_ptr}``, and ``public_memory``: ``{address, value, page}`` cells),
``proof_hex`` and ``annotations``. The program output a proof attests is its output segment: its length
is ``stop_ptr - begin_addr`` and its values are the last that many cells of the main page (page 0).

Pure: no I/O. ``stone_proof_json`` builds a proof of this shape around a given output (the mock
Atlantic server's proofs; it proves nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from madara_orchestrator.domain.errors import InvalidInput

OUTPUT_SEGMENT_INDEX = 2
"""Where the output segment is in the public input's segment list (program, execution, output, …)."""


class InvalidProof(InvalidInput):
    """Not a Stone proof, or one whose public input does not hold an output segment."""


def parse_proof(proof: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The proof as a JSON object; ``InvalidProof`` unless it has ``proof_parameters`` and ``public_input``."""
    if isinstance(proof, Mapping):
        data: Any = dict(proof)
    else:
        try:
            data = json.loads(proof)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidProof(f"the proof is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidProof("the proof should be a JSON object")
    missing = [k for k in ("proof_parameters", "public_input") if k not in data]
    if missing:
        raise InvalidProof(f"the proof misses {', '.join(missing)}")
    if not isinstance(data["public_input"], dict):
        raise InvalidProof("the proof's public_input should be an object")
    return data


def _int(value: Any, what: str) -> int:
    try:
        if isinstance(value, str):
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    except ValueError:
        pass
    raise InvalidProof(f"{what} is not a number: {value!r}")


def _segments(public_input: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    segments = public_input.get("memory_segments")
    if isinstance(segments, Mapping):
        return [(str(k), v) for k, v in segments.items() if isinstance(v, Mapping)]
    if isinstance(segments, list):
        return [(str(i), v) for i, v in enumerate(segments) if isinstance(v, Mapping)]
    raise InvalidProof("the proof's public input has no memory_segments")


def program_output_of_proof(proof: str | bytes | Mapping[str, Any]) -> list[int]:
    """The program output a Stone proof attests (SPEC §8.4): the output segment's length from its bounds,
    the values from the end of the main page."""
    public_input = parse_proof(proof)["public_input"]
    segments = _segments(public_input)
    by_name = dict(segments)
    if "output" in by_name:
        output = by_name["output"]
    elif len(segments) > OUTPUT_SEGMENT_INDEX:
        output = segments[OUTPUT_SEGMENT_INDEX][1]
    else:
        raise InvalidProof(f"the proof's public input has {len(segments)} memory segments and no output segment")
    begin = _int(output.get("begin_addr"), "output begin_addr")
    stop = _int(output.get("stop_ptr"), "output stop_ptr")
    length = stop - begin
    if length < 0:
        raise InvalidProof(f"the output segment ends ({stop}) before it begins ({begin})")
    memory = public_input.get("public_memory")
    if not isinstance(memory, list):
        raise InvalidProof("the proof's public input has no public_memory")
    main_page = [c for c in memory if isinstance(c, Mapping) and _int(c.get("page", 0), "page") == 0]
    if length > len(main_page):
        raise InvalidProof(f"the output segment has {length} cells but the main page only {len(main_page)}")
    return [_int(c.get("value"), "public memory value") for c in main_page[len(main_page) - length :]]


def wrap_proof(proof_text: str) -> str:
    """The proof as an Atlantic L2 verification input: an object whose one key is ``proof`` (SPEC §7.9)."""
    return '{\n\t"proof": ' + proof_text + "\n}"


def unwrap_proof(text: str | bytes) -> dict[str, Any]:
    """The proof inside a ``wrap_proof`` document; ``InvalidProof`` when it is not one."""
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidProof(f"the L2 verification input is not JSON: {exc}") from exc
    if not isinstance(data, dict) or "proof" not in data:
        raise InvalidProof('the L2 verification input should be an object {"proof": <Stone proof>}')
    return parse_proof(data["proof"])


def stone_proof_json(
    output: Sequence[int],
    *,
    program: Sequence[int] = (0x40780017FFF7FFF, 1, 0x208B7FFF7FFF7FFE),
    layout: str = "recursive_with_poseidon",
    n_steps: int = 1 << 16,
    program_hash: str | None = None,
) -> str:
    """A proof of Stone's JSON shape whose public input attests ``output`` (no actual STARK in it).

    Memory: the program from address 1, the execution segment after it, then the output segment; the
    main page lists the program cells then the output cells, in address order, as Stone writes it."""
    program_begin = 1
    execution_begin = program_begin + len(program)
    execution_stop = execution_begin + 2
    output_begin = execution_stop
    output_stop = output_begin + len(output)
    cells = [{"address": program_begin + i, "value": hex(w), "page": 0} for i, w in enumerate(program)]
    cells += [{"address": output_begin + i, "value": hex(w), "page": 0} for i, w in enumerate(output)]
    digest = hashlib.sha256(json.dumps([list(program), [hex(w) for w in output], layout]).encode()).hexdigest()
    proof: dict[str, Any] = {
        "proof_parameters": {
            "stark": {
                "fri": {
                    "fri_step_list": [0, 4, 4, 3],
                    "last_layer_degree_bound": 128,
                    "n_queries": 16,
                    "proof_of_work_bits": 30,
                },
                "log_n_cosets": 3,
            },
            "n_verifier_friendly_commitment_layers": 1000,
            "channel_hash": "poseidon3",
            "commitment_hash": "keccak256_masked160_lsb",
            "pow_hash": "keccak256",
            "statement": {"page_hash": "pedersen"},
        },
        "public_input": {
            "layout": layout,
            "rc_min": 0,
            "rc_max": 65535,
            "n_steps": n_steps,
            "memory_segments": {
                "program": {"begin_addr": program_begin, "stop_ptr": execution_begin},
                "execution": {"begin_addr": execution_begin, "stop_ptr": execution_stop},
                "output": {"begin_addr": output_begin, "stop_ptr": output_stop},
                "pedersen": {"begin_addr": output_stop, "stop_ptr": output_stop},
                "range_check": {"begin_addr": output_stop, "stop_ptr": output_stop},
            },
            "public_memory": cells,
            "dynamic_params": None,
        },
        "proof_hex": "0x" + digest,
        "annotations": [],
    }
    if program_hash is not None:
        proof["public_input"]["program_hash"] = program_hash
    return json.dumps(proof)
