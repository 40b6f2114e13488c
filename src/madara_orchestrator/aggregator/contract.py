"""The aggregator runner contract (``docs/aggregator-runner.md``): request, exit codes, output checks.

A runner outside this process (a command, or a service over HTTP) runs StarkWare's aggregator program
over one aggregator batch's SNOS outputs and hands back the aggregator's Cairo PIE, its program output
and the DA segment. Before an Aggregator job submits anything, ``check_output`` makes sure the three
belong together and to the batch. Before the run, ``check_input``: the SNOS outputs chain onto the chain
before the batch (the block before it, its state root and hash) and one onto the next. After it:

- the PIE reads and the program output is its output segment;
- the output starts with the aggregator's input, this batch's SNOS outputs in order;
- the aggregator's own output covers the SNOS outputs from the first to the last;
- its messages are those of the SNOS outputs, concatenated in order;
- with KZG DA its KZG section commits to exactly the blobs the batch publishes (the DA segment's), without
  it the DA segment is the state diff the output carries.

A damaged output fails the job (``DamagedAggregatorOutput``, not retryable) naming what is wrong. Pure:
bytes and values in, values out (the chain's side is read by ``chain_start``).
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from madara_orchestrator.domain.errors import InvalidInput, JobError
from madara_orchestrator.interfaces import AggregationInput, AggregationResult, ChainRpc
from madara_orchestrator.runners import contract as shared
from madara_orchestrator.runners.contract import CAIRO_PIE_FILE as CAIRO_PIE_FILE
from madara_orchestrator.runners.contract import EXIT_OK as EXIT_OK
from madara_orchestrator.runners.contract import EXIT_RETRYABLE as EXIT_RETRYABLE
from madara_orchestrator.starknet.felt import parse_felt
from madara_orchestrator.starknet.os_output import OsOutputHeader, OutputSections, parse_output_sections
from madara_orchestrator.starknet.pie import CairoPie, read_pie

CONTRACT_VERSION = 1
"""Sent with every request (``MADARA_AGGREGATOR_CONTRACT_VERSION``, ``"version"``)."""

EXIT_FAILED = 65
"""The aggregator failed on this input (inconsistent SNOS outputs, an execution error): fail fast. Exit code
75 (``EXIT_RETRYABLE``): try again later (no resources, a dependency away)."""

REQUEST_FILE = "request.json"
CHILDREN_DIR = "children"
PROGRAM_OUTPUT_FILE = "program_output.json"
DA_SEGMENT_FILE = "da_segment.json"
ENV_PREFIX = "MADARA_AGGREGATOR_"
AGGREGATOR_LAYOUT = "all_cairo"
"""The layout the original runs its aggregator with."""
MAX_JSON_BYTES = 256 << 20
"""``program_output.json`` / ``da_segment.json`` larger than this are refused."""


class ErrorKind(enum.StrEnum):
    """How an HTTP runner classifies its failure (``kind``); a command says it with its exit code."""

    RETRYABLE = "retryable"
    FAILED = "failed"


class DamagedAggregatorOutput(shared.DamagedOutput):
    """The runner said it succeeded, but what it handed back is unusable: the job's own failure."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainStart:
    """Where a batch starts on the chain: what its first SNOS output must move the chain from."""

    prev_block_number: int
    """``start_block - 1``, as a felt (P − 1 before genesis)."""
    initial_root: int
    """The state root before the batch's first block (its state update's ``old_root``)."""
    prev_block_hash: int | None
    """The hash of the block before the batch; None at genesis."""


async def chain_start(rpc: ChainRpc, start_block: int) -> ChainStart:
    """Read the batch's start from the sequencer (``BackendUnavailable`` while it does not answer)."""
    update = await rpc.get_state_update(start_block)
    previous = await rpc.get_block_with_tx_hashes(start_block - 1) if start_block > 0 else None
    try:
        root = parse_felt(update.get("old_root"), f"old_root of block {start_block}")
        block_hash = (
            parse_felt(previous.get("block_hash"), f"hash of block {start_block - 1}") if previous is not None else None
        )
    except InvalidInput as exc:
        raise JobError(f"the sequencer's answer for the start of the batch is unusable: {exc}") from exc
    return ChainStart(
        prev_block_number=shared.expected_prev_block_number(start_block), initial_root=root, prev_block_hash=block_hash
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatorRunConfig:
    """What every run of one runner shares."""

    rpc_url: str
    layout: str = AGGREGATOR_LAYOUT
    full_output: bool = False
    use_kzg_da: bool = True
    timeout_s: float = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestChild:
    snos_batch_index: int
    start_block: int
    end_block: int
    os_output: tuple[int, ...]
    cairo_pie: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatorRequest:
    """One aggregator batch, as a runner gets it."""

    batch_index: int
    start_block: int
    end_block: int
    rpc_url: str
    chain_id: str
    layout: str
    full_output: bool
    use_kzg_da: bool
    children: tuple[RequestChild, ...]

    @property
    def blocks(self) -> str:
        return f"{self.start_block}..{self.end_block}"

    @property
    def subject(self) -> str:
        return f"aggregator batch {self.batch_index} (blocks {self.blocks})"

    @classmethod
    def of(cls, batch: AggregationInput, config: AggregatorRunConfig, *, chain_id: str) -> AggregatorRequest:
        return cls(
            batch_index=batch.batch_index,
            start_block=batch.start_block,
            end_block=batch.end_block,
            rpc_url=config.rpc_url.rstrip("/"),
            chain_id=chain_id,
            layout=config.layout,
            full_output=config.full_output,
            use_kzg_da=config.use_kzg_da,
            children=tuple(
                RequestChild(
                    snos_batch_index=c.snos_batch_index,
                    start_block=c.start_block,
                    end_block=c.end_block,
                    os_output=tuple(c.os_output),
                    cairo_pie=c.cairo_pie_zip,
                )
                for c in batch.children
            ),
        )

    def to_json(self, *, pie_files: Sequence[str] | None = None) -> dict[str, Any]:
        """The request as JSON: each child's PIE inline (``cairo_pie``, base64) or, with ``pie_files``, as
        the path of a file holding it (``cairo_pie_file``)."""
        children = []
        for i, child in enumerate(self.children):
            entry: dict[str, Any] = {
                "snos_batch_index": child.snos_batch_index,
                "start_block": child.start_block,
                "end_block": child.end_block,
                "os_output": [hex(f) for f in child.os_output],
            }
            if pie_files is not None:
                entry["cairo_pie_file"] = pie_files[i]
            else:
                entry["cairo_pie"] = base64.b64encode(child.cairo_pie).decode()
            children.append(entry)
        return {
            "version": CONTRACT_VERSION,
            "batch_index": self.batch_index,
            "start_block": self.start_block,
            "end_block": self.end_block,
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "layout": self.layout,
            "full_output": self.full_output,
            "use_kzg_da": self.use_kzg_da,
            "children": children,
        }

    @classmethod
    def from_json(cls, value: Any) -> AggregatorRequest:
        """A request as a runner reads it (``InvalidInput`` naming the bad field); a ``cairo_pie_file`` is read."""
        if not isinstance(value, Mapping):
            raise InvalidInput(f"an aggregator request is a JSON object, got {type(value).__name__}")
        if value.get("version", CONTRACT_VERSION) != CONTRACT_VERSION:
            raise InvalidInput(f"aggregator request version {value.get('version')!r}: this speaks {CONTRACT_VERSION}")

        def field(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
            item: Any = obj.get(name)
            negative = isinstance(item, int) and not isinstance(item, bool) and item < 0
            if not isinstance(item, kind) or (kind is int and (isinstance(item, bool) or negative)):
                what = "non-negative integer" if kind is int else kind.__name__
                raise InvalidInput(f"{where}: {name} must be a {what}, got {item!r:.40}")
            return item

        children = []
        raw_children = value.get("children")
        if not isinstance(raw_children, list) or not raw_children:
            raise InvalidInput("aggregator request: children must be a non-empty array")
        for i, raw in enumerate(raw_children):
            where = f"aggregator request: children[{i}]"
            if not isinstance(raw, Mapping):
                raise InvalidInput(f"{where} must be an object")
            if "cairo_pie_file" in raw:
                try:
                    pie = Path(field(raw, "cairo_pie_file", str, where)).read_bytes()
                except OSError as exc:
                    raise InvalidInput(f"{where}: cairo_pie_file cannot be read: {exc}") from exc
            else:
                try:
                    pie = base64.b64decode(field(raw, "cairo_pie", str, where), validate=True)
                except ValueError as exc:
                    raise InvalidInput(f"{where}: cairo_pie is not base64") from exc
            outputs = field(raw, "os_output", list, where)
            children.append(
                RequestChild(
                    snos_batch_index=field(raw, "snos_batch_index", int, where),
                    start_block=field(raw, "start_block", int, where),
                    end_block=field(raw, "end_block", int, where),
                    os_output=tuple(parse_felt(f, f"{where}.os_output[{j}]") for j, f in enumerate(outputs)),
                    cairo_pie=pie,
                )
            )
        where = "aggregator request"
        return cls(
            batch_index=field(value, "batch_index", int, where),
            start_block=field(value, "start_block", int, where),
            end_block=field(value, "end_block", int, where),
            rpc_url=field(value, "rpc_url", str, where),
            chain_id=field(value, "chain_id", str, where),
            layout=field(value, "layout", str, where),
            full_output=field(value, "full_output", bool, where),
            use_kzg_da=field(value, "use_kzg_da", bool, where),
            children=tuple(children),
        )

    def arguments(self, request_file: str, output_dir: str) -> list[str]:
        """What a command gets after its own arguments."""
        return ["--request", request_file, "--output-dir", output_dir]

    def environment(self, request_file: str, output_dir: str) -> dict[str, str]:
        """The ``MADARA_AGGREGATOR_*`` variables a command gets (the scalars of the request, for scripts)."""
        return {
            ENV_PREFIX + "CONTRACT_VERSION": str(CONTRACT_VERSION),
            ENV_PREFIX + "REQUEST": request_file,
            ENV_PREFIX + "OUTPUT_DIR": output_dir,
            ENV_PREFIX + "BATCH_INDEX": str(self.batch_index),
            ENV_PREFIX + "START_BLOCK": str(self.start_block),
            ENV_PREFIX + "END_BLOCK": str(self.end_block),
            ENV_PREFIX + "LAYOUT": self.layout,
            ENV_PREFIX + "FULL_OUTPUT": shared.bool_text(self.full_output),
            ENV_PREFIX + "USE_KZG_DA": shared.bool_text(self.use_kzg_da),
            ENV_PREFIX + "CHAIN_ID": self.chain_id,
            ENV_PREFIX + "RPC_URL": self.rpc_url,
        }


# --------------------------------------------------------------------------------------------------
# Reading what a runner hands back


def parse_felts_json(data: bytes | Any, where: str) -> list[int]:
    """A JSON array of felts (``0x`` hex strings; decimal strings and integers are accepted): the file's
    bytes or the already decoded value."""
    return shared.parse_felts(data, where, limit=MAX_JSON_BYTES, damaged=DamagedAggregatorOutput)


# --------------------------------------------------------------------------------------------------
# The checks


def _header_start(header: OsOutputHeader) -> tuple[int, int, int]:
    return header.prev_block_number, header.initial_root, header.prev_block_hash


def _header_end(header: OsOutputHeader) -> tuple[int, int, int]:
    return header.new_block_number, header.final_root, header.new_block_hash


def _point(point: tuple[int, int, int]) -> str:
    block, root, block_hash = point
    return f"block {shared.block_text(block)} (root {hex(root)}, hash {hex(block_hash)})"


Damaged = Callable[[str], NoReturn]
"""Raises the ``DamagedAggregatorOutput`` of one run's output, its message after the run's prefix."""


def check_output(
    request: AggregatorRequest,
    start: ChainStart,
    *,
    cairo_pie_zip: bytes,
    program_output: Sequence[int],
    da_segment: Sequence[int],
    source: str = "the aggregator runner",
) -> AggregationResult:
    """The result of a run, once its output passed every check (``DamagedAggregatorOutput`` names the first
    that failed). CPU-bound (the PIE, the KZG commitments, the program hash): call it in a worker thread."""
    # Imported here: runner programs written in Python import this module for the request and the exit
    # codes, and the hash and KZG libraries take a while to load.
    from madara_orchestrator.starknet.facts import aggregator_fact_info

    prefix = f"{source} returned a damaged output for {request.subject}:"

    def damaged(message: str) -> NoReturn:
        raise DamagedAggregatorOutput(f"{prefix} {message}")

    pie = _check_pie(cairo_pie_zip, program_output, damaged)
    children = check_input(request, start)
    own = _check_own_output(request, children, program_output, damaged)
    _check_messages(children, own, damaged)
    _check_da(own, program_output, da_segment, damaged)
    try:
        info = aggregator_fact_info(pie)
    except InvalidInput as exc:
        damaged(f"no fact can be computed from the Cairo PIE: {exc}")
    return AggregationResult(
        cairo_pie_zip=cairo_pie_zip,
        program_output=info.program_output,
        da_segment=list(da_segment),
        fact=info.fact,
    )


def _check_pie(cairo_pie_zip: bytes, program_output: Sequence[int], damaged: Damaged) -> CairoPie:
    """The PIE, once it reads and the program output is its output segment."""
    try:
        pie = read_pie(cairo_pie_zip)
    except InvalidInput as exc:
        damaged(f"the Cairo PIE is unreadable: {exc}")
    try:
        segment = pie.output_segment()
    except InvalidInput as exc:
        damaged(f"the Cairo PIE has no readable output segment: {exc}")
    if list(segment) != list(program_output):
        damaged(
            f"the program output ({len(program_output)} felts) is not the PIE's output segment "
            f"({len(segment)} felts); they first differ at felt {shared.first_difference(segment, program_output)}"
        )
    return pie


def _check_own_output(
    request: AggregatorRequest, children: list[OutputSections], program_output: Sequence[int], damaged: Damaged
) -> OutputSections:
    """The aggregator's own output, once its input is this batch's SNOS outputs in order and it covers them
    from the first to the last, with their config hash and the OS hints asked for."""
    from madara_orchestrator.starknet.facts import aggregator_input_size

    try:
        own_start = aggregator_input_size(program_output)
    except InvalidInput as exc:
        damaged(f"the output does not start with the aggregator's input: {exc}")
    tasks = _input_tasks(program_output, own_start)
    if [task for _, task in tasks] != [list(c.os_output) for c in request.children]:
        damaged(
            f"the aggregator's input is {len(tasks)} task outputs that are not the batch's "
            f"{len(request.children)} SNOS outputs (SNOS batches "
            f"{', '.join(str(c.snos_batch_index) for c in request.children)}) in order"
        )
    try:
        own = parse_output_sections(program_output, own_start)
    except InvalidInput as exc:
        damaged(f"the aggregator's own output (from felt {own_start}) is not in the OS output layout: {exc}")
    first, last = children[0].header, children[-1].header
    if _header_start(own.header) != _header_start(first) or _header_end(own.header) != _header_end(last):
        damaged(
            f"the aggregator's output moves the chain from {_point(_header_start(own.header))} to "
            f"{_point(_header_end(own.header))}; its SNOS outputs from {_point(_header_start(first))} to "
            f"{_point(_header_end(last))}"
        )
    if own.header.new_block_number != request.end_block:
        damaged(f"the output ends at block {own.header.new_block_number}, the batch at {request.end_block}")
    config_hashes = {c.header.starknet_os_config_hash for c in children}
    if config_hashes != {own.header.starknet_os_config_hash}:
        damaged(
            f"the output's OS config hash {hex(own.header.starknet_os_config_hash)} is not its SNOS outputs' "
            f"({', '.join(sorted(hex(h) for h in config_hashes))})"
        )
    for name, got_flag, asked in (
        ("use_kzg_da", own.header.use_kzg_da, request.use_kzg_da),
        ("full_output", own.header.full_output, request.full_output),
    ):
        if got_flag != asked:
            damaged(
                f"the output has {name}={int(got_flag)}, "
                f"but the aggregator was asked for {name}={shared.bool_text(asked)}"
            )
    return own


def _check_messages(children: list[OutputSections], own: OutputSections, damaged: Damaged) -> None:
    """The aggregator's messages are the SNOS outputs', concatenated in order."""
    to_l1 = tuple(m for c in children for m in c.messages_to_l1)
    to_l2 = tuple(m for c in children for m in c.messages_to_l2)
    for direction, got_messages, want in (
        ("L2→L1", own.messages_to_l1, to_l1),
        ("L1→L2", own.messages_to_l2, to_l2),
    ):
        if got_messages != want:
            at = next(
                (i for i, (a, b) in enumerate(zip(got_messages, want, strict=False)) if a != b),
                min(len(got_messages), len(want)),
            )
            damaged(
                f"its {len(got_messages)} {direction} messages are not the {len(want)} of its SNOS outputs in "
                f"order (they first differ at message {at})"
            )


def _check_da(own: OutputSections, program_output: Sequence[int], da_segment: Sequence[int], damaged: Damaged) -> None:
    """The blobs the batch publishes are the DA segment's (KZG DA), or the DA segment is the state diff the
    output carries."""
    from madara_orchestrator.starknet import kzg
    from madara_orchestrator.starknet.blob import felts_to_blobs

    if not da_segment:
        damaged("the DA segment is empty")
    if own.kzg is not None:
        blobs = felts_to_blobs(da_segment)
        if own.kzg.n_blobs != len(blobs):
            damaged(
                f"its KZG section is for {own.kzg.n_blobs} blobs, the DA segment ({len(da_segment)} felts) "
                f"makes {len(blobs)}"
            )
        for i, blob in enumerate(blobs):
            if own.kzg.commitments[i] != kzg.blob_to_commitment(blob):
                damaged(f"KZG commitment {i} is not the commitment of blob {i} of the DA segment")
            if own.kzg.evaluations[i] != kzg.compute_point_proof(blob, own.kzg.z)[1]:
                damaged(f"y_{i} is not blob {i} of the DA segment evaluated at x_0 = {hex(own.kzg.z)}")
    elif list(program_output[own.end :]) != list(da_segment):
        damaged(
            f"without KZG DA the DA segment ({len(da_segment)} felts) must be the state diff the output carries "
            f"({len(program_output) - own.end} felts after its messages)"
        )


def check_input(request: AggregatorRequest, start: ChainStart) -> list[OutputSections]:
    """The batch's SNOS outputs, parsed, once they chain: each covers its SNOS batch's blocks, the first
    starts where the chain before the batch ends (block, state root, block hash) and each of the others
    where the one before it ends. A ``JobError`` (not retryable) names the first break: aggregating such
    outputs cannot give a settleable batch, however often it is tried."""
    prefix = f"{request.subject} cannot be aggregated:"
    children: list[OutputSections] = []
    for child in request.children:
        where = f"the OS output of SNOS batch {child.snos_batch_index}"
        try:
            sections = parse_output_sections(child.os_output)
        except InvalidInput as exc:
            raise JobError(f"{prefix} {where} is not an OS output: {exc}", retryable=False) from exc
        header = sections.header
        covers = (shared.expected_prev_block_number(child.start_block), child.end_block)
        if (header.prev_block_number, header.new_block_number) != covers:
            raise JobError(
                f"{prefix} {where} moves the chain from block {shared.block_text(header.prev_block_number)} to "
                f"{header.new_block_number}, the SNOS batch covers blocks {child.start_block}..{child.end_block}",
                retryable=False,
            )
        children.append(sections)
    if not children:
        raise JobError(f"{prefix} it has no SNOS batches", retryable=False)
    expected = (start.prev_block_number, start.initial_root, start.prev_block_hash)
    got = _header_start(children[0].header)
    if got[:2] != expected[:2] or (expected[2] is not None and got[2] != expected[2]):
        raise JobError(
            f"{prefix} the first SNOS output (SNOS batch {request.children[0].snos_batch_index}) starts from "
            f"{_point(got)}, but the chain before the batch ends at block {shared.block_text(expected[0])} "
            f"(root {hex(expected[1])}" + (f", hash {hex(expected[2])})" if expected[2] is not None else ")"),
            retryable=False,
        )
    for i in range(1, len(children)):
        before, after = children[i - 1].header, children[i].header
        if _header_end(before) != _header_start(after):
            raise JobError(
                f"{prefix} SNOS batch {request.children[i].snos_batch_index} starts from "
                f"{_point(_header_start(after))}, not where SNOS batch {request.children[i - 1].snos_batch_index} "
                f"ends, {_point(_header_end(before))}",
                retryable=False,
            )
    return children


async def checked_request(
    batch: AggregationInput, config: AggregatorRunConfig, rpc: ChainRpc
) -> tuple[AggregatorRequest, ChainStart]:
    """What a runner of either kind does before the run: the batch's request (with the chain's id), where the
    batch starts on the chain, and its SNOS outputs checked to chain onto it (``check_input``)."""
    request = AggregatorRequest.of(batch, config, chain_id=await rpc.chain_id())
    start = await chain_start(rpc, batch.start_block)
    check_input(request, start)
    return request, start


def _input_tasks(output: Sequence[int], end: int) -> list[tuple[int, list[int]]]:
    """``(program_hash, task output)`` of each task of the bootloader-style input ``output[:end]``."""
    tasks: list[tuple[int, list[int]]] = []
    at = 1
    while at < end:
        size = output[at]
        tasks.append((output[at + 1], list(output[at + 2 : at + size])))
        at += size
    return tasks


def failure_kind(value: Any) -> ErrorKind:
    """An answer's ``kind``; anything unknown is a failure that a retry would not mend."""
    try:
        return ErrorKind(value)
    except ValueError:
        return ErrorKind.FAILED


def raise_failure(kind: ErrorKind, message: str) -> NoReturn:
    raise JobError(message, retryable=kind is ErrorKind.RETRYABLE)


AGGREGATOR_RUNNER = shared.RunnerKind(
    waiting="Aggregator jobs",
    timeout_flag="--aggregator-timeout-seconds",
    logger="madara_orchestrator.aggregator",
    rpc_unanswered="the sequencer RPC does not answer (%s); Aggregator jobs wait",
)
"""Both aggregator runners' names; readiness reads the sequencer (the checks read the chain before each batch)."""
