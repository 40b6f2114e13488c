"""Facts of Cairo PIEs (SPEC §7.7): the recorded facts, and cairo-lang as the oracle on every PIE we have."""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madara_orchestrator.starknet import facts
from madara_orchestrator.starknet.facts import (
    FactError,
    FactTopology,
    HashFunction,
    UnsupportedKzgFlag,
    add_aggregator_prefix,
    aggregator_fact_info,
    compute_program_hash,
    fact_info,
    fact_topology,
    filter_aggregator_output,
    gps_fact,
    l2_fact,
    output_root,
    snos_fact,
)
from madara_orchestrator.starknet.pie import read_pie
from tests.helpers.depth import deep
from tests.unit.pie.conftest import FIBONACCI_FACT, SEPOLIA_924016_FACT, build_pie

# -- the oracle ------------------------------------------------------------------------------------


@functools.cache
def cairo_lang_fact_info(zip_bytes: bytes, aggregator: bool = False) -> tuple[int, Any]:
    """cairo-lang's own fact computation (pure Python: ~25 s for the SNOS program, so computed once)."""
    from starkware.cairo.bootloaders.generate_fact import get_cairo_pie_fact_info, get_program_hash
    from starkware.cairo.lang.vm.cairo_pie import CairoPie

    pie = CairoPie.from_file(io.BytesIO(zip_bytes))
    program_hash = get_program_hash(pie)
    return program_hash, get_cairo_pie_fact_info(pie, program_hash=program_hash, aggregator=aggregator)


def assert_agrees_with_cairo_lang(zip_bytes: bytes) -> None:
    program_hash, theirs = cairo_lang_fact_info(zip_bytes)
    ours = fact_info(read_pie(zip_bytes))
    assert ours.program_hash == program_hash
    assert ours.program_output == theirs.program_output
    assert list(ours.fact_topology.tree_structure) == theirs.fact_topology.tree_structure
    assert list(ours.fact_topology.page_sizes) == theirs.fact_topology.page_sizes
    assert ours.fact == theirs.fact


# -- recorded vectors ------------------------------------------------------------------------------


def test_fibonacci_fact_is_the_recorded_one(fibonacci_zip: bytes) -> None:
    assert fact_info(read_pie(fibonacci_zip)).fact == FIBONACCI_FACT


def test_sepolia_924016_snos_fact_is_the_recorded_one(sepolia_zip: bytes) -> None:
    info = fact_info(read_pie(sepolia_zip))
    assert info.fact == SEPOLIA_924016_FACT
    assert info.fact_topology == FactTopology(tree_structure=(2, 1, 0, 2), page_sizes=(12, 11))


SEPOLIA_WITH_CAIRO_LANG = pytest.mark.skipif(
    not deep(), reason="make test-deep: 35 s; the suite checks this PIE's fact against the real one (vectors/README)"
)


@pytest.mark.parametrize("fixture", ["fibonacci_zip", pytest.param("sepolia_zip", marks=SEPOLIA_WITH_CAIRO_LANG)])
def test_recorded_pies_agree_with_cairo_lang(fixture: str, request: pytest.FixtureRequest) -> None:
    assert_agrees_with_cairo_lang(request.getfixturevalue(fixture))


@pytest.mark.parametrize("fixture", ["fibonacci_zip", "sepolia_zip"])
def test_poseidon_program_hash_agrees_with_cairo_lang(fixture: str, request: pytest.FixtureRequest) -> None:
    from starkware.cairo.bootloaders.hash_program import HashFunction as CairoLangHash
    from starkware.cairo.bootloaders.hash_program import compute_program_hash_chain
    from starkware.cairo.lang.vm.cairo_pie import CairoPie

    data: bytes = request.getfixturevalue(fixture)
    theirs = compute_program_hash_chain(CairoPie.from_file(io.BytesIO(data)).metadata.program, CairoLangHash.POSEIDON)
    assert compute_program_hash(read_pie(data).program, HashFunction.POSEIDON) == theirs


def test_sepolia_os_output_parses_into_its_fields(sepolia_zip: bytes) -> None:
    from madara_orchestrator.starknet.os_output import parse_os_output

    output = read_pie(sepolia_zip).output_segment()
    parsed = parse_os_output(output)
    header = parsed.header
    assert (header.prev_block_number, header.new_block_number) == (924015, 924016)
    assert (header.initial_root, header.final_root) == (output[0], output[1])
    assert (header.prev_block_hash, header.new_block_hash) == (output[4], output[5])
    assert header.starknet_os_config_hash == output[7]
    assert header.use_kzg_da is False  # an L2 SNOS run: the state diff is in the output
    assert header.full_output is True
    assert parsed.kzg is None
    assert parsed.messages_to_l1 == () and parsed.messages_to_l2 == ()
    assert parsed.state_diff is not None
    [contract] = parsed.state_diff.contracts
    assert contract.address == 1  # the block-hash contract: block number → block hash
    [change] = contract.storage_changes
    assert change.key == 924006  # the hash of block N-10 is written at N
    assert change.new_value == output[-2]
    # page 1 of the fact topology is exactly the state-diff area after the 12-word header + messages
    assert fact_info(read_pie(sepolia_zip)).fact_topology.page_sizes == (12, len(output) - 12)


def test_snos_fact_without_kzg_da_is_the_l2_poseidon_fact(sepolia_zip: bytes) -> None:
    from starkware.cairo.common.poseidon_hash import poseidon_hash, poseidon_hash_many

    pie = read_pie(sepolia_zip)
    result = snos_fact(pie)
    assert result.use_kzg_da is False
    expected = poseidon_hash(facts.BOOT_LOADER_PROGRAM_CONTRACT, poseidon_hash_many(pie.output_segment()))
    assert result.fact == "0x" + format(expected, "064x") == l2_fact(pie.output_segment())


def test_snos_fact_with_kzg_da_is_the_gps_fact() -> None:
    output = [7] * 8 + [1, 0] + [5, 0, 0, 0]
    pie = read_pie(build_pie(output))
    assert snos_fact(pie).fact == fact_info(pie).fact
    assert snos_fact(pie).use_kzg_da is True


def test_snos_fact_refuses_an_unknown_kzg_flag() -> None:
    with pytest.raises(UnsupportedKzgFlag, match="flag 2"):
        snos_fact(read_pie(build_pie([0] * 8 + [2, 0])))


# -- merkle root -----------------------------------------------------------------------------------


def test_spec_merkle_example_root() -> None:
    from starkware.cairo.bootloaders.compute_fact import generate_output_root
    from starkware.cairo.bootloaders.fact_topology import FactTopology as CairoLangTopology

    output = list(range(1, 13))
    tree = [1, 0, 1, 0, 0, 2, 1, 1, 0, 2]
    root = output_root(output, FactTopology(tree_structure=tuple(tree), page_sizes=(4, 4, 4)))
    root_hex = format(root.node_hash, "064x")
    assert root_hex.startswith("17f41ba1") and root_hex.endswith("e47f")  # SPEC §7.7: 0x17F41BA1…E47F
    theirs = generate_output_root(output, CairoLangTopology(tree_structure=tree, page_sizes=[4, 4, 4]))
    assert (root.node_hash, root.end_offset) == (theirs.node_hash, theirs.end_offset) == (root.node_hash, 12)


def test_a_parent_node_hash_is_the_keccak_of_children_plus_one() -> None:
    output = [1, 2, 3]
    pages = (1, 2)
    root = output_root(output, FactTopology(tree_structure=(2, 2), page_sizes=pages))
    leaf0 = int.from_bytes(facts.keccak_words([1]), "big")
    leaf1 = int.from_bytes(facts.keccak_words([2, 3]), "big")
    assert root.node_hash == int.from_bytes(facts.keccak_words([leaf0, 1, leaf1, 3]), "big") + 1


# -- topologies, against cairo-lang ---------------------------------------------------------------


TOPOLOGY_CASES = [
    ([5, 6, 7], None, None),
    (list(range(1, 13)), {"1": [4, 4], "2": [8, 4]}, [1, 0, 1, 0, 0, 2, 1, 1, 0, 2]),
    (list(range(100, 109)), {"1": [2, 3], "2": [5, 4]}, [3, 3]),
    (list(range(23)), {"1": [12, 11]}, [2, 1, 0, 2]),
]


@pytest.mark.parametrize(("output", "pages", "tree"), TOPOLOGY_CASES)
def test_synthetic_pies_agree_with_cairo_lang(
    output: list[int], pages: dict[str, list[int]] | None, tree: list[int] | None
) -> None:
    assert_agrees_with_cairo_lang(build_pie(output, pages=pages, tree_structure=tree))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_random_page_splits_agree_with_cairo_lang(data: st.DataObject) -> None:
    from starkware.cairo.bootloaders.compute_fact import generate_program_fact
    from starkware.cairo.bootloaders.fact_topology import get_fact_topology_from_additional_data

    output = data.draw(st.lists(st.integers(0, 2**251), min_size=2, max_size=40))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(output) - 1), max_size=3)))
    bounds = [0, *cuts, len(output)]
    pages = {str(i): [bounds[i], bounds[i + 1] - bounds[i]] for i in range(1, len(bounds) - 1)}
    n_pages = len(bounds) - 1
    tree = [n_pages, n_pages] if n_pages > 1 else [1, 0]
    additional = {"pages": pages, "attributes": {"gps_fact_topology": tree}}
    ours = fact_topology(len(output), additional)
    theirs = get_fact_topology_from_additional_data(len(output), additional)
    assert list(ours.page_sizes) == theirs.page_sizes
    assert gps_fact(123, output, ours) == generate_program_fact(123, output, theirs)


@pytest.mark.parametrize(
    ("additional", "size", "message"),
    [
        (None, 3, "no additional data"),
        ({"pages": {"1": [1, 2]}, "attributes": {}}, 3, "attribute is missing"),
        ({"pages": {}, "attributes": {"gps_fact_topology": [1]}}, 3, "invalid gps_fact_topology"),
        ({"pages": {}, "attributes": {"gps_fact_topology": []}}, 3, "invalid gps_fact_topology"),
        ({"pages": {}, "attributes": {"gps_fact_topology": [1, 0] * 6}}, 3, "invalid gps_fact_topology"),
        ({"pages": {}, "attributes": {"gps_fact_topology": [1, 2**31]}}, 3, "invalid gps_fact_topology"),
        ({"pages": {"2": [1, 2]}, "attributes": {"gps_fact_topology": [2, 2]}}, 3, "expected page id 1"),
        ({"pages": {"1": [0, 2]}, "attributes": {"gps_fact_topology": [2, 2]}}, 3, "outside"),
        ({"pages": {"1": [3, 1]}, "attributes": {"gps_fact_topology": [2, 2]}}, 3, "outside"),
        ({"pages": {"1": [1, 1], "2": [3, 1]}, "attributes": {"gps_fact_topology": [3, 3]}}, 4, "pages must touch"),
        ({"pages": {"1": [1, 1]}, "attributes": {"gps_fact_topology": [2, 2]}}, 3, "end at 2"),
        ({"pages": {"1": "x"}, "attributes": {"gps_fact_topology": [2, 2]}}, 3, "expected \\[start, size\\]"),
    ],
)
def test_invalid_topologies_are_refused(additional: dict[str, Any] | None, size: int, message: str) -> None:
    with pytest.raises(FactError, match=message):
        fact_topology(size, additional)


@pytest.mark.parametrize(
    ("tree", "sizes", "message"),
    [
        ((3, 0), (1, 2), "asks for 3 pages"),
        ((1, 2), (3,), "asks for 2 nodes"),
        ((2, 0), (1, 2), "leaves 2 nodes"),
        ((1, 0), (1, 2), "leaves 1 pages unused"),
    ],
)
def test_tree_structures_that_do_not_fit_the_pages_are_refused(
    tree: tuple[int, ...], sizes: tuple[int, ...], message: str
) -> None:
    with pytest.raises(FactError, match=message):
        output_root([1, 2, 3], FactTopology(tree_structure=tree, page_sizes=sizes))


def test_a_missing_output_cell_is_a_fact_error() -> None:
    from madara_orchestrator.starknet.pie import PieMemory, Relocatable, write_pie

    pie = read_pie(build_pie([1, 2, 3]))
    cells = {k: v for k, v in pie.memory.items() if k != Relocatable(2, 2)}
    broken = read_pie(
        write_pie(
            type(pie)(
                metadata=pie.metadata,
                memory=PieMemory(cells),
                additional_data=pie.additional_data,
                execution_resources=pie.execution_resources,
            )
        )
    )
    with pytest.raises(FactError, match="2:2 is missing"):
        fact_info(broken)


# -- aggregator ------------------------------------------------------------------------------------


def aggregator_output(
    children: Sequence[Sequence[int]], messages_to_l1: Sequence[int], messages_to_l2: Sequence[int], tail: int = 0
) -> list[int]:
    bootloader_input = [len(children)]
    for child in children:
        bootloader_input += [len(child) + 2, 0xABC, *child]
    header = [11, 22, 5, 9, 33, 44, 0xABC, 55, 1, 0]
    kzg = [0x1234, 1, 1, 2, 3, 4]  # z, n_blobs = 1, commitment limbs, evaluation limbs
    messages = [len(messages_to_l1), *messages_to_l1, len(messages_to_l2), *messages_to_l2]
    return bootloader_input + header + kzg + messages + list(range(tail))


def test_aggregator_output_filter_drops_the_input_and_the_trailing_area() -> None:
    output = aggregator_output([[1, 2, 3], [4]], [7, 8, 1, 9], [6, 5, 4, 3, 0], tail=5)
    filtered = filter_aggregator_output(output)
    assert filtered[:10] == [11, 22, 5, 9, 33, 44, 0xABC, 55, 1, 0]
    assert filtered[-6:] == [5, 6, 5, 4, 3, 0]
    assert len(filtered) == 10 + 6 + 5 + 6


@pytest.mark.parametrize("cut", [1, 5, 12, 20])
def test_a_truncated_aggregator_output_is_a_fact_error(cut: int) -> None:
    output = aggregator_output([[1, 2, 3]], [7, 8, 1, 9], [6])
    with pytest.raises(FactError):
        filter_aggregator_output(output[:cut])


def test_aggregator_fact_agrees_with_cairo_lang() -> None:
    zip_bytes = build_pie(aggregator_output([[1, 2, 3], [4, 5]], [7, 8, 1, 9], [6, 5, 4, 3, 0]))
    program_hash, theirs = cairo_lang_fact_info(zip_bytes, aggregator=True)
    ours = aggregator_fact_info(read_pie(zip_bytes))
    assert ours.program_hash == add_aggregator_prefix(program_hash)
    assert ours.program_output == theirs.program_output
    assert ours.fact == theirs.fact


def test_aggregator_prefix_agrees_with_cairo_lang() -> None:
    from starkware.cairo.bootloaders.aggregator_utils import add_aggregator_prefix as theirs

    assert add_aggregator_prefix(0x1234) == theirs(0x1234)


# -- helpers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "0x" + "0" * 63 + "1"),
        ("0xABC", "0x" + "0" * 61 + "abc"),
        (b"\x01" * 32, "0x" + "01" * 32),
    ],
)
def test_fact_hex_normalises(value: int | str | bytes, expected: str) -> None:
    assert facts.fact_hex(value) == expected


@pytest.mark.parametrize("value", [-1, 2**256, "0xzz", b"\x00"])
def test_fact_hex_refuses_non_facts(value: int | str | bytes) -> None:
    with pytest.raises(facts.InvalidInput):
        facts.fact_hex(value)


def test_program_hash_is_memoised_and_can_be_recomputed(fibonacci_zip: bytes) -> None:
    program = read_pie(fibonacci_zip).program
    first = compute_program_hash(program)
    facts.clear_program_hash_cache()
    assert compute_program_hash(program) == first
    chain = facts.program_hash_chain_input(program)
    assert first == facts.pedersen_hash_chain([len(chain), *chain])
