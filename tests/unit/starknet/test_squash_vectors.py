"""Squashing and batch compression on real mainnet state updates (../shared/vectors/da/state_update).

The three recorded blocks are not consecutive, so there is no pre-range state to compare with: these
check the fold itself (later writes win, zero writes dropped, order) and that a squashed real diff
compresses to exactly what cairo-lang's OS encoding of the same diff gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from madara_orchestrator.starknet.compression import compress, compressed_length, decompress
from madara_orchestrator.starknet.da import state_update_to_felts
from madara_orchestrator.starknet.squash import squash_state_updates
from madara_orchestrator.starknet.state_update import StateUpdate, parse_state_update, sort_state_diff
from tests.unit.starknet.test_compression import cairo_os_state_diff

BLOCKS = (178, 631861, 640641)


def load(vectors_dir: Path, block: int) -> StateUpdate:
    return parse_state_update(json.loads((vectors_dir / "da" / "state_update" / f"{block}.json").read_text()))


def storage_of(update: StateUpdate) -> dict[tuple[int, int], int]:
    return {(s.address, e.key): e.value for s in update.state_diff.storage_diffs for e in s.storage_entries}


@pytest.mark.parametrize("block", BLOCKS)
async def test_a_real_block_squashed_alone_keeps_its_non_zero_writes_sorted(vectors_dir: Path, block: int) -> None:
    update = load(vectors_dir, block)
    squashed = await squash_state_updates([update], pre_range_block=None)
    assert storage_of(squashed) == {slot: v for slot, v in storage_of(update).items() if v != 0}
    assert squashed.state_diff == sort_state_diff(squashed.state_diff)
    assert {n.contract_address: n.nonce for n in squashed.state_diff.nonces} == {
        n.contract_address: n.nonce for n in update.state_diff.nonces
    }
    assert (squashed.block_hash, squashed.old_root, squashed.new_root) == (
        update.block_hash,
        update.old_root,
        update.new_root,
    )


async def test_real_blocks_squash_with_later_writes_winning(vectors_dir: Path) -> None:
    updates = [load(vectors_dir, b) for b in BLOCKS]
    squashed = await squash_state_updates(updates, pre_range_block=None)
    expected: dict[tuple[int, int], int] = {}
    for update in updates:
        expected.update(storage_of(update))
    assert storage_of(squashed) == {slot: v for slot, v in expected.items() if v != 0}
    declared = {c.class_hash for u in updates for c in u.state_diff.declared_classes}
    assert {c.class_hash for c in squashed.state_diff.declared_classes} == declared
    assert squashed.old_root == updates[0].old_root and squashed.new_root == updates[-1].new_root
    # Squashing one block at a time onto the running result gives the same update.
    running = await squash_state_updates(updates[:1], pre_range_block=None)
    for update in updates[1:]:
        running = await squash_state_updates([running, update], pre_range_block=None, squashed_prefix=1)
    assert running == squashed


async def test_a_squashed_real_diff_compresses_like_cairo_langs_os_encoding(vectors_dir: Path) -> None:
    squashed = await squash_state_updates([load(vectors_dir, b) for b in BLOCKS], pre_range_block=None)
    felts = state_update_to_felts(squashed, starknet_version="0.13.3")
    compressed = compress(felts)
    assert compressed == cairo_os_state_diff(squashed).encode(full_output=False)
    assert decompress(compressed) == felts
    assert compressed_length(felts) == len(compressed) < len(felts)
