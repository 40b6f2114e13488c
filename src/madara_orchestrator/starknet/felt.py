"""Field constants and strict felt parsing shared by the Starknet encoders.

Parsing is strict on purpose: a value outside the Starknet field, a negative number or a non-numeric
string is a caller error (``FeltOutOfRange`` / ``InvalidInput``) that names where the value was found.
"""

from __future__ import annotations

from typing import Any

from madara_orchestrator.domain.errors import InvalidInput

STARKNET_PRIME = 2**251 + 17 * 2**192 + 1
"""The Starknet (Stark-252) field modulus."""

BLS_MODULUS = 52435875175126190479447740508185965837690552500527637822603658699938581184513
"""The BLS12-381 scalar field modulus: blob evaluations and KZG points live in this field."""

MAX_FELT = STARKNET_PRIME - 1


class FeltOutOfRange(InvalidInput):
    """A number that is not an element of the field it must belong to."""


def parse_felt(value: Any, where: str, *, modulus: int = STARKNET_PRIME) -> int:
    """A felt from ``0x`` hex, a decimal string or an int; ``where`` names it in the error message."""
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: expected a felt, got a boolean {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text[:2].lower() == "0x":
                if len(text) == 2:
                    raise ValueError(text)
                number = int(text, 16)
            else:
                if not text or not (text.isdecimal() or (text[0] == "-" and text[1:].isdecimal())):
                    raise ValueError(text)
                number = int(text, 10)
        except ValueError:
            raise InvalidInput(f"{where}: {value!r} is not a number (expected 0x-hex or decimal)") from None
    else:
        raise InvalidInput(f"{where}: expected a felt (hex or decimal string), got {type(value).__name__}")
    check_felt(number, where, modulus=modulus)
    return number


def check_felt(number: int, where: str, *, modulus: int = STARKNET_PRIME) -> int:
    """``number`` itself when ``0 <= number < modulus``; else ``FeltOutOfRange``."""
    if number < 0 or number >= modulus:
        field = "Starknet field" if modulus == STARKNET_PRIME else f"field of modulus {modulus}"
        raise FeltOutOfRange(f"{where}: value {hex(number)} is outside the {field}")
    return number


def parse_hex_felt(value: Any, where: str, *, modulus: int = STARKNET_PRIME) -> int:
    """A felt from hex with or without ``0x`` (the vectors' nonces are bare hex)."""
    if isinstance(value, str) and not value.strip().lower().startswith("0x"):
        value = "0x" + value.strip()
    return parse_felt(value, where, modulus=modulus)


def felt_hex(value: int) -> str:
    """Canonical JSON-RPC felt text: ``0x`` + lowercase hex without leading zeros."""
    return hex(value)
