"""The devnet chain: traffic that fills batches, aliases as the OS assigns them, bouncer weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from madara_orchestrator.devnet.sequencer import (
    ALIAS_CONTRACT,
    ALIAS_COUNTER_KEY,
    APP_CONTRACTS,
    APP_COUNTER_KEY,
    FIRST_ALIAS,
    L1_BASE_FEE_RANGE,
    L1_BLOB_BASE_FEE_RANGE,
    L1_BLOCK_EVERY,
    MIN_VALUE_FOR_ALIAS,
    STARKNET_VERSION,
    STRK_PER_ETH,
    Block,
    DevnetChain,
    DevnetSequencer,
    RpcFailure,
)
from madara_orchestrator.starknet.aliases import compress_state_update_stateful
from madara_orchestrator.starknet.rpc import RpcCall, RpcError
from madara_orchestrator.starknet.squash import squash_state_updates
from madara_orchestrator.starknet.state_update import StateUpdate, parse_state_update


class InProcessRpc:
    """``BatchRpc`` straight into the sequencer's JSON-RPC methods (the HTTP path has its own tests)."""

    def __init__(self, sequencer: DevnetSequencer) -> None:
        self.sequencer = sequencer

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]:
        out: list[Any | RpcError] = []
        for call in calls:
            try:
                out.append(self.sequencer.call(call.method, call.params))
            except RpcFailure as failure:
                out.append(RpcError(failure.code, failure.message))
        return out


def chain_with(blocks: int, **kwargs: Any) -> DevnetChain:
    chain = DevnetChain(**kwargs)
    for _ in range(blocks):
        chain.produce_block()
    return chain


def storage_of(block: Block) -> dict[int, dict[int, int]]:
    return {
        int(s["address"], 16): {int(e["key"], 16): int(e["value"], 16) for e in s["storage_entries"]}
        for s in block.state_diff["storage_diffs"]
    }


def touched(block: Block) -> set[int]:
    """Addresses and keys (of contracts ≥ 0x80) the block's transactions touched."""
    storage = storage_of(block)
    storage.pop(ALIAS_CONTRACT, None)
    out = set(storage)
    out.update(k for a, entries in storage.items() if a >= MIN_VALUE_FOR_ALIAS for k in entries)
    out.update(int(n["contract_address"], 16) for n in block.state_diff["nonces"])
    out.update(int(d["address"], 16) for d in block.state_diff["deployed_contracts"])
    return out


def update_of(sequencer: DevnetSequencer, number: int) -> StateUpdate:
    return parse_state_update(sequencer.call("starknet_getStateUpdate", {"block_id": {"block_number": number}}))


def alias_over_rpc(sequencer: DevnetSequencer, key: int, block: int) -> int:
    return int(sequencer.call("starknet_getStorageAt", [hex(ALIAS_CONTRACT), hex(key), {"block_number": block}]), 16)


# -- traffic ------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_chain_and_another_seed_does_not() -> None:
    a, b, c = chain_with(4, seed=3, tx_per_block=15), chain_with(4, seed=3, tx_per_block=15), chain_with(4, seed=4)
    assert [(x.block_hash, x.state_diff, x.weights) for x in a.blocks] == [
        (x.block_hash, x.state_diff, x.weights) for x in b.blocks
    ]
    assert a.aliases == b.aliases
    assert [x.block_hash for x in a.blocks[1:]] != [x.block_hash for x in c.blocks[1:]]


def test_every_block_has_tx_per_block_transactions_and_the_diff_grows_with_it() -> None:
    small, large = chain_with(5, tx_per_block=10), chain_with(5, tx_per_block=100)
    for chain, n in ((small, 10), (large, 100)):
        for block in chain.blocks[1:]:
            assert len(block.tx_hashes) == n
            assert block.weights.n_txs == n

    def entries(chain: DevnetChain) -> int:
        return sum(len(e) for b in chain.blocks[1:] for e in storage_of(b).values())

    assert entries(large) > 6 * entries(small)


def test_fresh_app_slots_accumulate_across_blocks_instead_of_overwriting() -> None:
    chain = chain_with(12, tx_per_block=30)
    per_block: list[set[tuple[int, int]]] = []
    for block in chain.blocks[1:]:
        storage = storage_of(block)
        per_block.append({(a, k) for a in APP_CONTRACTS for k in storage.get(a, {}) if k != APP_COUNTER_KEY})
    distinct = set().union(*per_block)
    assert len(distinct) == sum(len(s) for s in per_block), "an app slot was written twice"
    assert len(distinct) >= 12 * 30, "each invoke writes at least one fresh slot"
    values = [v for b in chain.blocks[1:] for a in APP_CONTRACTS for k, v in storage_of(b).get(a, {}).items()]
    assert max(values).bit_length() > 240, "fresh slots hold random 251-bit values"


def test_a_block_without_transactions_changes_nothing_and_weighs_nothing() -> None:
    chain = chain_with(3, tx_per_block=0)
    for block in chain.blocks[1:]:
        assert block.tx_hashes == []
        diff = block.state_diff
        assert not any(diff[k] for k in ("storage_diffs", "nonces", "deployed_contracts", "declared_classes"))
        assert block.weights.values() == (0,) * 8


def test_bouncer_weights_follow_the_block_content() -> None:
    chain = chain_with(8, tx_per_block=40)
    for block in chain.blocks[1:]:
        w = block.weights
        storage = storage_of(block)
        storage.pop(ALIAS_CONTRACT, None)
        diff = block.state_diff
        assert w.state_diff_size == (
            sum(len(e) for e in storage.values())
            + len(diff["nonces"])
            + len(diff["deployed_contracts"])
            + len(diff["declared_classes"])
        )
        assert 2 * 40 <= w.n_events <= 4 * 40
        assert 40 * 1_000_000 <= w.sierra_gas <= 40 * 5_000_000
        assert w.proving_gas > w.sierra_gas
        assert w.receipt_l2_gas > w.sierra_gas
        assert w.l1_gas == 0 and w.message_segment_length == 0


def test_a_negative_tx_per_block_is_refused() -> None:
    with pytest.raises(ValueError, match="tx_per_block"):
        DevnetChain(tx_per_block=-1)
    with pytest.raises(ValueError, match="tx_per_block"):
        DevnetSequencer(DevnetChain(), tx_per_block=5)


# -- aliases (contract 0x2) ---------------------------------------------------------------------------


def test_each_address_and_key_gets_one_alias_in_the_block_that_first_touches_it() -> None:
    chain = chain_with(10, tx_per_block=25)
    sequencer = DevnetSequencer(chain)
    seen: set[int] = set()
    for block in chain.blocks:
        alias_writes = storage_of(block).get(ALIAS_CONTRACT, {})
        counter = alias_writes.pop(ALIAS_COUNTER_KEY, None)
        new = {k for k in touched(block) if k >= MIN_VALUE_FOR_ALIAS} - seen
        assert set(alias_writes) == new, f"block {block.number}: aliases written for exactly the new keys"
        if new:
            assert counter == max(alias_writes.values()) + 1
        for key in new:
            assert alias_over_rpc(sequencer, key, block.number) == alias_writes[key]
            if block.number > 0:
                assert alias_over_rpc(sequencer, key, block.number - 1) == 0, "no alias before the first touch"
        seen |= new
    aliases = sorted(chain.aliases.values())
    assert aliases == list(range(FIRST_ALIAS, FIRST_ALIAS + len(seen))), "aliases are 0x80, 0x81, ... once each"
    assert set(chain.aliases) == seen
    assert all(key >= MIN_VALUE_FOR_ALIAS for key in chain.aliases)
    assert alias_over_rpc(sequencer, ALIAS_COUNTER_KEY, chain.head) == FIRST_ALIAS + len(seen)
    for history_key in chain.storage:
        if history_key[0] == ALIAS_CONTRACT and history_key[1] != ALIAS_COUNTER_KEY:
            assert len(chain.storage[history_key].blocks) == 1, "an alias is never reassigned"


def test_genesis_initialises_the_alias_counter_and_small_values_are_never_aliased() -> None:
    chain = chain_with(2, tx_per_block=5)
    genesis = storage_of(chain.blocks[0])[ALIAS_CONTRACT]
    assert genesis[ALIAS_COUNTER_KEY] == FIRST_ALIAS + len(genesis) - 1
    assert all(key < MIN_VALUE_FOR_ALIAS or key in chain.aliases for b in chain.blocks for key in touched(b))
    assert not any(key < MIN_VALUE_FOR_ALIAS for key in chain.aliases)


async def test_stateful_compression_of_a_squashed_range_maps_back_through_the_alias_contract() -> None:
    chain = chain_with(9, tx_per_block=20)
    sequencer = DevnetSequencer(chain)
    rpc = InProcessRpc(sequencer)
    start, end = 4, 9
    squashed = await squash_state_updates(
        [update_of(sequencer, b) for b in range(start, end + 1)], pre_range_block=start - 1, rpc=rpc
    )
    compressed = await compress_state_update_stateful(squashed, reference_block=end, rpc=rpc)

    # What a decompressor does: read contract 0x2 back (the range's own writes and older aliases alike).
    reverse = {alias: key for key, alias in chain.aliases.items()}
    assert len(reverse) == len(chain.aliases)

    def original(value: int) -> int:
        assert value < FIRST_ALIAS + len(chain.aliases), f"{hex(value)} is not an alias"
        return value if value < MIN_VALUE_FOR_ALIAS else reverse[value]

    def storage(update: StateUpdate, *, unalias: bool) -> dict[int, dict[int, int]]:
        out: dict[int, dict[int, int]] = {}
        for s in update.state_diff.storage_diffs:
            is_aliased = unalias and s.address >= MIN_VALUE_FOR_ALIAS
            address = original(s.address) if is_aliased else s.address
            out[address] = {(original(e.key) if is_aliased else e.key): e.value for e in s.storage_entries}
        return out

    assert storage(compressed, unalias=True) == storage(squashed, unalias=False)
    nonces = {original(n.contract_address): n.nonce for n in compressed.state_diff.nonces}
    assert nonces == {n.contract_address: n.nonce for n in squashed.state_diff.nonces}
    deployed = {original(d.address): d.class_hash for d in compressed.state_diff.deployed_contracts}
    assert deployed == {d.address: d.class_hash for d in squashed.state_diff.deployed_contracts}
    # Keys first aliased before the range were read from 0x2 over RPC, not taken from the range's writes.
    range_writes = storage(squashed, unalias=False)[ALIAS_CONTRACT]
    assert any(
        s.address >= MIN_VALUE_FOR_ALIAS and original(s.address) not in range_writes
        for s in compressed.state_diff.storage_diffs
    )


# -- announced Starknet version -------------------------------------------------------------------------


def test_blocks_announce_a_version_from_the_block_it_is_set_for() -> None:
    sequencer = DevnetSequencer(chain_with(6))

    def announced(block: int) -> str:
        return sequencer.call("starknet_getBlockWithTxHashes", {"block_id": {"block_number": block}})[
            "starknet_version"
        ]

    assert {announced(b) for b in range(7)} == {STARKNET_VERSION}
    sequencer.announce_version("0.99.0", from_block=4)
    sequencer.announce_version("0.14.1", from_block=2)
    assert [announced(b) for b in range(7)] == [STARKNET_VERSION] * 2 + ["0.14.1"] * 2 + ["0.99.0"] * 3
    assert [sequencer.version_of(b) for b in range(7)] == [announced(b) for b in range(7)]
    sequencer.announce_version("0.14.2", from_block=4)  # replaces the one set for block 4
    assert announced(6) == "0.14.2"


# -- recorded L1 prices ---------------------------------------------------------------------------------


def test_headers_record_l1_prices_that_move_by_at_most_one_eip1559_step_per_l1_block() -> None:
    chain = DevnetChain(seed=3, tx_per_block=0)
    for _ in range(10 * L1_BLOCK_EVERY):
        chain.produce_block()
    sequencer = DevnetSequencer(chain)
    recorded: list[tuple[int, int]] = []
    for number in range(chain.head + 1):
        header = sequencer.call("starknet_getBlockWithTxHashes", {"block_id": {"block_number": number}})
        gas, data = header["l1_gas_price"], header["l1_data_gas_price"]
        assert int(gas["price_in_fri"], 16) == int(gas["price_in_wei"], 16) * STRK_PER_ETH
        assert int(data["price_in_fri"], 16) == int(data["price_in_wei"], 16) * STRK_PER_ETH
        assert set(header["l2_gas_price"]) == {"price_in_fri", "price_in_wei"}, "JSON-RPC v0.8 headers have it"
        recorded.append((int(gas["price_in_wei"], 16), int(data["price_in_wei"], 16)))
    assert recorded == [(b.l1_gas_price_wei, b.l1_data_gas_price_wei) for b in chain.blocks]
    for number in range(1, len(recorded)):
        (base_before, blob_before), (base, blob) = recorded[number - 1], recorded[number]
        if number % L1_BLOCK_EVERY:
            assert (base, blob) == (base_before, blob_before), f"block {number}: no L1 block in between"
        assert abs(base - base_before) <= base_before / 8 and abs(blob - blob_before) <= blob_before / 8
        assert L1_BASE_FEE_RANGE[0] <= base <= L1_BASE_FEE_RANGE[1]
        assert L1_BLOB_BASE_FEE_RANGE[0] <= blob <= L1_BLOB_BASE_FEE_RANGE[1]
    assert len({base for base, _ in recorded}) > 5 and len({blob for _, blob in recorded}) > 5, "they vary"
