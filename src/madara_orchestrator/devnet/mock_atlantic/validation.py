"""What the mock checks of a bucket as Atlantic's aggregator would: its request, and the children's OS config hash."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.os_config import os_config_hash

AGGREGATOR_VERSIONS = ("snos_aggregator_0.13.2", "snos_aggregator_0.13.3", "snos_aggregator_0.14.1")
AGGREGATOR_PARAMS = {"use_kzg_da", "full_output", "chain_id_hex", "fee_token_address", "public_keys"}


def _is_hex_felt(value: Any) -> bool:
    if not isinstance(value, str) or value[:2].lower() != "0x" or not 2 < len(value) <= 66:
        return False
    try:
        return int(value, 16) < STARKNET_PRIME
    except ValueError:
        return False


def bucket_request_problem(body: Any) -> str | None:
    """Why a ``POST buckets`` body is refused (HTTP 400), else None: a known ``aggregatorVersion``, a boolean
    ``mockProof``, and ``aggregatorParams`` with boolean ``use_kzg_da``/``full_output``, and optionally
    ``chain_id_hex``, ``fee_token_address`` (hex felts) and ``public_keys`` (a non-empty list of hex felts),
    nothing else (the aggregator's input, ``AggregatorInput`` of StarkWare's sequencer)."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("aggregatorVersion") not in AGGREGATOR_VERSIONS:
        return f"aggregatorVersion must be one of {', '.join(AGGREGATOR_VERSIONS)}"
    if not isinstance(body.get("mockProof", False), bool):
        return "mockProof must be a boolean"
    params = body.get("aggregatorParams")
    if not isinstance(params, dict):
        return "aggregatorParams must be an object"
    unknown = sorted(set(params) - AGGREGATOR_PARAMS)
    if unknown:
        return f"aggregatorParams: unknown field(s) {', '.join(unknown)}"
    for name in ("use_kzg_da", "full_output"):
        if not isinstance(params.get(name), bool):
            return f"aggregatorParams.{name} must be a boolean"
    for name in ("chain_id_hex", "fee_token_address"):
        if name in params and not _is_hex_felt(params[name]):
            return f"aggregatorParams.{name} must be a hex felt (0x...), got {str(params[name])[:80]!r}"
    keys = params.get("public_keys")
    if "public_keys" in params and (not isinstance(keys, list) or not keys or not all(map(_is_hex_felt, keys))):
        return "aggregatorParams.public_keys must be a non-empty list of hex felts (0x...)"
    return None


def config_hash_problem(params: Any, outputs: Sequence[Sequence[int]]) -> str | None:
    """What the 0.14.1 aggregator asserts before combining (``check_public_keys``): the OS config hash of its
    input (chain id, fee token, DA public keys) is the children's ``starknet_os_config_hash``. None when it is."""
    params = params if isinstance(params, dict) else {}
    if "chain_id_hex" not in params or "fee_token_address" not in params:
        return "aggregation failed: the bucket's aggregatorParams lack chain_id_hex or fee_token_address"
    keys = [int(k, 16) for k in params.get("public_keys") or []]
    expected = os_config_hash(int(params["chain_id_hex"], 16), int(params["fee_token_address"], 16), keys)
    for index, output in enumerate(outputs, start=1):
        if output[7] != expected:
            return (
                f"aggregation failed: child {index} has OS config hash {output[7]:#x}, but the bucket's chain id, "
                f"fee token and {len(keys)} DA public key(s) give {expected:#x}"
            )
    return None
