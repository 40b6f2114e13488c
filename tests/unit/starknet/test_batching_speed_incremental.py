"""Incremental squashing (``SquashedDiff``) and the incremental compressed length (``BatchLength``)
against the reference functions they replace in batching: ``squash_state_updates(..., squashed_prefix=1)``
and ``compressed_state_update_length``, block by block, on generated chains.

The chains are deliberately unkind: few addresses and keys (so blocks overwrite each other and write
values back to the pre-range state), aliases drawn from a handful of values (two keys may share one),
keys without an alias (read as 0, so contract addresses collide), aliases assigned in the middle of the
range, the batch's own writes to contract 0x2 (also of 0), replaced classes of contracts deployed in the
range or before it, and candidate blocks that are proposed and then not taken.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madara_orchestrator.starknet.aliases import (
    BatchLength,
    compress_state_update,
    compress_state_update_stateful,
    compressed_state_update_length,
)
from madara_orchestrator.starknet.da import parse_starknet_version, state_update_to_felts
from madara_orchestrator.starknet.rpc import RpcCall, RpcError
from madara_orchestrator.starknet.rpc_types import CONTRACT_NOT_FOUND
from madara_orchestrator.starknet.squash import SquashedDiff, squash_state_updates
from madara_orchestrator.starknet.state_update import (
    ContractStorageDiff,
    DeclaredClass,
    DeployedContract,
    NonceUpdate,
    ReplacedClass,
    StateDiff,
    StateUpdate,
    StorageEntry,
    state_update_to_json,
)
from tests.helpers.depth import examples

ALIAS_CONTRACT = 0x2
ADDRESSES = (0x1, 0x5, 0x7F, 0x80, 0x81, 0x100, 0x1234, 2**200 + 3)
KEYS = (0x0, 0x3, 0x7F, 0x80, 0x81, 0x100, 0x1234, 2**240 + 5)
VALUES = (0, 1, 2, 0x7F, 0x80, 0x90, 2**20 + 1, 2**70 + 9, 2**100 + 3, 2**140 + 1, 2**250 + 7)
ALIASES = (0, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x1000)
CLASSES = (0xC1, 0xC2, 0xC3, 2**240 + 1)
VERSIONS = ("0.13.2", "0.13.3", "0.13.4", "0.14.1")
PRE_RANGE = 9


@dataclass
class Chain:
    """What the RPC answers: the pre-range state and the aliases contract 0x2 gets, with the block each
    is assigned at (an alias never changes once assigned; before, it reads as 0)."""

    storage: dict[tuple[int, int], int]
    classes: dict[int, int]
    aliases: dict[int, tuple[int, int]]

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]:
        out: list[Any | RpcError] = []
        for call in calls:
            if call.method == "starknet_getClassHashAt":
                block, address = call.params[0]["block_number"], int(call.params[1], 16)
                assert block == PRE_RANGE
                if address in self.classes:
                    out.append(hex(self.classes[address]))
                else:
                    out.append(RpcError(CONTRACT_NOT_FOUND, "Contract not found"))
            else:
                assert call.method == "starknet_getStorageAt"
                address, key, block = int(call.params[0], 16), int(call.params[1], 16), call.params[2]["block_number"]
                if address == ALIAS_CONTRACT:
                    assigned = self.aliases.get(key)
                    out.append(hex(assigned[1]) if assigned and assigned[0] <= block else "0x0")
                else:
                    assert block == PRE_RANGE
                    out.append(hex(self.storage.get((address, key), 0)))
        return out


def felt_maps(keys: Sequence[int], values: Sequence[int], max_size: int) -> st.SearchStrategy[dict[int, int]]:
    return st.dictionaries(st.sampled_from(keys), st.sampled_from(values), max_size=max_size)


@st.composite
def state_updates(draw: st.DrawFn, number: int) -> StateUpdate:
    storage = draw(st.dictionaries(st.sampled_from(ADDRESSES), felt_maps(KEYS + ADDRESSES, VALUES, 4), max_size=4))
    own = draw(felt_maps(KEYS + ADDRESSES, ALIASES, 3))
    if own:
        storage[ALIAS_CONTRACT] = own
    diffs = [
        ContractStorageDiff(address=a, storage_entries=tuple(StorageEntry(key=k, value=v) for k, v in entries.items()))
        for a, entries in storage.items()
    ]
    migrated = draw(st.none() | felt_maps(CLASSES, VALUES, 2))
    diff = StateDiff(
        storage_diffs=tuple(diffs),
        deprecated_declared_classes=tuple(draw(st.sets(st.sampled_from(CLASSES), max_size=1))),
        declared_classes=tuple(
            DeclaredClass(class_hash=k, compiled_class_hash=v) for k, v in draw(felt_maps(CLASSES, VALUES, 2)).items()
        ),
        deployed_contracts=tuple(
            DeployedContract(address=a, class_hash=c) for a, c in draw(felt_maps(ADDRESSES, CLASSES, 2)).items()
        ),
        replaced_classes=tuple(
            ReplacedClass(contract_address=a, class_hash=c) for a, c in draw(felt_maps(ADDRESSES, CLASSES, 2)).items()
        ),
        nonces=tuple(
            NonceUpdate(contract_address=a, nonce=n)
            for a, n in draw(felt_maps(ADDRESSES, (0, 1, 2, 7, 300), 3)).items()
        ),
        migrated_compiled_classes=None
        if migrated is None
        else tuple(DeclaredClass(class_hash=k, compiled_class_hash=v) for k, v in migrated.items()),
    )
    return StateUpdate(
        block_hash=number * 1000 + 1, old_root=number * 1000 + 2, new_root=number * 1000 + 3, state_diff=diff
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Chain, bool, str, list[tuple[StateUpdate, bool]]]:
    chain = Chain(
        storage=draw(
            st.dictionaries(st.tuples(st.sampled_from(ADDRESSES), st.sampled_from(KEYS)), st.sampled_from(VALUES))
        ),
        classes=draw(felt_maps(ADDRESSES, CLASSES, 6)),
        aliases=draw(
            st.dictionaries(
                st.sampled_from(KEYS + ADDRESSES),
                st.tuples(st.integers(PRE_RANGE - 2, PRE_RANGE + 8), st.sampled_from(ALIASES[1:])),
            )
        ),
    )
    with_pre_range = draw(st.booleans())
    version = draw(st.sampled_from(VERSIONS))
    n_blocks = draw(st.integers(1, 7))
    blocks = [(draw(state_updates(PRE_RANGE + 1 + i)), draw(st.booleans()) and i > 0) for i in range(n_blocks)]
    return chain, with_pre_range, version, blocks


async def check(chain: Chain, with_pre_range: bool, version: str, blocks: list[tuple[StateUpdate, bool]]) -> None:
    pre = PRE_RANGE if with_pre_range else None
    diff = SquashedDiff(pre_range_block=pre)
    length = BatchLength(starknet_version=version, rpc=chain)
    expected: StateUpdate | None = None
    for number, (update, rejected) in enumerate((u for u in blocks), start=PRE_RANGE + 1):
        reference = max(number - 1, 0)
        candidate = (
            await squash_state_updates([update], pre_range_block=pre, rpc=chain)
            if expected is None
            else await squash_state_updates([expected, update], pre_range_block=pre, rpc=chain, squashed_prefix=1)
        )
        want = await compressed_state_update_length(
            candidate, starknet_version=version, reference_block=reference, rpc=chain
        )
        change = await diff.change_for(update, chain)
        proposal = await length.propose(diff, change, reference_block=reference)
        assert proposal.length == want
        if rejected:
            continue  # proposed, not taken: the next block is checked against the batch without it
        diff.apply(change)
        length.apply(proposal)
        expected = candidate
        assert diff.to_state_update() == candidate
        await check_internals(length, candidate, version, reference, chain)
        # The batch's files: its compressed felts and its JSON, as from the sorted update.
        for at in (reference, number):
            assert await length.compressed(diff, reference_block=at) == await compress_state_update(
                candidate, starknet_version=version, reference_block=at, rpc=chain
            )
        assert diff.to_json() == json.dumps(state_update_to_json(candidate))
        assert diff.to_state_update() is diff.to_state_update()
        # A batch rebuilt from its squashed update (after a restart) has the same length.
        rebuilt = SquashedDiff(pre_range_block=pre)
        fresh = BatchLength(starknet_version=version, rpc=chain)
        assert (await fresh.propose(rebuilt, rebuilt.load(candidate), reference_block=reference)).length == want
        assert SquashedDiff.of(candidate, pre_range_block=pre).to_state_update() == candidate


async def check_internals(
    length: BatchLength, candidate: StateUpdate, version: str, reference: int, chain: Chain
) -> None:
    """Not only the length: the multiset of felts and the aliased contract addresses are the reference's."""
    aliasing = parse_starknet_version(version) >= (0, 13, 4)
    diff = candidate.state_diff
    contracts = {s.address for s in diff.storage_diffs} | {d.address for d in diff.deployed_contracts}
    contracts |= {n.contract_address for n in diff.nonces} | {r.contract_address for r in diff.replaced_classes}
    # The aliases of the contract addresses, as stateful compression resolves them (own writes first).
    probe = StateUpdate(
        block_hash=0,
        old_root=0,
        new_root=0,
        state_diff=StateDiff(
            storage_diffs=tuple(s for s in diff.storage_diffs if s.address == ALIAS_CONTRACT),
            nonces=tuple(NonceUpdate(contract_address=a, nonce=0) for a in contracts),
        ),
    )
    if aliasing:
        probe = await compress_state_update_stateful(probe, reference_block=reference, rpc=chain)
    assert length.addresses == Counter(n.contract_address for n in probe.state_diff.nonces)
    assert (length.collisions == 0) == (len(length.addresses) == len(contracts))
    if length.collisions == 0:
        aliased = (
            await compress_state_update_stateful(candidate, reference_block=reference, rpc=chain)
            if aliasing
            else candidate
        )
        felts = state_update_to_felts(aliased, starknet_version=version)
        assert length.counts == Counter(felts)
        assert length.n_felts == len(felts)


@pytest.mark.slow
@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_incremental_squash_and_length_equal_the_reference_block_by_block(
    scenario: tuple[Chain, bool, str, list[tuple[StateUpdate, bool]]],
) -> None:
    asyncio.run(check(*scenario))


@pytest.mark.slow
@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_long_batch_with_every_alias_assigned_stays_exact(data: st.DataObject) -> None:
    """The usual chain: every key and address has its own alias (assigned before the range or by the
    batch's own writes), so the length never falls back to the whole diff."""
    keys = sorted(set(KEYS + ADDRESSES))
    chain = Chain(
        storage=data.draw(
            st.dictionaries(st.tuples(st.sampled_from(ADDRESSES), st.sampled_from(KEYS)), st.sampled_from(VALUES))
        ),
        classes=data.draw(felt_maps(ADDRESSES, CLASSES, 6)),
        aliases={k: (PRE_RANGE - 1, 0x80 + i) for i, k in enumerate(keys) if k >= 0x80},
    )
    blocks = [(data.draw(state_updates(PRE_RANGE + 1 + i)), False) for i in range(data.draw(st.integers(5, 15)))]
    blocks = [(_without_alias_writes(u), rejected) for u, rejected in blocks]
    asyncio.run(check(chain, True, "0.14.1", blocks))


def _without_alias_writes(update: StateUpdate) -> StateUpdate:
    diffs = tuple(s for s in update.state_diff.storage_diffs if s.address != ALIAS_CONTRACT)
    return replace(update, state_diff=replace(update.state_diff, storage_diffs=diffs))


def block(number: int, storage: dict[int, dict[int, int]], nonces: dict[int, int] | None = None) -> StateUpdate:
    return StateUpdate(
        block_hash=number * 1000 + 1,
        old_root=number * 1000 + 2,
        new_root=number * 1000 + 3,
        state_diff=StateDiff(
            storage_diffs=tuple(
                ContractStorageDiff(
                    address=a, storage_entries=tuple(StorageEntry(key=k, value=v) for k, v in entries.items())
                )
                for a, entries in storage.items()
            ),
            nonces=tuple(NonceUpdate(contract_address=a, nonce=n) for a, n in (nonces or {}).items()),
        ),
    )


CONTRACT, KEY = 0x1234, 0x100


async def test_a_key_without_an_alias_is_read_again_when_the_reference_block_moves() -> None:
    # KEY gets its alias on the chain at block 11 (not by a write in the batch): read as 0 for the
    # candidates of blocks 10 and 11 (references 9 and 10), as 0x81 from block 12's on.
    chain = Chain(storage={}, classes={CONTRACT: 0xC1}, aliases={CONTRACT: (5, 0x80), KEY: (11, 0x81)})
    blocks = [block(10, {CONTRACT: {KEY: 5}}), block(11, {CONTRACT: {0x3: 7}}), block(12, {CONTRACT: {0x7F: 1}})]
    await check(chain, True, "0.14.1", [(b, False) for b in blocks])


async def test_the_batch_s_own_alias_writes_replace_and_drop_aliases_already_in_use() -> None:
    chain = Chain(storage={}, classes={CONTRACT: 0xC1}, aliases={CONTRACT: (5, 0x80), KEY: (14, 0x90)})
    blocks = [
        block(10, {CONTRACT: {KEY: 5}, ALIAS_CONTRACT: {KEY: 0x81}}),
        block(11, {ALIAS_CONTRACT: {KEY: 0x82}}),  # the own alias changes
        block(12, {ALIAS_CONTRACT: {KEY: 0}}),  # written back to the pre-range value: dropped, read from the chain
        block(13, {CONTRACT: {0x3: 1}}),
        block(15, {CONTRACT: {0x4: 1}}, nonces={0x80: 1}),  # now assigned on the chain; address 0x80 collides
    ]
    await check(chain, True, "0.14.1", [(b, False) for b in blocks])


async def test_an_address_whose_alias_changes_moves_in_the_address_counts() -> None:
    # CONTRACT has no alias until block 11: its address reads as 0 like contract 0x0's, then they differ.
    chain = Chain(storage={}, classes={}, aliases={CONTRACT: (11, 0x81)})
    blocks = [block(10, {CONTRACT: {0x3: 1}}, nonces={0x0: 1}), block(11, {0x5: {0x3: 1}}), block(12, {0x7F: {0x1: 2}})]
    await check(chain, True, "0.14.1", [(b, False) for b in blocks])
