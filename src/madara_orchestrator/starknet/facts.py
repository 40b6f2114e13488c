"""Facts of Cairo runs (SPEC §7.7): program hash, fact topology, output merkle root, GPS and L2 facts.

The GPS fact is what the GPS verifier on Ethereum registers: ``keccak(program_hash ‖ output_root)``
where the output root follows the fact topology written by the program into the output builtin's
additional data. The L2 "poseidon fact" is only a tracking key (L2 SNOS runs without KZG DA).
Hashes come from the ecosystem libraries: crypto-cpp-py's library (Pedersen, loaded at the first hash:
``pedersen.py``), poseidon-py and eth-hash.
Pure functions; the program-hash memo is the only state (same program → same hash).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak
from poseidon_py.poseidon_hash import poseidon_hash, poseidon_hash_many

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.pedersen import pedersen, pedersen_function
from madara_orchestrator.starknet.pie import CairoPie, PieProgram

BOOTLOADER_VERSION = 0
BOOT_LOADER_PROGRAM_CONTRACT = 0x5AB580B04E3532B6B18F81CFA654A05E29DD8E2352D88DF1E765A84072DB07
"""The first Poseidon input of the L2 fact (SPEC §7.7)."""
AGGREGATOR_PREFIX = int.from_bytes(b"AGGREGATOR", "big")
GPS_FACT_TOPOLOGY = "gps_fact_topology"
MAX_TREE_STRUCTURE_LEN = 10
MAX_TREE_ENTRY = 2**31
OS_USE_KZG_DA_INDEX = 8
"""Index of the ``use_kzg_da`` flag in the Starknet OS output (SPEC §9)."""


class FactError(InvalidInput):
    """The PIE's output or fact topology cannot give a fact; the message says which rule broke."""


class UnsupportedKzgFlag(FactError):
    pass


class HashFunction(enum.StrEnum):
    PEDERSEN = "pedersen"
    POSEIDON = "poseidon"


@dataclass(frozen=True, slots=True, kw_only=True)
class FactTopology:
    tree_structure: tuple[int, ...]
    """Pairs ``(n_pages, n_nodes)`` consumed in order to build the output merkle tree."""
    page_sizes: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class FactNode:
    node_hash: int
    end_offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FactInfo:
    program_output: list[int]
    fact_topology: FactTopology
    program_hash: int
    fact: str
    """``0x`` + 64 lowercase hex."""


# --------------------------------------------------------------------------------------------------
# Program hash


def pedersen_hash(a: int, b: int) -> int:
    return pedersen(a, b)


def pedersen_hash_chain(values: Sequence[int]) -> int:
    """``h(v0, h(v1, … h(v[n-2], v[n-1])))`` (cairo-lang ``compute_hash_chain``)."""
    if not values:
        raise InvalidInput("a Pedersen hash chain needs at least one value")
    acc, hash_pair = values[-1], pedersen_function()
    for value in reversed(values[:-1]):
        acc = hash_pair(value, acc)
    return acc


def program_hash_chain_input(program: PieProgram, *, bootloader_version: int = BOOTLOADER_VERSION) -> list[int]:
    """``[version, main, n_builtins, *builtin names as ints, *data]`` (without the length prefix)."""
    builtins = [int.from_bytes(name.encode("ascii"), "big") for name in program.builtins]
    return [bootloader_version, program.main, len(builtins), *builtins, *program.data]


def compute_program_hash(
    program: PieProgram,
    hash_function: HashFunction = HashFunction.PEDERSEN,
    *,
    bootloader_version: int = BOOTLOADER_VERSION,
) -> int:
    """cairo-lang ``compute_program_hash_chain``. Memoised: the SNOS program is the same for every block."""
    return _program_hash_cached(program.data, program.builtins, program.main, hash_function, bootloader_version)


@functools.lru_cache(maxsize=16)
def _program_hash_cached(
    data: tuple[int, ...], builtins: tuple[str, ...], main: int, hash_function: HashFunction, version: int
) -> int:
    program = PieProgram(data=data, builtins=builtins, main=main)
    chain = program_hash_chain_input(program, bootloader_version=version)
    if hash_function is HashFunction.POSEIDON:
        return int(poseidon_hash_many(chain))
    return pedersen_hash_chain([len(chain), *chain])


def clear_program_hash_cache() -> None:
    """Forget memoised program hashes (benchmarks measure the cold computation)."""
    _program_hash_cached.cache_clear()


def add_aggregator_prefix(program_hash: int) -> int:
    """``pedersen("AGGREGATOR", h)``: the hash the bootloader reports for an aggregator program."""
    return pedersen(AGGREGATOR_PREFIX, program_hash)


# --------------------------------------------------------------------------------------------------
# Output, topology, merkle root


def program_output(pie: CairoPie) -> list[int]:
    """The output builtin segment; every cell must be an integer and present (``FactError`` else)."""
    try:
        return pie.output_segment()
    except InvalidInput as exc:
        raise FactError(f"invalid output segment: {exc}") from exc


def page_sizes(output_size: int, pages: Mapping[Any, Any]) -> list[int]:
    """Page 0 is the prefix before page 1; pages 1, 2, … must be contiguous and end at the output end."""
    parsed: list[tuple[int, int, int]] = []
    for page_id, bounds in pages.items():
        try:
            start, size = bounds
            parsed.append((int(page_id), int(start), int(size)))
        except (TypeError, ValueError):
            raise FactError(f"output page {page_id!r}: expected [start, size], got {bounds!r:.80}") from None
    sizes = [output_size]
    expected_start: int | None = None
    for expected_id, (page_id, start, size) in enumerate(sorted(parsed), start=1):
        if page_id != expected_id:
            raise FactError(f"output pages: expected page id {expected_id}, found {page_id}")
        if page_id == 1:
            if not 0 < start < output_size:
                raise FactError(f"output page 1 starts at {start}, outside (0, {output_size})")
            sizes[0] = start
        elif start != expected_start:
            raise FactError(f"output page {page_id} starts at {start}, expected {expected_start} (pages must touch)")
        if not 0 < size < output_size:
            raise FactError(f"output page {page_id} has size {size}, outside (0, {output_size})")
        sizes.append(size)
        expected_start = start + size
    if parsed and expected_start != output_size:
        raise FactError(f"output pages end at {expected_start} but the output has {output_size} words")
    return sizes


def fact_topology(output_size: int, output_builtin_data: Mapping[str, Any] | None) -> FactTopology:
    """The topology from the output builtin's additional data (``pages`` and ``gps_fact_topology``)."""
    if output_builtin_data is None:
        raise FactError("the output builtin has no additional data (pages/attributes); cannot build the topology")
    pages = output_builtin_data.get("pages") or {}
    attributes = output_builtin_data.get("attributes") or {}
    if not isinstance(pages, Mapping) or not isinstance(attributes, Mapping):
        raise FactError("output builtin additional data: pages and attributes must be objects")
    if GPS_FACT_TOPOLOGY in attributes:
        tree = attributes[GPS_FACT_TOPOLOGY]
        if not (
            isinstance(tree, list)
            and 0 < len(tree) <= MAX_TREE_STRUCTURE_LEN
            and len(tree) % 2 == 0
            and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < MAX_TREE_ENTRY for x in tree)
        ):
            raise FactError(
                f"invalid {GPS_FACT_TOPOLOGY} {tree!r:.100}: expected a non-empty even-length list "
                f"of at most {MAX_TREE_STRUCTURE_LEN} integers below 2^31"
            )
        tree_structure = tuple(tree)
    else:
        if pages:
            raise FactError(f"output pages are used but the {GPS_FACT_TOPOLOGY} attribute is missing")
        tree_structure = (1, 0)
    return FactTopology(tree_structure=tree_structure, page_sizes=tuple(page_sizes(output_size, pages)))


def keccak_words(values: Iterable[int]) -> bytes:
    """keccak256 of the values as 32-byte big-endian words (Solidity ``abi.encodePacked(uint256[])``)."""
    return keccak(b"".join(v.to_bytes(32, "big") for v in values))


def output_root(output: Sequence[int], topology: FactTopology) -> FactNode:
    """The fact-node merkle root (GpsOutputParser.sol): leaves are pages, parents hash ``+ 1``."""
    sizes = list(topology.page_sizes)
    tree = topology.tree_structure
    offset = 0
    stack: list[FactNode] = []
    for n_pages, n_nodes in zip(tree[::2], tree[1::2], strict=True):
        if n_pages > len(sizes):
            raise FactError(f"fact topology asks for {n_pages} pages, only {len(sizes)} left")
        for _ in range(n_pages):
            size = sizes.pop(0)
            page = output[offset : offset + size]
            offset += size
            stack.append(FactNode(node_hash=int.from_bytes(keccak_words(page), "big"), end_offset=offset))
        if n_nodes > len(stack):
            raise FactError(f"fact topology asks for {n_nodes} nodes, the stack holds {len(stack)}")
        if n_nodes > 0:
            children = stack[-n_nodes:]
            del stack[-n_nodes:]
            digest = keccak_words(v for child in children for v in (child.node_hash, child.end_offset))
            node_hash = (int.from_bytes(digest, "big") + 1) % 2**256
            stack.append(FactNode(node_hash=node_hash, end_offset=children[-1].end_offset))
    if len(stack) != 1:
        raise FactError(f"fact topology leaves {len(stack)} nodes instead of one root")
    if sizes:
        raise FactError(f"fact topology leaves {len(sizes)} pages unused")
    if stack[0].end_offset != len(output) or offset != len(output):
        raise FactError(f"fact topology covers {stack[0].end_offset} words, the output has {len(output)}")
    return stack[0]


def gps_fact(program_hash: int, output: Sequence[int], topology: FactTopology) -> str:
    """``keccak(program_hash ‖ output_root)`` as ``0x`` + 64 hex."""
    root = output_root(output, topology)
    return "0x" + keccak_words((program_hash, root.node_hash)).hex()


# --------------------------------------------------------------------------------------------------
# Whole-PIE facts


def fact_info(pie: CairoPie, *, program_hash: int | None = None, is_aggregator: bool = False) -> FactInfo:
    """The GPS fact of a PIE (SPEC §7.7). An aggregator's output is filtered first (see below)."""
    output = program_output(pie)
    if is_aggregator:
        output = filter_aggregator_output(output)
    topology = fact_topology(len(output), pie.additional_data.get("output_builtin"))
    if program_hash is None:
        program_hash = compute_program_hash(pie.program)
    return FactInfo(
        program_output=output,
        fact_topology=topology,
        program_hash=program_hash,
        fact=gps_fact(program_hash, output, topology),
    )


def l2_fact(output: Sequence[int]) -> str:
    """``Poseidon(BOOT_LOADER_PROGRAM_CONTRACT, PoseidonMany(output))``: the L2 SNOS tracking key."""
    return "0x" + format(poseidon_hash(BOOT_LOADER_PROGRAM_CONTRACT, poseidon_hash_many(list(output))), "064x")


@dataclass(frozen=True, slots=True, kw_only=True)
class SnosFact:
    fact: str
    program_output: list[int]
    use_kzg_da: bool


def snos_fact(pie: CairoPie, os_output: Sequence[int] | None = None) -> SnosFact:
    """The fact the SNOS job records (SPEC §9): L2 poseidon fact without KZG DA, GPS fact with it."""
    output = program_output(pie)
    flags = output if os_output is None else os_output
    if len(flags) <= OS_USE_KZG_DA_INDEX:
        raise FactError(f"the OS output has {len(flags)} words; the use_kzg_da flag is word {OS_USE_KZG_DA_INDEX}")
    flag = flags[OS_USE_KZG_DA_INDEX]
    if flag == 0:
        return SnosFact(fact=l2_fact(output), program_output=output, use_kzg_da=False)
    if flag == 1:
        info = fact_info(pie)
        return SnosFact(fact=info.fact, program_output=info.program_output, use_kzg_da=True)
    raise UnsupportedKzgFlag(f"unsupported use_kzg_da flag {flag} in the OS output (expected 0 or 1)")


def aggregator_input_size(output: Sequence[int]) -> int:
    """Words taken by the bootloader-style input ``[m, (size_i, hash_i, out_i…)…]`` at the output start."""
    if not output:
        raise FactError("aggregator output is empty")
    offset = 1
    for task in range(output[0]):
        if offset >= len(output):
            raise FactError(f"aggregator output ends inside task {task} of {output[0]}")
        size = output[offset]
        if size <= 0:
            raise FactError(f"aggregator task {task} has size {size}")
        offset += size
    if offset > len(output):
        raise FactError(f"aggregator input ({offset} words) is longer than the output ({len(output)})")
    return offset


def filter_aggregator_output(output: Sequence[int]) -> list[int]:
    """The aggregator's own output: header through the L1→L2 messages (SPEC §7.7).

    The bootloader-style input before it and the state-diff area after it are dropped. SPEC §7.7 reads a
    KZG DA output (the KZG section after the header); an output with ``use_kzg_da = 0`` has its messages
    right after the header.
    """
    start = aggregator_input_size(output)
    flag_at = start + OS_USE_KZG_DA_INDEX
    if flag_at >= len(output):
        raise FactError(f"aggregator output too short: no use_kzg_da word at {flag_at} (length {len(output)})")
    if output[flag_at] == 0:
        # Without KZG DA (a devnet ledger settles it) the messages follow the 10-word header.
        messages_at = start + 10
    else:
        n_blobs_at = start + 11
        if n_blobs_at >= len(output):
            raise FactError(f"aggregator output too short: no n_blobs word at {n_blobs_at} (length {len(output)})")
        messages_at = start + 12 + 4 * output[n_blobs_at]
    if messages_at >= len(output):
        raise FactError(f"aggregator output too short: no L2→L1 message count at {messages_at}")
    l1_to_l2_at = messages_at + 1 + output[messages_at]
    if l1_to_l2_at >= len(output):
        raise FactError(f"aggregator output too short: no L1→L2 message count at {l1_to_l2_at}")
    end = l1_to_l2_at + output[l1_to_l2_at]
    if end >= len(output):
        raise FactError(f"aggregator output too short: L1→L2 messages end at {end}, length {len(output)}")
    return list(output[start : end + 1])


def aggregator_fact_info(pie: CairoPie, *, program_hash_with_prefix: int | None = None) -> FactInfo:
    """The aggregator fact: filtered output, program hash with the ``AGGREGATOR`` prefix."""
    if program_hash_with_prefix is None:
        program_hash_with_prefix = add_aggregator_prefix(compute_program_hash(pie.program))
    return fact_info(pie, program_hash=program_hash_with_prefix, is_aggregator=True)


def fact_hex(value: int | str | bytes) -> str:
    """Normalise a fact to ``0x`` + 64 lowercase hex (``InvalidInput`` when it is not 32 bytes)."""
    if isinstance(value, bytes):
        if len(value) != 32:
            raise InvalidInput(f"a fact is 32 bytes, got {len(value)}")
        return "0x" + value.hex()
    if isinstance(value, str):
        text = value.lower().removeprefix("0x")
        try:
            number = int(text, 16)
        except ValueError:
            raise InvalidInput(f"a fact is a hex string, got {value!r:.80}") from None
    else:
        number = value
    if not 0 <= number < 2**256:
        raise InvalidInput(f"a fact is 32 bytes, got {value!r:.80}")
    return "0x" + format(number, "064x")
