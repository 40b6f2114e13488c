"""DA words (SPEC §6.2), the DA-job encoder (§6.1) on mainnet vectors, and the batch encoder (§5.8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starkware.starknet.core.aggregator.output_parser import ContractChanges

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.blob import MaxBlobsLimitExceeded, blob_from_hex, blob_to_felts
from madara_orchestrator.starknet.da import (
    StaticNonces,
    da_word,
    decode_da_word,
    encode_state_update_for_da,
    encode_state_update_to_blobs,
    parse_da_state_diff,
    parse_starknet_version,
    state_update_to_felts,
    uses_legacy_da_word,
)
from madara_orchestrator.starknet.state_update import (
    ContractStorageDiff,
    DeclaredClass,
    DeployedContract,
    NonceUpdate,
    ReplacedClass,
    StateDiff,
    StateUpdate,
    StorageEntry,
    parse_state_update_json,
)
from tests.conftest import require

# SPEC §6.2 pinned vectors: (class flag, nonce, n_updates, expected, version)
DA_WORD_TABLE = [
    (False, 1, 1, 18446744073709551617, "0.13.2"),
    (False, 1, 0, 18446744073709551616, "0.13.2"),
    (False, 0, 6, 6, "0.13.2"),
    (True, 1, 0, 340282366920938463481821351505477763072, "0.13.2"),
    (False, 0, 15, 62, "0.13.3"),
    (False, 0, 1024, 4096, "0.13.3"),
    (False, 10, 0, 10242, "0.13.3"),
    (False, 15, 2025, 1106804644422573105060, "0.13.3"),
    (True, 0, 10, 43, "0.13.3"),
    (True, 0, 1000, 4001, "0.13.3"),
    (True, 20, 255, 21503, "0.13.3"),
    (True, 1000, 256, 73786976294838206465025, "0.13.5"),
]
VECTOR_BLOCKS = [178, 631861, 640641]


@pytest.mark.parametrize(("class_flag", "nonce", "n_updates", "expected", "version"), DA_WORD_TABLE)
def test_da_word_matches_the_pinned_table(
    class_flag: bool, nonce: int, n_updates: int, expected: int, version: str
) -> None:
    assert da_word(class_flag=class_flag, nonce=nonce, n_updates=n_updates, starknet_version=version) == expected
    decoded = decode_da_word(expected, legacy=uses_legacy_da_word(version))
    assert (decoded.class_flag, decoded.nonce, decoded.n_updates) == (class_flag, nonce, n_updates)


@given(
    class_flag=st.booleans(),
    nonce=st.integers(min_value=1, max_value=2**64 - 1),
    n_updates=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_da_word_from_0_13_3_equals_cairo_langs_packed_header(class_flag: bool, nonce: int, n_updates: int) -> None:
    expected = ContractChanges.encode_packed_header(
        n_updates=n_updates, prev_nonce=None, new_nonce=nonce, class_updated=int(class_flag)
    )
    word = da_word(class_flag=class_flag, nonce=nonce, n_updates=n_updates, starknet_version="0.14.2")
    assert word == expected
    decoded = decode_da_word(word, legacy=False)
    assert (decoded.class_flag, decoded.nonce, decoded.n_updates) == (class_flag, nonce, n_updates)


def test_missing_nonce_counts_as_zero_and_a_wide_nonce_is_refused() -> None:
    assert da_word(class_flag=False, nonce=None, n_updates=3, starknet_version="0.13.2") == 3
    with pytest.raises(InvalidInput, match="does not fit in 64 bits"):
        da_word(class_flag=False, nonce=2**64, n_updates=0, starknet_version="0.14.0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.13.2", (0, 13, 2)), ("0.13.2.1", (0, 13, 2, 1)), ("0.14", (0, 14, 0)), ("v0.13.5", (0, 13, 5))],
)
def test_starknet_versions_parse(text: str, expected: tuple[int, ...]) -> None:
    assert parse_starknet_version(text) == expected


@pytest.mark.parametrize("text", ["", "latest", "0", "1.x.2", "0.13.2-rc"])
def test_a_bad_starknet_version_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a Starknet version"):
        parse_starknet_version(text)


def test_legacy_word_is_used_below_0_13_3_only() -> None:
    assert uses_legacy_da_word("0.13.2.1") and uses_legacy_da_word("0.12.3")
    assert not uses_legacy_da_word("0.13.3") and not uses_legacy_da_word("0.14.2")


# --------------------------------------------------------------------------------------------------
# DA-job encoder on mainnet blocks


def load_vector(vectors_dir: Path, block: int) -> tuple[StateUpdate, dict[int, int], bytes]:
    da = vectors_dir / "da"
    paths = [da / "state_update" / f"{block}.json", da / "nonces" / f"{block}.json", da / "blob" / f"{block}.hex"]
    require(all(p.is_file() for p in paths), f"DA vectors of block {block}")
    update = parse_state_update_json(paths[0].read_text())
    nonces = {int(item["address"]): int(item["nonce"], 16) for item in json.loads(paths[1].read_text())}
    return update, nonces, blob_from_hex(paths[2].read_text())


@pytest.mark.parametrize("block", VECTOR_BLOCKS)
async def test_da_job_encoder_reproduces_the_mainnet_blob(vectors_dir: Path, block: int) -> None:
    update, nonces, expected = load_vector(vectors_dir, block)
    source = StaticNonces(nonces)
    blobs = await encode_state_update_to_blobs(
        update, block_number=block, nonce_source=source, starknet_version="0.13.2"
    )
    assert blobs == [expected]
    # exactly the recorded lookups were made, all at this block
    assert sorted(address for _, address in source.calls) == sorted(nonces)
    assert {b for b, _ in source.calls} == {block}


@pytest.mark.parametrize("block", VECTOR_BLOCKS)
async def test_da_job_felts_parse_back_into_the_state_diff(vectors_dir: Path, block: int) -> None:
    update, nonces, blob = load_vector(vectors_dir, block)
    felts = await encode_state_update_for_da(
        update, block_number=block, nonce_source=StaticNonces(nonces), starknet_version="0.13.2"
    )
    parsed = parse_da_state_diff(blob_to_felts(blob), legacy=True)
    assert parsed.n_felts == len(felts)
    storage = {s.address: {e.key: e.value for e in s.storage_entries} for s in update.state_diff.storage_diffs}
    for contract in parsed.contracts:
        assert dict(contract.storage) == storage.get(contract.address, {})
    assert {c.address for c in parsed.contracts} == set(storage) | {
        n.contract_address for n in update.state_diff.nonces
    } | {d.address for d in update.state_diff.deployed_contracts}


def small_update(**diff: object) -> StateUpdate:
    return StateUpdate(block_hash=1, old_root=2, new_root=3, state_diff=StateDiff(**diff))  # type: ignore[arg-type]


def entries(*pairs: tuple[int, int]) -> tuple[StorageEntry, ...]:
    return tuple(StorageEntry(key=k, value=v) for k, v in pairs)


async def test_da_job_encoder_layout_and_lookup_rules() -> None:
    update = small_update(
        storage_diffs=(
            ContractStorageDiff(address=0x300, storage_entries=entries((9, 1), (2, 5))),
            ContractStorageDiff(address=0x1, storage_entries=entries((7, 7))),  # never looked up
            ContractStorageDiff(address=0x200, storage_entries=entries((1, 1))),
        ),
        deployed_contracts=(DeployedContract(address=0x400, class_hash=0xC4),),
        replaced_classes=(
            ReplacedClass(contract_address=0x200, class_hash=0xC2),
            ReplacedClass(contract_address=0x500, class_hash=0xC5),  # replaced-only: left out
        ),
        nonces=(NonceUpdate(contract_address=0x300, nonce=3),),
        declared_classes=(
            DeclaredClass(class_hash=0xD2, compiled_class_hash=0xE2),
            DeclaredClass(class_hash=0xD1, compiled_class_hash=0xE1),
        ),
        migrated_compiled_classes=(DeclaredClass(class_hash=0xF1, compiled_class_hash=0xF2),),  # ignored
    )
    source = StaticNonces({0x200: 8})
    felts = await encode_state_update_for_da(update, block_number=77, nonce_source=source, starknet_version="0.14.2")

    def word(c: bool, n: int, k: int) -> int:
        return da_word(class_flag=c, nonce=n, n_updates=k, starknet_version="0.14.2")

    assert felts == [
        4,
        0x1, word(False, 0, 1), 7, 7,
        0x200, word(True, 8, 1), 0xC2, 1, 1,
        0x300, word(False, 3, 2), 2, 5, 9, 1,
        0x400, word(True, 0, 0), 0xC4,
        2, 0xD1, 0xE1, 0xD2, 0xE2,
    ]  # fmt: skip
    assert source.calls == [(77, 0x200)]


async def test_da_job_encoder_refuses_more_than_the_allowed_blobs() -> None:
    big = ContractStorageDiff(address=0x1, storage_entries=entries(*((k, 1) for k in range(2 * 4096))))
    with pytest.raises(MaxBlobsLimitExceeded, match="need 5 blobs but at most 4"):
        await encode_state_update_to_blobs(
            small_update(storage_diffs=(big,)), block_number=1, nonce_source=StaticNonces({}), max_blobs=4
        )


async def test_a_nonce_missing_from_the_nonce_source_is_a_clear_error() -> None:
    update = small_update(storage_diffs=(ContractStorageDiff(address=0x999, storage_entries=entries((1, 1))),))
    with pytest.raises(InvalidInput, match="no nonce recorded for contract 0x999"):
        await encode_state_update_for_da(update, block_number=5, nonce_source=StaticNonces({}))


# --------------------------------------------------------------------------------------------------
# Batch encoder


def test_batch_encoder_adds_leftover_contracts_and_migrated_classes() -> None:
    update = small_update(
        storage_diffs=(
            ContractStorageDiff(address=0x300, storage_entries=entries((2, 5), (9, 1))),
            ContractStorageDiff(address=0x100, storage_entries=entries((1, 1))),
        ),
        deployed_contracts=(
            DeployedContract(address=0x300, class_hash=0xC3),
            DeployedContract(address=0x600, class_hash=0xC6),
        ),
        replaced_classes=(ReplacedClass(contract_address=0x500, class_hash=0xC5),),
        nonces=(
            NonceUpdate(contract_address=0x100, nonce=1),
            NonceUpdate(contract_address=0x600, nonce=6),
            NonceUpdate(contract_address=0x050, nonce=5),
        ),
        declared_classes=(DeclaredClass(class_hash=0xD2, compiled_class_hash=0xE2),),
        migrated_compiled_classes=(DeclaredClass(class_hash=0xD1, compiled_class_hash=0xE1),),
    )
    felts = state_update_to_felts(update, starknet_version="0.13.2")

    def word(c: bool, n: int, k: int) -> int:
        return da_word(class_flag=c, nonce=n, n_updates=k, starknet_version="0.13.2")

    assert felts == [
        5,
        0x050, word(False, 5, 0),
        0x100, word(False, 1, 1), 1, 1,
        0x300, word(True, 0, 2), 0xC3, 2, 5, 9, 1,
        0x500, word(True, 0, 0), 0xC5,
        0x600, word(True, 6, 0), 0xC6,
        2, 0xD1, 0xE1, 0xD2, 0xE2,
    ]  # fmt: skip
    parsed = parse_da_state_diff(felts, legacy=True)
    assert [c.address for c in parsed.contracts] == [0x50, 0x100, 0x300, 0x500, 0x600]
    assert parsed.n_felts == len(felts)


def test_parsing_felts_that_are_not_a_state_diff_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="ends early"):
        parse_da_state_diff([2, 0x10, 0], legacy=True)
    with pytest.raises(InvalidInput, match="announces 99 contracts"):
        parse_da_state_diff([99, 1], legacy=True)
