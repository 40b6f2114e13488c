"""``orchestrator run --snos-runner command|http`` as a process: SNOS runs outside it (the tests' runner
program, or the runner service over HTTP), every output is checked, and the blocks settle on anvil.

The mock prover registers the aggregator's facts on the fact registry, and the devnet core contract on
anvil accepts a settlement only with a registered fact, blobs matching the KZG section and blocks that
follow the last settled one.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest

from madara_orchestrator.devnet.adapters import DEVNET_AGGREGATOR_PROGRAM_HASH
from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS
from madara_orchestrator.jobs.artifacts import decode_felts_json
from madara_orchestrator.server.background import free_port
from madara_orchestrator.starknet.facts import l2_fact
from madara_orchestrator.starknet.os_output import parse_os_output
from madara_orchestrator.starknet.pie import read_pie
from tests.conftest import REPO_ROOT
from tests.e2e.test_run_provers import (
    BLOCKS,
    devnet_sequencer,
    jobs_by_status,
    local_l1,
    orchestrator_run,
    settlement_args,
    wait_for_completed_settlements,
    wait_until_settled,
)
from tests.helpers.snos_runner_service import RunningService, running_service

PROGRAM = REPO_ROOT / "tests" / "helpers" / "snos_runner_program.py"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["command", "http"])
async def test_run_with_an_outside_snos_runner_settles_on_anvil(tmp_path: Path, mode: str) -> None:
    port = free_port()
    service: AbstractContextManager[RunningService | None] = running_service() if mode == "http" else nullcontext()
    with service as runner_service:
        if runner_service is not None:
            snos_args = ["--snos-runner", "http", "--snos-runner-url", runner_service.url]
        else:
            snos_args = ["--snos-runner", "command", "--snos-command", f"{sys.executable} {PROGRAM}"]
        async with (
            local_l1(tmp_path, program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH) as l1,
            devnet_sequencer() as sequencer_url,
        ):
            args = [
                *snos_args,
                "--snos-timeout-seconds",
                "60",
                "--aggregator-runner",
                "devnet",
                "--prover",
                "mock",
                "--mock-verifier-address",
                l1.contracts.fact_registry,
                "--mock-verifier-private-key",
                DEV_PRIVATE_KEYS[2],
                *settlement_args(l1),
            ]
            async with orchestrator_run(tmp_path, sequencer_url, port, args) as run:
                await wait_until_settled(l1, run, BLOCKS - 1)
                await wait_for_completed_settlements(run, 2)
                assert await jobs_by_status(run, "Failed") == []
                snos_jobs = [j for j in await jobs_by_status(run, "Completed") if j["job_type"] == "SnosRun"]
        if runner_service is not None:
            assert len(runner_service.runs()) == len(snos_jobs), "one request per SNOS batch"

    # Each SNOS batch's artifacts are the runner's: a real Cairo PIE whose output segment is the stored OS
    # output, covering exactly the batch; the job's fact and steps come from that PIE.
    objects = tmp_path / "data" / "objects"
    covered: list[int] = []
    for job in sorted(snos_jobs, key=lambda j: int(j["internal_id"])):
        meta = job["metadata"]["specific"]
        pie = read_pie((objects / meta["cairo_pie_path"]).read_bytes())
        os_output = decode_felts_json((objects / meta["snos_output_path"]).read_bytes())
        assert pie.output_segment() == os_output
        header = parse_os_output(os_output).header
        assert header.new_block_number == meta["end_block"]
        assert meta["snos_fact"] == l2_fact(os_output) and meta["snos_n_steps"] == pie.n_steps
        covered += range(meta["start_block"], meta["end_block"] + 1)
    assert covered == list(range(BLOCKS))
    if mode == "command":
        assert list((tmp_path / "data" / "snos").iterdir()) == [], "each run's directory is removed"
