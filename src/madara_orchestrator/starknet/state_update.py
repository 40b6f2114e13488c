"""The Starknet JSON-RPC ``StateUpdate`` as typed values, its sorting (SPEC §5.8) and JSON form.

Parsing is strict about what it reads (every felt is checked against the Starknet field and error
messages carry the JSON path) and lenient about what is absent (a missing list is empty). A pending or
pre-confirmed update (no ``block_hash`` / ``new_root``) is refused with ``PendingBlock``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from madara_orchestrator.domain.errors import InvalidInput, Retryable
from madara_orchestrator.starknet.felt import felt_hex, parse_felt


class PendingBlock(InvalidInput, Retryable):
    """The state update is of a block that is not closed yet; it may be fine to retry later."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageEntry:
    key: int
    value: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractStorageDiff:
    address: int
    storage_entries: tuple[StorageEntry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclaredClass:
    """A Sierra class declared in the block, or (SNIP-34) a class whose compiled hash migrated."""

    class_hash: int
    compiled_class_hash: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployedContract:
    address: int
    class_hash: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplacedClass:
    contract_address: int
    class_hash: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NonceUpdate:
    contract_address: int
    nonce: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StateDiff:
    storage_diffs: tuple[ContractStorageDiff, ...] = ()
    deprecated_declared_classes: tuple[int, ...] = ()
    declared_classes: tuple[DeclaredClass, ...] = ()
    deployed_contracts: tuple[DeployedContract, ...] = ()
    replaced_classes: tuple[ReplacedClass, ...] = ()
    nonces: tuple[NonceUpdate, ...] = ()
    migrated_compiled_classes: tuple[DeclaredClass, ...] | None = None
    """SNIP-34 (RPC 0.10); None when the node's answer has no such field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StateUpdate:
    block_hash: int
    old_root: int
    new_root: int
    state_diff: StateDiff


# --------------------------------------------------------------------------------------------------
# Parsing


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: expected a JSON object, got {_kind(value)}")
    return value


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{where}.{key}: expected a JSON list, got {_kind(value)}")
    return value


def _field(obj: dict[str, Any], key: str, where: str) -> int:
    if key not in obj:
        raise InvalidInput(f"{where}: missing field {key!r}")
    return parse_felt(obj[key], f"{where}.{key}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def parse_state_diff(value: Any, where: str = "state_diff") -> StateDiff:
    obj = _obj(value, where)
    storage_diffs = []
    for i, item in enumerate(_list(obj, "storage_diffs", where)):
        w = f"{where}.storage_diffs[{i}]"
        item = _obj(item, w)
        entries = []
        for j, entry in enumerate(_list(item, "storage_entries", w)):
            we = f"{w}.storage_entries[{j}]"
            entry = _obj(entry, we)
            entries.append(StorageEntry(key=_field(entry, "key", we), value=_field(entry, "value", we)))
        storage_diffs.append(ContractStorageDiff(address=_field(item, "address", w), storage_entries=tuple(entries)))

    deprecated = tuple(
        parse_felt(v, f"{where}.deprecated_declared_classes[{i}]")
        for i, v in enumerate(_list(obj, "deprecated_declared_classes", where))
    )

    def classes(key: str) -> tuple[DeclaredClass, ...]:
        out = []
        for i, item in enumerate(_list(obj, key, where)):
            w = f"{where}.{key}[{i}]"
            item = _obj(item, w)
            out.append(
                DeclaredClass(
                    class_hash=_field(item, "class_hash", w),
                    compiled_class_hash=_field(item, "compiled_class_hash", w),
                )
            )
        return tuple(out)

    deployed = []
    for i, item in enumerate(_list(obj, "deployed_contracts", where)):
        w = f"{where}.deployed_contracts[{i}]"
        item = _obj(item, w)
        deployed.append(DeployedContract(address=_field(item, "address", w), class_hash=_field(item, "class_hash", w)))
    replaced = []
    for i, item in enumerate(_list(obj, "replaced_classes", where)):
        w = f"{where}.replaced_classes[{i}]"
        item = _obj(item, w)
        replaced.append(
            ReplacedClass(
                contract_address=_field(item, "contract_address", w), class_hash=_field(item, "class_hash", w)
            )
        )
    nonces = []
    for i, item in enumerate(_list(obj, "nonces", where)):
        w = f"{where}.nonces[{i}]"
        item = _obj(item, w)
        nonces.append(NonceUpdate(contract_address=_field(item, "contract_address", w), nonce=_field(item, "nonce", w)))

    return StateDiff(
        storage_diffs=tuple(storage_diffs),
        deprecated_declared_classes=deprecated,
        declared_classes=classes("declared_classes"),
        deployed_contracts=tuple(deployed),
        replaced_classes=tuple(replaced),
        nonces=tuple(nonces),
        migrated_compiled_classes=classes("migrated_compiled_classes")
        if obj.get("migrated_compiled_classes") is not None
        else None,
    )


def parse_state_update(value: Any, where: str = "state update") -> StateUpdate:
    """A ``starknet_getStateUpdate`` result (a bare result or a whole JSON-RPC reply)."""
    obj = _obj(value, where)
    if "state_diff" not in obj and isinstance(obj.get("result"), dict):
        obj = obj["result"]
    if obj.get("block_hash") is None or obj.get("new_root") is None:
        raise PendingBlock(
            f"{where}: the block is pending or pre-confirmed (no block_hash/new_root); "
            "only closed blocks can be encoded"
        )
    if "state_diff" not in obj:
        raise InvalidInput(f"{where}: missing field 'state_diff'")
    return StateUpdate(
        block_hash=_field(obj, "block_hash", where),
        old_root=_field(obj, "old_root", where),
        new_root=_field(obj, "new_root", where),
        state_diff=parse_state_diff(obj["state_diff"], f"{where}.state_diff"),
    )


def parse_state_update_json(text: str | bytes, where: str = "state update") -> StateUpdate:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{where}: malformed JSON: {exc}") from None
    return parse_state_update(value, where)


# --------------------------------------------------------------------------------------------------
# Reading a diff by contract

V = TypeVar("V", int, int | None)


def add_storage_writes(diff: StateDiff, storage: dict[int, dict[int, V]]) -> None:
    """Fold the diff's storage writes into ``storage`` (address → key → value; a later write wins)."""
    for s in diff.storage_diffs:
        entries = storage.setdefault(s.address, {})
        for e in s.storage_entries:
            entries[e.key] = e.value


def class_changes(diff: StateDiff) -> tuple[dict[int, int], dict[int, int]]:
    """The diff's deployed contracts and replaced classes: address → class hash, each."""
    return (
        {d.address: d.class_hash for d in diff.deployed_contracts},
        {r.contract_address: r.class_hash for r in diff.replaced_classes},
    )


# --------------------------------------------------------------------------------------------------
# Sorting and serialising


def sort_state_diff(diff: StateDiff) -> StateDiff:
    """Storage diffs by address and entries by key; every other list by its address or class hash."""
    return replace(
        diff,
        storage_diffs=tuple(
            ContractStorageDiff(address=s.address, storage_entries=tuple(sorted(s.storage_entries, key=_by_key)))
            for s in sorted(diff.storage_diffs, key=lambda s: s.address)
        ),
        deprecated_declared_classes=tuple(sorted(diff.deprecated_declared_classes)),
        declared_classes=tuple(sorted(diff.declared_classes, key=lambda c: c.class_hash)),
        deployed_contracts=tuple(sorted(diff.deployed_contracts, key=lambda d: d.address)),
        replaced_classes=tuple(sorted(diff.replaced_classes, key=lambda r: r.contract_address)),
        nonces=tuple(sorted(diff.nonces, key=lambda n: n.contract_address)),
        migrated_compiled_classes=None
        if diff.migrated_compiled_classes is None
        else tuple(sorted(diff.migrated_compiled_classes, key=lambda c: c.class_hash)),
    )


def _by_key(entry: StorageEntry) -> int:
    return entry.key


def state_diff_to_json(diff: StateDiff) -> dict[str, Any]:
    out: dict[str, Any] = {
        "storage_diffs": [
            {
                "address": felt_hex(s.address),
                "storage_entries": [{"key": felt_hex(e.key), "value": felt_hex(e.value)} for e in s.storage_entries],
            }
            for s in diff.storage_diffs
        ],
        "deprecated_declared_classes": [felt_hex(c) for c in diff.deprecated_declared_classes],
        "declared_classes": [_class_json(c) for c in diff.declared_classes],
        "deployed_contracts": [
            {"address": felt_hex(d.address), "class_hash": felt_hex(d.class_hash)} for d in diff.deployed_contracts
        ],
        "replaced_classes": [
            {"contract_address": felt_hex(r.contract_address), "class_hash": felt_hex(r.class_hash)}
            for r in diff.replaced_classes
        ],
        "nonces": [{"contract_address": felt_hex(n.contract_address), "nonce": felt_hex(n.nonce)} for n in diff.nonces],
    }
    if diff.migrated_compiled_classes is not None:
        out["migrated_compiled_classes"] = [_class_json(c) for c in diff.migrated_compiled_classes]
    return out


def _class_json(c: DeclaredClass) -> dict[str, str]:
    return {"class_hash": felt_hex(c.class_hash), "compiled_class_hash": felt_hex(c.compiled_class_hash)}


def state_update_to_json(update: StateUpdate) -> dict[str, Any]:
    """The JSON-RPC form; ``parse_state_update`` of it gives the same value back."""
    return {
        "block_hash": felt_hex(update.block_hash),
        "old_root": felt_hex(update.old_root),
        "new_root": felt_hex(update.new_root),
        "state_diff": state_diff_to_json(update.state_diff),
    }
