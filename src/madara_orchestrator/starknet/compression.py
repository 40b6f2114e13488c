"""Stateless compression (SPEC §5.10, StarkWare's ``stateless_compression``), its decompression, and
stateful compression (address/key aliasing through contract 0x2, SPEC §5.7).

``compress`` gives the same felts as cairo-lang's ``compress``; ``decompress`` validates what it reads
and raises ``InvalidInput`` (never an assertion) on malformed data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput
from madara_orchestrator.starknet.felt import STARKNET_PRIME, parse_felt
from madara_orchestrator.starknet.rpc import RpcCall, RpcError, block_id
from madara_orchestrator.starknet.squash import BatchRpc
from madara_orchestrator.starknet.state_update import (
    ContractStorageDiff,
    DeployedContract,
    NonceUpdate,
    ReplacedClass,
    StateUpdate,
    StorageEntry,
    sort_state_diff,
)

COMPRESSION_VERSION = 0
MAX_N_BITS = 251
N_BITS_PER_BUCKET = (252, 125, 83, 62, 31, 15)
N_UNIQUE_VALUE_BUCKETS = len(N_BITS_PER_BUCKET)
TOTAL_N_BUCKETS = N_UNIQUE_VALUE_BUCKETS + 1
REPEATING_BUCKET = N_UNIQUE_VALUE_BUCKETS
HEADER_LEN = 1 + 1 + TOTAL_N_BUCKETS
HEADER_ELM_N_BITS = 20
HEADER_ELM_BOUND = 2**HEADER_ELM_N_BITS

ALIAS_CONTRACT_ADDRESS = 0x2
MIN_VALUE_FOR_ALIAS = 0x80


class MalformedCompressedData(InvalidInput):
    """Felts that are not the output of ``compress``."""


# --------------------------------------------------------------------------------------------------
# Packing


def n_elms_per_felt(elm_bound: int) -> int:
    if elm_bound <= 1:
        return MAX_N_BITS
    if elm_bound > 2**MAX_N_BITS:
        return 1
    return MAX_N_BITS // (elm_bound - 1).bit_length()


def pack_in_felt(elms: Sequence[int], elm_bound: int) -> int:
    """The first element in the least significant position: Σ e_i·bound^i."""
    acc = 0
    if elm_bound & (elm_bound - 1) == 0:
        shift = elm_bound.bit_length() - 1
        for e in reversed(elms):
            acc = (acc << shift) | e
    else:
        for e in reversed(elms):
            acc = acc * elm_bound + e
    return acc


def pack_in_felts(elms: Sequence[int], elm_bound: int) -> list[int]:
    per_felt = n_elms_per_felt(elm_bound)
    return [pack_in_felt(elms[i : i + per_felt], elm_bound) for i in range(0, len(elms), per_felt)]


def unpack_felt(packed: int, elm_bound: int, n_elms: int, where: str) -> list[int]:
    out = []
    if elm_bound > 1 and elm_bound & (elm_bound - 1) == 0:
        shift = elm_bound.bit_length() - 1
        mask = elm_bound - 1
        for _ in range(n_elms):
            out.append(packed & mask)
            packed >>= shift
    else:
        bound = max(elm_bound, 1)
        for _ in range(n_elms):
            packed, current = divmod(packed, bound)
            out.append(current)
    if packed != 0:
        raise MalformedCompressedData(f"{where}: packed felt has bits beyond its {n_elms} elements")
    return out


def _unpack_chunk(data: Sequence[int], pos: int, n_elms: int, elm_bound: int, where: str) -> tuple[list[int], int]:
    per_felt = n_elms_per_felt(elm_bound)
    n_felts = -(-n_elms // per_felt)
    if pos + n_felts > len(data):
        raise MalformedCompressedData(
            f"{where}: needs {n_felts} felts at position {pos} but the data ends at {len(data)}"
        )
    values: list[int] = []
    for k in range(n_felts):
        values += unpack_felt(data[pos + k], elm_bound, per_felt, where)
    if any(values[n_elms:]):
        raise MalformedCompressedData(f"{where}: non-zero padding after the last element")
    return values[:n_elms], pos + n_felts


# --------------------------------------------------------------------------------------------------
# Stateless compression


def _bucket_of(bit_length: int) -> int:
    """Index in N_BITS_PER_BUCKET of the smallest bucket holding ``bit_length`` bits."""
    if bit_length <= 15:
        return 5
    if bit_length <= 31:
        return 4
    if bit_length <= 62:
        return 3
    if bit_length <= 83:
        return 2
    if bit_length <= 125:
        return 1
    return 0


def compress(data: Sequence[int]) -> list[int]:
    """Stateless compression of felts (SPEC §5.10); same output as cairo-lang's ``compress``."""
    if len(data) >= HEADER_ELM_BOUND:
        raise InvalidInput(f"cannot compress {len(data)} felts: the limit is {HEADER_ELM_BOUND - 1}")
    buckets: list[dict[int, int]] = [{} for _ in range(N_UNIQUE_VALUE_BUCKETS)]
    repeating: list[tuple[int, int]] = []
    codes: list[int] = []
    prime = STARKNET_PRIME
    for position, value in enumerate(data):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= prime:
            raise InvalidInput(f"felt #{position} ({value!r:.80}) is not an element of the Starknet field")
        b = _bucket_of(value.bit_length())
        bucket = buckets[b]
        index = bucket.get(value)
        if index is None:
            bucket[value] = len(bucket)
            codes.append(b)
        else:
            repeating.append((b, index))
            codes.append(REPEATING_BUCKET)
    lengths = [len(b) for b in buckets]
    n_unique = sum(lengths)
    header = [COMPRESSION_VERSION, len(data), *lengths, len(repeating)]
    offsets = [sum(lengths[:i]) for i in range(N_UNIQUE_VALUE_BUCKETS)]
    out = [pack_in_felt(header, HEADER_ELM_BOUND)]
    for bucket, n_bits in zip(buckets, N_BITS_PER_BUCKET, strict=True):
        out += pack_in_felts(list(bucket), 2**n_bits)
    out += pack_in_felts([offsets[b] + i for b, i in repeating], n_unique)
    out += pack_in_felts(codes, TOTAL_N_BUCKETS)
    return out


def compressed_length(data: Sequence[int]) -> int:
    """``len(compress(data))`` without packing anything: it depends only on how many values fall in each
    bucket, how many repeat and how many there are (batching asks this for every block)."""
    if len(data) >= HEADER_ELM_BOUND:
        raise InvalidInput(f"cannot compress {len(data)} felts: the limit is {HEADER_ELM_BOUND - 1}")
    seen: list[set[int]] = [set() for _ in range(N_UNIQUE_VALUE_BUCKETS)]
    for value in data:
        seen[_bucket_of(value.bit_length())].add(value)
    lengths = [len(b) for b in seen]
    n_unique = sum(lengths)
    n_repeating = len(data) - n_unique

    def felts(n_elms: int, elm_bound: int) -> int:
        return -(-n_elms // n_elms_per_felt(elm_bound))

    return (
        1
        + sum(felts(n, 2**bits) for n, bits in zip(lengths, N_BITS_PER_BUCKET, strict=True))
        + felts(n_repeating, n_unique)
        + felts(len(data), TOTAL_N_BUCKETS)
    )


def decompress(compressed: Sequence[int]) -> list[int]:
    """The felts ``compress`` was given. Everything after the compressed data must be zero padding."""
    values, end = decompress_prefix(compressed, 0)
    if any(compressed[end:]):
        raise MalformedCompressedData(
            f"{len(compressed) - end} felts follow the compressed data (it ends at position {end})"
        )
    return values


def decompress_prefix(data: Sequence[int], start: int) -> tuple[list[int], int]:
    """Decompress the data that begins at ``start``; returns the values and the position after it."""
    header, pos = _unpack_chunk(data, start, HEADER_LEN, HEADER_ELM_BOUND, "compression header")
    version, data_len = header[0], header[1]
    if version != COMPRESSION_VERSION:
        raise MalformedCompressedData(f"unsupported compression version {version} (expected {COMPRESSION_VERSION})")
    lengths = header[2 : 2 + N_UNIQUE_VALUE_BUCKETS]
    n_repeating = header[2 + N_UNIQUE_VALUE_BUCKETS]
    if sum(lengths) + n_repeating != data_len:
        raise MalformedCompressedData(
            f"compression header: bucket sizes add up to {sum(lengths) + n_repeating}, data length is {data_len}"
        )
    unique: list[int] = []
    for length, n_bits in zip(lengths, N_BITS_PER_BUCKET, strict=True):
        chunk, pos = _unpack_chunk(data, pos, length, 2**n_bits, f"{n_bits}-bit bucket")
        unique += chunk
    n_unique = len(unique)
    pointers, pos = _unpack_chunk(data, pos, n_repeating, n_unique, "repeating-value pointers")
    for pointer in pointers:
        if pointer >= n_unique:
            raise MalformedCompressedData(f"repeating-value pointer {pointer} is beyond the {n_unique} unique values")
    codes, pos = _unpack_chunk(data, pos, data_len, TOTAL_N_BUCKETS, "bucket indices")
    all_lengths = [*lengths, n_repeating]
    counts = [0] * TOTAL_N_BUCKETS
    for code in codes:
        if code >= TOTAL_N_BUCKETS:
            raise MalformedCompressedData(f"bucket index {code} is not below {TOTAL_N_BUCKETS}")
        counts[code] += 1
    if counts != all_lengths:
        raise MalformedCompressedData(f"bucket indices count {counts} elements per bucket, header says {all_lengths}")
    all_values = unique + [unique[p] for p in pointers]
    next_index = [sum(all_lengths[:i]) for i in range(TOTAL_N_BUCKETS)]
    out = []
    for code in codes:
        out.append(all_values[next_index[code]])
        next_index[code] += 1
    return out, pos


# --------------------------------------------------------------------------------------------------
# Stateful compression (aliases)


async def compress_state_update_stateful(update: StateUpdate, *, reference_block: int, rpc: BatchRpc) -> StateUpdate:
    """Replace addresses and storage keys ≥ 0x80 by their aliases (SPEC §5.7).

    Aliases come from the update's own writes to contract 0x2, else from contract 0x2's storage at
    ``reference_block`` (one batched read); an unassigned alias reads as 0, as in the original.
    """
    diff = update.state_diff
    keys: set[int] = set()
    for storage in diff.storage_diffs:
        if storage.address >= MIN_VALUE_FOR_ALIAS:
            keys.add(storage.address)
            keys.update(entry.key for entry in storage.storage_entries)
    keys.update(d.address for d in diff.deployed_contracts)
    keys.update(n.contract_address for n in diff.nonces)
    keys.update(r.contract_address for r in diff.replaced_classes)

    own_aliases: dict[int, int] = {}
    for storage in diff.storage_diffs:
        if storage.address == ALIAS_CONTRACT_ADDRESS:
            for entry in storage.storage_entries:
                if entry.key >= MIN_VALUE_FOR_ALIAS:
                    own_aliases[entry.key] = entry.value

    aliases: dict[int, int] = {k: k for k in keys if k < MIN_VALUE_FOR_ALIAS}
    for key in keys:
        if key >= MIN_VALUE_FOR_ALIAS and key in own_aliases:
            aliases[key] = own_aliases[key]
    to_read = sorted(k for k in keys if k not in aliases)
    if to_read:
        calls = [
            RpcCall("starknet_getStorageAt", [hex(ALIAS_CONTRACT_ADDRESS), hex(k), block_id(reference_block)])
            for k in to_read
        ]
        results = await rpc.batch(calls)
        for key, result in zip(to_read, results, strict=True):
            if isinstance(result, RpcError):
                raise BackendUnavailable(
                    f"reading the alias of {hex(key)} (contract 0x2) at block {reference_block} failed: {result}"
                )
            aliases[key] = 0 if result is None else parse_felt(result, f"alias of {hex(key)}")

    def alias(value: int) -> int:
        return aliases.get(value, value)

    storage_diffs = tuple(
        s
        if s.address < MIN_VALUE_FOR_ALIAS
        else ContractStorageDiff(
            address=alias(s.address),
            storage_entries=tuple(StorageEntry(key=alias(e.key), value=e.value) for e in s.storage_entries),
        )
        for s in diff.storage_diffs
    )
    new_diff = replace(
        diff,
        storage_diffs=storage_diffs,
        deployed_contracts=tuple(
            DeployedContract(address=alias(d.address), class_hash=d.class_hash) for d in diff.deployed_contracts
        ),
        nonces=tuple(NonceUpdate(contract_address=alias(n.contract_address), nonce=n.nonce) for n in diff.nonces),
        replaced_classes=tuple(
            ReplacedClass(contract_address=alias(r.contract_address), class_hash=r.class_hash)
            for r in diff.replaced_classes
        ),
    )
    return replace(update, state_diff=sort_state_diff(new_diff))


async def compressed_state_update_length(
    update: StateUpdate, *, starknet_version: str, reference_block: int, rpc: BatchRpc
) -> int:
    """``len(compress_state_update(...))``, without building the compressed felts."""
    from madara_orchestrator.starknet.da import parse_starknet_version, state_update_to_felts

    version = parse_starknet_version(starknet_version)
    if version >= (0, 13, 4):
        update = await compress_state_update_stateful(update, reference_block=reference_block, rpc=rpc)
    felts = state_update_to_felts(update, starknet_version=starknet_version)
    return compressed_length(felts) if version >= (0, 13, 3) else len(felts)


async def compress_state_update(
    update: StateUpdate, *, starknet_version: str, reference_block: int, rpc: BatchRpc
) -> list[int]:
    """The aggregator-batch path (SPEC §5.6): aliasing from 0.13.4, batch encoding, stateless
    compression from 0.13.3. The length of the result is the batch's ``blob_len``."""
    from madara_orchestrator.starknet.da import parse_starknet_version, state_update_to_felts

    version = parse_starknet_version(starknet_version)
    if version >= (0, 13, 4):
        update = await compress_state_update_stateful(update, reference_block=reference_block, rpc=rpc)
    felts = state_update_to_felts(update, starknet_version=starknet_version)
    if version >= (0, 13, 3):
        felts = compress(felts)
    return felts
