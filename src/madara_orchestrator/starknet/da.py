"""State diff → felts for data availability: the DA word (SPEC §6.2), the DA-job encoder (§6.1) and
the batch encoder (§5.8), plus the parser of what they produce (for ``orchestrator blob decode``).

The two encoders differ on purpose, as in the original: the DA-job encoder looks up nonces that are
not in the diff and ignores replaced-only contracts and migrated classes; the batch encoder does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from madara_orchestrator.domain.batching import KNOWN_STARKNET_VERSIONS, version_numbers
from madara_orchestrator.domain.chain import MAX_BLOBS_PER_TXN
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.interfaces import NonceSource
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.state_update import StateUpdate, add_storage_writes, class_changes

StarknetVersion = tuple[int, ...]

LEGACY_DA_WORD_BEFORE: StarknetVersion = (0, 13, 3)
"""Versions below this one use the legacy word: class·2^128 + nonce·2^64 + n_updates."""
DA_JOB_PINNED_VERSION = "0.14.2"
"""The "supported" version the original DA job always encodes with (SPEC §6.1, Quirk 15)."""
KNOWN_VERSIONS = KNOWN_STARKNET_VERSIONS

U64_BOUND = 2**64
SMALL_N_UPDATES_BOUND = 2**8
NO_NONCE_LOOKUP_ADDRESSES = frozenset({0x1, 0x2})
"""System contracts whose nonce the DA job never looks up."""


def parse_starknet_version(text: str) -> StarknetVersion:
    """``"0.13.2"`` or ``"0.13.2.1"`` → a comparable tuple; anything else is ``InvalidInput``. Encoding
    compares it with the known versions where it changes, so a version batching was allowed to take
    beyond the known ones is encoded as the nearest lower known version is (``domain.batching.encoded_as``)."""
    numbers = version_numbers(text)
    if numbers is None:
        raise InvalidInput(f"{text!r} is not a Starknet version (expected e.g. 0.13.2 or 0.14.2)")
    return numbers


def uses_legacy_da_word(starknet_version: str) -> bool:
    return parse_starknet_version(starknet_version) < LEGACY_DA_WORD_BEFORE


def da_word(*, class_flag: bool, nonce: int | None, n_updates: int, starknet_version: str) -> int:
    """The per-contract header felt (SPEC §6.2); a missing nonce counts as 0."""
    nonce_value = 0 if nonce is None else nonce
    if not 0 <= nonce_value < U64_BOUND:
        raise InvalidInput(f"nonce {nonce_value} does not fit in 64 bits and cannot go in a DA word")
    if not 0 <= n_updates < U64_BOUND:
        raise InvalidInput(f"{n_updates} storage updates do not fit in 64 bits")
    if uses_legacy_da_word(starknet_version):
        return int(class_flag) * 2**128 + nonce_value * 2**64 + n_updates
    if n_updates < SMALL_N_UPDATES_BOUND:
        return nonce_value * 2**10 + n_updates * 4 + 2 + int(class_flag)
    return nonce_value * 2**66 + n_updates * 4 + int(class_flag)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaWord:
    class_flag: bool
    nonce: int
    n_updates: int


def decode_da_word(word: int, *, legacy: bool) -> DaWord:
    if legacy:
        if word >> 129:
            raise InvalidInput(f"legacy DA word {hex(word)} has bits above bit 128")
        return DaWord(class_flag=bool(word >> 128), nonce=(word >> 64) % U64_BOUND, n_updates=word % U64_BOUND)
    class_flag = bool(word & 1)
    if word & 2:
        n_updates, nonce = (word >> 2) % SMALL_N_UPDATES_BOUND, word >> 10
    else:
        n_updates, nonce = (word >> 2) % U64_BOUND, word >> 66
    if nonce >= U64_BOUND:
        raise InvalidInput(f"DA word {hex(word)} has a nonce wider than 64 bits")
    return DaWord(class_flag=class_flag, nonce=nonce, n_updates=n_updates)


# --------------------------------------------------------------------------------------------------
# The DA-job encoder (SPEC §6.1)


class StaticNonces:
    """A ``NonceSource`` from recorded answers (the vectors' nonces files); an unknown address is an error."""

    def __init__(self, nonces: Mapping[int, int]) -> None:
        self._nonces = dict(nonces)
        self.calls: list[tuple[int, int]] = []

    async def get_nonce(self, block_number: int, address: int) -> int:
        self.calls.append((block_number, address))
        if address not in self._nonces:
            raise InvalidInput(f"no nonce recorded for contract {hex(address)} (block {block_number})")
        return self._nonces[address]


class NoNonces:
    """A ``NonceSource`` for when none was configured: any lookup is a clear error."""

    async def get_nonce(self, block_number: int, address: int) -> int:
        raise InvalidInput(
            f"the nonce of contract {hex(address)} at block {block_number} is not in the state diff; "
            "give a nonce source (--nonces FILE or --rpc URL)"
        )


async def encode_state_update_for_da(
    update: StateUpdate,
    *,
    block_number: int,
    nonce_source: NonceSource,
    starknet_version: str = DA_JOB_PINNED_VERSION,
    max_concurrent_lookups: int = 16,
) -> list[int]:
    """The DataSubmission job's felts (SPEC §6.1). Nonces missing from the diff of contracts with
    storage updates (other than 0x1 and 0x2) come from ``nonce_source`` at ``block_number``."""
    diff = update.state_diff
    storage: dict[int, dict[int, int]] = {}
    add_storage_writes(diff, storage)
    for address in [
        *(n.contract_address for n in diff.nonces),
        *(d.address for d in diff.deployed_contracts),
    ]:
        storage.setdefault(address, {})
    deployed, replaced = class_changes(diff)
    nonces: dict[int, int] = {n.contract_address: n.nonce for n in diff.nonces}

    to_look_up = [
        address
        for address, entries in storage.items()
        if address not in nonces and entries and address not in NO_NONCE_LOOKUP_ADDRESSES
    ]
    if to_look_up:
        slots = asyncio.Semaphore(max(1, max_concurrent_lookups))

        async def look_up(address: int) -> int:
            async with slots:
                return await nonce_source.get_nonce(block_number, address)

        found = await asyncio.gather(*(look_up(a) for a in to_look_up))
        nonces.update(zip(to_look_up, found, strict=True))

    felts = [len(storage)]
    for address in sorted(storage):
        class_hash = deployed.get(address, replaced.get(address))
        entries = storage[address]
        felts.append(address)
        felts.append(
            da_word(
                class_flag=class_hash is not None,
                nonce=nonces.get(address),
                n_updates=len(entries),
                starknet_version=starknet_version,
            )
        )
        if class_hash is not None:
            felts.append(class_hash)
        for key in sorted(entries):
            felts += (key, entries[key])
    declared = sorted(diff.declared_classes, key=lambda c: c.class_hash)
    felts.append(len(declared))
    for c in declared:
        felts += (c.class_hash, c.compiled_class_hash)
    return felts


async def encode_state_update_to_blobs(
    update: StateUpdate,
    *,
    block_number: int,
    nonce_source: NonceSource,
    starknet_version: str = DA_JOB_PINNED_VERSION,
    max_blobs: int | None = MAX_BLOBS_PER_TXN,
) -> list[bytes]:
    """The DA-job felts as blobs; more than ``max_blobs`` blobs is ``MaxBlobsLimitExceeded``
    (the original silently dropped everything past 4096 felts)."""
    felts = await encode_state_update_for_da(
        update, block_number=block_number, nonce_source=nonce_source, starknet_version=starknet_version
    )
    return felts_to_blobs(felts, max_blobs=max_blobs)


# --------------------------------------------------------------------------------------------------
# The batch encoder (SPEC §5.8)


def state_update_to_felts(update: StateUpdate, *, starknet_version: str) -> list[int]:
    """The aggregator batch path's felts; a nonce not in the diff counts as 0 (no lookup)."""
    diff = update.state_diff
    deployed, replaced = class_changes(diff)
    nonces = {n.contract_address: n.nonce for n in diff.nonces}

    contracts: list[tuple[int, int | None, int | None, tuple[tuple[int, int], ...]]] = []
    seen: set[int] = set()
    for s in diff.storage_diffs:
        class_hash = deployed.pop(s.address, None)
        replaced_hash = replaced.pop(s.address, None)
        if class_hash is None:
            class_hash = replaced_hash
        contracts.append(
            (
                s.address,
                class_hash,
                nonces.pop(s.address, None),
                tuple((e.key, e.value) for e in s.storage_entries),
            )
        )
        seen.add(s.address)
    leftovers: dict[int, tuple[int | None, int | None]] = {}
    for address, deployed_hash in deployed.items():
        replaced.pop(address, None)
        leftovers[address] = (deployed_hash, nonces.pop(address, None))
    for address, new_hash in replaced.items():
        leftovers[address] = (new_hash, nonces.pop(address, None))
    for address, only_nonce in nonces.items():
        leftovers.setdefault(address, (None, only_nonce))
    for address in sorted(leftovers):
        if address not in seen:
            contracts.append((address, *leftovers[address], ()))
    contracts.sort(key=lambda c: c[0])

    felts = [len(contracts)]
    for address, class_hash, nonce, entries in contracts:
        felts.append(address)
        felts.append(
            da_word(
                class_flag=class_hash is not None,
                nonce=nonce,
                n_updates=len(entries),
                starknet_version=starknet_version,
            )
        )
        if class_hash is not None:
            felts.append(class_hash)
        for key, value in entries:
            felts += (key, value)
    classes = sorted([*diff.declared_classes, *(diff.migrated_compiled_classes or ())], key=lambda c: c.class_hash)
    felts.append(len(classes))
    for c in classes:
        felts += (c.class_hash, c.compiled_class_hash)
    return felts


# --------------------------------------------------------------------------------------------------
# Reading it back


@dataclass(frozen=True, slots=True, kw_only=True)
class DaContractDiff:
    address: int
    nonce: int
    class_hash: int | None
    storage: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaStateDiff:
    contracts: tuple[DaContractDiff, ...]
    classes: tuple[tuple[int, int], ...]
    """(class_hash, compiled_class_hash) pairs."""
    n_felts: int
    """How many felts the diff occupies (anything after it is padding)."""


def parse_da_state_diff(felts: Sequence[int], *, legacy: bool, start: int = 0) -> DaStateDiff:
    """Parse felts written by either encoder (uncompressed). Running out of data or a count that
    cannot be right raises ``InvalidInput``."""
    pos = start

    def take(what: str) -> int:
        nonlocal pos
        if pos >= len(felts):
            raise InvalidInput(f"state diff ends early: {what} expected at position {pos}")
        value = felts[pos]
        pos += 1
        return value

    n_contracts = take("number of contracts")
    if n_contracts > len(felts):
        raise InvalidInput(f"state diff announces {n_contracts} contracts but has only {len(felts)} felts")
    contracts = []
    for _ in range(n_contracts):
        address = take("contract address")
        word = decode_da_word(take(f"DA word of {hex(address)}"), legacy=legacy)
        class_hash = take(f"class hash of {hex(address)}") if word.class_flag else None
        if word.n_updates * 2 > len(felts) - pos:
            raise InvalidInput(
                f"contract {hex(address)} announces {word.n_updates} storage updates, more than the data holds"
            )
        storage = tuple((take("storage key"), take("storage value")) for _ in range(word.n_updates))
        contracts.append(DaContractDiff(address=address, nonce=word.nonce, class_hash=class_hash, storage=storage))
    n_classes = take("number of declared classes")
    if n_classes * 2 > len(felts) - pos:
        raise InvalidInput(f"state diff announces {n_classes} declared classes, more than the data holds")
    classes = tuple((take("class hash"), take("compiled class hash")) for _ in range(n_classes))
    return DaStateDiff(contracts=tuple(contracts), classes=classes, n_felts=pos - start)
