"""The SNOS runner contract: every check an output passes before a SnosRun job completes, and the
request, the command line and the failure kinds as docs/snos-runner.md writes them down."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import stat
from pathlib import Path

import pytest
from poseidon_py.poseidon_hash import poseidon_hash, poseidon_hash_many

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, JobError, Retryable, RpcError
from madara_orchestrator.interfaces import SnosResult
from madara_orchestrator.snos.command import command_environment, command_problem, parse_command, stderr_tail
from madara_orchestrator.snos.contract import (
    DamagedSnosOutput,
    ErrorKind,
    SnosRequest,
    SnosRunConfig,
    SnosRunFailed,
    SnosRunRetryable,
    check_output,
    failure_kind,
    os_hints,
    parse_os_output_json,
    parse_result_json,
    raise_failure,
    typed_run,
    unclassified_failure,
)
from madara_orchestrator.snos.http import display_url
from madara_orchestrator.starknet.facts import BOOT_LOADER_PROGRAM_CONTRACT, fact_info
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.pie import read_pie, write_pie
from tests.helpers.snos_runner_program import build_os_pie
from tests.unit.pie.conftest import build_pie

P = STARKNET_PRIME


def os_output(start: int, end: int, *, use_kzg_da: int = 0, full_output: int = 1) -> list[int]:
    """A full-output OS output of blocks start..end: header, no messages, one contract, no classes."""
    header = [0x111, 0x222, start - 1 if start else P - 1, end, 0x333, 0x444, 0, 0x555, use_kzg_da, full_output]
    diff = [1, 0x1234, 0, 1, 0, 0x99, 1, 0x10, 0, 0x20, 0]
    return [*header, 0, 0, *diff]


def request(start: int = 3, end: int = 4, **overrides: object) -> SnosRequest:
    values: dict[str, object] = {
        "rpc_url": "http://127.0.0.1:9944",
        "start_block": start,
        "end_block": end,
        "layout": "all_cairo",
        "full_output": True,
        "use_kzg_da": False,
    }
    values.update(overrides)
    return SnosRequest(**values)  # type: ignore[arg-type]


def damaged(req: SnosRequest, pie: bytes, output: list[int], n_steps: int | None = None) -> str:
    with pytest.raises(DamagedSnosOutput) as caught:
        check_output(req, cairo_pie_zip=pie, os_output=output, reported_n_steps=n_steps, source="the runner")
    assert caught.value.retryable is False, "a damaged output is the job's own failure"
    assert isinstance(caught.value, JobError)
    return str(caught.value)


# -- check_output ----------------------------------------------------------------------------------


def test_a_good_output_gives_the_pies_fact_and_steps() -> None:
    output = os_output(3, 4)
    pie = build_os_pie(output, n_steps=123_456)
    result = check_output(request(), cairo_pie_zip=pie, os_output=output, reported_n_steps=123_456)
    assert result.os_output == output and result.program_output == output
    assert result.cairo_pie_zip == pie
    assert result.n_steps == 123_456 == read_pie(pie).n_steps
    # L2 (no KZG DA): the poseidon "L2 fact" over the output, computed here independently (SPEC §7.7)
    assert result.fact == "0x" + format(poseidon_hash(BOOT_LOADER_PROGRAM_CONTRACT, poseidon_hash_many(output)), "064x")


def test_genesis_batches_start_from_block_minus_one() -> None:
    output = os_output(0, 1)
    assert output[2] == P - 1
    check_output(request(0, 1), cairo_pie_zip=build_os_pie(output, n_steps=10), os_output=output)


def test_with_kzg_da_the_fact_is_the_pies_gps_fact() -> None:
    output = [*os_output(3, 4, use_kzg_da=1, full_output=0)[:10], 7, 0, 0, 0]  # KZG: x_0, no blobs
    pie = build_os_pie(output, n_steps=10)
    result = check_output(request(use_kzg_da=True, full_output=False), cairo_pie_zip=pie, os_output=output)
    assert result.fact == fact_info(read_pie(pie)).fact


def test_an_unreadable_pie_is_named() -> None:
    output = os_output(3, 4)
    pie = build_os_pie(output, n_steps=10)
    text = damaged(request(), pie[: len(pie) // 2], output)
    assert text.startswith("the runner returned a damaged output for blocks 3..4: the Cairo PIE is unreadable:")
    assert "not a zip archive" in text
    assert "not a Cairo PIE" in damaged(request(), b"PK\x05\x06" + bytes(18), output)


def test_an_output_that_is_not_an_os_output_is_named() -> None:
    output = [*os_output(3, 4), 5]  # a felt after the state diff
    text = damaged(request(), build_os_pie(output, n_steps=10), output)
    assert "the OS output is not a Starknet OS output: 1 felts left after the OS output" in text


def test_an_os_output_other_than_the_pies_output_is_named() -> None:
    output = os_output(3, 4)
    pie = build_os_pie(output, n_steps=10)
    changed = list(output)
    changed[1] += 1
    text = damaged(request(), pie, changed)
    assert "the OS output (23 felts) is not the PIE's output segment (23 felts); they first differ at felt 1" in text
    no_diff = [*output[:12], 0, 0]  # no contracts, no classes: still an OS output, but not the PIE's
    assert "the OS output (14 felts) is not the PIE's output segment (23 felts); they first differ at felt 12" in (
        damaged(request(), pie, no_diff)
    )


def test_a_pie_without_an_output_segment_is_named() -> None:
    output = os_output(3, 4)
    pie = read_pie(build_os_pie(output, n_steps=10))
    without = dataclasses.replace(pie, metadata=dataclasses.replace(pie.metadata, builtin_segments={}))
    text = damaged(request(), write_pie(without), output)
    assert "the Cairo PIE has no readable output segment" in text


@pytest.mark.parametrize(
    ("start", "end", "output_range", "expected"),
    [
        (3, 4, (3, 5), "moves the chain from block 2 to 5, the batch from 2 to 4"),
        (3, 4, (2, 4), "moves the chain from block 1 to 4, the batch from 2 to 4"),
        (0, 4, (1, 4), "moves the chain from block 0 to 4, the batch from -1 to 4"),
        (1, 4, (0, 4), "moves the chain from block -1 to 4, the batch from 0 to 4"),
    ],
)
def test_an_output_for_other_blocks_is_named(
    start: int, end: int, output_range: tuple[int, int], expected: str
) -> None:
    output = os_output(*output_range)
    assert expected in damaged(request(start, end), build_os_pie(output, n_steps=10), output)


def test_os_hints_other_than_asked_are_named() -> None:
    output = os_output(3, 4)
    pie = build_os_pie(output, n_steps=10)
    text = damaged(request(use_kzg_da=True, full_output=False), pie, output)
    assert "the OS output has use_kzg_da=0, but SNOS was asked to run with use_kzg_da=true" in text


def test_a_pie_whose_fact_cannot_be_computed_is_named() -> None:
    output = [*os_output(3, 4, use_kzg_da=1, full_output=0)[:10], 7, 0, 0, 0]
    pie = build_pie(output, pages={"1": [12, 2]})  # pages, but no gps_fact_topology
    text = damaged(request(use_kzg_da=True, full_output=False), pie, output)
    assert "no fact can be computed from the Cairo PIE" in text and "gps_fact_topology" in text


def test_a_step_count_other_than_the_pies_is_named() -> None:
    output = os_output(3, 4)
    text = damaged(request(), build_os_pie(output, n_steps=500), output, n_steps=501)
    assert "the runner reports n_steps=501, the PIE's execution resources say 500" in text


# -- the files ---------------------------------------------------------------------------------------


def test_os_output_json_is_felts() -> None:
    assert parse_os_output_json(b'["0x1", "0x0a", "17", 5]', "os_output.json") == [1, 10, 17, 5]
    for data, expected in (
        (b"[1,", "os_output.json: not valid JSON"),
        (b'{"a": 1}', "expected a JSON array of felts, got dict"),
        (b'["0xzz"]', "os_output.json[0]: '0xzz' is not a number"),
        (json.dumps([hex(P)]).encode(), "os_output.json[0]"),
        (b"[true]", "os_output.json[0]: expected a felt, got a boolean"),
    ):
        with pytest.raises(DamagedSnosOutput) as caught:
            parse_os_output_json(data, "os_output.json")
        assert expected in str(caught.value), (data, str(caught.value))


def test_result_json_is_an_object_with_an_optional_step_count() -> None:
    assert parse_result_json(b'{"n_steps": 12, "anything": "else"}', "result.json") == 12
    assert parse_result_json(b"{}", "result.json") is None
    with pytest.raises(DamagedSnosOutput, match=re.escape("result.json: expected a JSON object, got list")):
        parse_result_json(b"[]", "result.json")
    with pytest.raises(DamagedSnosOutput, match="n_steps must be a non-negative integer, got -1"):
        parse_result_json(b'{"n_steps": -1}', "result.json")


# -- the request -------------------------------------------------------------------------------------


def test_the_request_as_arguments_environment_and_json() -> None:
    req = request(3, 4)
    assert req.arguments("/out") == [
        "--rpc-url",
        "http://127.0.0.1:9944",
        "--start-block",
        "3",
        "--end-block",
        "4",
        "--layout",
        "all_cairo",
        "--full-output",
        "true",
        "--use-kzg-da",
        "false",
        "--output-dir",
        "/out",
    ]
    assert req.environment("/out") == {
        "MADARA_SNOS_CONTRACT_VERSION": "1",
        "MADARA_SNOS_RPC_URL": "http://127.0.0.1:9944",
        "MADARA_SNOS_START_BLOCK": "3",
        "MADARA_SNOS_END_BLOCK": "4",
        "MADARA_SNOS_LAYOUT": "all_cairo",
        "MADARA_SNOS_FULL_OUTPUT": "true",
        "MADARA_SNOS_USE_KZG_DA": "false",
        "MADARA_SNOS_OUTPUT_DIR": "/out",
    }
    body = req.to_json()
    assert body["version"] == 1 and "da_public_keys" not in body, "no DA keys: nothing sent"
    assert SnosRequest.from_json(json.loads(json.dumps(body))) == req


def test_da_public_keys_reach_the_runner_when_given() -> None:
    req = SnosRunConfig(rpc_url="http://node:9944", da_public_keys=(0x2F1E0D, 0x5C)).request(3, 4)
    arguments = req.arguments("/out")
    assert arguments[arguments.index("--da-public-keys") + 1] == "0x2f1e0d,0x5c"
    assert req.environment("/out")["MADARA_SNOS_DA_PUBLIC_KEYS"] == "0x2f1e0d,0x5c"
    assert req.to_json()["da_public_keys"] == ["0x2f1e0d", "0x5c"]
    assert SnosRequest.from_json(json.loads(json.dumps(req.to_json()))) == req
    with pytest.raises(InvalidInput, match="DA public key 'xyz' is not hex"):
        SnosRequest.from_json({**req.to_json(), "da_public_keys": ["0x1", "xyz"]})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"start_block": -1}, "start_block must be a non-negative integer"),
        ({"end_block": "4"}, "end_block must be a non-negative integer"),
        ({"full_output": 1}, "full_output must be true or false"),
        ({"rpc_url": ""}, "rpc_url must be a non-empty string"),
        ({"version": 2}, "this runner speaks 1"),
        ({"start_block": 5}, "0 <= start_block <= end_block, got 5..4"),
    ],
)
def test_a_bad_request_body_is_named(change: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        SnosRequest.from_json({**request(3, 4).to_json(), **change})


def test_the_config_makes_requests_and_the_layer_fixes_the_os_hints() -> None:
    assert os_hints("l2") == (True, False) and os_hints("l3") == (False, True)
    config = SnosRunConfig(rpc_url="http://node:9944/", layout="dynamic")
    assert config.request(1, 2) == request(1, 2, rpc_url="http://node:9944", layout="dynamic")


def test_the_orchestrators_variables_never_reach_the_command() -> None:
    env = command_environment(
        {"PATH": "/bin", "MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY": "0xsecret", "HOME": "/h"}, request(), "/out"
    )
    assert env["PATH"] == "/bin" and env["HOME"] == "/h" and env["MADARA_SNOS_OUTPUT_DIR"] == "/out"
    assert not [k for k in env if k.startswith("MADARA_ORCHESTRATOR_")]


# -- failures ----------------------------------------------------------------------------------------


def test_failure_kinds_decide_retries_or_leave_it_to_the_markers() -> None:
    with pytest.raises(JobError) as retry:
        raise_failure(ErrorKind.RETRYABLE, "node busy")
    assert retry.value.retryable is True
    with pytest.raises(JobError) as fatal:
        raise_failure(ErrorKind.OS_FAILED, "assertion failed")
    assert fatal.value.retryable is False
    with pytest.raises(SnosRunFailed, match="something"):
        raise_failure(failure_kind("no such kind"), "something")
    with pytest.raises(SnosRunRetryable, match="connection refused"):
        raise_failure(ErrorKind.UNKNOWN, "RPC client: connection refused")
    assert failure_kind(None) is ErrorKind.UNKNOWN and failure_kind("os_failed") is ErrorKind.OS_FAILED


MARKED = {
    # SPEC §2.8's pinned example, without the job's prefix the runner never sees
    "Block processing failed for block 2222689: RPC client error: BlockNotFound": True,
    "state read error: Block not found": True,
    "ProviderError: rate limited (HTTP 429)": True,
    "request timed out": True,
    "error trying to connect: dns error": True,
    "block is still pending": True,
    "Block processing failed: state read error: ContractNotFound": False,
    "rpc error: invalid proof structure": False,  # a fail-fast marker wins over a retryable one
    "RPC error: non-existence proof for a contract": False,
    "OS execution failed: assertion failed": False,
    "Segmentation fault": False,
    "": False,
}
"""A runner's own words → whether the SPEC §2.8 markers retry it."""


@pytest.mark.parametrize("message", list(MARKED))
def test_an_unclassified_failure_is_typed_by_the_markers_of_its_message(message: str) -> None:
    failure = unclassified_failure(message)
    assert str(failure) == message
    if MARKED[message]:
        assert isinstance(failure, Retryable) and not isinstance(failure, InvalidInput)
    else:
        assert isinstance(failure, InvalidInput) and not isinstance(failure, Retryable)


def raised_through_typed_run(exc: Exception) -> Exception:
    @typed_run
    async def run(runner: object, start_block: int, end_block: int) -> SnosResult:
        raise exc

    with pytest.raises(Exception) as caught:
        asyncio.run(run(object(), 1, 2))
    return caught.value


def test_typed_errors_pass_and_the_others_are_typed_by_their_message() -> None:
    typed = [JobError("x", retryable=False), BackendUnavailable("down"), InvalidInput("bad"), Retryable("later")]
    for exc in typed:
        assert raised_through_typed_run(exc) is exc
    rpc = raised_through_typed_run(RpcError(24, "Block not found"))
    assert isinstance(rpc, SnosRunRetryable) and str(rpc) == "RPC error 24: Block not found"
    assert isinstance(rpc.__cause__, RpcError)
    disk = raised_through_typed_run(OSError(28, "No space left on device"))
    assert isinstance(disk, SnosRunFailed) and str(disk) == "[Errno 28] No space left on device"


def test_stderr_tail_is_one_line_of_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "stderr.log"
    path.write_text("x" * 20000 + "\nfirst\n\n  second  \n")
    tail = stderr_tail(path)
    assert tail.endswith("first | second") and len(tail) <= 801
    path.write_text("")
    assert stderr_tail(path) == "(nothing on stderr)"
    assert stderr_tail(tmp_path / "absent") == "(its stderr could not be read)"


def test_display_url_drops_credentials_and_query() -> None:
    assert display_url("https://user:pw@runner.example:8443/snos?token=abc") == "https://runner.example:8443/snos"


# -- --snos-command ----------------------------------------------------------------------------------


def test_snos_command_problems_say_what_is_wrong(tmp_path: Path) -> None:
    script = tmp_path / "run-snos"
    script.write_text("#!/bin/sh\nexit 0\n")
    assert "is not executable (chmod +x it" in (command_problem(str(script)) or "")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert command_problem(f"{script} --flag 'quoted arg'") is None
    assert command_problem(str(tmp_path / "absent")) == f"--snos-command: {tmp_path / 'absent'} does not exist"
    assert command_problem(str(tmp_path)) == f"--snos-command: {tmp_path} is not a file"
    assert command_problem("no-such-program-xyz") == (
        "--snos-command: 'no-such-program-xyz' is not found on PATH (give its full path)"
    )
    assert "cannot be split into arguments" in (command_problem("prove 'open") or "")
    assert command_problem("   ") == "--snos-command is empty: give the program that runs SNOS"
    assert command_problem("sh -c true") is None, "a name on PATH"
    assert parse_command(f"{script} --flag 'quoted arg'") == [str(script), "--flag", "quoted arg"]
    assert os.access(script, os.X_OK)
