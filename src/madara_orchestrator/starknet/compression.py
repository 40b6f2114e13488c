"""Stateless compression (SPEC §5.10, StarkWare's ``stateless_compression``), its decompression, and
stateful compression (address/key aliasing through contract 0x2, SPEC §5.7) given the aliases.

Pure codecs: no I/O. ``needed_aliases`` names the aliases an update needs from the chain, and
``apply_aliases`` uses them once read; the reads themselves are in ``starknet.aliases``.
``compress`` gives the same felts as cairo-lang's ``compress``; ``decompress`` validates what it reads
and raises ``InvalidInput`` (never an assertion) on malformed data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.da import da_word, parse_starknet_version, state_update_to_felts
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.squash import DiffChange, SquashedDiff
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
# Stateful compression (aliases): what to read, and the diff once read (the reads: ``starknet.aliases``)


def uses_aliases(starknet_version: str) -> bool:
    """Whether the batch path aliases addresses and keys (from 0.13.4, SPEC §5.7)."""
    return parse_starknet_version(starknet_version) >= (0, 13, 4)


def needed_aliases(update: StateUpdate) -> tuple[dict[int, int], list[int]]:
    """What aliasing ``update`` needs (SPEC §5.7): the aliases it gives itself (a value below 0x80 is its
    own alias; the update's own writes to contract 0x2 come next), and the keys whose alias must be read
    from contract 0x2's storage at the reference block (sorted)."""
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
    return aliases, sorted(k for k in keys if k not in aliases)


def apply_aliases(update: StateUpdate, aliases: Mapping[int, int]) -> StateUpdate:
    """``update`` with its addresses and storage keys ≥ 0x80 replaced by their aliases (every one of
    them in ``aliases``; an unassigned alias is 0, as in the original), sorted again."""
    diff = update.state_diff

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


def batch_felts(aliased: StateUpdate, *, starknet_version: str) -> list[int]:
    """The aggregator-batch felts (SPEC §5.6) of an update already aliased (when the version aliases):
    batch encoding, then stateless compression from 0.13.3. Their number is the batch's ``blob_len``."""
    felts = state_update_to_felts(aliased, starknet_version=starknet_version)
    return compress(felts) if parse_starknet_version(starknet_version) >= (0, 13, 3) else felts


def batch_felts_length(aliased: StateUpdate, *, starknet_version: str) -> int:
    """``len(batch_felts(aliased, ...))``, without building the compressed felts."""
    felts = state_update_to_felts(aliased, starknet_version=starknet_version)
    return compressed_length(felts) if parse_starknet_version(starknet_version) >= (0, 13, 3) else len(felts)


# --------------------------------------------------------------------------------------------------
# The compressed length of a growing batch, block by block


@dataclass(slots=True, kw_only=True)
class LengthChange:
    """What one ``DiffChange`` does to a ``BatchFeltCounts`` (computing it changes nothing)."""

    length: int
    """``len(compress_state_update(...))`` of the diff with the change. Counted only while ``collisions``
    is 0 (else 0 here: ``aliases.BatchLength`` measures the whole diff then)."""
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


@dataclass(slots=True, kw_only=True)
class AliasPlan:
    """The first half of a proposal (``BatchFeltCounts.plan``): which contracts are in the diff before
    and after the change, how the uses of each key change, and which aliases must be resolved again."""

    reference_block: int
    touched: set[int]
    old_in: dict[int, bool]
    new_in: dict[int, bool]
    uses: dict[int, int]
    aliases: dict[int, int]
    """Keys resolved from the diff's own writes to contract 0x2 → the alias."""
    unassigned: dict[int, bool]
    to_read: list[int]
    """Keys whose alias the chain gives (contract 0x2 at ``reference_block``), sorted."""


class BatchFeltCounts:
    """``len(compress_state_update(diff, ...))`` of a ``SquashedDiff`` kept up to date block by block:
    the cost of a block is the block's size, not the batch's. Pure: the aliases a block needs from the
    chain are named by ``plan`` and given to ``count`` (``aliases.BatchLength`` reads them).

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

    def __init__(self, *, starknet_version: str) -> None:
        version = parse_starknet_version(starknet_version)
        self.starknet_version = starknet_version
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

    def _key_alias(self, aliases: dict[int, int], address: int, key: int) -> int:
        if self.aliasing and address >= MIN_VALUE_FOR_ALIAS and key >= MIN_VALUE_FOR_ALIAS:
            return aliases[key] if key in aliases else self.alias[key]
        return key

    def _address_alias(self, aliases: dict[int, int], address: int) -> int:
        if self.aliasing and address >= MIN_VALUE_FOR_ALIAS:
            return aliases[address] if address in aliases else self.alias[address]
        return address

    def plan(self, diff: SquashedDiff, change: DiffChange, *, reference_block: int) -> AliasPlan:
        """What ``change`` does to the contracts and keys of ``diff``, and the aliases it needs resolved
        at ``reference_block``; ``count`` finishes the proposal once ``to_read`` is read."""
        touched = change.touched_contracts()
        old_in, new_in, uses = self._presence(diff, change, touched)
        plan = AliasPlan(
            reference_block=reference_block,
            touched=touched,
            old_in=old_in,
            new_in=new_in,
            uses=uses,
            aliases={},
            unassigned={},
            to_read=[],
        )
        if self.aliasing:
            self._plan_aliases(diff, change, plan)
        return plan

    def _presence(
        self, diff: SquashedDiff, change: DiffChange, touched: set[int]
    ) -> tuple[dict[int, bool], dict[int, bool], dict[int, int]]:
        """Which contracts are in the diff before and after, and how the uses of each key change."""
        storage_changes = change.storage
        old_in: dict[int, bool] = {}
        new_in: dict[int, bool] = {}
        uses: dict[int, int] = {}
        for address in touched:
            before = diff.is_contract(address)
            entries = diff.storage.get(address)
            n_entries = len(entries) if entries else 0
            written = storage_changes.get(address)
            keyed = self.aliasing and address >= MIN_VALUE_FOR_ALIAS
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
        return old_in, new_in, uses

    def _plan_aliases(self, diff: SquashedDiff, change: DiffChange, plan: AliasPlan) -> None:
        """The keys whose alias may differ from the one the felts have: new keys, keys whose own alias
        (the diff's write to contract 0x2) changes, keys without an alias once the reference moves."""
        uses = plan.uses
        old_uses = self.uses
        to_resolve = {k for k, d in uses.items() if d > 0 and k not in old_uses}
        own_written = change.storage.get(ALIAS_CONTRACT_ADDRESS, {})
        to_resolve.update(k for k in own_written if k >= MIN_VALUE_FOR_ALIAS and k in old_uses)
        if plan.reference_block != self.reference_block:
            to_resolve.update(self.unassigned)
        to_resolve = {k for k in to_resolve if old_uses.get(k, 0) + uses.get(k, 0) > 0}
        own = diff.storage.get(ALIAS_CONTRACT_ADDRESS, {})
        chain: list[int] = []
        for key in to_resolve:
            value = own_written[key] if key in own_written else own.get(key)
            if value is not None:
                plan.aliases[key] = value
                plan.unassigned[key] = False
            else:
                chain.append(key)
        plan.to_read = sorted(chain)

    def count(self, diff: SquashedDiff, change: DiffChange, plan: AliasPlan, read: Mapping[int, int]) -> LengthChange:
        """The proposal ``plan`` began, with ``read``: the chain's alias of each key of ``plan.to_read``
        (0 for none yet). Neither ``diff`` nor this object changes (``apply`` takes the result)."""
        aliases, unassigned, uses, reference_block = plan.aliases, plan.unassigned, plan.uses, plan.reference_block
        for key, value in read.items():
            aliases[key] = value
            unassigned[key] = value == 0
        for key, value in list(aliases.items()):
            if self.alias.get(key) == value:
                del aliases[key]
        felts: dict[int, int] = {}
        addresses: dict[int, int] = {}
        self._count_new_aliases(diff, aliases, felts, addresses)
        n_contracts = self._count_contracts(diff, change, plan, aliases, felts, addresses)
        n_classes = self._count_classes(diff, change, felts)
        unique = list(self.unique)
        n_felts = self.n_felts
        for value, n in felts.items():
            if n == 0:
                continue
            n_felts += n
            before_n = self.counts.get(value, 0)
            after_n = before_n + n
            if (before_n == 0) != (after_n == 0):
                unique[_bucket_of(value.bit_length())] += 1 if after_n else -1
        collisions = self.collisions
        for value, n in addresses.items():
            if n:
                before_n = self.addresses.get(value, 0)
                collisions += (before_n + n >= 2) - (before_n >= 2)
        if collisions:
            length = 0  # the felts are not per contract: measured from the whole diff (aliases.BatchLength)
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

    def _count_new_aliases(
        self, diff: SquashedDiff, aliases: dict[int, int], felts: dict[int, int], addresses: dict[int, int]
    ) -> None:
        """A key whose alias changed: every felt that is its old alias becomes the new one."""
        for key, value in aliases.items():
            previous = self.alias.get(key)
            if previous is None:
                continue
            n = self.uses[key]
            _add(felts, previous, -n)
            _add(felts, value, n)
            if diff.is_contract(key):
                _add(addresses, previous, -1)
                _add(addresses, value, 1)

    def _count_contracts(
        self,
        diff: SquashedDiff,
        change: DiffChange,
        plan: AliasPlan,
        aliases: dict[int, int],
        felts: dict[int, int],
        addresses: dict[int, int],
    ) -> int:
        """The felts of the contracts ``change`` touches (entries, address, DA word, class hash) leave
        with the old contract and come with the new one; returns the number of contracts after."""
        version = self.starknet_version
        n_contracts = self.n_contracts
        for address in plan.touched:
            entries = diff.storage.get(address) or {}
            written = change.storage.get(address) or {}
            n_old = len(entries)
            n_new = n_old
            for key, value in written.items():
                previous = entries.get(key)
                if previous == value:
                    continue
                aliased = self._key_alias(aliases, address, key)
                if previous is not None:
                    _add(felts, aliased, -1)
                    _add(felts, previous, -1)
                    n_new -= 1
                if value is not None:
                    _add(felts, aliased, 1)
                    _add(felts, value, 1)
                    n_new += 1
            was_in, is_in = plan.old_in[address], plan.new_in[address]
            aliased_address = self._address_alias(aliases, address) if was_in or is_in else address
            if was_in:
                class_hash = diff.deployed[address] if address in diff.deployed else diff.replaced.get(address)
                nonce = diff.nonces.get(address)
                word = da_word(
                    class_flag=class_hash is not None, nonce=nonce, n_updates=n_old, starknet_version=version
                )
                _add_contract(felts, addresses, aliased_address, word, class_hash, -1)
                n_contracts -= 1
            if is_in:
                class_hash = _after(address, change.deployed, diff.deployed)
                if class_hash is None:
                    class_hash = _after(address, change.replaced, diff.replaced)
                nonce = change.nonces[address] if address in change.nonces else diff.nonces.get(address)
                word = da_word(
                    class_flag=class_hash is not None, nonce=nonce, n_updates=n_new, starknet_version=version
                )
                _add_contract(felts, addresses, aliased_address, word, class_hash, 1)
                n_contracts += 1
        _add(felts, self.n_contracts, -1)
        _add(felts, n_contracts, 1)
        return n_contracts

    def _count_classes(self, diff: SquashedDiff, change: DiffChange, felts: dict[int, int]) -> int:
        """The declared and migrated classes ``change`` adds or recompiles; returns their number after."""
        n_classes = self.n_classes
        for current, declared in ((diff.declared, change.declared), (diff.migrated, change.migrated)):
            for class_hash, compiled in declared.items():
                previous = current.get(class_hash)
                if previous is None:
                    _add(felts, class_hash, 1)
                    n_classes += 1
                elif previous == compiled:
                    continue
                else:
                    _add(felts, previous, -1)
                _add(felts, compiled, 1)
        _add(felts, self.n_classes, -1)
        _add(felts, n_classes, 1)
        return n_classes

    def needs_whole_diff(self, reference_block: int) -> bool:
        """Whether the compressed felts at ``reference_block`` must be built from the whole diff: an alias
        could differ there (a key the chain had no alias for), or two contracts share an aliased address."""
        return bool(self.collisions or (self.unassigned and reference_block != self.reference_block))

    def compressed_felts(self, diff: SquashedDiff) -> list[int]:
        """The batch felts of the diff this length was kept for, from the aliases already resolved (when
        ``needs_whole_diff`` is false)."""
        felts = self._felts(diff)
        return compress(felts) if self.compressing else felts

    def _felts(self, diff: SquashedDiff) -> list[int]:
        """``state_update_to_felts`` of the aliased diff: contracts by aliased address, entries by aliased
        key (then key: the stable sort of the key-sorted entries), classes by hash (declared first)."""
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


def _add(counter: dict[int, int], value: int, n: int) -> None:
    counter[value] = counter.get(value, 0) + n


def _add_contract(
    felts: dict[int, int], addresses: dict[int, int], address: int, word: int, class_hash: int | None, n: int
) -> None:
    """A contract's own felts (address, DA word, class hash) counted ``n`` times (1 in, -1 out)."""
    _add(felts, address, n)
    _add(felts, word, n)
    if class_hash is not None:
        _add(felts, class_hash, n)
    _add(addresses, address, n)


def _present(address: int, change: dict[int, int | None], current: dict[int, int]) -> bool:
    return change[address] is not None if address in change else address in current


def _after(address: int, change: dict[int, int | None], current: dict[int, int]) -> int | None:
    return change[address] if address in change else current.get(address)
