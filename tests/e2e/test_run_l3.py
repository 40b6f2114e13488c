"""``orchestrator run --layer l3`` as a process: an L3 settling on the Starknet double with the original's flags.

The sequencer, the Starknet double (the L2) and the mock Atlantic server (which verifies each proof "on
the L2" by registering its fact with a signed invoke) run in this test; the orchestrator is a separate
process configured only by flags and ``MADARA_ORCHESTRATOR_*`` variables, its key from a ``_FILE``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from madara_orchestrator.devnet.l2_fact_registrar import StarknetFactRegistrar
from madara_orchestrator.devnet.layout_bridge import DEVNET_CAIRO_VERIFIER_PROGRAM_HASH
from madara_orchestrator.devnet.mock_atlantic import MockAtlanticConfig, MockAtlanticServer
from madara_orchestrator.devnet.starknet_l2 import OPERATOR_ACCOUNT, VERIFIER_ACCOUNT, StarknetL2Double
from madara_orchestrator.server.background import BackgroundServer, free_port
from tests.e2e.test_run_provers import (
    BLOCKS,
    TIMEOUT_S,
    atlantic_args,
    devnet_sequencer,
    jobs_by_status,
    orchestrator_run,
)


def l3_args(l2_url: str, double: StarknetL2Double, atlantic: MockAtlanticServer) -> list[str]:
    """``run``'s flags for an L3 settling on the double, proven by the mock Atlantic server (the operator key
    is not among them: it comes from a ``_FILE``)."""
    return [
        "--layer",
        "l3",
        "--settle-on-starknet",
        "--starknet-rpc-url",
        l2_url,
        "--starknet-account-address",
        hex(OPERATOR_ACCOUNT.address),
        "--starknet-cairo-core-contract-address",
        hex(double.core_contract_address),
        "--starknet-finality-retry-wait-in-secs",
        "0.2",
        "--da-on-starknet",
        *atlantic_args(atlantic, settlement_layer="starknet"),
        "--cairo-verifier-program-hash",
        hex(DEVNET_CAIRO_VERIFIER_PROGRAM_HASH),
    ]


@pytest.mark.slow
async def test_run_settles_an_l3_on_starknet(tmp_path: Path) -> None:
    double = StarknetL2Double()
    l2 = BackgroundServer(double.app)
    await l2.start()
    registrar = StarknetFactRegistrar(
        rpc_url=l2.url,
        account_address=VERIFIER_ACCOUNT.address,
        private_key=VERIFIER_ACCOUNT.private_key,
        registry_address=double.fact_registry_address,
    )
    key_file = tmp_path / "starknet.key"
    key_file.write_text(hex(OPERATOR_ACCOUNT.private_key) + "\n")
    port = free_port()
    try:
        async with (
            MockAtlanticServer(MockAtlanticConfig(processing_s=0.1), l2_fact_registry=registrar) as atlantic,
            devnet_sequencer() as sequencer_url,
        ):
            args = l3_args(l2.url, double, atlantic)
            env = {
                "MADARA_ORCHESTRATOR_STARKNET_PRIVATE_KEY_FILE": str(key_file),
                "MADARA_ORCHESTRATOR_ATLANTIC_API_KEY": "k",
            }
            async with orchestrator_run(tmp_path, sequencer_url, port, args, env) as run:
                started = time.monotonic()
                while double.state.block_number != BLOCKS - 1:
                    if run.process.returncode is not None or time.monotonic() - started > TIMEOUT_S:
                        raise AssertionError(f"L3 not settled through block {BLOCKS - 1}:\n{run.log_tail()}")
                    await asyncio.sleep(0.2)
                # SNOS batches of two blocks: one update_state each, none twice.
                assert double.update_state_count == BLOCKS // 2
                completed = await jobs_by_status(run, "Completed")
                registrations = [j for j in completed if j["job_type"] == "ProofRegistration"]
                assert registrations and all(j["metadata"]["specific"]["download_proof"] for j in registrations)
            log = run.log.read_text()
            assert hex(OPERATOR_ACCOUNT.private_key)[2:] not in log, "the key never reaches the log"
    finally:
        await l2.stop()
