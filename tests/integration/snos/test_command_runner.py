"""``--snos-runner command``: the tests' runner program as a real process, through the SnosRun handler."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

import pytest

from madara_orchestrator.devnet.adapters import DevnetSnosRunner
from madara_orchestrator.domain.errors import BackendUnavailable, JobError, outage_cause
from madara_orchestrator.domain.jobs import SnosMetadata
from madara_orchestrator.jobs.artifacts import decode_felts_json, decode_program_output
from madara_orchestrator.server.background import free_port
from madara_orchestrator.snos.command import CommandSnosRunner
from madara_orchestrator.snos.contract import CAIRO_PIE_FILE, OS_OUTPUT_FILE, RESULT_FILE, SnosRequest, SnosRunConfig
from madara_orchestrator.starknet.facts import fact_info, l2_fact
from madara_orchestrator.starknet.os_output import parse_os_output
from madara_orchestrator.starknet.pie import read_pie
from madara_orchestrator.starknet.rpc import StarknetRpcClient
from tests.helpers.snos_runner_program import ENV_DUMP_VARIABLE, MODE_VARIABLE, PID_FILE_VARIABLE
from tests.integration.snos.conftest import PROGRAM, Chain, run_snos_job


def runner(
    chain: Chain, tmp_path: Path, *, mode: str = "", timeout_s: float = 60.0, extra_env: dict[str, str] | None = None
) -> CommandSnosRunner:
    environ = {**os.environ, MODE_VARIABLE: mode, **(extra_env or {})}
    return CommandSnosRunner(
        PROGRAM,
        SnosRunConfig(rpc_url=chain.url, timeout_s=timeout_s),
        rpc=chain.rpc,
        work_dir=tmp_path / "snos",
        environ=environ,
        kill_grace_s=0.3,
    )


def gone(pid: int) -> bool:
    """The process no longer runs (reaped, or a zombie waiting for a parent that is not us)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


async def test_the_programs_output_is_checked_and_stored_by_the_job(chain: Chain, tmp_path: Path) -> None:
    snos = runner(chain, tmp_path)
    assert await snos.is_ready()
    run = await run_snos_job(snos, tmp_path, 2, 4, index=3)
    assert run.processed.external_id == "3"
    meta = run.processed.specific
    assert isinstance(meta, SnosMetadata)
    assert run.meta.cairo_pie_path and run.meta.snos_output_path and run.meta.program_output_path
    pie_zip = await run.objects.get(run.meta.cairo_pie_path)
    os_output = decode_felts_json(await run.objects.get(run.meta.snos_output_path))
    assert decode_program_output(await run.objects.get(run.meta.program_output_path)) == os_output
    pie = read_pie(pie_zip)
    assert pie.output_segment() == os_output
    assert meta.snos_fact == l2_fact(os_output) and meta.snos_n_steps == pie.n_steps
    header = parse_os_output(os_output).header
    assert (header.prev_block_number, header.new_block_number) == (1, 4)
    # The same OS output header (roots, blocks, hashes, program and config hashes, flags) the devnet runner builds.
    devnet = await DevnetSnosRunner(chain.rpc).run(2, 4)
    assert os_output[:12] == devnet.os_output[:12]
    assert list((tmp_path / "snos").iterdir()) == [], "each run's directory is removed"


async def test_cairo_lang_reads_the_programs_pie_and_computes_our_fact(chain: Chain, tmp_path: Path) -> None:
    from starkware.cairo.bootloaders.generate_fact import get_cairo_pie_fact_info, get_program_hash
    from starkware.cairo.common.poseidon_hash import poseidon_hash, poseidon_hash_many
    from starkware.cairo.lang.vm.cairo_pie import CairoPie

    request = SnosRequest(
        rpc_url=chain.url, start_block=0, end_block=1, layout="all_cairo", full_output=True, use_kzg_da=False
    )
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, **request.environment(str(out))}
    process = await asyncio.create_subprocess_exec(
        *PROGRAM, *request.arguments(str(out)), env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == sorted([CAIRO_PIE_FILE, OS_OUTPUT_FILE, RESULT_FILE])
    zip_bytes = (out / CAIRO_PIE_FILE).read_bytes()
    theirs = CairoPie.from_file(io.BytesIO(zip_bytes))
    theirs.run_validity_checks()
    program_hash = get_program_hash(theirs)
    their_info = get_cairo_pie_fact_info(theirs, program_hash=program_hash)
    ours = fact_info(read_pie(zip_bytes))
    assert ours.program_hash == program_hash
    assert ours.program_output == their_info.program_output
    assert (
        list(ours.fact_topology.page_sizes)
        == their_info.fact_topology.page_sizes
        == [12, len(ours.program_output) - 12]
    )
    assert ours.fact == their_info.fact
    # What the job records for an L2 run (no KZG DA): the poseidon fact over the same output.
    result = await runner(chain, tmp_path).run(0, 1)
    assert result.os_output == their_info.program_output
    assert result.fact == "0x" + format(
        poseidon_hash(
            0x5AB580B04E3532B6B18F81CFA654A05E29DD8E2352D88DF1E765A84072DB07, poseidon_hash_many(result.os_output)
        ),
        "064x",
    )
    assert result.n_steps == theirs.execution_resources.n_steps


FAILURES = {
    "retryable-exit": (True, "the SNOS command asks to retry blocks 1..2 (exit code 75): "),
    "os-failure": (False, "the OS failed on blocks 1..2 (SNOS command exit code 65): "),
    "stderr-retryable": (True, "the SNOS command exited with code 1: "),
    "stderr-fatal": (False, "the SNOS command exited with code 1: "),
    "corrupt-pie": (False, "returned a damaged output for blocks 1..2: the Cairo PIE is unreadable"),
    "mismatched-output": (False, "is not the PIE's output segment"),
    "wrong-blocks": (False, "moves the chain from block 0 to 3, the batch from 0 to 2"),
    "no-output": (False, "exited with code 0 on blocks 1..2 but did not write cairo_pie.zip and os_output.json"),
    "wrong-n-steps": (False, "the runner reports n_steps="),
}
"""Misbehaviour of the program → (retryable, what the job's failure says)."""


async def test_each_failure_is_classified(chain: Chain, tmp_path: Path) -> None:
    async def failure(mode: str) -> JobError:
        with pytest.raises(JobError) as caught:
            await run_snos_job(runner(chain, tmp_path / mode, mode=mode), tmp_path / mode, 1, 2)
        return caught.value

    # One program per mode, all at once (each is a Python process: a second to start).
    errors = dict(zip(FAILURES, await asyncio.gather(*(failure(mode) for mode in FAILURES)), strict=True))
    for mode, (retryable, expected) in FAILURES.items():
        error = errors[mode]
        message = str(error)
        assert expected in message, (mode, message)
        assert error.retryable is retryable, (mode, message)
        assert outage_cause(error) is None, f"{mode}: the run's own failure, not an outage"
        assert "Traceback" not in message, mode
        assert list((tmp_path / mode / "snos").iterdir()) == [], f"{mode}: the run's directory is removed"


async def test_the_failure_message_carries_the_end_of_stderr(chain: Chain, tmp_path: Path) -> None:
    with pytest.raises(JobError) as caught:
        await run_snos_job(runner(chain, tmp_path, mode="stderr-fatal"), tmp_path, 1, 2)
    assert str(caught.value) == (
        "Snos Error: Error while running SNOS (snos job #1): the SNOS command exited with code 1: "
        "running SNOS on blocks 1..2 with layout all_cairo | "
        "Block processing failed: state read error: ContractNotFound"
    )


def read_pids(path: Path) -> tuple[int, int] | None:
    text = path.read_text() if path.exists() else ""
    if not text.endswith("\n"):
        return None
    command, helper = (int(p) for p in text.split())
    return command, helper


async def wait_for_pids(path: Path) -> tuple[int, int]:
    """The pids the hanging program writes once it runs (polled: another process writes them)."""
    async with asyncio.timeout(20):
        while True:
            pids = read_pids(path)
            if pids is not None:
                return pids
            await asyncio.sleep(0.05)


async def wait_until_gone(*pids: int) -> None:
    """Until every pid is gone (polled: killed processes are reaped by others, in their own time)."""
    async with asyncio.timeout(5):
        while True:
            if all(gone(pid) for pid in pids):
                return
            await asyncio.sleep(0.05)


async def test_a_command_past_the_timeout_is_killed_with_its_process_group(chain: Chain, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    snos = runner(chain, tmp_path, mode="hang", timeout_s=4.0, extra_env={PID_FILE_VARIABLE: str(pid_file)})
    started = time.monotonic()
    with pytest.raises(JobError) as caught:
        await snos.run(1, 2)
    assert time.monotonic() - started < 10
    assert caught.value.retryable is True
    assert "ran longer than 4 s (--snos-timeout-seconds) on blocks 1..2 and was killed with its process group" in str(
        caught.value
    )
    command, helper = await wait_for_pids(pid_file)
    assert gone(command), "the command ignores SIGTERM: SIGKILL after the grace period"
    await wait_until_gone(helper)  # the helper it started dies with the group


async def test_a_cancelled_run_kills_the_command(chain: Chain, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    snos = runner(chain, tmp_path, mode="hang", extra_env={PID_FILE_VARIABLE: str(pid_file)})
    task = asyncio.create_task(snos.run(1, 2))
    command, helper = await wait_for_pids(pid_file)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until_gone(command, helper)


async def test_the_command_gets_the_request_and_none_of_our_variables(chain: Chain, tmp_path: Path) -> None:
    dump = tmp_path / "env"
    extra = {ENV_DUMP_VARIABLE: str(dump), "MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY": "0x" + "11" * 32}
    # The program exits 2 when its arguments and MADARA_SNOS_* variables disagree.
    await runner(chain, tmp_path, extra_env=extra).run(0, 0)
    names = set(dump.read_text().split())
    assert {"MADARA_SNOS_RPC_URL", "MADARA_SNOS_START_BLOCK", "MADARA_SNOS_OUTPUT_DIR", "PATH"} <= names
    assert not [n for n in names if n.startswith("MADARA_ORCHESTRATOR_")]


async def test_a_missing_program_is_not_ready_and_an_outage(chain: Chain, tmp_path: Path) -> None:
    snos = CommandSnosRunner(
        [str(tmp_path / "gone")], SnosRunConfig(rpc_url=chain.url), rpc=chain.rpc, work_dir=tmp_path / "snos"
    )
    assert await snos.is_ready() is False
    with pytest.raises(JobError) as caught:
        await run_snos_job(snos, tmp_path, 0, 0)
    outage = outage_cause(caught.value)
    assert isinstance(outage, BackendUnavailable), "waited out, not an attempt spent"
    assert f"cannot start the SNOS command {tmp_path / 'gone'}: No such file or directory" in str(outage)


async def test_not_ready_while_the_snos_rpc_does_not_answer(chain: Chain, tmp_path: Path) -> None:
    down = StarknetRpcClient(f"http://127.0.0.1:{free_port()}", attempts=1, retry_pause_s=0)
    try:
        snos = CommandSnosRunner(PROGRAM, SnosRunConfig(rpc_url=chain.url), rpc=down, work_dir=tmp_path / "snos")
        assert await snos.is_ready() is False
    finally:
        await down.aclose()
