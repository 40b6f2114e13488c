"""Parsing the JSON-RPC StateUpdate into typed values, sorting it, and writing it back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.domain.errors import InvalidInput, Retryable
from madara_orchestrator.starknet.felt import STARKNET_PRIME, FeltOutOfRange, parse_felt, parse_hex_felt
from madara_orchestrator.starknet.state_update import (
    ContractStorageDiff,
    DeclaredClass,
    PendingBlock,
    StateDiff,
    StorageEntry,
    parse_state_update,
    parse_state_update_json,
    sort_state_diff,
    state_update_to_json,
)
from tests.conftest import require

FULL = {
    "block_hash": "0xabc",
    "old_root": "0x1",
    "new_root": "0x2",
    "state_diff": {
        "storage_diffs": [
            {"address": "0x20", "storage_entries": [{"key": "0x9", "value": "0x1"}, {"key": "0x2", "value": "0x0"}]},
            {"address": "0x10", "storage_entries": []},
        ],
        "deprecated_declared_classes": ["0x77", "0x33"],
        "declared_classes": [
            {"class_hash": "0x5", "compiled_class_hash": "0x6"},
            {"class_hash": "0x3", "compiled_class_hash": "0x4"},
        ],
        "deployed_contracts": [{"address": "0x40", "class_hash": "0x41"}, {"address": "0x30", "class_hash": "0x31"}],
        "replaced_classes": [{"contract_address": "0x50", "class_hash": "0x51"}],
        "nonces": [{"contract_address": "0x60", "nonce": "0x7"}, {"contract_address": "0x5f", "nonce": "0x1"}],
        "migrated_compiled_classes": [
            {"class_hash": "0x9", "compiled_class_hash": "0xa"},
            {"class_hash": "0x8", "compiled_class_hash": "0xb"},
        ],
    },
}


def test_every_field_is_parsed_including_migrated_compiled_classes() -> None:
    update = parse_state_update(FULL)
    diff = update.state_diff
    assert (update.block_hash, update.old_root, update.new_root) == (0xABC, 1, 2)
    assert diff.storage_diffs[0] == ContractStorageDiff(
        address=0x20, storage_entries=(StorageEntry(key=9, value=1), StorageEntry(key=2, value=0))
    )
    assert diff.deprecated_declared_classes == (0x77, 0x33)
    assert diff.declared_classes[1] == DeclaredClass(class_hash=3, compiled_class_hash=4)
    assert [d.address for d in diff.deployed_contracts] == [0x40, 0x30]
    assert diff.replaced_classes[0].contract_address == 0x50
    assert [(n.contract_address, n.nonce) for n in diff.nonces] == [(0x60, 7), (0x5F, 1)]
    assert diff.migrated_compiled_classes == (
        DeclaredClass(class_hash=9, compiled_class_hash=0xA),
        DeclaredClass(class_hash=8, compiled_class_hash=0xB),
    )


def test_json_round_trip_keeps_every_value() -> None:
    update = parse_state_update(FULL)
    assert parse_state_update(state_update_to_json(update)) == update
    without_migrated: dict[str, Any] = json.loads(json.dumps(FULL))
    del without_migrated["state_diff"]["migrated_compiled_classes"]
    parsed = parse_state_update(without_migrated)
    assert parsed.state_diff.migrated_compiled_classes is None
    assert "migrated_compiled_classes" not in state_update_to_json(parsed)["state_diff"]


def test_vector_state_updates_round_trip(vectors_dir: Path) -> None:
    paths = sorted((vectors_dir / "da" / "state_update").glob("*.json"))
    require(len(paths) >= 3, "vectors da/state_update")
    for path in paths:
        raw = json.loads(path.read_text())
        update = parse_state_update(raw)
        back = state_update_to_json(update)
        assert parse_state_update(back) == update
        assert len(back["state_diff"]["storage_diffs"]) == len(raw["state_diff"]["storage_diffs"])
        assert int(back["new_root"], 16) == int(raw["new_root"], 16)


def test_sort_state_diff_orders_every_list() -> None:
    diff = sort_state_diff(parse_state_update(FULL).state_diff)
    assert [s.address for s in diff.storage_diffs] == [0x10, 0x20]
    assert [e.key for e in diff.storage_diffs[1].storage_entries] == [2, 9]
    assert diff.deprecated_declared_classes == (0x33, 0x77)
    assert [c.class_hash for c in diff.declared_classes] == [3, 5]
    assert [d.address for d in diff.deployed_contracts] == [0x30, 0x40]
    assert [n.contract_address for n in diff.nonces] == [0x5F, 0x60]
    assert diff.migrated_compiled_classes is not None
    assert [c.class_hash for c in diff.migrated_compiled_classes] == [8, 9]
    assert sort_state_diff(StateDiff()).migrated_compiled_classes is None


def test_a_json_rpc_reply_envelope_is_accepted() -> None:
    assert parse_state_update({"jsonrpc": "2.0", "id": 1, "result": FULL}) == parse_state_update(FULL)


@pytest.mark.parametrize("missing", ["block_hash", "new_root"])
def test_a_pending_block_is_refused(missing: str) -> None:
    pending = {k: v for k, v in FULL.items() if k != missing}
    with pytest.raises(PendingBlock, match="pending or pre-confirmed") as info:
        parse_state_update(pending)
    assert isinstance(info.value, InvalidInput) and isinstance(info.value, Retryable)


def test_a_value_outside_the_field_names_its_place() -> None:
    bad: dict[str, Any] = json.loads(json.dumps(FULL))
    bad["state_diff"]["storage_diffs"][0]["storage_entries"][1]["value"] = hex(STARKNET_PRIME)
    with pytest.raises(FeltOutOfRange, match=r"state_diff\.storage_diffs\[0\]\.storage_entries\[1\]\.value"):
        parse_state_update(bad)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["state_diff"].update(nonces={"a": 1}), r"state_diff\.nonces: expected a JSON list"),
        (lambda d: d["state_diff"]["deployed_contracts"][0].pop("class_hash"), r"missing field 'class_hash'"),
        (lambda d: d["state_diff"]["nonces"][0].update(nonce="seven"), r"nonces\[0\]\.nonce: 'seven' is not a number"),
        (lambda d: d["state_diff"]["declared_classes"].append(3), r"declared_classes\[2\]: expected a JSON object"),
        (lambda d: d.pop("state_diff"), r"missing field 'state_diff'"),
        (lambda d: d.update(old_root=True), r"old_root: expected a felt, got a boolean"),
    ],
)
def test_malformed_fields_are_invalid_input(mutate: Any, message: str) -> None:
    bad: dict[str, Any] = json.loads(json.dumps(FULL))
    mutate(bad)
    with pytest.raises(InvalidInput, match=message):
        parse_state_update(bad)


def test_malformed_json_text_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"update\.json: malformed JSON"):
        parse_state_update_json('{"block_hash": ', where="update.json")
    with pytest.raises(InvalidInput, match="expected a JSON object, got a list"):
        parse_state_update_json("[1, 2]")


def test_felt_parsing_accepts_hex_decimal_and_ints_only_inside_the_field() -> None:
    assert parse_felt("0x1F", "x") == 31
    assert parse_felt("31", "x") == 31
    assert parse_felt(31, "x") == 31
    assert parse_hex_felt("d0", "n") == 0xD0
    assert parse_felt(hex(STARKNET_PRIME - 1), "x") == STARKNET_PRIME - 1
    for bad in ("-1", -1, STARKNET_PRIME, "0x", "", "1e3", None, 1.5):
        with pytest.raises(InvalidInput, match=r"^x: "):
            parse_felt(bad, "x")
