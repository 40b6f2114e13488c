"""File formats of the stored artifacts (SPEC §9, §10): program output as bincode, felts as JSON."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

from madara_orchestrator.domain.errors import InvalidInput


def encode_program_output(words: Sequence[int]) -> bytes:
    """bincode v1: u64 little-endian count, then each word as 32 bytes big-endian."""
    out = bytearray(struct.pack("<Q", len(words)))
    for word in words:
        if not 0 <= word < 1 << 256:
            raise InvalidInput(f"program output word out of range: {word}")
        out += word.to_bytes(32, "big")
    return bytes(out)


def decode_program_output(data: bytes) -> list[int]:
    if len(data) < 8:
        raise InvalidInput("program output file is shorter than its 8-byte length prefix")
    (count,) = struct.unpack_from("<Q", data)
    if len(data) != 8 + 32 * count:
        raise InvalidInput(f"program output file holds {len(data) - 8} bytes for {count} words of 32 bytes")
    return [int.from_bytes(data[8 + 32 * i : 40 + 32 * i], "big") for i in range(count)]


def encode_felts_json(felts: Sequence[int]) -> bytes:
    return json.dumps([hex(f) for f in felts]).encode()


def decode_felts_json(data: bytes) -> list[int]:
    try:
        values = json.loads(data)
        return [int(v, 16) if isinstance(v, str) else int(v) for v in values]
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"not a JSON list of felts: {exc}") from exc
