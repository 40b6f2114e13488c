"""The batching read cache (starknet/rpc_cache.py): what it answers without the node, what it forgets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from madara_orchestrator.domain.errors import RpcError
from madara_orchestrator.interfaces import RpcCall
from madara_orchestrator.starknet.compression import ALIAS_CONTRACT_ADDRESS
from madara_orchestrator.starknet.rpc_cache import CachingBatchRpc
from madara_orchestrator.starknet.rpc_types import CONTRACT_NOT_FOUND, block_id

CONTRACT = 0x1234
DEPLOYED = {0x1234, 0x5678}


class Node:
    """Answers storage reads with a value made of the call, class hash reads of a contract not deployed
    with "contract not found"; counts the calls that reach it."""

    def __init__(self) -> None:
        self.calls: list[RpcCall] = []

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]:
        self.calls.extend(calls)
        return [self.answer(call) for call in calls]

    @staticmethod
    def answer(call: RpcCall) -> Any | RpcError:
        if call.method == "starknet_getClassHashAt":
            address = int(call.params[1], 16)
            if address not in DEPLOYED:
                return RpcError(CONTRACT_NOT_FOUND, "Contract not found")
            return hex(address * 7)
        contract, key = int(call.params[0], 16), int(call.params[1], 16)
        return hex(contract + key + call.params[2]["block_number"])


def storage(key: int, block: int, contract: int = CONTRACT) -> RpcCall:
    return RpcCall("starknet_getStorageAt", [hex(contract), hex(key), block_id(block)])


def class_hash(address: int, block: int) -> RpcCall:
    return RpcCall("starknet_getClassHashAt", [block_id(block), hex(address)])


def alias(key: int, block: int) -> RpcCall:
    return storage(key, block, contract=ALIAS_CONTRACT_ADDRESS)


async def test_reads_at_a_block_are_answered_once_until_the_blocks_below_are_forgotten() -> None:
    node = Node()
    cache = CachingBatchRpc(node)
    reads = [storage(0x10, 5), class_hash(0x9999, 5), storage(0x10, 9), class_hash(0x1234, 9)]
    first = await cache.batch(reads)
    assert len(node.calls) == 4
    again = await cache.batch(reads)
    assert len(node.calls) == 4, "every read was answered from the cache"
    assert [str(a) for a in again] == [str(a) for a in first]
    assert cache.read_blocks() == [5, 9]

    cache.forget_before(9)
    assert cache.read_blocks() == [9]
    assert len(cache) == 2
    await cache.batch(reads[2:])
    assert len(node.calls) == 4, "the reads at block 9 are still kept"
    answers = await cache.batch(reads[:2])
    assert node.calls[4:] == reads[:2], "the reads below block 9 went to the node again"
    assert answers[0] == first[0]
    assert isinstance(answers[1], RpcError) and answers[1].code == CONTRACT_NOT_FOUND


async def test_forgetting_keeps_the_aliases_which_answer_reads_at_any_later_block() -> None:
    node = Node()
    cache = CachingBatchRpc(node)
    await cache.batch([alias(0x200, 3)])
    cache.forget_before(100)
    assert cache.read_blocks() == []
    assert await cache.batch([alias(0x200, 150)]) == [Node.answer(alias(0x200, 3))]
    assert len(node.calls) == 1


async def test_aliases_are_bounded_the_least_recently_used_going_first() -> None:
    node = Node()
    cache = CachingBatchRpc(node, max_aliases=2)
    await cache.batch([alias(0x200, 3), alias(0x300, 3)])
    await cache.batch([alias(0x200, 4)])  # 0x200 used again: 0x300 is now the least recently used
    await cache.batch([alias(0x400, 3)])
    cache.forget_before(100)
    asked = len(node.calls)
    await cache.batch([alias(0x200, 150), alias(0x400, 150)])
    assert len(node.calls) == asked, "the two most recently used aliases are kept"
    await cache.batch([alias(0x300, 150)])
    assert node.calls[asked:] == [alias(0x300, 150)], "the least recently used one was dropped"
    assert len(cache) == 3  # two aliases, and the read at block 150 that was not answered by one


async def test_a_batcher_s_worth_of_blocks_leaves_only_the_open_batch_s_reads() -> None:
    """As batching uses it: each block reads the open batch's pre-range block and its own block before; a
    batch opening forgets what is below its pre-range block. However many batches, the cache holds one's."""
    cache = CachingBatchRpc(Node())
    sizes = []
    for start in range(0, 400, 4):  # a hundred batches of four blocks
        if start:
            cache.forget_before(start - 1)
        for block in range(start, start + 4):
            reads = [storage(k, max(start - 1, 0)) for k in range(block, block + 8)]
            reads += [alias(0x1000 + k, max(block - 1, 0)) for k in range(3)]
            await cache.batch(reads)
        sizes.append(len(cache))
    assert len(set(sizes[1:])) == 1, f"the cache grew with the batches: {sizes}"
    assert cache.read_blocks() == [395]
