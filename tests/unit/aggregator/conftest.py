"""An aggregator batch of two SNOS batches (blocks 3..4 and 5..6) with messages and state diffs, as the
tests' SNOS runner would have left it: OS outputs in the full-output layout and Cairo PIEs holding them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from madara_orchestrator.aggregator.contract import AggregatorRequest, ChainStart, RequestChild
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from tests.helpers.snos_runner_program import build_os_pie

CONFIG_HASH = 0x5EED
CONTRACT = 0x1234
TO_L1 = [[0x1234, 0xE1, 2, 7, 8], [0x1234, 0xE1, 1, 9]]
"""One L2→L1 message per child: from, to, payload size, payload."""
TO_L2 = [0xE2, 0x1234, 0, 0x5E1, 1, 42]
"""One L1→L2 message (the first child's): from, to, nonce, selector, payload size, payload."""


def os_output(
    prev_block: int,
    end_block: int,
    roots: tuple[int, int],
    hashes: tuple[int, int],
    *,
    to_l1: Sequence[int] = (),
    to_l2: Sequence[int] = (),
    nonces: tuple[int, int] = (0, 1),
    storage: Sequence[tuple[int, int, int]] = (),
) -> list[int]:
    """A full-output OS output: header, messages, one contract's changes, no classes."""
    header = [
        roots[0],
        roots[1],
        prev_block % STARKNET_PRIME,
        end_block,
        hashes[0],
        hashes[1],
        0,
        CONFIG_HASH,
        0,
        1,
    ]
    messages = [len(to_l1), *to_l1, len(to_l2), *to_l2]
    diff = [1, CONTRACT, *nonces, 0x99, 0x99, len(storage)]
    for key, prev, new in storage:
        diff += [key, prev, new]
    return [*header, *messages, *diff, 0]


def children() -> tuple[RequestChild, RequestChild]:
    first = os_output(
        2, 4, (0xA0, 0xA1), (0xB2, 0xB4), to_l1=TO_L1[0], to_l2=TO_L2, nonces=(0, 1), storage=[(0x10, 0, 0x20)]
    )
    second = os_output(
        4, 6, (0xA1, 0xA2), (0xB4, 0xB6), to_l1=TO_L1[1], nonces=(1, 2), storage=[(0x10, 0x20, 0x30), (0x11, 0, 5)]
    )
    return (
        RequestChild(snos_batch_index=11, start_block=3, end_block=4, os_output=tuple(first), cairo_pie=pie(first)),
        RequestChild(snos_batch_index=12, start_block=5, end_block=6, os_output=tuple(second), cairo_pie=pie(second)),
    )


def pie(output: Sequence[int]) -> bytes:
    return build_os_pie(output, n_steps=1000)


START = ChainStart(prev_block_number=2, initial_root=0xA0, prev_block_hash=0xB2)


def request(**overrides: object) -> AggregatorRequest:
    base = AggregatorRequest(
        batch_index=7,
        start_block=3,
        end_block=6,
        rpc_url="http://127.0.0.1:9944",
        chain_id="0x4d41444152415f4445564e4554",
        layout="all_cairo",
        full_output=False,
        use_kzg_da=True,
        children=children(),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]
