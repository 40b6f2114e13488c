"""Stateful compression (SPEC §5.7): aliases read from contract 0x2 over real HTTP JSON-RPC."""

from __future__ import annotations

import pytest

from madara_orchestrator.domain.errors import BackendUnavailable
from madara_orchestrator.starknet.aliases import compress_state_update, compress_state_update_stateful
from madara_orchestrator.starknet.compression import compress, decompress
from madara_orchestrator.starknet.da import state_update_to_felts
from madara_orchestrator.starknet.rpc import StarknetRpcClient
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

ALIAS = 0x2
BIG_A, BIG_B, BIG_C = 0x5000, 0x6000, 0x7000
KEY_1, KEY_2 = 0x900, 0xA00


def storage(address: int, *entries: tuple[int, int]) -> ContractStorageDiff:
    return ContractStorageDiff(address=address, storage_entries=tuple(StorageEntry(key=k, value=v) for k, v in entries))


def make_update() -> StateUpdate:
    return StateUpdate(
        block_hash=0xB,
        old_root=0x1,
        new_root=0x2,
        state_diff=StateDiff(
            storage_diffs=(
                storage(BIG_A, (KEY_1, 0x11), (0x10, 0x12)),
                storage(0x5, (KEY_2, 0x13)),  # a system-range contract keeps its keys
                storage(ALIAS, (BIG_B, 0x90), (0x3, 0x91)),  # the update assigns BIG_B its alias
            ),
            deployed_contracts=(DeployedContract(address=BIG_B, class_hash=0xC1),),
            nonces=(NonceUpdate(contract_address=BIG_C, nonce=4),),
            replaced_classes=(ReplacedClass(contract_address=BIG_A, class_hash=0xC2),),
            declared_classes=(DeclaredClass(class_hash=0xDD, compiled_class_hash=0xEE),),
        ),
    )


async def test_addresses_and_keys_are_replaced_by_their_aliases(
    canned_starknet: CannedStarknet, jsonrpc_server: JsonRpcServer, rpc_client: StarknetRpcClient
) -> None:
    canned_starknet.storage.update({(ALIAS, BIG_A): 0x80, (ALIAS, KEY_1): 0x81, (ALIAS, BIG_C): 0x82})
    result = await compress_state_update_stateful(make_update(), reference_block=41, rpc=rpc_client)
    diff = result.state_diff

    assert [(s.address, [(e.key, e.value) for e in s.storage_entries]) for s in diff.storage_diffs] == [
        (ALIAS, [(0x3, 0x91), (BIG_B, 0x90)]),
        (0x5, [(KEY_2, 0x13)]),
        (0x80, [(0x10, 0x12), (0x81, 0x11)]),  # key < 0x80 stays; entries re-sorted by aliased key
    ]
    assert diff.deployed_contracts == (DeployedContract(address=0x90, class_hash=0xC1),)
    assert diff.nonces == (NonceUpdate(contract_address=0x82, nonce=4),)
    assert diff.replaced_classes == (ReplacedClass(contract_address=0x80, class_hash=0xC2),)
    assert diff.declared_classes == make_update().state_diff.declared_classes
    assert (result.old_root, result.new_root) == (0x1, 0x2)

    # only the aliases not assigned by the update itself are read, from contract 0x2 at block 41,
    # in one batch
    asked = {int(c["params"][1], 16) for c in jsonrpc_server.calls}
    assert asked == {BIG_A, KEY_1, BIG_C}
    assert all(c["params"][0] == "0x2" and c["params"][2] == {"block_number": 41} for c in jsonrpc_server.calls)
    assert jsonrpc_server.batch_sizes() == [3]


async def test_an_unassigned_alias_reads_as_zero(
    canned_starknet: CannedStarknet, rpc_client: StarknetRpcClient
) -> None:
    only = StateUpdate(
        block_hash=1,
        old_root=1,
        new_root=2,
        state_diff=StateDiff(nonces=(NonceUpdate(contract_address=BIG_C, nonce=1),)),
    )
    result = await compress_state_update_stateful(only, reference_block=1, rpc=rpc_client)
    assert result.state_diff.nonces == (NonceUpdate(contract_address=0, nonce=1),)


async def test_a_failed_alias_read_is_an_error(canned_starknet: CannedStarknet, rpc_client: StarknetRpcClient) -> None:
    canned_starknet.failing_storage.add((ALIAS, BIG_C))
    only = StateUpdate(
        block_hash=1,
        old_root=1,
        new_root=2,
        state_diff=StateDiff(nonces=(NonceUpdate(contract_address=BIG_C, nonce=1),)),
    )
    with pytest.raises(BackendUnavailable, match="alias of 0x7000"):
        await compress_state_update_stateful(only, reference_block=1, rpc=rpc_client)


@pytest.mark.parametrize(
    ("version", "is_aliased", "is_compressed"),
    [("0.13.2", False, False), ("0.13.3", False, True), ("0.13.4", True, True), ("0.14.2", True, True)],
)
async def test_the_batch_compression_path_depends_on_the_version(
    canned_starknet: CannedStarknet,
    jsonrpc_server: JsonRpcServer,
    rpc_client: StarknetRpcClient,
    version: str,
    is_aliased: bool,
    is_compressed: bool,
) -> None:
    canned_starknet.storage.update({(ALIAS, BIG_A): 0x80, (ALIAS, KEY_1): 0x81, (ALIAS, BIG_C): 0x82})
    felts = await compress_state_update(make_update(), starknet_version=version, reference_block=9, rpc=rpc_client)
    plain = decompress(felts) if is_compressed else felts
    assert (len(jsonrpc_server.calls) > 0) == is_aliased
    expected_input = (
        await compress_state_update_stateful(make_update(), reference_block=9, rpc=rpc_client)
        if is_aliased
        else make_update()
    )
    assert plain == state_update_to_felts(expected_input, starknet_version=version)
    if is_compressed:
        assert felts == compress(plain)
