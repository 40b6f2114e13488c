"""Squashing (SPEC §5.5) with pre-range checks through batched JSON-RPC over real HTTP."""

from __future__ import annotations

import pytest

from madara_orchestrator.domain.errors import BackendUnavailable
from madara_orchestrator.starknet.rpc import StarknetRpcClient
from madara_orchestrator.starknet.squash import squash_state_updates
from madara_orchestrator.starknet.state_update import (
    ContractStorageDiff,
    DeclaredClass,
    DeployedContract,
    NonceUpdate,
    ReplacedClass,
    StateDiff,
    StateUpdate,
    StorageEntry,
)
from tests.helpers.jsonrpc_server import CannedStarknet, JsonRpcServer

A, B, C, D = 0x1000, 0x2000, 0x3000, 0x4000


def storage(address: int, *entries: tuple[int, int]) -> ContractStorageDiff:
    return ContractStorageDiff(address=address, storage_entries=tuple(StorageEntry(key=k, value=v) for k, v in entries))


def update(block: int, diff: StateDiff) -> StateUpdate:
    return StateUpdate(block_hash=0xB0 + block, old_root=0xA0 + block, new_root=0xA1 + block, state_diff=diff)


def entries_of(result: StateUpdate) -> dict[int, dict[int, int]]:
    return {s.address: {e.key: e.value for e in s.storage_entries} for s in result.state_diff.storage_diffs}


async def test_values_written_back_to_their_pre_range_value_are_dropped(
    canned_starknet: CannedStarknet, jsonrpc_server: JsonRpcServer, rpc_client: StarknetRpcClient
) -> None:
    canned_starknet.class_hashes.update({A: 0xCA, B: 0xCB})
    canned_starknet.storage.update({(A, 1): 10, (A, 2): 20, (B, 7): 5})
    first = update(11, StateDiff(storage_diffs=(storage(A, (1, 11), (2, 99)), storage(B, (7, 6)))))
    second = update(
        12, StateDiff(storage_diffs=(storage(A, (2, 20), (3, 0)), storage(B, (7, 5)), storage(C, (1, 0), (2, 4))))
    )

    result = await squash_state_updates([first, second], pre_range_block=10, rpc=rpc_client)

    # A.1 changed (10 → 11); A.2 went back to 20; A.3 was 0 and stays 0; B.7 went back to 5;
    # C did not exist before the range, so its zero write is no change.
    assert entries_of(result) == {A: {1: 11}, C: {2: 4}}
    assert (result.block_hash, result.old_root, result.new_root) == (0xB0 + 12, 0xA0 + 11, 0xA1 + 12)
    assert set(canned_starknet.blocks_asked) == {10}
    methods = [c["method"] for c in jsonrpc_server.calls]
    assert methods.count("starknet_getClassHashAt") == 3
    # storage is read only for contracts that existed at the pre-range block: A (3 keys) and B (1)
    assert methods.count("starknet_getStorageAt") == 4
    storage_call = next(c for c in jsonrpc_server.calls if c["method"] == "starknet_getStorageAt")
    assert storage_call["params"][2] == {"block_number": 10}


async def test_without_pre_range_block_zero_writes_and_replaced_classes_are_dropped(
    jsonrpc_server: JsonRpcServer,
) -> None:
    first = update(
        0,
        StateDiff(
            storage_diffs=(storage(A, (1, 0), (2, 3)), storage(B, (1, 0))),
            replaced_classes=(ReplacedClass(contract_address=D, class_hash=0xD1),),
            deployed_contracts=(DeployedContract(address=A, class_hash=0xCA),),
        ),
    )
    result = await squash_state_updates([first], pre_range_block=None, rpc=None)
    assert entries_of(result) == {A: {2: 3}}
    assert result.state_diff.replaced_classes == ()
    assert jsonrpc_server.bodies == []


async def test_replaced_class_of_a_contract_deployed_in_range_becomes_its_deployed_class(
    canned_starknet: CannedStarknet, rpc_client: StarknetRpcClient
) -> None:
    canned_starknet.class_hashes.update({B: 0xB1, C: 0xC1})
    first = update(
        5,
        StateDiff(
            deployed_contracts=(DeployedContract(address=A, class_hash=0xA1),),
            replaced_classes=(ReplacedClass(contract_address=B, class_hash=0xB2),),
            nonces=(NonceUpdate(contract_address=A, nonce=1),),
        ),
    )
    second = update(
        6,
        StateDiff(
            replaced_classes=(
                ReplacedClass(contract_address=A, class_hash=0xA2),
                ReplacedClass(contract_address=C, class_hash=0xC1),
                ReplacedClass(contract_address=D, class_hash=0xD1),
            ),
            nonces=(NonceUpdate(contract_address=A, nonce=2),),
        ),
    )
    result = await squash_state_updates([first, second], pre_range_block=4, rpc=rpc_client)
    diff = result.state_diff
    assert diff.deployed_contracts == (DeployedContract(address=A, class_hash=0xA2),)
    # B changed class; C was replaced by the class it already had; D did not exist at block 4.
    assert diff.replaced_classes == (
        ReplacedClass(contract_address=B, class_hash=0xB2),
        ReplacedClass(contract_address=D, class_hash=0xD1),
    )
    assert diff.nonces == (NonceUpdate(contract_address=A, nonce=2),)


async def test_declared_and_migrated_classes_are_merged_and_sorted(rpc_client: StarknetRpcClient) -> None:
    first = update(
        1,
        StateDiff(
            declared_classes=(DeclaredClass(class_hash=9, compiled_class_hash=1),),
            deprecated_declared_classes=(0x77, 0x33),
            migrated_compiled_classes=(DeclaredClass(class_hash=5, compiled_class_hash=6),),
        ),
    )
    second = update(
        2,
        StateDiff(
            declared_classes=(DeclaredClass(class_hash=3, compiled_class_hash=4),),
            deprecated_declared_classes=(0x33,),
        ),
    )
    result = await squash_state_updates([first, second], pre_range_block=0, rpc=rpc_client)
    diff = result.state_diff
    assert diff.declared_classes == (
        DeclaredClass(class_hash=3, compiled_class_hash=4),
        DeclaredClass(class_hash=9, compiled_class_hash=1),
    )
    assert diff.deprecated_declared_classes == (0x33, 0x77)
    assert diff.migrated_compiled_classes == (DeclaredClass(class_hash=5, compiled_class_hash=6),)


async def test_no_migrated_classes_squash_to_null(rpc_client: StarknetRpcClient) -> None:
    result = await squash_state_updates([update(1, StateDiff())], pre_range_block=0, rpc=rpc_client)
    assert result.state_diff.migrated_compiled_classes is None


async def test_many_reads_go_in_batches_of_at_most_100_calls(
    canned_starknet: CannedStarknet, jsonrpc_server: JsonRpcServer, rpc_client: StarknetRpcClient
) -> None:
    canned_starknet.class_hashes[A] = 0xCA
    canned_starknet.storage.update({(A, k): k for k in range(250)})
    writes = storage(A, *((k, k + 1 if k % 2 else k) for k in range(250)))
    result = await squash_state_updates(
        [update(3, StateDiff(storage_diffs=(writes,)))], pre_range_block=2, rpc=rpc_client
    )
    assert entries_of(result) == {A: {k: k + 1 for k in range(1, 250, 2)}}
    assert jsonrpc_server.batch_sizes() == [1, 100, 100, 50]


async def test_a_failing_http_request_is_retried(
    canned_starknet: CannedStarknet, jsonrpc_server: JsonRpcServer, rpc_client: StarknetRpcClient
) -> None:
    canned_starknet.class_hashes[A] = 0xCA
    canned_starknet.storage[(A, 1)] = 1
    jsonrpc_server.fail_next_requests = 2
    result = await squash_state_updates(
        [update(3, StateDiff(storage_diffs=(storage(A, (1, 2)),)))], pre_range_block=2, rpc=rpc_client
    )
    assert entries_of(result) == {A: {1: 2}}
    assert len(jsonrpc_server.bodies) == 4  # two 503s, then the class-hash and the storage batches


async def test_an_rpc_error_other_than_contract_not_found_fails_the_squash(
    canned_starknet: CannedStarknet, rpc_client: StarknetRpcClient
) -> None:
    canned_starknet.class_hashes[A] = 0xCA
    canned_starknet.failing_storage.add((A, 1))
    with pytest.raises(BackendUnavailable, match=r"storage 0x1 of contract 0x1000 at block 2"):
        await squash_state_updates(
            [update(3, StateDiff(storage_diffs=(storage(A, (1, 2)),)))], pre_range_block=2, rpc=rpc_client
        )


async def test_an_unreachable_node_is_backend_unavailable() -> None:
    client = StarknetRpcClient("http://127.0.0.1:9/", attempts=2, retry_pause_s=0.01, timeout_s=2)
    try:
        with pytest.raises(BackendUnavailable, match="failed after 2 attempts"):
            await squash_state_updates(
                [update(3, StateDiff(storage_diffs=(storage(A, (1, 2)),)))], pre_range_block=2, rpc=client
            )
    finally:
        await client.aclose()


@pytest.mark.parametrize("pre_range_block", [10, None])
async def test_squashing_one_update_onto_a_squashed_prefix_equals_squashing_them_all(
    canned_starknet: CannedStarknet,
    jsonrpc_server: JsonRpcServer,
    rpc_client: StarknetRpcClient,
    pre_range_block: int | None,
) -> None:
    """Batching adds one block at a time (``squashed_prefix=1``): the result is what squashing every block
    at once gives, and only what the new block touches is read at the pre-range block again."""
    canned_starknet.class_hashes.update({A: 0xCA, B: 0xCB, D: 0xCD})
    canned_starknet.storage.update({(A, 1): 10, (A, 2): 20, (B, 7): 5, (B, 8): 1})
    updates = [
        update(11, StateDiff(storage_diffs=(storage(A, (1, 11), (2, 99)), storage(B, (7, 6), (8, 0))))),
        update(
            12,
            StateDiff(
                storage_diffs=(storage(A, (2, 20), (3, 0)), storage(C, (1, 0), (2, 4))),
                replaced_classes=(ReplacedClass(contract_address=D, class_hash=0xEE),),
                nonces=(NonceUpdate(contract_address=A, nonce=3),),
            ),
        ),
        update(
            13,
            StateDiff(
                storage_diffs=(storage(B, (7, 5), (9, 3)), storage(C, (2, 0))),
                replaced_classes=(ReplacedClass(contract_address=D, class_hash=0xCD),),
                deployed_contracts=(DeployedContract(address=0x5000, class_hash=0xAB),),
            ),
        ),
        update(14, StateDiff(storage_diffs=(storage(A, (1, 10)), storage(B, (7, 8))))),
    ]
    rpc = rpc_client if pre_range_block is not None else None
    everything = await squash_state_updates(updates, pre_range_block=pre_range_block, rpc=rpc)
    running = await squash_state_updates(updates[:1], pre_range_block=pre_range_block, rpc=rpc)
    for nxt in updates[1:]:
        jsonrpc_server.bodies.clear()
        running = await squash_state_updates(
            [running, nxt], pre_range_block=pre_range_block, rpc=rpc, squashed_prefix=1
        )
        read = {tuple(c["params"][:2]) for c in jsonrpc_server.calls if c["method"] == "starknet_getStorageAt"}
        touched = {(hex(s.address), hex(e.key)) for s in nxt.state_diff.storage_diffs for e in s.storage_entries}
        assert read <= touched, "only the new block's slots are compared with the pre-range state"
    assert running == everything
