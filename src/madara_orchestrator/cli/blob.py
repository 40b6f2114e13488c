"""`orchestrator blob`: state updates to EIP-4844 blobs and back, and the stateless compression.

    encode STATE_UPDATE.json --starknet-version V [--nonces FILE | --rpc URL] [--format hex|raw] [--out DIR]
    decode BLOB...            (hex text or raw 131072-byte files)
    compress [FILE]           (a JSON list of felts; stdin when FILE is missing or -)
    decompress [FILE]

Everything is computed before anything is written, so bad input gives one error and no output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from madara_orchestrator.domain.chain import BYTES_PER_BLOB, MAX_BLOBS_PER_TXN
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.interfaces import NonceSource
from madara_orchestrator.starknet.blob import (
    blob_from_hex,
    blob_to_felts,
    felts_to_blobs,
    strip_trailing_zeros,
)
from madara_orchestrator.starknet.compression import compress, decompress, decompress_prefix
from madara_orchestrator.starknet.da import (
    DaStateDiff,
    NoNonces,
    StaticNonces,
    encode_state_update_for_da,
    parse_da_state_diff,
    parse_starknet_version,
    uses_legacy_da_word,
)
from madara_orchestrator.starknet.felt import felt_hex, parse_felt, parse_hex_felt
from madara_orchestrator.starknet.state_update import parse_state_update_json


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "blob",
        help="encode state updates into EIP-4844 blobs, decode blobs, compress felts",
        description="Starknet data availability: state diff → felts → blobs (SPEC §5.10, §6).",
    )
    commands = parser.add_subparsers(dest="blob_command", metavar="ACTION")
    commands.required = True

    encode = commands.add_parser("encode", help="encode a state update with the DA-job encoder")
    encode.add_argument("state_update", metavar="STATE_UPDATE.json", help="a starknet_getStateUpdate result")
    encode.add_argument("--starknet-version", required=True, help="Starknet version of the block, e.g. 0.13.2")
    source = encode.add_mutually_exclusive_group()
    source.add_argument("--nonces", metavar="FILE", help="recorded nonces: [{address, nonce (hex)}...]")
    source.add_argument("--rpc", metavar="URL", help="Starknet JSON-RPC URL for starknet_getNonce")
    encode.add_argument("--block", type=int, help="block number for nonce lookups (default: the file name)")
    encode.add_argument("--format", choices=("hex", "raw"), default="hex", help="how to print the blobs")
    encode.add_argument("--out", metavar="DIR", help="write DIR/<i>.blob (raw) and print commitments instead")
    encode.add_argument(
        "--max-blobs", type=int, default=MAX_BLOBS_PER_TXN, help=f"refuse to need more (default {MAX_BLOBS_PER_TXN})"
    )
    encode.set_defaults(handler=run_encode)

    decode = commands.add_parser("decode", help="print the felts of blobs, and the state diff they hold")
    decode.add_argument("blobs", nargs="+", metavar="BLOB", help="blob files, hex text or raw bytes, in order")
    decode.add_argument("--starknet-version", help="how to read the DA words (default: try every encoding)")
    decode.set_defaults(handler=run_decode)

    for name, handler, what in (
        ("compress", run_compress, "stateless compression of a JSON list of felts"),
        ("decompress", run_decompress, "undo the stateless compression"),
    ):
        sub = commands.add_parser(name, help=what)
        sub.add_argument("file", nargs="?", default="-", metavar="FILE", help="JSON list of felts (default stdin)")
        sub.set_defaults(handler=handler)


# --------------------------------------------------------------------------------------------------
# encode


def run_encode(args: argparse.Namespace) -> int:
    path = Path(args.state_update)
    version = args.starknet_version
    parse_starknet_version(version)
    if args.max_blobs < 1:
        raise InvalidInput(f"--max-blobs must be at least 1, got {args.max_blobs}")
    update = parse_state_update_json(_read_bytes(path), where=str(path))
    block_number = args.block if args.block is not None else _block_from_name(path)
    if args.rpc and block_number is None:
        raise InvalidInput(f"cannot tell the block number of {path}: pass --block N for the nonce lookups")
    felts = asyncio.run(_encode(update, block_number or 0, version, args.nonces, args.rpc))
    blobs = felts_to_blobs(felts, max_blobs=args.max_blobs)

    if args.out:
        from madara_orchestrator.starknet.kzg import blob_to_commitment, versioned_hash

        lines = []
        for i, blob in enumerate(blobs, start=1):
            commitment = blob_to_commitment(blob)
            lines.append(
                f"{i}.blob commitment=0x{commitment.hex()} versioned_hash=0x{versioned_hash(commitment).hex()}"
            )
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            for i, blob in enumerate(blobs, start=1):
                (out / f"{i}.blob").write_bytes(blob)
        except OSError as exc:
            raise InvalidInput(f"cannot write blobs to {out}: {exc}") from None
        print("\n".join(lines))
    elif args.format == "raw":
        stream = getattr(sys.stdout, "buffer", None)
        if stream is None:
            raise InvalidInput("standard output does not take raw bytes here; use --out DIR")
        stream.write(b"".join(blobs))
        stream.flush()
    else:
        for blob in blobs:
            print(blob.hex())
    return 0


async def _encode(update: Any, block_number: int, version: str, nonces: str | None, rpc_url: str | None) -> list[int]:
    source: NonceSource
    if rpc_url:
        from madara_orchestrator.starknet.rpc import StarknetRpcClient

        client = StarknetRpcClient(rpc_url)
        try:
            return await encode_state_update_for_da(
                update, block_number=block_number, nonce_source=client, starknet_version=version
            )
        finally:
            await client.aclose()
    source = StaticNonces(read_nonces_file(Path(nonces))) if nonces else NoNonces()
    return await encode_state_update_for_da(
        update, block_number=block_number, nonce_source=source, starknet_version=version
    )


def read_nonces_file(path: Path) -> dict[int, int]:
    """The vectors' format: ``[{"address": decimal or 0x-hex, "nonce": hex without 0x}, ...]``."""
    value = _read_json(path)
    if not isinstance(value, list):
        raise InvalidInput(f"{path}: expected a JSON list of {{address, nonce}} objects")
    out = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "address" not in item or "nonce" not in item:
            raise InvalidInput(f"{path}[{i}]: expected an object with 'address' and 'nonce'")
        out[parse_felt(item["address"], f"{path}[{i}].address")] = parse_hex_felt(item["nonce"], f"{path}[{i}].nonce")
    return out


def _block_from_name(path: Path) -> int | None:
    return int(path.stem) if path.stem.isdecimal() else None


# --------------------------------------------------------------------------------------------------
# decode


def run_decode(args: argparse.Namespace) -> int:
    if args.starknet_version:
        parse_starknet_version(args.starknet_version)
    padded: list[int] = []
    for name in args.blobs:
        padded += blob_to_felts(read_blob_file(Path(name)))
    felts = strip_trailing_zeros(padded)
    decoded = decode_state_diff(padded, args.starknet_version)
    result: dict[str, Any] = {
        "n_blobs": len(args.blobs),
        "felts": [felt_hex(f) for f in felts],
        "encoding": decoded[0] if decoded else None,
        "state_diff": da_state_diff_to_json(decoded[1]) if decoded else None,
    }
    print(json.dumps(result, indent=2))
    return 0


def read_blob_file(path: Path) -> bytes:
    """A raw 131072-byte blob, or its hex text (262144 hex characters, optional 0x)."""
    data = _read_bytes(path)
    if len(data) == BYTES_PER_BLOB:
        return data
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path}: neither a raw blob ({BYTES_PER_BLOB} bytes) nor hex text ({len(data)} bytes)"
        ) from None
    try:
        return blob_from_hex(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def decode_state_diff(padded: Sequence[int], version: str | None) -> tuple[str, DaStateDiff] | None:
    """The first encoding under which the felts are exactly one state diff followed by zeros."""
    if version is None:
        candidates = ["compressed", "v0.13.3", "legacy"]
    elif uses_legacy_da_word(version):
        candidates = ["legacy"]
    else:
        candidates = ["compressed", "v0.13.3"]
    for encoding in candidates:
        try:
            if encoding == "compressed":
                values, end = decompress_prefix(padded, 0)
                if any(padded[end:]):
                    continue
                diff = parse_da_state_diff(values, legacy=False)
                if diff.n_felts != len(values):
                    continue
            else:
                diff = parse_da_state_diff(padded, legacy=encoding == "legacy")
                if any(padded[diff.n_felts :]) or diff.n_felts < len(strip_trailing_zeros(padded)):
                    continue
        except InvalidInput:
            continue
        return encoding, diff
    return None


def da_state_diff_to_json(diff: DaStateDiff) -> dict[str, Any]:
    return {
        "contracts": [
            {
                "address": felt_hex(c.address),
                "nonce": c.nonce,
                "class_hash": None if c.class_hash is None else felt_hex(c.class_hash),
                "storage": [{"key": felt_hex(k), "value": felt_hex(v)} for k, v in c.storage],
            }
            for c in diff.contracts
        ],
        "declared_classes": [{"class_hash": felt_hex(h), "compiled_class_hash": felt_hex(c)} for h, c in diff.classes],
    }


# --------------------------------------------------------------------------------------------------
# compress / decompress


def run_compress(args: argparse.Namespace) -> int:
    felts = _read_felt_list(args.file)
    print(json.dumps([felt_hex(f) for f in compress(felts)]))
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    felts = _read_felt_list(args.file)
    print(json.dumps([felt_hex(f) for f in decompress(felts)]))
    return 0


def _read_felt_list(name: str) -> list[int]:
    where = "stdin" if name == "-" else name
    if name == "-":
        text = sys.stdin.read()
        value = _loads(text, where)
    else:
        value = _read_json(Path(name))
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: expected a JSON list of felts")
    return [parse_felt(v, f"{where}[{i}]") for i, v in enumerate(value)]


# --------------------------------------------------------------------------------------------------
# Files


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_json(path: Path) -> Any:
    return _loads(_read_bytes(path), str(path))


def _loads(text: str | bytes, where: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{where}: malformed JSON: {exc}") from None


__all__ = ["register"]
