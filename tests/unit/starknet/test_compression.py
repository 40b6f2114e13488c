"""Stateless compression (SPEC §5.10) against cairo-lang's implementation, used here as an oracle."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starkware.starknet.core.aggregator.output_parser import ContractChanges, OsStateDiff
from starkware.starknet.core.os.data_availability.compression import compress as cairo_compress
from starkware.starknet.core.os.data_availability.compression import decompress as cairo_decompress

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.compression import (
    HEADER_ELM_BOUND,
    MalformedCompressedData,
    compress,
    decompress,
    decompress_prefix,
    pack_in_felt,
)
from madara_orchestrator.starknet.da import state_update_to_felts
from madara_orchestrator.starknet.felt import STARKNET_PRIME
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

BIT_WIDTHS = [0, 1, 8, 15, 16, 31, 32, 62, 63, 83, 84, 125, 126, 200, 251]


def felt_of_width(rng: random.Random, bits: int) -> int:
    if bits == 0:
        return 0
    value = rng.getrandbits(bits) | (1 << (bits - 1))
    return value % STARKNET_PRIME


@st.composite
def felt_lists(draw: st.DrawFn) -> list[int]:
    """Felts of every bucket width, with repeats (what compression feeds on)."""
    pool = draw(
        st.lists(
            st.one_of(
                st.integers(min_value=0, max_value=2**15),
                st.integers(min_value=0, max_value=2**63),
                st.integers(min_value=0, max_value=2**126),
                st.integers(min_value=0, max_value=STARKNET_PRIME - 1),
                st.sampled_from([0, 1, 2**15 - 1, 2**15, 2**31, 2**62 - 1, 2**83, 2**125, STARKNET_PRIME - 1]),
            ),
            min_size=1,
            max_size=40,
        )
    )
    indices = draw(st.lists(st.integers(min_value=0, max_value=len(pool) - 1), max_size=300))
    return [pool[i] for i in indices]


@settings(max_examples=200, deadline=None)
@given(felt_lists())
def test_decompress_undoes_compress(felts: list[int]) -> None:
    compressed = compress(felts)
    assert decompress(compressed) == felts
    assert all(0 <= f < STARKNET_PRIME for f in compressed)


@settings(max_examples=200, deadline=None)
@given(felt_lists())
def test_compress_equals_cairo_lang_on_generated_felt_lists(felts: list[int]) -> None:
    ours = compress(felts)
    assert ours == cairo_compress(data=list(felts))
    assert cairo_decompress(compressed=iter(ours)) == felts


def random_state_update(rng: random.Random) -> StateUpdate:
    def felt() -> int:
        return felt_of_width(rng, rng.choice(BIT_WIDTHS))

    addresses = rng.sample(range(0x80, 0x80 + 10_000), rng.randint(0, 12))
    storage_diffs = tuple(
        ContractStorageDiff(
            address=a,
            storage_entries=tuple(
                StorageEntry(key=k, value=felt())
                for k in sorted(
                    {rng.getrandbits(rng.choice([8, 40, 250])) for _ in range(rng.choice([0, 1, 3, 20, 300]))}
                )
            ),
        )
        for a in addresses
    )
    others = rng.sample(range(0x80, 0x80 + 10_000), 6)
    touched = addresses + others
    return StateUpdate(
        block_hash=felt(),
        old_root=felt(),
        new_root=felt(),
        state_diff=sort_state_diff(
            StateDiff(
                storage_diffs=storage_diffs,
                deployed_contracts=tuple(
                    DeployedContract(address=a, class_hash=felt()) for a in rng.sample(touched, rng.randint(0, 3))
                ),
                replaced_classes=tuple(
                    ReplacedClass(contract_address=a, class_hash=felt()) for a in rng.sample(touched, rng.randint(0, 2))
                ),
                nonces=tuple(
                    NonceUpdate(contract_address=a, nonce=rng.randint(1, 2**64 - 1))
                    for a in rng.sample(touched, rng.randint(0, 5))
                ),
                declared_classes=tuple(
                    DeclaredClass(class_hash=felt() or 1, compiled_class_hash=felt()) for _ in range(rng.randint(0, 3))
                ),
            )
        ),
    )


def cairo_os_state_diff(update: StateUpdate) -> OsStateDiff:
    """The same diff as cairo-lang's OsStateDiff (what the OS writes without full output)."""
    diff = update.state_diff
    classes = {d.address: d.class_hash for d in diff.deployed_contracts}
    for r in diff.replaced_classes:
        classes.setdefault(r.contract_address, r.class_hash)
    nonces = {n.contract_address: n.nonce for n in diff.nonces}
    storage = {s.address: [(e.key, (None, e.value)) for e in s.storage_entries] for s in diff.storage_diffs}
    addresses = sorted(set(storage) | set(classes) | set(nonces))
    contracts = [
        ContractChanges(
            addr=a,
            prev_nonce=None,
            new_nonce=nonces.get(a),
            prev_class_hash=None,
            new_class_hash=classes.get(a),
            storage_changes=storage.get(a, []),
        )
        for a in addresses
    ]
    declared = [(c.class_hash, (None, c.compiled_class_hash)) for c in diff.declared_classes]
    return OsStateDiff(contracts=contracts, classes=declared)


def test_compressed_state_diffs_equal_cairo_langs_os_encoding() -> None:
    """200 generated state diffs: batch encoding (0.13.3 words) + compression == cairo-lang's OS output."""
    for seed in range(200):
        rng = random.Random(seed)
        update = random_state_update(rng)
        felts = state_update_to_felts(update, starknet_version="0.13.3")
        ours = compress(felts)
        assert ours == cairo_os_state_diff(update).encode(full_output=False), f"seed {seed}"
        assert decompress(ours) == felts, f"seed {seed}"


def test_empty_input_compresses_to_a_zero_header() -> None:
    assert compress([]) == [0] == cairo_compress(data=[])
    assert decompress([0]) == []


def test_compress_refuses_values_outside_the_field_and_too_long_input() -> None:
    with pytest.raises(InvalidInput, match=r"felt #1 .* Starknet field"):
        compress([1, STARKNET_PRIME])
    with pytest.raises(InvalidInput, match="cannot compress 1048576 felts"):
        compress([0] * HEADER_ELM_BOUND)


def header(*elements: int) -> int:
    return pack_in_felt(list(elements), HEADER_ELM_BOUND)


@pytest.mark.parametrize(
    ("compressed", "message"),
    [
        ([], "needs 1 felts at position 0"),
        ([header(1, 0, 0, 0, 0, 0, 0, 0, 0)], "unsupported compression version 1"),
        ([header(0, 5, 0, 0, 0, 0, 0, 1, 0)], "bucket sizes add up to 1, data length is 5"),
        ([header(0, 1, 0, 0, 0, 0, 0, 1, 0), 7], "needs 1 felts at position 2"),
        ([header(0, 1, 0, 0, 0, 0, 0, 1, 0), 7, 4], r"bucket indices count \[0, 0, 0, 0, 1, 0, 0\]"),
        ([header(0, 1, 0, 0, 0, 0, 0, 1, 0), 1 << 245, 5], "bits beyond its 16 elements"),
        ([header(0, 1, 0, 0, 0, 0, 0, 1, 0), 7, 5, 9], "1 felts follow the compressed data"),
        ([header(0, 2, 0, 0, 0, 0, 0, 1, 1), 7, 1, 5 + 6 * 8], "pointers: packed felt has bits beyond"),
    ],
)
def test_malformed_compressed_data_is_invalid_input(compressed: list[int], message: str) -> None:
    with pytest.raises(MalformedCompressedData, match=message):
        decompress(compressed)


def test_decompress_prefix_reports_where_the_data_ends() -> None:
    data = [*compress([5, 5, 2**100, 7]), 123, 456]
    values, end = decompress_prefix(data, 0)
    assert values == [5, 5, 2**100, 7]
    assert data[end:] == [123, 456]


def test_compressed_length_is_the_length_of_the_compressed_data() -> None:
    """Batching asks only for the length; it must be exact, for every mix of buckets and repeats."""
    import random

    from madara_orchestrator.starknet.compression import compressed_length

    rng = random.Random(4)
    prime = 2**251 + 17 * 2**192 + 1
    for _ in range(200):
        pool = [rng.randrange(prime) >> rng.choice([0, 120, 150, 180, 200, 230, 240, 251]) for _ in range(50)]
        data = [rng.choice(pool) for _ in range(rng.randint(0, 2000))]
        assert compressed_length(data) == len(compress(data))
    assert compressed_length([]) == len(compress([])) == 1
