"""Proof production: a PIE's fact, the Stone-shaped proof Atlantic serves, and an L2 verification's bridge proof."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from madara_orchestrator.devnet.layout_bridge import (
    BOOTLOADER_PROGRAM_HASH,
    BRIDGE_VERIFIER_CONFIG,
    bootloaded_output,
    bridge_output,
    l2_fact,
    output_hash,
    security_bits,
)
from madara_orchestrator.devnet.mock_atlantic.aggregation import (
    child_output,
    devnet_stand_in_output,
    devnet_stand_in_program_hash,
)
from madara_orchestrator.devnet.mock_atlantic.state import BRIDGE_LAYOUT, MockAtlanticState, Query
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.facts import (
    fact_info,
)
from madara_orchestrator.starknet.pie import (
    read_pie,
)
from madara_orchestrator.starknet.stone_proof import (
    InvalidProof,
    program_output_of_proof,
    stone_proof_json,
    unwrap_proof,
)

log = logging.getLogger(__name__)


def fill_fact(query: Query, compute_facts: bool) -> str | None:
    """Read the PIE and record its program hash and fact; the reason when the PIE is unusable.

    The devnet SNOS runner's stand-in (no Cairo program to hash) is accepted without a fact."""
    assert query.pie is not None
    try:
        pie = read_pie(query.pie)
        if compute_facts:
            info = fact_info(pie)
            query.data["programHash"] = hex(info.program_hash)
            query.data["integrityFactHash"] = info.fact
            query.data["sharpFactHash"] = info.fact
    except InvalidInput as exc:
        if devnet_stand_in_output(query.pie) is not None:
            program_hash = devnet_stand_in_program_hash(query.pie)
            if program_hash is not None:
                query.data["programHash"] = hex(program_hash)
            return None
        return f"INVALID_CAIRO_PIE: {exc}"
    return None


async def verify_on_l2(state: MockAtlanticState, query: Query) -> str | None:
    """Check the wrapped proof, build the layout bridge's proof and register its fact; the failure reason."""
    assert query.proof_input is not None
    program_hash = query.data.get("programHash")
    if not program_hash:
        return "programHash (the Cairo verifier program hash) is required for PROOF_VERIFICATION_ON_L2"
    try:
        verifier_program_hash = int(program_hash, 16)
    except ValueError:
        return f"programHash {program_hash!r:.80} is not a hex felt"
    try:
        verified = unwrap_proof(query.proof_input)
        snos_output = program_output_of_proof(verified)
    except InvalidProof as exc:
        return f"INVALID_PROOF: {exc}"
    bridge = bridge_output(
        snos_output,
        layout_bridge_program_hash=verifier_program_hash,
        verified_program_hash=_program_hash_of_proof(verified),
    )
    query.proof = stone_proof_json(bridge, layout=BRIDGE_LAYOUT, program_hash=hex(BOOTLOADER_PROGRAM_HASH))
    fact = l2_fact(BOOTLOADER_PROGRAM_HASH, bridge)
    query.data.update(integrityFactHash=hex(fact), chain="L2")
    if state.l2_fact_registry is not None:
        try:
            tx_hash = await state.l2_fact_registry.register(
                fact,
                security_bits=security_bits(json.loads(query.proof)["proof_parameters"]),
                verifier_config=BRIDGE_VERIFIER_CONFIG,
            )
        except Exception as exc:
            log.warning("mock Atlantic: registering L2 fact %s failed: %s", hex(fact), exc)
            return f"fact registration failed: {exc}"
        query.data["transactionId"] = tx_hash
        log.info("mock Atlantic: registered L2 fact %s in %s", hex(fact), tx_hash)
    return None


def proof_of_query(query: Query) -> str:
    """A Stone-shaped proof of the bootloader running the query's PIE: it attests the bootloaded output
    (the PIE's output behind the bootloader's task header; no output when there is no readable PIE)."""
    data = query.data
    output = child_output(query.pie)
    bootloaded = [] if output is None else bootloaded_output(int(data.get("programHash") or "0x0", 16), output)
    return stone_proof_json(
        bootloaded, layout=data.get("layout") or "dynamic", program_hash=hex(BOOTLOADER_PROGRAM_HASH)
    )


def _program_hash_of_proof(proof: dict[str, Any]) -> int:
    """The hash of the program a Stone proof proves, as the Cairo verifier outputs it: the one its public
    input declares (the mock's proofs do), else a Poseidon digest of its program segment's cells (the mock
    does not compute a Cairo program hash from them)."""
    public_input = proof["public_input"]
    declared = public_input.get("program_hash")
    with contextlib.suppress(ValueError, TypeError):
        return int(declared, 16)
    try:
        program = public_input["memory_segments"]["program"]
        begin, stop = int(program["begin_addr"]), int(program["stop_ptr"])
        cells = [c for c in public_input["public_memory"] if begin <= int(c["address"]) < stop]
        return output_hash([int(str(c["value"]), 0) for c in cells])
    except (KeyError, TypeError, ValueError):
        return output_hash([])
