"""Reading JSON-RPC parameters as the node does: felts, lists of felts, fields; an invalid one is error -32602."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from madara_orchestrator.devnet.layout_bridge import FELT_PRIME
from madara_orchestrator.devnet.starknet_l2.model import RpcError


def invalid_params(detail: str) -> RpcError:
    return RpcError(-32602, "Invalid params", detail)


def hexes(values: Sequence[int]) -> list[str]:
    return [hex(v) for v in values]


def felt(value: Any, what: str, *, bound: int = FELT_PRIME) -> int:
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            number = int(value, 16)
        except ValueError:
            number = -1
        if 0 <= number < bound:
            return number
    raise invalid_params(f"{what}: expected a 0x-prefixed hex number below {bound:#x}, got {value!r}")


def felts(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise invalid_params(f"{what}: expected a list of felts, got {value!r}")
    return tuple(felt(v, f"{what}[{i}]") for i, v in enumerate(value))


def field(obj: dict[str, Any], name: str, what: str) -> Any:
    if name not in obj:
        raise invalid_params(f"{what}: missing field {name!r}")
    return obj[name]
