#!/usr/bin/env python3
"""The tests' SNOS runner program: honours the contract of ``docs/snos-runner.md``.

Run as ``python -m tests.helpers.snos_runner_program ARGS`` or by path. It reads the batch's blocks
from the sequencer RPC it is given and builds the OS output the devnet runner builds (the same header,
``devnet_os_output``), with the state diff in the Starknet OS full-output layout (previous values read
at the block before the batch), so it parses as an OS output. It writes a real Cairo PIE (cairo-lang
reads it) holding that output in its output segment, with the fact topology of a SNOS run (a 12-felt
header page, then the state-diff page), plus ``os_output.json`` and ``result.json``.

``SNOS_TEST_MODE`` makes it misbehave, so tests can check each classification:

- ``retryable-exit``: "rpc error" on stderr, exit 75; ``os-failure``: exit 65;
- ``stderr-retryable`` / ``stderr-fatal``: exit 1 with a BlockNotFound / ContractNotFound message (the
  SPEC §2.8 markers decide);
- ``hang``: start a helper process, write both pids to ``SNOS_TEST_PID_FILE``, ignore SIGTERM and sleep;
- ``corrupt-pie``: a truncated ``cairo_pie.zip``; ``mismatched-output``: ``os_output.json`` differs
  from the PIE's output; ``wrong-blocks``: a consistent output one block too far; ``no-output``: exit 0
  without writing anything; ``wrong-n-steps``: ``result.json`` disagrees with the PIE.

``SNOS_TEST_ENV_DUMP=path`` writes the names of the variables it was given to ``path``.
The HTTP runner service (``snos_runner_service``) runs the same logic behind the HTTP API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madara_orchestrator.devnet.adapters import devnet_os_output
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput
from madara_orchestrator.snos.contract import (
    CAIRO_PIE_FILE,
    ENV_PREFIX,
    EXIT_OS_FAILED,
    EXIT_RETRYABLE,
    OS_OUTPUT_FILE,
    RESULT_FILE,
    ErrorKind,
    SnosRequest,
    parse_keys,
)
from madara_orchestrator.starknet.pie import (
    CairoPie,
    ExecutionResources,
    PieMemory,
    PieMetadata,
    PieProgram,
    Relocatable,
    SegmentInfo,
    write_pie,
)
from madara_orchestrator.starknet.rpc import RpcCall, RpcError, StarknetRpcClient
from madara_orchestrator.starknet.rpc_types import block_id

try:
    from tests.helpers.runner_program import RunnerFailure, dump_environment, hang
except ModuleNotFoundError:  # run as a script (the command runner's tests): its own folder is on sys.path
    from runner_program import RunnerFailure, dump_environment, hang  # type: ignore[no-redef]

MODE_VARIABLE = "SNOS_TEST_MODE"
PID_FILE_VARIABLE = "SNOS_TEST_PID_FILE"
ENV_DUMP_VARIABLE = "SNOS_TEST_ENV_DUMP"
CONTRACT_NOT_FOUND = 20

PROGRAM_DATA = (0x40780017FFF7FFF, 1, 0x208B7FFF7FFF7FFE)
"""``ap += 1; ret``: a stripped program of three words (the PIE's program is not what is being tested)."""
HEADER_PAGE = 12
"""A SNOS output's first page: the 10-felt header and the two message-segment sizes."""
SNOS_FACT_TOPOLOGY = [2, 1, 0, 2]


@dataclass(frozen=True)
class Produced:
    cairo_pie: bytes
    os_output: list[int]
    n_steps: int


# -- the OS output -----------------------------------------------------------------------------------


def _hex(value: Any) -> int:
    return int(str(value), 16)


async def os_state_diff(rpc: StarknetRpcClient, updates: Sequence[Mapping[str, Any]], start_block: int) -> list[int]:
    """The batch's state diff in the OS full-output layout: per contract (address, prev/new nonce, prev/new
    class hash, storage changes as key, prev, new), then declared classes (hash, prev/new compiled hash)."""
    storage: dict[int, dict[int, int]] = {}
    nonces: dict[int, int] = {}
    classes: dict[int, int] = {}
    declared: dict[int, int] = {}
    for update in updates:
        diff = update.get("state_diff") or {}
        for entry in diff.get("storage_diffs", []):
            slots = storage.setdefault(_hex(entry["address"]), {})
            for item in entry.get("storage_entries", []):
                slots[_hex(item["key"])] = _hex(item["value"])
        for entry in diff.get("nonces", []):
            nonces[_hex(entry["contract_address"])] = _hex(entry["nonce"])
        for entry in diff.get("deployed_contracts", []) + diff.get("replaced_classes", []):
            classes[_hex(entry.get("address", entry.get("contract_address")))] = _hex(entry["class_hash"])
        for entry in diff.get("declared_classes", []):
            declared[_hex(entry["class_hash"])] = _hex(entry["compiled_class_hash"])
    addresses = sorted(set(storage) | set(nonces) | set(classes))
    prev_nonce: dict[int, int] = {}
    prev_class: dict[int, int] = {}
    prev_value: dict[tuple[int, int], int] = {}
    if start_block > 0:
        before = block_id(start_block - 1)
        calls: list[RpcCall] = []
        keys: list[tuple[str, int, int]] = []
        for address in addresses:
            calls.append(RpcCall("starknet_getNonce", {"block_id": before, "contract_address": hex(address)}))
            keys.append(("nonce", address, 0))
            calls.append(RpcCall("starknet_getClassHashAt", {"block_id": before, "contract_address": hex(address)}))
            keys.append(("class", address, 0))
            for key in storage.get(address, {}):
                calls.append(
                    RpcCall(
                        "starknet_getStorageAt", {"contract_address": hex(address), "key": hex(key), "block_id": before}
                    )
                )
                keys.append(("storage", address, key))
        for (what, address, key), result in zip(keys, await rpc.batch(calls), strict=True):
            if isinstance(result, RpcError):
                if result.code != CONTRACT_NOT_FOUND:
                    raise result
                value = 0
            else:
                value = _hex(result)
            if what == "nonce":
                prev_nonce[address] = value
            elif what == "class":
                prev_class[address] = value
            else:
                prev_value[address, key] = value
    felts = [len(addresses)]
    for address in addresses:
        old_nonce, old_class = prev_nonce.get(address, 0), prev_class.get(address, 0)
        changes = storage.get(address, {})
        felts += [
            address,
            old_nonce,
            nonces.get(address, old_nonce),
            old_class,
            classes.get(address, old_class),
            len(changes),
        ]
        for key in sorted(changes):
            felts += [key, prev_value.get((address, key), 0), changes[key]]
    felts.append(len(declared))
    for class_hash in sorted(declared):
        felts += [class_hash, 0, declared[class_hash]]
    return felts


async def build_os_output(rpc_url: str, start_block: int, end_block: int) -> list[int]:
    """The OS output of blocks ``start_block..=end_block`` as the devnet runner builds its header."""
    rpc = StarknetRpcClient(rpc_url, attempts=2, retry_pause_s=0.2, timeout_s=10)
    try:
        updates = [await rpc.get_state_update(b) for b in range(start_block, end_block + 1)]
        previous = await rpc.get_block_with_tx_hashes(start_block - 1) if start_block > 0 else None
        diff = await os_state_diff(rpc, updates, start_block)
    finally:
        await rpc.aclose()
    return devnet_os_output(
        updates,
        start_block=start_block,
        end_block=end_block,
        previous_block_hash=_hex(previous["block_hash"]) if previous else 0,
        state_diff=diff,
    )


# -- the PIE -----------------------------------------------------------------------------------------


def n_steps_for(output: Sequence[int]) -> int:
    return 100_000 + 1_000 * len(output)


def build_os_pie(output: Sequence[int], *, n_steps: int) -> bytes:
    """A Cairo PIE zip: program segment 0, execution segment 1 (main's return: the output pointers),
    the output builtin's segment 2 holding ``output``, with the SNOS fact topology."""
    if len(output) <= HEADER_PAGE:
        raise ValueError(f"an OS output has more than {HEADER_PAGE} felts, got {len(output)}")
    cells: dict[Relocatable, int | Relocatable] = {Relocatable(0, i): w for i, w in enumerate(PROGRAM_DATA)}
    cells[Relocatable(1, 0)] = Relocatable(2, 0)
    cells[Relocatable(1, 1)] = Relocatable(2, len(output))
    for i, word in enumerate(output):
        cells[Relocatable(2, i)] = word
    pie = CairoPie(
        metadata=PieMetadata(
            program=PieProgram(data=PROGRAM_DATA, builtins=("output",), main=0),
            program_segment=SegmentInfo(index=0, size=len(PROGRAM_DATA)),
            execution_segment=SegmentInfo(index=1, size=2),
            ret_fp_segment=SegmentInfo(index=3, size=0),
            ret_pc_segment=SegmentInfo(index=4, size=0),
            builtin_segments={"output": SegmentInfo(index=2, size=len(output))},
        ),
        memory=PieMemory(cells),
        additional_data={
            "output_builtin": {
                "pages": {"1": [HEADER_PAGE, len(output) - HEADER_PAGE]},
                "attributes": {"gps_fact_topology": SNOS_FACT_TOPOLOGY},
            }
        },
        execution_resources=ExecutionResources(
            n_steps=n_steps, builtin_instance_counter={"output_builtin": len(output)}
        ),
    )
    return write_pie(pie)


# -- one run, as both the program and the service do it ---------------------------------------------


def failure_for(mode: str) -> RunnerFailure | None:
    """The failure a misbehaving mode reports instead of running."""
    if mode == "retryable-exit":
        return RunnerFailure(ErrorKind.RETRYABLE, "rpc error: the node answered 503 to starknet_getStorageProof")
    if mode == "os-failure":
        return RunnerFailure(ErrorKind.OS_FAILED, "OS execution failed: assertion failed in execute_blocks")
    if mode == "stderr-retryable":
        return RunnerFailure(
            ErrorKind.UNKNOWN, "Block processing failed for block 2222689: RPC client error: BlockNotFound"
        )
    if mode == "stderr-fatal":
        return RunnerFailure(ErrorKind.UNKNOWN, "Block processing failed: state read error: ContractNotFound")
    return None


async def produce(request: SnosRequest, mode: str = "") -> Produced:
    """Run 'SNOS' on the request's blocks (``RunnerFailure`` on a failure mode or RPC trouble)."""
    failure = failure_for(mode)
    if failure is not None:
        raise failure
    try:
        output = await build_os_output(request.rpc_url, request.start_block, request.end_block)
    except BackendUnavailable as exc:
        raise RunnerFailure(ErrorKind.RETRYABLE, f"rpc error: {exc}") from exc
    except RpcError as exc:
        raise RunnerFailure(ErrorKind.UNKNOWN, f"RPC client error: {exc}") from exc
    if mode == "wrong-blocks":
        output[3] += 1
    n_steps = n_steps_for(output)
    pie = build_os_pie(output, n_steps=n_steps)
    if mode == "corrupt-pie":
        pie = pie[: len(pie) // 2]
    reported = list(output)
    if mode == "mismatched-output":
        reported[1] = (reported[1] + 1) % (2**251 + 17 * 2**192 + 1)
    return Produced(cairo_pie=pie, os_output=reported, n_steps=n_steps + (1 if mode == "wrong-n-steps" else 0))


# -- the program ---------------------------------------------------------------------------------------


def _parse_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text == "true"


def parse_arguments(argv: Sequence[str]) -> tuple[SnosRequest, Path]:
    parser = argparse.ArgumentParser(prog="snos_runner_program")
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--start-block", type=int, required=True)
    parser.add_argument("--end-block", type=int, required=True)
    parser.add_argument("--layout", required=True)
    parser.add_argument("--full-output", type=_parse_bool, required=True)
    parser.add_argument("--use-kzg-da", type=_parse_bool, required=True)
    parser.add_argument("--da-public-keys", type=parse_keys, default=())
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    request = SnosRequest(
        rpc_url=args.rpc_url,
        start_block=args.start_block,
        end_block=args.end_block,
        layout=args.layout,
        full_output=args.full_output,
        use_kzg_da=args.use_kzg_da,
        da_public_keys=args.da_public_keys,
    )
    return request, args.output_dir


def main(argv: Sequence[str] | None = None) -> int:
    request, output_dir = parse_arguments(sys.argv[1:] if argv is None else argv)
    dump_environment(ENV_DUMP_VARIABLE)
    # The orchestrator passes the request twice; a program may read either, so both must agree.
    if ENV_PREFIX + "START_BLOCK" in os.environ:
        env_request = SnosRequest(
            rpc_url=os.environ[ENV_PREFIX + "RPC_URL"],
            start_block=int(os.environ[ENV_PREFIX + "START_BLOCK"]),
            end_block=int(os.environ[ENV_PREFIX + "END_BLOCK"]),
            layout=os.environ[ENV_PREFIX + "LAYOUT"],
            full_output=os.environ[ENV_PREFIX + "FULL_OUTPUT"] == "true",
            use_kzg_da=os.environ[ENV_PREFIX + "USE_KZG_DA"] == "true",
            da_public_keys=parse_keys(os.environ[ENV_PREFIX + "DA_PUBLIC_KEYS"])
            if ENV_PREFIX + "DA_PUBLIC_KEYS" in os.environ
            else (),
        )
        if env_request != request or Path(os.environ[ENV_PREFIX + "OUTPUT_DIR"]) != output_dir:
            print(f"arguments {request} and environment {env_request} disagree", file=sys.stderr)
            return 2
    mode = os.environ.get(MODE_VARIABLE, "")
    if mode == "hang":
        hang(PID_FILE_VARIABLE)
    if mode == "no-output":
        return 0
    print(f"running SNOS on blocks {request.blocks} with layout {request.layout}", file=sys.stderr)
    try:
        produced = asyncio.run(produce(request, mode))
    except RunnerFailure as failure:
        print(failure.message, file=sys.stderr)
        return {ErrorKind.RETRYABLE: EXIT_RETRYABLE, ErrorKind.OS_FAILED: EXIT_OS_FAILED}.get(failure.kind, 1)
    except InvalidInput as exc:
        print(f"invalid data from the RPC: {exc}", file=sys.stderr)
        return 1
    (output_dir / CAIRO_PIE_FILE).write_bytes(produced.cairo_pie)
    (output_dir / OS_OUTPUT_FILE).write_text(json.dumps([hex(f) for f in produced.os_output]))
    (output_dir / RESULT_FILE).write_text(json.dumps({"n_steps": produced.n_steps, "runner": "tests"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
