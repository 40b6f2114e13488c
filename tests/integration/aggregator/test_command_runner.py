"""``--aggregator-runner command``: the tests' runner program as a real process, through the Aggregator
handler: its output checked, stored and submitted; each misbehaviour failing the job with its reason."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from madara_orchestrator.aggregator.command import CommandAggregatorRunner
from madara_orchestrator.aggregator.contract import AggregatorRunConfig
from madara_orchestrator.domain.errors import JobError, outage_cause
from madara_orchestrator.domain.jobs import AggregatorMetadata
from madara_orchestrator.jobs.artifacts import decode_felts_json, decode_program_output
from madara_orchestrator.starknet.facts import aggregator_fact_info, filter_aggregator_output
from madara_orchestrator.starknet.os_output import parse_output_sections
from madara_orchestrator.starknet.pie import read_pie
from madara_orchestrator.starknet.rpc import StarknetRpcClient
from tests.helpers.aggregator_runner_program import (
    ENV_DUMP_VARIABLE,
    MODE_VARIABLE,
    PID_FILE_VARIABLE,
    aggregator_program_hash,
)
from tests.integration.aggregator.conftest import PROGRAM, Chain, run_aggregator_job
from tests.integration.snos.test_command_runner import gone, wait_for_pids, wait_until_gone


def runner(
    chain: Chain, tmp_path: Path, *, mode: str = "", timeout_s: float = 60.0, extra_env: dict[str, str] | None = None
) -> CommandAggregatorRunner:
    environ = {**os.environ, MODE_VARIABLE: mode, **(extra_env or {})}
    return CommandAggregatorRunner(
        PROGRAM,
        AggregatorRunConfig(rpc_url=chain.url, use_kzg_da=True, timeout_s=timeout_s),
        rpc=chain.rpc,
        work_dir=tmp_path / "aggregator",
        environ=environ,
        kill_grace_s=0.3,
    )


async def test_the_programs_output_is_checked_stored_and_submitted(chain: Chain, tmp_path: Path) -> None:
    run = await run_aggregator_job(runner(chain, tmp_path), chain, tmp_path)
    meta = run.processed.specific
    assert isinstance(meta, AggregatorMetadata)
    pie_zip = await run.objects.get("artifacts/batch/1/cairo_pie.zip")
    info = aggregator_fact_info(read_pie(pie_zip))
    # Submitted to the prover with the fact of the PIE's program (the mock prover answers with the fact).
    assert info.program_hash == aggregator_program_hash()
    assert run.processed.external_id == meta.ensure_on_chain_registration == info.fact
    # Settlement's program output is the aggregator's own output, filtered; its KZG section is the DA's.
    stored = decode_program_output(await run.objects.get("artifacts/batch/1/program_output.txt"))
    assert stored == info.program_output == filter_aggregator_output(read_pie(pie_zip).output_segment())
    header = parse_output_sections(stored).header
    assert (header.new_block_number, header.use_kzg_da) == (3, True)
    da_segment = decode_felts_json(await run.objects.get("artifacts/batch/1/da_blob.json"))
    assert da_segment and da_segment[0] > 0, "the squashed, compressed state diff of blocks 0..3"
    # The aggregator's input is the two SNOS outputs, in order.
    outputs = [decode_program_output(await run.objects.get(f"{i}/program_output.txt")) for i in (1, 2)]
    segment = read_pie(pie_zip).output_segment()
    assert segment[0] == 2 and segment[1] == len(outputs[0]) + 2 and segment[3 : 3 + len(outputs[0])] == outputs[0]
    assert list((tmp_path / "aggregator").iterdir()) == [], "the run's directory is removed"


async def test_the_program_gets_the_request_and_none_of_the_orchestrators_variables(
    chain: Chain, tmp_path: Path
) -> None:
    dump = tmp_path / "env"
    extra = {ENV_DUMP_VARIABLE: str(dump), "MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY": "0xsecret"}
    await run_aggregator_job(runner(chain, tmp_path, extra_env=extra), chain, tmp_path)
    names = set(dump.read_text().split())
    assert not {n for n in names if n.startswith("MADARA_ORCHESTRATOR_")}
    assert {"MADARA_AGGREGATOR_REQUEST", "MADARA_AGGREGATOR_OUTPUT_DIR", "MADARA_AGGREGATOR_USE_KZG_DA"} <= names


FAILURES = {
    "retryable-exit": (True, "the aggregator command asks to retry aggregator batch 1 (blocks 0..3) (exit code 75): "),
    "failed": (False, "the aggregator failed on aggregator batch 1 (blocks 0..3) (exit code 65): "),
    "crash": (False, "the aggregator command failed on aggregator batch 1 (blocks 0..3) (exit code 3): "),
    "no-output": (False, "but did not write cairo_pie.zip, program_output.json, da_segment.json in its output"),
    "corrupt-pie": (
        False,
        "returned a damaged output for aggregator batch 1 (blocks 0..3): the Cairo PIE is unreadable",
    ),
    "mismatched-output": (False, "is not the PIE's output segment"),
    "wrong-kzg": (False, "KZG commitment 0 is not the commitment of blob 0 of the DA segment"),
    "wrong-root": (False, "the aggregator's output moves the chain from block -1"),
    "wrong-input": (False, "the aggregator's input is 1 task outputs that are not the batch's 2 SNOS outputs"),
}
"""Misbehaviour of the program → (retryable, what the job's failure says)."""


@pytest.mark.slow
async def test_each_failure_fails_the_job_with_its_reason(chain: Chain, tmp_path: Path) -> None:
    async def failure(mode: str) -> JobError:
        with pytest.raises(JobError) as caught:
            await run_aggregator_job(runner(chain, tmp_path / mode, mode=mode), chain, tmp_path / mode)
        return caught.value

    # Two programs at a time: each is a Python process running cairo-lang's VM.
    gate = asyncio.Semaphore(2)

    async def gated(mode: str) -> JobError:
        async with gate:
            return await failure(mode)

    errors = dict(zip(FAILURES, await asyncio.gather(*(gated(mode) for mode in FAILURES)), strict=True))
    for mode, (retryable, expected) in FAILURES.items():
        error = errors[mode]
        message = str(error)
        assert expected in message, (mode, message)
        assert error.retryable is retryable, (mode, message)
        assert outage_cause(error) is None, f"{mode}: the run's own failure, not an outage"
        assert list((tmp_path / mode / "aggregator").iterdir()) == [], f"{mode}: the run's directory is removed"
    assert "aggregator execution failed: assertion failed in aggregate_outputs" in str(errors["failed"])


async def test_snos_outputs_that_do_not_chain_onto_the_chain_fail_the_job_before_the_program_runs(
    chain: Chain, tmp_path: Path
) -> None:
    def other_root(index: int, output: list[int]) -> list[int]:
        return [0x1234, *output[1:]] if index == 1 else output

    with pytest.raises(JobError) as caught:
        await run_aggregator_job(runner(chain, tmp_path), chain, tmp_path, tamper=other_root)
    assert caught.value.retryable is False
    assert str(caught.value).startswith(
        "aggregator batch 1 (blocks 0..3) cannot be aggregated: the first SNOS output (SNOS batch 1) starts from "
        "block -1 (root 0x1234, hash 0x0), but the chain before the batch ends at block -1 (root "
    )
    assert not (tmp_path / "aggregator").exists(), "the program never ran"


async def test_a_command_past_the_timeout_is_killed_with_its_process_group(chain: Chain, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    aggregator = runner(chain, tmp_path, mode="hang", timeout_s=4.0, extra_env={PID_FILE_VARIABLE: str(pid_file)})
    started = time.monotonic()
    with pytest.raises(JobError) as caught:
        await run_aggregator_job(aggregator, chain, tmp_path)
    assert time.monotonic() - started < 15
    assert caught.value.retryable is True
    assert "ran longer than 4 s (--aggregator-timeout-seconds) on aggregator batch 1 (blocks 0..3)" in str(caught.value)
    command, helper = await wait_for_pids(pid_file)
    await wait_until_gone(command, helper)
    assert gone(command) and gone(helper), "SIGKILL to the whole group, helpers included"


async def test_readiness_needs_the_program_and_the_sequencer(chain: Chain, tmp_path: Path) -> None:
    assert await runner(chain, tmp_path).is_ready()
    missing = CommandAggregatorRunner(
        str(tmp_path / "gone"), AggregatorRunConfig(rpc_url=chain.url), rpc=chain.rpc, work_dir=tmp_path
    )
    assert not await missing.is_ready()
    dead = StarknetRpcClient("http://127.0.0.1:9", attempts=1, retry_pause_s=0)
    try:
        unreachable = CommandAggregatorRunner(
            PROGRAM, AggregatorRunConfig(rpc_url=chain.url), rpc=dead, work_dir=tmp_path
        )
        assert not await unreachable.is_ready()
    finally:
        await dead.aclose()
