"""One send per settlement key at a time in this process (settlement/durable.py ``KeyLocks``), and a key's lock
kept only while a send holds or waits for it: every batch settles under a key of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from madara_orchestrator.settlement.durable import KeyLocks, SettlementKeyBusy


async def test_sends_of_one_key_take_turns_and_the_lock_goes_with_the_last() -> None:
    locks = KeyLocks()
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def send(name: str) -> None:
        async with locks.hold("StateTransition-1"):
            order.append(f"{name} in")
            first_in.set()
            await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(send("a"))
    await first_in.wait()
    second = asyncio.create_task(send("b"))
    await asyncio.sleep(0)  # one turn of the loop: the second send is now waiting for the lock
    assert order == ["a in"]
    assert len(locks) == 1
    release.set()
    await asyncio.gather(first, second)
    assert order == ["a in", "a out", "b in", "b out"]
    assert len(locks) == 0


async def test_a_thousand_settled_keys_leave_no_lock_behind_whatever_their_end() -> None:
    refused: set[str] = set()

    @contextlib.asynccontextmanager
    async def guard(key: str) -> AsyncIterator[bool]:
        yield key not in refused

    locks = KeyLocks(guard)
    for n in range(1000):
        async with locks.hold(f"StateTransition-{n}"):
            assert len(locks) == 1
    with pytest.raises(RuntimeError):
        async with locks.hold("StateTransition-1000"):
            raise RuntimeError("the send failed")
    refused.add("StateTransition-1001")
    with pytest.raises(SettlementKeyBusy):
        async with locks.hold("StateTransition-1001"):
            pass
    assert len(locks) == 0
