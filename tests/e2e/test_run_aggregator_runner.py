"""``orchestrator run --aggregator-runner command`` as a process: the aggregator runs outside it (the tests'
runner program, a real Cairo PIE from cairo-lang's VM), its output is checked, and the blocks settle on anvil.

SNOS runs outside too (the tests' SNOS runner program: the aggregator needs OS outputs whose state diff is in
the OS layout). The mock prover registers the aggregator's facts on the fact registry, and the devnet core
contract on anvil accepts a settlement only with a registered fact made with the runner's program hash,
blobs matching the KZG section and blocks that follow the last settled one.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS
from madara_orchestrator.jobs.artifacts import decode_felts_json, decode_program_output
from madara_orchestrator.server.background import free_port
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.facts import aggregator_fact_info
from madara_orchestrator.starknet.os_output import parse_output_sections
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
from tests.helpers.aggregator_runner_program import aggregator_program_hash

SNOS_PROGRAM = REPO_ROOT / "tests" / "helpers" / "snos_runner_program.py"
AGGREGATOR_PROGRAM = REPO_ROOT / "tests" / "helpers" / "aggregator_runner_program.py"


@pytest.mark.slow
async def test_run_with_an_outside_aggregator_settles_on_anvil(tmp_path: Path) -> None:
    port = free_port()
    async with (
        local_l1(tmp_path, program_hash=aggregator_program_hash()) as l1,
        devnet_sequencer() as sequencer_url,
    ):
        args = [
            "--snos-runner",
            "command",
            "--snos-command",
            f"{sys.executable} {SNOS_PROGRAM}",
            "--aggregator-runner",
            "command",
            "--aggregator-command",
            f"{sys.executable} {AGGREGATOR_PROGRAM}",
            "--aggregator-timeout-seconds",
            "120",
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
            completed = await wait_for_completed_settlements(run, 2)
            assert await jobs_by_status(run, "Failed") == []

    # Each aggregator batch's artifacts are the runner's: a real Cairo PIE of its program, whose filtered output
    # settled, with a KZG section for the DA segment's blobs; its fact is what the job had registered.
    objects = tmp_path / "data" / "objects"
    aggregators = sorted((j for j in completed if j["job_type"] == "Aggregator"), key=lambda j: int(j["internal_id"]))
    assert len(aggregators) == 2
    covered: list[int] = []
    for job in aggregators:
        meta = job["metadata"]["specific"]
        info = aggregator_fact_info(read_pie((objects / meta["cairo_pie_path"]).read_bytes()))
        assert info.program_hash == aggregator_program_hash()
        assert meta["ensure_on_chain_registration"] == info.fact
        stored = decode_program_output((objects / meta["program_output_path"]).read_bytes())
        assert stored == info.program_output
        own = parse_output_sections(stored)
        da_segment = decode_felts_json((objects / meta["da_segment_path"]).read_bytes())
        assert own.kzg is not None and own.kzg.n_blobs == len(felts_to_blobs(da_segment))
        prev = -1 if own.header.prev_block_number > BLOCKS else own.header.prev_block_number
        covered += range(prev + 1, own.header.new_block_number + 1)
    assert covered == list(range(BLOCKS))
    assert list((tmp_path / "data" / "aggregator").iterdir()) == [], "each run's directory is removed"


async def test_run_with_sharp_and_no_aggregator_runner_is_refused_naming_the_flag(tmp_path: Path) -> None:
    from tests.helpers.sharp import make_pki

    pki = make_pki(tmp_path / "pki")
    core = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "madara_orchestrator.cli.main",
        "run",
        "--madara-rpc-url",
        "http://127.0.0.1:9944",
        "--snos-runner",
        "devnet",
        "--prover",
        "sharp",
        "--sharp-url",
        "https://sharp.example",
        "--sharp-customer-id",
        "cust-1",
        "--sharp-user-crt-file",
        pki.client_crt,
        "--sharp-user-key-file",
        pki.client_key,
        "--sharp-server-crt-file",
        pki.ca_crt,
        "--sharp-rpc-node-url",
        "http://127.0.0.1:8545",
        "--gps-verifier-contract-address",
        core,
        "--settle-on-ethereum",
        "--ethereum-rpc-url",
        "http://127.0.0.1:8545",
        "--ethereum-private-key",
        DEV_PRIVATE_KEYS[0],
        "--l1-core-contract-address",
        core,
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")},
            "PYTHONPATH": str(REPO_ROOT / "src"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    err = stderr.decode()
    assert process.returncode == 2, err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert problems == [
        "  - --aggregator-runner (MADARA_ORCHESTRATOR_AGGREGATOR_RUNNER) is required with --prover sharp: command "
        "(--aggregator-command), http (--aggregator-runner-url) or devnet (a stand-in no prover or core contract "
        "accepts)"
    ], err
