"""The text formats of setting values: hex addresses, felts, private keys, DA public keys."""

from __future__ import annotations

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.felt import STARKNET_PRIME


def is_hex_address(text: str, *, length: int | None = None) -> bool:
    body = text[2:] if text.startswith("0x") else None
    if not body or any(c not in "0123456789abcdefABCDEF" for c in body):
        return False
    return length is None or len(body) == length


def is_felt(text: str) -> bool:
    return is_hex_address(text) and int(text, 16) < STARKNET_PRIME


def private_key_body(value: str) -> str | None:
    """The 64 hex digits of a private key (``0x`` optional), lowercased; None when it is not one."""
    body = value[2:] if value[:2].lower() == "0x" else value
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body) or int(body, 16) == 0:
        return None
    return body.lower()


def parse_da_public_keys(text: str | None) -> tuple[int, ...]:
    """``0x1,0x2`` → felts, as the original's ``--da-public-keys`` (comma-separated, each trimmed, hex);
    ``InvalidInput`` naming the first bad key."""
    if text is None:
        return ()
    keys: list[int] = []
    for position, raw in enumerate(text.split(","), start=1):
        key = raw.strip()
        if not key:
            raise InvalidInput(f"--da-public-keys: key {position} is empty (comma-separated felts, 0x hex)")
        body = key[2:] if key[:2].lower() == "0x" else key
        if not body or len(body) > 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
            raise InvalidInput(f"--da-public-keys: key {position} {key[:70]!r} is not hex (e.g. 0x123...)")
        if int(body, 16) >= STARKNET_PRIME:
            raise InvalidInput(f"--da-public-keys: key {position} {key[:70]!r} is not below the Stark prime")
        keys.append(int(body, 16))
    return tuple(keys)
