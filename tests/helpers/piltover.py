"""What an L3 settles on the Starknet double, shaped as the real pipeline shapes it: an OS output (the SNOS
layout), the bootloaded SNOS output the SNOS proof attests, the layout bridge output and its Integrity fact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from madara_orchestrator.devnet.layout_bridge import (
    BOOTLOADER_PROGRAM_HASH,
    DEVNET_CAIRO_VERIFIER_PROGRAM_HASH,
    FELT_PRIME,
    bootloaded_output,
    bridge_output,
    l2_fact,
)
from madara_orchestrator.devnet.program_output import DEVNET_OS_PROGRAM_HASH, devnet_config_hash

BEFORE_GENESIS = FELT_PRIME - 1
OS = 3
"""Where the OS output starts in a bootloaded SNOS output (after n_tasks, the task size, the program hash)."""
INITIAL_ROOT, FINAL_ROOT, PREV_BLOCK, NEW_BLOCK, PREV_HASH, NEW_HASH, OS_PROGRAM_HASH, CONFIG_HASH = (
    OS + i for i in range(8)
)
"""Positions of the OS header's words in a bootloaded SNOS output."""
MESSAGES = OS + 10
"""Where the messages to L1 start (without KZG DA): their word count."""


@dataclass(frozen=True)
class ToL1:
    from_address: int
    to_address: int
    payload: tuple[int, ...] = ()

    def words(self) -> list[int]:
        return [self.from_address, self.to_address, len(self.payload), *self.payload]


@dataclass(frozen=True)
class ToL2:
    from_address: int
    to_address: int
    nonce: int
    selector: int
    payload: tuple[int, ...] = field(default=())

    def words(self) -> list[int]:
        return [self.from_address, self.to_address, self.nonce, self.selector, len(self.payload), *self.payload]


def root(block: int) -> int:
    return 0x1000 + block


def block_hash(block: int) -> int:
    return 0x2000 + block


def os_output(
    *,
    prev_block: int,
    new_block: int,
    old_root: int | None = None,
    new_root: int | None = None,
    config_hash: int = devnet_config_hash(),
    to_l1: Sequence[ToL1] = (),
    to_l2: Sequence[ToL2] = (),
) -> list[int]:
    """A Starknet OS output (header, no KZG DA, full output; the messages; an empty state diff). Block numbers
    are felts (``BEFORE_GENESIS`` for the block before the first)."""
    first = prev_block == BEFORE_GENESIS
    l1_words = [w for m in to_l1 for w in m.words()]
    l2_words = [w for m in to_l2 for w in m.words()]
    return [
        (0 if first else root(prev_block)) if old_root is None else old_root,
        root(new_block) if new_root is None else new_root,
        prev_block,
        new_block,
        0 if first else block_hash(prev_block),
        block_hash(new_block),
        0,  # os_program_hash: 0 from the OS itself
        config_hash,
        0,  # use_kzg_da
        1,  # full_output
        len(l1_words),
        *l1_words,
        len(l2_words),
        *l2_words,
        0,  # contracts in the state diff
        0,  # classes
    ]


def snos_output(*, program_hash: int = DEVNET_OS_PROGRAM_HASH, **header: Any) -> list[int]:
    """The bootloaded SNOS output the SNOS proof attests (``os_output``'s arguments)."""
    return bootloaded_output(program_hash, os_output(**header))


def batch(block: int, **header: Any) -> list[int]:
    """The SNOS output settling L3 ``block`` right after ``block - 1``."""
    return snos_output(prev_block=block - 1 if block > 0 else BEFORE_GENESIS, new_block=block, **header)


def bridge_of(
    snos: Sequence[int], *, layout_bridge_program_hash: int = DEVNET_CAIRO_VERIFIER_PROGRAM_HASH
) -> list[int]:
    return bridge_output(snos, layout_bridge_program_hash=layout_bridge_program_hash)


def fact_of(bridge: Sequence[int], *, bootloader_program_hash: int = BOOTLOADER_PROGRAM_HASH) -> int:
    """The fact Integrity registers for a (bootloaded) layout bridge proof of ``bridge``."""
    return l2_fact(bootloader_program_hash, bridge)


def update_state_calldata(snos: Sequence[int], bridge: Sequence[int]) -> list[int]:
    """``update_state(snos_output, layout_bridge_output)``: the original's calldata, two spans."""
    return [len(snos), *snos, len(bridge), *bridge]
