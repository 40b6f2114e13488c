"""Stateless compression (SPEC §5.10, StarkWare's ``stateless_compression``), its decompression, and
stateful compression (address/key aliasing through contract 0x2, SPEC §5.7).

``compress`` gives the same felts as cairo-lang's ``compress``; ``decompress`` validates what it reads
and raises ``InvalidInput`` (never an assertion) on malformed data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput
from madara_orchestrator.starknet.felt import STARKNET_PRIME, parse_felt
from madara_orchestrator.starknet.rpc import RpcCall, RpcError, block_id
from madara_orchestrator.starknet.squash import BatchRpc, DiffChange, SquashedDiff
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
    if per_felt == 1:
        return list(elms)  # one element a felt is the element itself (the 252-bit bucket)
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


_BUCKET_OF_BIT_LENGTH = tuple(_bucket_of(n) for n in range(MAX_N_BITS + 2))
"""``_bucket_of`` of every bit length a felt can have (0 to 252)."""


def _check_felts(data: Sequence[int]) -> None:
    prime = STARKNET_PRIME
    if data and set(map(type, data)) == {int} and min(data) >= 0 and max(data) < prime:
        return  # the usual case, checked at C speed; else find the first culprit for the message
    for position, value in enumerate(data):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= prime:
            raise InvalidInput(f"felt #{position} ({value!r:.80}) is not an element of the Starknet field")


def compress(data: Sequence[int]) -> list[int]:
    """Stateless compression of felts (SPEC §5.10); same output as cairo-lang's ``compress``."""
    if len(data) >= HEADER_ELM_BOUND:
        raise InvalidInput(f"cannot compress {len(data)} felts: the limit is {HEADER_ELM_BOUND - 1}")
    _check_felts(data)
    buckets: list[dict[int, int]] = [{} for _ in range(N_UNIQUE_VALUE_BUCKETS)]
    repeating: list[tuple[int, int]] = []
    codes: list[int] = []
    bucket_of = _BUCKET_OF_BIT_LENGTH
    for value in data:
        b = bucket_of[value.bit_length()]
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
    return _compressed_length_of_counts([len(b) for b in seen], len(data))


def _compressed_length_of_counts(unique: Sequence[int], n_felts: int) -> int:
    """``compressed_length`` from what it depends on: the unique values per bucket and the number of
    felts (the repeats are the rest)."""
    if n_felts >= HEADER_ELM_BOUND:
        raise InvalidInput(f"cannot compress {n_felts} felts: the limit is {HEADER_ELM_BOUND - 1}")
    n_unique = sum(unique)

    def felts(n_elms: int, elm_bound: int) -> int:
        return -(-n_elms // n_elms_per_felt(elm_bound))

    return (
        1
        + sum(felts(n, 2**bits) for n, bits in zip(unique, N_BITS_PER_BUCKET, strict=True))
        + felts(n_felts - n_unique, n_unique)
        + felts(n_felts, TOTAL_N_BUCKETS)
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


# --------------------------------------------------------------------------------------------------
# The compressed length of a growing batch, block by block


@dataclass(slots=True, kw_only=True)
class LengthChange:
    """What one ``DiffChange`` does to a ``BatchLength`` (computing it changes nothing)."""

    length: int
    """``len(compress_state_update(...))`` of the diff with the change."""
    reference_block: int
    felts: dict[int, int]
    """Felt value → change of its number of occurrences."""
    unique: list[int]
    n_felts: int
    n_contracts: int
    n_classes: int
    aliases: dict[int, int]
    """Keys whose alias was (re)resolved → the alias."""
    unassigned: dict[int, bool]
    """Resolved keys → whether the chain has no alias for them yet (read as 0, not the batch's own)."""
    uses: dict[int, int]
    """Key → change of the number of felts that are its alias."""
    addresses: dict[int, int]
    """Aliased contract address → change of the number of contracts with it."""
    collisions: int


class BatchLength:
    """``len(compress_state_update(diff, ...))`` of a ``SquashedDiff`` kept up to date block by block:
    the cost of a block is the block's size, not the batch's.

    The compressed length depends only on the multiset of the felts ``state_update_to_felts`` gives
    for the aliased diff (``compressed_length``: the unique values per bucket, the repeats, the total),
    not on their order. While the aliased contract addresses are pairwise distinct, those felts are,
    per contract of the diff, its (aliased) address, its DA word, its class hash if it has one, a pair
    (aliased key, value) per storage entry; plus the number of contracts, the number of classes and a
    pair per declared or migrated class. So a block changes the felts of the entries and contracts it
    touches, and of the keys whose alias changes (all the felts that are that key's alias at once).

    Aliases are resolved as ``compress_state_update_stateful`` resolves them at the reference block:
    the diff's own writes to contract 0x2 first, then the chain. A non-zero alias read from the chain is
    kept (an alias never changes once assigned); a key without one (read as 0) is read again whenever
    the reference block moves. When two contracts have the same aliased address (only on a chain that
    does not give every address its own alias) the felts are not per contract any more: the length is
    then computed from the whole diff, as ``compressed_state_update_length`` does.
    """

    def __init__(self, *, starknet_version: str, rpc: BatchRpc) -> None:
        from madara_orchestrator.starknet.da import parse_starknet_version

        version = parse_starknet_version(starknet_version)
        self.starknet_version = starknet_version
        self.rpc = rpc
        self.aliasing = version >= (0, 13, 4)
        self.compressing = version >= (0, 13, 3)
        # The empty diff's felts: no contract, no class.
        self.counts: dict[int, int] = {0: 2}
        self.unique = [0] * N_UNIQUE_VALUE_BUCKETS
        self.unique[_bucket_of(0)] = 1
        self.n_felts = 2
        self.n_contracts = 0
        self.n_classes = 0
        self.alias: dict[int, int] = {}
        """Every key (≥ 0x80) whose alias is a felt of the diff → that alias."""
        self.uses: dict[int, int] = {}
        """Those keys → how many felts are their alias."""
        self.unassigned: set[int] = set()
        """Those keys that have no alias on the chain yet (read as 0) and none of the diff's own."""
        self.addresses: dict[int, int] = {}
        """Aliased contract address → contracts with it."""
        self.collisions = 0
        """Aliased addresses shared by two contracts or more."""
        self.reference_block: int | None = None
        self._assigned: dict[int, tuple[int, int]] = {}
        """Non-zero aliases read from the chain: key → (the block read at, the alias)."""

    def _key_alias(self, aliases: dict[int, int], address: int, key: int) -> int:
        if self.aliasing and address >= MIN_VALUE_FOR_ALIAS and key >= MIN_VALUE_FOR_ALIAS:
            return aliases[key] if key in aliases else self.alias[key]
        return key

    def _address_alias(self, aliases: dict[int, int], address: int) -> int:
        if self.aliasing and address >= MIN_VALUE_FOR_ALIAS:
            return aliases[address] if address in aliases else self.alias[address]
        return address

    async def _read_aliases(self, keys: Sequence[int], reference_block: int) -> dict[int, int]:
        """The chain's aliases of ``keys`` at the block, as ``compress_state_update_stateful`` reads them."""
        found: dict[int, int] = {}
        to_read = []
        for key in keys:
            seen = self._assigned.get(key)
            if seen is not None and seen[0] <= reference_block:
                found[key] = seen[1]
            else:
                to_read.append(key)
        if to_read:
            calls = [
                RpcCall("starknet_getStorageAt", [hex(ALIAS_CONTRACT_ADDRESS), hex(k), block_id(reference_block)])
                for k in to_read
            ]
            results = await self.rpc.batch(calls)
            for key, result in zip(to_read, results, strict=True):
                if isinstance(result, RpcError):
                    raise BackendUnavailable(
                        f"reading the alias of {hex(key)} (contract 0x2) at block {reference_block} failed: {result}"
                    )
                value = 0 if result is None else parse_felt(result, f"alias of {hex(key)}")
                found[key] = value
                if value != 0:
                    seen = self._assigned.get(key)
                    if seen is None or reference_block < seen[0]:
                        self._assigned[key] = (reference_block, value)
        return found

    async def propose(self, diff: SquashedDiff, change: DiffChange, *, reference_block: int) -> LengthChange:
        """The length of ``diff`` with ``change`` applied, aliases read at ``reference_block``; neither
        ``diff`` nor this object changes (``apply`` takes the result when the block joins the batch)."""
        from madara_orchestrator.starknet.da import da_word

        aliasing = self.aliasing
        storage_changes = change.storage
        touched = change.touched_contracts()

        # Which contracts are in the diff before and after, and how the uses of each key change.
        old_in: dict[int, bool] = {}
        new_in: dict[int, bool] = {}
        uses: dict[int, int] = {}
        for address in touched:
            before = diff.is_contract(address)
            entries = diff.storage.get(address)
            n_entries = len(entries) if entries else 0
            written = storage_changes.get(address)
            keyed = aliasing and address >= MIN_VALUE_FOR_ALIAS
            if written:
                for key, value in written.items():
                    had = entries is not None and key in entries
                    if had == (value is not None):
                        continue
                    n_entries += 1 if value is not None else -1
                    if keyed and key >= MIN_VALUE_FOR_ALIAS:
                        uses[key] = uses.get(key, 0) + (1 if value is not None else -1)
            after = (
                n_entries > 0
                or address in change.nonces
                or address in diff.nonces
                or _present(address, change.deployed, diff.deployed)
                or _present(address, change.replaced, diff.replaced)
            )
            old_in[address], new_in[address] = before, after
            if keyed and before != after:
                uses[address] = uses.get(address, 0) + (1 if after else -1)

        # The keys whose alias may differ from the one the felts have: new keys, keys whose own alias
        # (the diff's write to contract 0x2) changes, keys without an alias once the reference moves.
        aliases: dict[int, int] = {}
        unassigned: dict[int, bool] = {}
        if aliasing:
            old_uses = self.uses
            to_resolve = {k for k, d in uses.items() if d > 0 and k not in old_uses}
            own_written = storage_changes.get(ALIAS_CONTRACT_ADDRESS, {})
            to_resolve.update(k for k in own_written if k >= MIN_VALUE_FOR_ALIAS and k in old_uses)
            if reference_block != self.reference_block:
                to_resolve.update(self.unassigned)
            to_resolve = {k for k in to_resolve if old_uses.get(k, 0) + uses.get(k, 0) > 0}
            own = diff.storage.get(ALIAS_CONTRACT_ADDRESS, {})
            chain: list[int] = []
            for key in to_resolve:
                value = own_written[key] if key in own_written else own.get(key)
                if value is not None:
                    aliases[key] = value
                    unassigned[key] = False
                else:
                    chain.append(key)
            read = await self._read_aliases(sorted(chain), reference_block) if chain else {}
            for key, value in read.items():
                aliases[key] = value
                unassigned[key] = value == 0
            for key, value in list(aliases.items()):
                if self.alias.get(key) == value:
                    del aliases[key]

        felts: dict[int, int] = {}
        addresses: dict[int, int] = {}

        def count(value: int, n: int) -> None:
            felts[value] = felts.get(value, 0) + n

        # A key whose alias changed: every felt that is its old alias becomes the new one.
        for key, value in aliases.items():
            previous = self.alias.get(key)
            if previous is None:
                continue
            n = self.uses[key]
            count(previous, -n)
            count(value, n)
            if diff.is_contract(key):
                addresses[previous] = addresses.get(previous, 0) - 1
                addresses[value] = addresses.get(value, 0) + 1

        version = self.starknet_version
        n_contracts = self.n_contracts
        for address in touched:
            entries = diff.storage.get(address) or {}
            written = storage_changes.get(address) or {}
            n_old = len(entries)
            n_new = n_old
            for key, value in written.items():
                previous = entries.get(key)
                if previous == value:
                    continue
                aliased = self._key_alias(aliases, address, key)
                if previous is not None:
                    count(aliased, -1)
                    count(previous, -1)
                    n_new -= 1
                if value is not None:
                    count(aliased, 1)
                    count(value, 1)
                    n_new += 1
            aliased_address = self._address_alias(aliases, address) if old_in[address] or new_in[address] else address
            if old_in[address]:
                class_hash = diff.deployed[address] if address in diff.deployed else diff.replaced.get(address)
                word = da_word(
                    class_flag=class_hash is not None,
                    nonce=diff.nonces.get(address),
                    n_updates=n_old,
                    starknet_version=version,
                )
                count(aliased_address, -1)
                count(word, -1)
                if class_hash is not None:
                    count(class_hash, -1)
                addresses[aliased_address] = addresses.get(aliased_address, 0) - 1
                n_contracts -= 1
            if new_in[address]:
                class_hash = _after(address, change.deployed, diff.deployed)
                if class_hash is None:
                    class_hash = _after(address, change.replaced, diff.replaced)
                word = da_word(
                    class_flag=class_hash is not None,
                    nonce=change.nonces[address] if address in change.nonces else diff.nonces.get(address),
                    n_updates=n_new,
                    starknet_version=version,
                )
                count(aliased_address, 1)
                count(word, 1)
                if class_hash is not None:
                    count(class_hash, 1)
                addresses[aliased_address] = addresses.get(aliased_address, 0) + 1
                n_contracts += 1
        count(self.n_contracts, -1)
        count(n_contracts, 1)

        n_classes = self.n_classes
        for current, declared in ((diff.declared, change.declared), (diff.migrated, change.migrated)):
            for class_hash, compiled in declared.items():
                previous = current.get(class_hash)
                if previous is None:
                    count(class_hash, 1)
                    n_classes += 1
                elif previous == compiled:
                    continue
                else:
                    count(previous, -1)
                count(compiled, 1)
        count(self.n_classes, -1)
        count(n_classes, 1)

        unique = list(self.unique)
        n_felts = self.n_felts
        counts = self.counts
        for value, n in felts.items():
            if n == 0:
                continue
            n_felts += n
            before_n = counts.get(value, 0)
            after_n = before_n + n
            if (before_n == 0) != (after_n == 0):
                unique[_bucket_of(value.bit_length())] += 1 if after_n else -1
        collisions = self.collisions
        for value, n in addresses.items():
            if n:
                before_n = self.addresses.get(value, 0)
                collisions += (before_n + n >= 2) - (before_n >= 2)

        if collisions:
            length = await compressed_state_update_length(
                _with_change(diff, change).to_state_update(),
                starknet_version=version,
                reference_block=reference_block,
                rpc=self.rpc,
            )
        elif self.compressing:
            length = _compressed_length_of_counts(unique, n_felts)
        else:
            length = n_felts
        return LengthChange(
            length=length,
            reference_block=reference_block,
            felts=felts,
            unique=unique,
            n_felts=n_felts,
            n_contracts=n_contracts,
            n_classes=n_classes,
            aliases=aliases,
            unassigned=unassigned,
            uses=uses,
            addresses=addresses,
            collisions=collisions,
        )

    async def compressed(self, diff: SquashedDiff, *, reference_block: int) -> list[int]:
        """``compress_state_update(diff.to_state_update(), ...)`` of the diff this length was kept for
        (the batch's blob felts), built from the diff and the aliases already resolved. When an alias
        could differ at ``reference_block`` (a key the chain had no alias for) or two contracts share an
        aliased address, it is ``compress_state_update`` itself."""
        if self.collisions or (self.unassigned and reference_block != self.reference_block):
            return await compress_state_update(
                diff.to_state_update(),
                starknet_version=self.starknet_version,
                reference_block=reference_block,
                rpc=self.rpc,
            )
        felts = self._felts(diff)
        return compress(felts) if self.compressing else felts

    def _felts(self, diff: SquashedDiff) -> list[int]:
        """``state_update_to_felts`` of the aliased diff: contracts by aliased address, entries by aliased
        key (then key: the stable sort of the key-sorted entries), classes by hash (declared first)."""
        from madara_orchestrator.starknet.da import da_word

        aliasing = self.aliasing
        alias = self.alias
        version = self.starknet_version
        contracts = sorted(
            (alias[a] if aliasing and a >= MIN_VALUE_FOR_ALIAS else a, a)
            for a in {*diff.storage, *diff.nonces, *diff.deployed, *diff.replaced}
        )
        felts = [len(contracts)]
        for aliased, address in contracts:
            entries = diff.storage.get(address)
            class_hash = diff.deployed[address] if address in diff.deployed else diff.replaced.get(address)
            felts.append(aliased)
            felts.append(
                da_word(
                    class_flag=class_hash is not None,
                    nonce=diff.nonces.get(address),
                    n_updates=len(entries) if entries else 0,
                    starknet_version=version,
                )
            )
            if class_hash is not None:
                felts.append(class_hash)
            if not entries:
                continue
            if aliasing and address >= MIN_VALUE_FOR_ALIAS:
                for aliased_key, _, value in sorted(
                    (alias[k] if k >= MIN_VALUE_FOR_ALIAS else k, k, v) for k, v in entries.items()
                ):
                    felts += (aliased_key, value)
            else:
                for key in sorted(entries):
                    felts += (key, entries[key])
        classes = sorted([*diff.declared.items(), *diff.migrated.items()], key=lambda c: c[0])
        felts.append(len(classes))
        for class_hash, compiled in classes:
            felts += (class_hash, compiled)
        return felts

    def apply(self, change: LengthChange) -> None:
        counts = self.counts
        for value, n in change.felts.items():
            if n:
                left = counts.get(value, 0) + n
                if left:
                    counts[value] = left
                else:
                    del counts[value]
        for value, n in change.addresses.items():
            if n:
                left = self.addresses.get(value, 0) + n
                if left:
                    self.addresses[value] = left
                else:
                    del self.addresses[value]
        self.unique, self.n_felts = change.unique, change.n_felts
        self.n_contracts, self.n_classes, self.collisions = change.n_contracts, change.n_classes, change.collisions
        self.alias.update(change.aliases)
        for key, none_yet in change.unassigned.items():
            if none_yet:
                self.unassigned.add(key)
            else:
                self.unassigned.discard(key)
        for key, n in change.uses.items():
            left = self.uses.get(key, 0) + n
            if left:
                self.uses[key] = left
            else:
                self.uses.pop(key, None)
                self.alias.pop(key, None)
                self.unassigned.discard(key)
        self.reference_block = change.reference_block


def _present(address: int, change: dict[int, int | None], current: dict[int, int]) -> bool:
    return change[address] is not None if address in change else address in current


def _after(address: int, change: dict[int, int | None], current: dict[int, int]) -> int | None:
    return change[address] if address in change else current.get(address)


def _with_change(diff: SquashedDiff, change: DiffChange) -> SquashedDiff:
    candidate = diff.copy()
    candidate.apply(change)
    return candidate
