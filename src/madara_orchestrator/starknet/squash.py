"""Squashing several blocks' state updates into one (SPEC §5.5).

With a pre-range block P, what did not really change across the range (a value written back to what it
was at P, a class replaced back) is dropped, using batched ``starknet_getClassHashAt`` /
``starknet_getStorageAt`` reads at P. ``StarknetRpcClient.batch`` sends ≤100 calls per HTTP POST, a
bounded number at a time, with retries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, RpcError
from madara_orchestrator.interfaces import BatchRpc, RpcCall
from madara_orchestrator.starknet.felt import felt_hex, parse_felt
from madara_orchestrator.starknet.rpc_types import CONTRACT_NOT_FOUND, block_id
from madara_orchestrator.starknet.state_update import (
    ContractStorageDiff,
    DeclaredClass,
    DeployedContract,
    NonceUpdate,
    ReplacedClass,
    StateDiff,
    StateUpdate,
    StorageEntry,
    add_storage_writes,
    class_changes,
    sort_state_diff,
    state_update_to_json,
)


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
        add_storage_writes(diff, storage)
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


# --------------------------------------------------------------------------------------------------
# Incremental squashing (batching adds one block at a time)


@dataclass(slots=True, kw_only=True)
class DiffChange:
    """What adding one block does to a ``SquashedDiff``: the new value of every entry the block touches,
    None where the entry is gone afterwards (a write back to the pre-range value, a folded or dropped
    replaced class). Computing it changes nothing; ``SquashedDiff.apply`` makes it so."""

    storage: dict[int, dict[int, int | None]]
    deployed: dict[int, int | None]
    replaced: dict[int, int | None]
    nonces: dict[int, int]
    declared: dict[int, int]
    migrated: dict[int, int]
    deprecated: set[int]
    old_root: int
    block_hash: int
    new_root: int

    def touched_contracts(self) -> set[int]:
        return {*self.storage, *self.nonces, *self.deployed, *self.replaced}


class SquashedDiff:
    """A squashed state update in dict form that grows one block at a time (SPEC §5.5).

    ``change_for`` + ``apply`` of a block give exactly what ``squash_state_updates([current, block],
    squashed_prefix=1)`` gives, at the cost of the block alone (the batch's squashed update is never
    rebuilt or re-sorted): only the block's slots and replaced classes are compared with the pre-range
    state, the rest is kept as it is. ``to_state_update`` gives the sorted ``StateUpdate`` when one is
    needed (the batch's files). A change that is not applied leaves the diff as it was, so a candidate
    block that does not join the batch costs nothing to forget.

    Invariant (as in every squash result): no address is both in ``deployed`` and in ``replaced``.
    """

    def __init__(self, *, pre_range_block: int | None) -> None:
        self.pre_range_block = pre_range_block
        self.storage: dict[int, dict[int, int]] = {}
        """Contract → key → value; a contract is here only with at least one entry."""
        self.deployed: dict[int, int] = {}
        self.replaced: dict[int, int] = {}
        self.nonces: dict[int, int] = {}
        self.declared: dict[int, int] = {}
        self.migrated: dict[int, int] = {}
        self.deprecated: set[int] = set()
        self.old_root: int | None = None
        """The first block's (None while the diff is empty)."""
        self.block_hash = 0
        self.new_root = 0
        self._update: StateUpdate | None = None
        self._contracts: dict[int, ContractStorageDiff] = {}
        """Sorted storage diffs of contracts unchanged since ``to_state_update`` last built them."""
        self._contract_json: dict[int, str] = {}
        """The same for ``to_json``: the JSON text of a contract's storage diff."""
        self._entry_json: dict[int, dict[int, str]] = {}
        """Contract → key → the JSON text of the entry, for entries unchanged since ``to_json`` made it."""

    @classmethod
    def of(cls, squashed: StateUpdate, *, pre_range_block: int | None) -> SquashedDiff:
        """The diff of a ``squash_state_updates`` result (with the same pre-range block)."""
        diff = cls(pre_range_block=pre_range_block)
        diff.apply(diff.load(squashed))
        return diff

    def is_contract(self, address: int) -> bool:
        """Whether the address is in the diff (storage, nonce, deployment or replaced class)."""
        return address in self.storage or address in self.nonces or address in self.deployed or address in self.replaced

    def load(self, squashed: StateUpdate) -> DiffChange:
        """An already squashed update as a change (nothing is compared with the pre-range state)."""
        diff = squashed.state_diff
        storage: dict[int, dict[int, int | None]] = {}
        add_storage_writes(diff, storage)
        deployed, replaced = class_changes(diff)
        return self._change(squashed, storage=storage, deployed={**deployed}, replaced={**replaced})

    def _change(
        self,
        update: StateUpdate,
        *,
        storage: dict[int, dict[int, int | None]],
        deployed: dict[int, int | None],
        replaced: dict[int, int | None],
    ) -> DiffChange:
        """The change of ``update`` with these storage, deployments and replaced classes; its nonces,
        declared, migrated and deprecated classes and roots as the update has them."""
        diff = update.state_diff
        return DiffChange(
            storage=storage,
            deployed=deployed,
            replaced=replaced,
            nonces={n.contract_address: n.nonce for n in diff.nonces},
            declared={c.class_hash: c.compiled_class_hash for c in diff.declared_classes},
            migrated={c.class_hash: c.compiled_class_hash for c in diff.migrated_compiled_classes or ()},
            deprecated=set(diff.deprecated_declared_classes),
            old_root=update.old_root if self.old_root is None else self.old_root,
            block_hash=update.block_hash,
            new_root=update.new_root,
        )

    async def change_for(self, update: StateUpdate, rpc: BatchRpc | None = None) -> DiffChange:
        """What squashing ``update`` onto this diff changes (``squash_state_updates`` with
        ``squashed_prefix=1``, entry for entry); reads the pre-range state of the block's slots."""
        pre = self.pre_range_block
        if pre is not None and rpc is None:
            raise InvalidInput("squashing with a pre-range block needs an RPC client")
        diff = update.state_diff
        written: dict[int, dict[int, int]] = {}
        add_storage_writes(diff, written)
        deployed_now, replaced_now = class_changes(diff)

        # A replaced class of a contract deployed in the range is its deployment (the fold of squash).
        deployed: dict[int, int | None] = {}
        replaced: dict[int, int | None] = {}
        for address in (*deployed_now, *replaced_now):
            class_hash = deployed_now[address] if address in deployed_now else self.deployed.get(address)
            new_hash = replaced_now[address] if address in replaced_now else self.replaced.get(address)
            if class_hash is not None and new_hash is not None:
                class_hash, new_hash = new_hash, None
            deployed[address] = class_hash
            replaced[address] = new_hash

        storage: dict[int, dict[int, int | None]] = {}
        if pre is None:
            for address, entries in written.items():
                storage[address] = {k: v if v != 0 else None for k, v in entries.items()}
            for address in (*self.replaced, *replaced):
                replaced[address] = None
        else:
            assert rpc is not None
            addresses = sorted(a for a, entries in written.items() if entries)
            classes = await class_hashes_at(rpc, pre, addresses) if addresses else {}
            slots = [(a, k) for a in addresses if classes[a] is not None for k in written[a]]
            before = dict(zip(slots, await storage_values_at(rpc, pre, slots), strict=True)) if slots else {}
            for address, entries in written.items():
                storage[address] = {k: v if v != before.get((address, k), 0) else None for k, v in entries.items()}
            compared = {a: c for a, c in replaced.items() if c is not None and a in replaced_now}
            kept = await _drop_unchanged_classes(compared, pre, rpc)
            for address in compared:
                if address not in kept:
                    replaced[address] = None
        return self._change(update, storage=storage, deployed=deployed, replaced=replaced)

    def apply(self, change: DiffChange) -> None:
        for address, entries in change.storage.items():
            current = self.storage.get(address)
            for key, value in entries.items():
                if value is None:
                    if current is not None:
                        current.pop(key, None)
                else:
                    if current is None:
                        current = self.storage[address] = {}
                    current[key] = value
            if current is not None and not current:
                del self.storage[address]
            self._contracts.pop(address, None)
            self._contract_json.pop(address, None)
            texts = self._entry_json.get(address)
            if texts is not None:
                if current is None or not current:
                    del self._entry_json[address]
                else:
                    for key in entries:
                        texts.pop(key, None)
        for target, values in ((self.deployed, change.deployed), (self.replaced, change.replaced)):
            for address, class_hash in values.items():
                if class_hash is None:
                    target.pop(address, None)
                else:
                    target[address] = class_hash
        self.nonces.update(change.nonces)
        self.declared.update(change.declared)
        self.migrated.update(change.migrated)
        self.deprecated.update(change.deprecated)
        self.old_root, self.block_hash, self.new_root = change.old_root, change.block_hash, change.new_root
        self._update = None

    def copy(self) -> SquashedDiff:
        other = SquashedDiff(pre_range_block=self.pre_range_block)
        other.storage = {a: dict(entries) for a, entries in self.storage.items()}
        other.deployed, other.replaced, other.nonces = dict(self.deployed), dict(self.replaced), dict(self.nonces)
        other.declared, other.migrated = dict(self.declared), dict(self.migrated)
        other.deprecated = set(self.deprecated)
        other.old_root, other.block_hash, other.new_root = self.old_root, self.block_hash, self.new_root
        return other

    def to_state_update(self) -> StateUpdate:
        """The sorted update ``squash_state_updates`` gives for the same blocks (kept until the next change)."""
        if self._update is not None:
            return self._update
        contracts = self._contracts
        for address in self.storage.keys() - contracts.keys():
            contracts[address] = ContractStorageDiff(
                address=address,
                storage_entries=tuple(StorageEntry(key=k, value=v) for k, v in sorted(self.storage[address].items())),
            )
        update = self._without_storage()
        self._update = replace(
            update,
            state_diff=replace(update.state_diff, storage_diffs=tuple(contracts[a] for a in sorted(self.storage))),
        )
        return self._update

    def to_json(self) -> str:
        """``json.dumps(state_update_to_json(self.to_state_update()))`` (the batch's state update file),
        without building the update: the text of an entry or a contract unchanged since the last call is
        kept, so a call costs the entries changed since, and sorting."""
        texts = []
        for address in sorted(self.storage):
            text = self._contract_json.get(address)
            if text is None:
                entries = self.storage[address]
                made = self._entry_json.setdefault(address, {})
                for key in entries.keys() - made.keys():
                    made[key] = f'{{"key": "{felt_hex(key)}", "value": "{felt_hex(entries[key])}"}}'
                listed = ", ".join([made[k] for k in sorted(entries)])
                text = self._contract_json[address] = (
                    f'{{"address": "{felt_hex(address)}", "storage_entries": [{listed}]}}'
                )
            texts.append(text)
        # Everything but the storage diffs as ``state_update_to_json`` writes it, the storage diffs put in.
        rest = json.dumps(state_update_to_json(self._without_storage()))
        empty = '"state_diff": {"storage_diffs": []'
        assert rest.count(empty) == 1, rest[:200]
        return rest.replace(empty, '"state_diff": {"storage_diffs": [' + ", ".join(texts) + "]")

    def _without_storage(self) -> StateUpdate:
        if self.old_root is None:
            raise InvalidInput("nothing to squash: the list of state updates is empty")
        diff = StateDiff(
            storage_diffs=(),
            deprecated_declared_classes=tuple(sorted(self.deprecated)),
            declared_classes=tuple(
                DeclaredClass(class_hash=k, compiled_class_hash=v) for k, v in sorted(self.declared.items())
            ),
            deployed_contracts=tuple(
                DeployedContract(address=a, class_hash=c) for a, c in sorted(self.deployed.items())
            ),
            replaced_classes=tuple(
                ReplacedClass(contract_address=a, class_hash=c) for a, c in sorted(self.replaced.items())
            ),
            nonces=tuple(NonceUpdate(contract_address=a, nonce=n) for a, n in sorted(self.nonces.items())),
            migrated_compiled_classes=tuple(
                DeclaredClass(class_hash=k, compiled_class_hash=v) for k, v in sorted(self.migrated.items())
            )
            or None,
        )
        return StateUpdate(block_hash=self.block_hash, old_root=self.old_root, new_root=self.new_root, state_diff=diff)
