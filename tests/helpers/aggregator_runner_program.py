#!/usr/bin/env python3
"""The tests' aggregator runner program: honours the contract of ``docs/aggregator-runner.md``.

Run as ``python tests/helpers/aggregator_runner_program.py --request FILE --output-dir DIR``. It does what
StarkWare's aggregator does with the batch's SNOS outputs, in Python:

- it refuses (exit 65) SNOS outputs it cannot aggregate: a child whose PIE is not a Cairo PIE holding the
  child's output, outputs of different OS programs or configs, outputs that do not chain, an output whose
  state diff is not in the OS layout (the devnet SNOS stand-in's is not: use the tests' SNOS runner);
- its DA segment is the children's state diffs squashed (first previous value, last new value, unchanged
  entries dropped) in the OS's packed encoding, stateless-compressed;
- its output is the aggregator's layout: the bootloader-style input ``[n, (len + 2, program hash,
  output…)…]`` (each child's program hash from its PIE), then its own OS-layout output (the first child's
  start, the last child's end, the children's program and config hashes, a real KZG section for the DA
  segment's blobs, the children's messages concatenated; without KZG DA, the messages then the state diff);
- its Cairo PIE comes from running a Cairo 0 program (``aggregator_output.cairo``, compiled once and
  cached) with cairo-lang's VM: the program copies that output into the output builtin, so the PIE's
  output segment is the output and its program hash is what the fact is made with
  (``aggregator_program_hash()``: a core contract must be deployed with it).

``AGGREGATOR_TEST_MODE`` makes it misbehave, so tests can check each classification and check:
``retryable-exit`` (exit 75), ``failed`` (exit 65), ``crash`` (exit 3), ``hang`` (ignores SIGTERM, starts a
helper, writes both pids to ``AGGREGATOR_TEST_PID_FILE``), ``no-output``, ``corrupt-pie``,
``mismatched-output`` (``program_output.json`` is not the PIE's), ``wrong-kzg`` (the DA segment is not the
one the KZG section commits to), ``wrong-root`` (its own output ends at another root),
``dropped-message`` (its own output lacks the last L2→L1 message), ``wrong-input`` (its input lacks the
last child). ``AGGREGATOR_TEST_ENV_DUMP=path`` writes the names of the variables it was given to ``path``.
The HTTP runner service (``aggregator_runner_service``) runs the same logic behind the HTTP API.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import io
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madara_orchestrator.aggregator.contract import (
    CAIRO_PIE_FILE,
    DA_SEGMENT_FILE,
    ENV_PREFIX,
    EXIT_FAILED,
    EXIT_RETRYABLE,
    PROGRAM_OUTPUT_FILE,
    AggregatorRequest,
    ErrorKind,
)
from madara_orchestrator.devnet.program_output import build_program_output
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.compression import compress
from madara_orchestrator.starknet.facts import add_aggregator_prefix, compute_program_hash
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.os_output import MessageToL1, MessageToL2, OsOutput, OsOutputHeader, parse_os_output
from madara_orchestrator.starknet.pie import read_pie

try:
    from tests.helpers.runner_program import RunnerFailure, dump_environment, hang
except ModuleNotFoundError:  # run as a script (the command runner's tests): its own folder is on sys.path
    from runner_program import RunnerFailure, dump_environment, hang  # type: ignore[no-redef]

MODE_VARIABLE = "AGGREGATOR_TEST_MODE"
PID_FILE_VARIABLE = "AGGREGATOR_TEST_PID_FILE"
ENV_DUMP_VARIABLE = "AGGREGATOR_TEST_ENV_DUMP"
CAIRO_SOURCE = Path(__file__).with_name("aggregator_output.cairo")
FALLBACK_LAYOUT = "starknet_with_keccak"
"""cairo-lang 0.14 has no ``all_cairo`` layout (cairo-vm's); the PIE does not depend on the layout."""
N_UPDATES_SMALL_BOUND = 2**8
N_UPDATES_BOUND = 2**64


@dataclass(frozen=True)
class Produced:
    cairo_pie: bytes
    program_output: list[int]
    da_segment: list[int]


# -- the Cairo program -----------------------------------------------------------------------------


@functools.cache
def _cairo_vm() -> Any:
    """cairo-lang's ``CairoRunner``. cairo-lang 0.14 declares a dataclass field with a mutable default
    (``field(default=CpuInstanceDef())``), which Python 3.11 refuses: its ``instances`` module is loaded
    from its own source with that one default made a factory."""
    name = "starkware.cairo.lang.instances"
    if name not in sys.modules:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None and spec.loader is not None
        source = Path(spec.origin).read_text()
        broken = "field(default=CpuInstanceDef())"
        if broken in source:
            source = source.replace(broken, "field(default_factory=CpuInstanceDef)")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        exec(compile(source, spec.origin, "exec"), module.__dict__)
    from starkware.cairo.lang.vm.cairo_runner import CairoRunner

    return CairoRunner


@functools.cache
def compiled_program() -> Any:
    """The compiled ``aggregator_output.cairo`` (a cairo-lang ``Program``), cached by the source's hash in
    the user's own folder in the temp directory (``kzg_memo.private_folder``; compiling takes a second or two)."""
    from starkware.cairo.lang.cairo_constants import DEFAULT_PRIME
    from starkware.cairo.lang.compiler.cairo_compile import compile_cairo
    from starkware.cairo.lang.compiler.program import Program

    source = CAIRO_SOURCE.read_text()
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = _kzg_memo().private_folder()
    if folder is None:
        return compile_cairo(source, prime=DEFAULT_PRIME, debug_info=False)
    cached = folder / f"aggregator-{digest}.json"
    if cached.is_file():
        return Program.load(data=json.loads(cached.read_text()))
    program = compile_cairo(source, prime=DEFAULT_PRIME, debug_info=False)
    handle, tmp = tempfile.mkstemp(dir=cached.parent, prefix=cached.name + ".")
    with os.fdopen(handle, "w") as out:
        json.dump(program.dump(), out)
    os.replace(tmp, cached)
    return program


def aggregator_program_hash() -> int:
    """The hash, with the ``AGGREGATOR`` prefix, of the program every PIE of this runner holds: the program
    hash a core contract checks this runner's facts with."""
    from starkware.cairo.bootloaders.hash_program import HashFunction, compute_program_hash_chain

    return add_aggregator_prefix(compute_program_hash_chain(compiled_program().stripped(), HashFunction.PEDERSEN))


def run_program(output: Sequence[int], layout: str) -> bytes:
    """Run the Cairo program so that it writes ``output``; the PIE zip of the run."""
    cairo_runner = _cairo_vm()
    from starkware.cairo.lang.instances import LAYOUTS

    runner = cairo_runner(
        program=compiled_program(), layout=layout if layout in LAYOUTS else FALLBACK_LAYOUT, proof_mode=False
    )
    runner.initialize_segments()
    end = runner.initialize_main_entrypoint()
    runner.initialize_vm(hint_locals={"program_input": {"output": list(output)}})
    runner.run_until_pc(end)
    runner.end_run()
    runner.read_return_values()
    runner.finalize_segments()
    pie = runner.get_cairo_pie()
    pie.run_validity_checks()
    buffer = io.BytesIO()
    pie.to_file(buffer)
    return buffer.getvalue()


# -- KZG, remembered between runs --------------------------------------------------------------------


def _kzg_memo() -> Any:
    """tests/helpers/kzg_memo.py, loaded from beside this file: the program runs as a script, with no
    ``tests`` package on its path."""
    path = Path(__file__).with_name("kzg_memo.py")
    spec = importlib.util.spec_from_file_location("kzg_memo", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the aggregation ---------------------------------------------------------------------------------


def squashed_state_diff(children: Sequence[OsOutput]) -> list[int]:
    """The children's state diffs as one: per contract its first previous and last new nonce, class hash
    and storage values, unchanged entries dropped; in the OS's packed encoding, stateless-compressed."""
    contracts: dict[int, dict[str, Any]] = {}
    classes: dict[int, int] = {}
    for child in children:
        assert child.state_diff is not None
        for change in child.state_diff.contracts:
            entry = contracts.setdefault(
                change.address,
                {"prev_nonce": change.prev_nonce, "prev_class": change.prev_class_hash, "storage": {}},
            )
            if change.new_nonce is not None:
                entry["nonce"] = change.new_nonce
            if change.new_class_hash is not None:
                entry["class"] = change.new_class_hash
            for slot in change.storage_changes:
                entry["storage"].setdefault(slot.key, [slot.prev_value, None])[1] = slot.new_value
        for declared in child.state_diff.classes:
            classes[declared.class_hash] = declared.new_compiled_class_hash
    body: list[int] = []
    count = 0
    for address in sorted(contracts):
        entry = contracts[address]
        nonce = entry.get("nonce")
        nonce_changed = nonce is not None and nonce != entry["prev_nonce"]
        class_changed = entry.get("class") is not None and entry.get("class") != entry["prev_class"]
        storage = [(key, new) for key, (prev, new) in sorted(entry["storage"].items()) if new != prev]
        if not (nonce_changed or class_changed or storage):
            continue
        small = len(storage) < N_UPDATES_SMALL_BOUND
        bound = N_UPDATES_SMALL_BOUND if small else N_UPDATES_BOUND
        packed = (((nonce if nonce_changed else 0) * bound + len(storage)) * 2 + int(small)) * 2 + int(class_changed)
        body += [address, packed, *([entry["class"]] if class_changed else [])]
        body += [word for pair in storage for word in pair]
        count += 1
    felts = [count, *body, len(classes)]
    for class_hash in sorted(classes):
        felts += [class_hash, classes[class_hash]]
    return compress(felts)


def _message_words(messages: Sequence[MessageToL1 | MessageToL2]) -> list[int]:
    words: list[int] = []
    for m in messages:
        if isinstance(m, MessageToL1):
            words += [m.from_address, m.to_address, len(m.payload), *m.payload]
        else:
            words += [m.from_address, m.to_address, m.nonce, m.selector, len(m.payload), *m.payload]
    return words


def _children(request: AggregatorRequest) -> tuple[list[OsOutput], list[int]]:
    """The children's outputs, parsed, and their PIEs' program hashes, checked as the aggregator checks them."""
    outputs: list[OsOutput] = []
    hashes: list[int] = []
    for child in request.children:
        name = f"SNOS batch {child.snos_batch_index}"
        try:
            pie = read_pie(child.cairo_pie)
            if pie.output_segment() != list(child.os_output):
                raise RunnerFailure(ErrorKind.FAILED, f"{name}: its PIE's output is not its OS output")
            hashes.append(compute_program_hash(pie.program))
        except InvalidInput as exc:
            raise RunnerFailure(ErrorKind.FAILED, f"{name}: its PIE is not a Cairo PIE ({exc})") from exc
        try:
            output = parse_os_output(child.os_output)
        except InvalidInput as exc:
            raise RunnerFailure(ErrorKind.FAILED, f"{name}: not a Starknet OS output ({exc})") from exc
        if output.state_diff is None:
            raise RunnerFailure(ErrorKind.FAILED, f"{name}: an output with KZG DA carries no state diff")
        outputs.append(output)
    if len(set(hashes)) != 1 or len({o.header.starknet_os_config_hash for o in outputs}) != 1:
        raise RunnerFailure(ErrorKind.FAILED, "the SNOS outputs come from different OS programs or configs")
    for before, after in itertools.pairwise(outputs):
        b, a = before.header, after.header
        if (b.new_block_number, b.final_root, b.new_block_hash) != (
            a.prev_block_number,
            a.initial_root,
            a.prev_block_hash,
        ):
            raise RunnerFailure(ErrorKind.FAILED, "the SNOS outputs do not chain")
    return outputs, hashes


def aggregate(request: AggregatorRequest, mode: str = "") -> tuple[list[int], list[int]]:
    """``(program output, DA segment)`` of the batch (``RunnerFailure`` when it cannot be aggregated)."""
    outputs, hashes = _children(request)
    da_segment = squashed_state_diff(outputs)
    first, last = outputs[0].header, outputs[-1].header
    to_l1 = [m for o in outputs for m in o.messages_to_l1]
    to_l2 = [m for o in outputs for m in o.messages_to_l2]
    if mode == "dropped-message":
        to_l1 = to_l1[:-1]
    messages = [len(_message_words(to_l1)), *_message_words(to_l1), len(_message_words(to_l2)), *_message_words(to_l2)]
    final_root = (last.final_root + 1) % STARKNET_PRIME if mode == "wrong-root" else last.final_root
    header = OsOutputHeader(
        initial_root=first.initial_root,
        final_root=final_root,
        prev_block_number=first.prev_block_number,
        new_block_number=last.new_block_number,
        prev_block_hash=first.prev_block_hash,
        new_block_hash=last.new_block_hash,
        os_program_hash=hashes[0],
        starknet_os_config_hash=first.starknet_os_config_hash,
        use_kzg_da=request.use_kzg_da,
        full_output=request.full_output,
    )
    if request.use_kzg_da:
        own = build_program_output(header, felts_to_blobs(da_segment), rest=messages)
    else:
        own = [*header.felts(), *messages, *da_segment]
    children = list(request.children)[:-1] if mode == "wrong-input" else list(request.children)
    program_output = [len(children)]
    for child, program_hash in zip(children, hashes, strict=False):
        program_output += [len(child.os_output) + 2, program_hash, *child.os_output]
    return program_output + own, da_segment


def failure_for(mode: str) -> RunnerFailure | None:
    if mode == "retryable-exit":
        return RunnerFailure(ErrorKind.RETRYABLE, "no capacity for an aggregator run now, try later")
    if mode == "failed":
        return RunnerFailure(ErrorKind.FAILED, "aggregator execution failed: assertion failed in aggregate_outputs")
    return None


def produce(request: AggregatorRequest, mode: str = "") -> Produced:
    """Aggregate the request's batch (``RunnerFailure`` on a failure mode or an input it refuses)."""
    failure = failure_for(mode)
    if failure is not None:
        raise failure
    program_output, da_segment = aggregate(request, mode)
    pie = run_program(program_output, request.layout)
    if mode == "corrupt-pie":
        pie = pie[: len(pie) // 2]
    reported = list(program_output)
    if mode == "mismatched-output":
        reported[-1] = (reported[-1] + 1) % STARKNET_PRIME
    if mode == "wrong-kzg":
        da_segment = [*da_segment, 1]
    return Produced(cairo_pie=pie, program_output=reported, da_segment=da_segment)


# -- the program ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aggregator_runner_program")
    parser.add_argument("--request", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    dump_environment(ENV_DUMP_VARIABLE)
    # The orchestrator passes the files twice; a program may read either, so both must agree.
    if ENV_PREFIX + "REQUEST" in os.environ and (
        Path(os.environ[ENV_PREFIX + "REQUEST"]) != args.request
        or Path(os.environ[ENV_PREFIX + "OUTPUT_DIR"]) != args.output_dir
    ):
        print("arguments and environment disagree", file=sys.stderr)
        return 2
    mode = os.environ.get(MODE_VARIABLE, "")
    if mode == "hang":
        hang(PID_FILE_VARIABLE)
    if mode == "no-output":
        return 0
    if mode == "crash":
        print("Traceback (most recent call last): something unexpected", file=sys.stderr)
        return 3
    try:
        request = AggregatorRequest.from_json(json.loads(args.request.read_text()))
    except (OSError, ValueError, InvalidInput) as exc:
        print(f"unreadable request: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"aggregating {len(request.children)} SNOS outputs of {request.subject}", file=sys.stderr)
    _kzg_memo().remember_kzg_between_runs()
    try:
        produced = produce(request, mode)
    except RunnerFailure as failure:
        print(failure.message, file=sys.stderr)
        return EXIT_RETRYABLE if failure.kind is ErrorKind.RETRYABLE else EXIT_FAILED
    (args.output_dir / CAIRO_PIE_FILE).write_bytes(produced.cairo_pie)
    (args.output_dir / PROGRAM_OUTPUT_FILE).write_text(json.dumps([hex(f) for f in produced.program_output]))
    (args.output_dir / DA_SEGMENT_FILE).write_text(json.dumps([hex(f) for f in produced.da_segment]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
