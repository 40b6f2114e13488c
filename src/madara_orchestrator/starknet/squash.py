"""Squashing several blocks' state updates into one (SPEC §5.5).

With a pre-range block P, what did not really change across the range (a value written back to what it
was at P, a class replaced back) is dropped, using batched ``starknet_getClassHashAt`` /
``starknet_getStorageAt`` reads at P. ``StarknetRpcClient.batch`` sends ≤100 calls per HTTP POST, a
bounded number at a time, with retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput
from madara_orchestrator.starknet.felt import parse_felt
from madara_orchestrator.starknet.rpc import CONTRACT_NOT_FOUND, RpcCall, RpcError, block_id
from madara_orchestrator.starknet.state_update import (
    ContractStorageDiff,
    DeclaredClass,
    DeployedContract,
    NonceUpdate,
    ReplacedClass,
    StateDiff,
    StateUpdate,
    StorageEntry,
    sort_state_diff,
)


class BatchRpc(Protocol):
    """The JSON-RPC batch call squashing and stateful compression use (``StarknetRpcClient`` fits)."""

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]: ...


async def squash_state_updates(
    updates: Sequence[StateUpdate],
    *,
    pre_range_block: int | None,
    rpc: BatchRpc | None = None,
    squashed_prefix: int = 0,
) -> StateUpdate:
    """One update equivalent to applying ``updates`` in order, sorted (SPEC §5.5).

    Without ``pre_range_block`` (a range that starts at block 0) zero writes are dropped and, as in
    the original, so are replaced classes.

    ``squashed_prefix``: the first that many updates are themselves the result of this function with the
    same pre-range block, so only what later updates touch is compared with the pre-range state again
    (batching adds one block at a time to its squashed batch; the result is the same, far cheaper).
    """
    if not updates:
        raise InvalidInput("nothing to squash: the list of state updates is empty")
    if pre_range_block is not None and rpc is None:
        raise InvalidInput("squashing with a pre-range block needs an RPC client")

    storage: dict[int, dict[int, int]] = {}
    deployed: dict[int, int] = {}
    declared: dict[int, int] = {}
    nonces: dict[int, int] = {}
    replaced: dict[int, int] = {}
    deprecated: set[int] = set()
    migrated: dict[int, int] = {}
    touched: set[tuple[int, int]] = set()
    touched_replaced: set[int] = set()
    for position, update in enumerate(updates):
        diff = update.state_diff
        if position >= squashed_prefix:
            touched.update((s.address, e.key) for s in diff.storage_diffs for e in s.storage_entries)
            touched_replaced.update(r.contract_address for r in diff.replaced_classes)
        for s in diff.storage_diffs:
            entries = storage.setdefault(s.address, {})
            for e in s.storage_entries:
                entries[e.key] = e.value
        deployed.update((d.address, d.class_hash) for d in diff.deployed_contracts)
        declared.update((c.class_hash, c.compiled_class_hash) for c in diff.declared_classes)
        nonces.update((n.contract_address, n.nonce) for n in diff.nonces)
        replaced.update((r.contract_address, r.class_hash) for r in diff.replaced_classes)
        deprecated.update(diff.deprecated_declared_classes)
        migrated.update((c.class_hash, c.compiled_class_hash) for c in diff.migrated_compiled_classes or ())

    for address in [a for a in replaced if a in deployed]:
        deployed[address] = replaced.pop(address)

    if pre_range_block is None:
        kept_storage = {
            address: {k: v for k, v in entries.items() if v != 0 or (address, k) not in touched}
            for address, entries in storage.items()
        }
        replaced = {}
    else:
        assert rpc is not None
        kept_storage = await _drop_unchanged_storage(storage, pre_range_block, rpc, touched)
        kept_replaced = await _drop_unchanged_classes(
            {a: c for a, c in replaced.items() if a in touched_replaced}, pre_range_block, rpc
        )
        replaced = {a: c for a, c in replaced.items() if a not in touched_replaced or a in kept_replaced}

    diff = StateDiff(
        storage_diffs=tuple(
            ContractStorageDiff(
                address=address,
                storage_entries=tuple(StorageEntry(key=k, value=v) for k, v in entries.items()),
            )
            for address, entries in kept_storage.items()
            if entries
        ),
        deprecated_declared_classes=tuple(deprecated),
        declared_classes=tuple(DeclaredClass(class_hash=k, compiled_class_hash=v) for k, v in declared.items()),
        deployed_contracts=tuple(DeployedContract(address=a, class_hash=c) for a, c in deployed.items()),
        replaced_classes=tuple(ReplacedClass(contract_address=a, class_hash=c) for a, c in replaced.items()),
        nonces=tuple(NonceUpdate(contract_address=a, nonce=n) for a, n in nonces.items()),
        migrated_compiled_classes=tuple(DeclaredClass(class_hash=k, compiled_class_hash=v) for k, v in migrated.items())
        or None,
    )
    return StateUpdate(
        block_hash=updates[-1].block_hash,
        old_root=updates[0].old_root,
        new_root=updates[-1].new_root,
        state_diff=sort_state_diff(diff),
    )


async def class_hashes_at(rpc: BatchRpc, block_number: int, addresses: Sequence[int]) -> dict[int, int | None]:
    """Each address's class hash at the block, or None for a contract that did not exist then."""
    results = await rpc.batch([RpcCall("starknet_getClassHashAt", [block_id(block_number), hex(a)]) for a in addresses])
    out: dict[int, int | None] = {}
    for address, result in zip(addresses, results, strict=True):
        if isinstance(result, RpcError):
            if result.code == CONTRACT_NOT_FOUND:
                out[address] = None
                continue
            raise BackendUnavailable(
                f"class hash of contract {hex(address)} at block {block_number} could not be read: {result}"
            )
        out[address] = parse_felt(result, f"class hash of {hex(address)} at block {block_number}")
    return out


async def storage_values_at(rpc: BatchRpc, block_number: int, slots: Sequence[tuple[int, int]]) -> list[int]:
    """The values of (contract, key) slots at the block, in order."""
    results = await rpc.batch(
        [RpcCall("starknet_getStorageAt", [hex(a), hex(k), block_id(block_number)]) for a, k in slots]
    )
    values = []
    for (address, key), result in zip(slots, results, strict=True):
        if isinstance(result, RpcError):
            raise BackendUnavailable(
                f"storage {hex(key)} of contract {hex(address)} at block {block_number} could not be read: {result}"
            )
        values.append(0 if result is None else parse_felt(result, f"storage {hex(key)} of {hex(address)}"))
    return values


async def _drop_unchanged_storage(
    storage: dict[int, dict[int, int]], block_number: int, rpc: BatchRpc, touched: set[tuple[int, int]]
) -> dict[int, dict[int, int]]:
    """Drop the ``touched`` entries whose value is the one at ``block_number``; others are kept."""
    addresses = sorted({a for a, _ in touched})
    classes = await class_hashes_at(rpc, block_number, addresses) if addresses else {}
    slots = [(a, k) for a in addresses if classes[a] is not None for k in storage[a] if (a, k) in touched]
    before = dict(zip(slots, await storage_values_at(rpc, block_number, slots), strict=True)) if slots else {}
    return {
        address: {k: v for k, v in entries.items() if (address, k) not in touched or v != before.get((address, k), 0)}
        for address, entries in storage.items()
    }


async def _drop_unchanged_classes(replaced: dict[int, int], block_number: int, rpc: BatchRpc) -> dict[int, int]:
    if not replaced:
        return {}
    before = await class_hashes_at(rpc, block_number, list(replaced))
    return {a: c for a, c in replaced.items() if before[a] != c}
