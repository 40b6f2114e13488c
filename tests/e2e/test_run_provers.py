"""``orchestrator run`` with the real prover clients, as a process, settling a devnet chain on anvil.

Atlantic: the mock Atlantic server (buckets per aggregator batch, completion webhooks to the run's
``/webhooks/atlantic``, the aggregator's PIE and DA segment as artifacts, the aggregator fact registered
on L1). SHARP: a fake SHARP over HTTPS with mutual TLS, the aggregator fact registered on the GPS
verifier that ``--gps-verifier-contract-address`` names. In both, the devnet core contract on anvil
accepts a settlement only if its fact is registered, its blobs match the KZG section and its blocks
follow the last settled one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.settings import MOCK_ATLANTIC_PORT, RUN_OPTIONS, Settings
from madara_orchestrator.devnet.adapters import DEVNET_AGGREGATOR_PROGRAM_HASH, devnet_pie
from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS, Anvil, AnvilConfig, find_anvil_binary
from madara_orchestrator.devnet.fact_registry import InMemoryFactRegistry
from madara_orchestrator.devnet.l1_contracts import DevnetContracts, deploy_devnet_contracts
from madara_orchestrator.devnet.mock_atlantic import (
    MockAtlanticConfig,
    MockAtlanticServer,
    mock_aggregator_program_hash,
)
from madara_orchestrator.devnet.program_output import devnet_config_hash
from madara_orchestrator.devnet.sequencer import CHAIN_ID, STRK_TOKEN, DevnetSequencer
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.proving import CreateBucket, CreateJob, RunAggregation, TaskState, TaskStatus, TaskType
from madara_orchestrator.jobs.artifacts import decode_felts_json
from madara_orchestrator.provers.atlantic import AtlanticClient, AtlanticConfig, AtlanticNetwork
from madara_orchestrator.server.background import BackgroundServer, free_port
from madara_orchestrator.settlement.contracts import FactRegistryClient
from madara_orchestrator.settlement.encoding import STATE_BLOCK_NUMBER_SELECTOR, decode_int256, program_output_fact
from madara_orchestrator.settlement.eth_rpc import EthRpc
from madara_orchestrator.starknet.facts import aggregator_fact_info
from madara_orchestrator.starknet.os_output import parse_kzg_section
from madara_orchestrator.starknet.pie import read_pie
from tests.conftest import REPO_ROOT, require
from tests.helpers import anvil_pool
from tests.helpers.sharp import CUSTOMER_ID, FakeSharp, make_pki, serve_fake_sharp

BLOCKS = 6
"""Two aggregator batches of three blocks (SNOS batches of two): two buckets, two settlements."""
TIMEOUT_S = 75.0
DEVNET_RUNNERS = ["--snos-runner", "devnet", "--aggregator-runner", "devnet"]
"""The devnet stand-ins for SNOS and the aggregator, named (run implies neither)."""


def anvil_available() -> bool:
    try:
        find_anvil_binary()
    except ConfigError:
        return False
    return True


@dataclass
class LocalL1:
    anvil: Anvil
    rpc: EthRpc
    contracts: DevnetContracts

    async def state_block_number(self) -> int:
        return decode_int256(await self.rpc.call(self.contracts.core_contract, STATE_BLOCK_NUMBER_SELECTOR))

    def fact_registry(self) -> FactRegistryClient:
        """The prover's own L1 account (dev key 2): neither the operator's nor the deployer's."""
        return FactRegistryClient(self.rpc, self.contracts.fact_registry, DEV_PRIVATE_KEYS[2])


@asynccontextmanager
async def local_l1(tmp_path: Path, *, program_hash: int) -> AsyncIterator[LocalL1]:
    """anvil with the fact registry and a core contract that checks facts made with ``program_hash``."""
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    anvil = await asyncio.to_thread(anvil_pool.lease, AnvilConfig(hardfork="prague"), tmp_path / "anvil.log")
    rpc = EthRpc(anvil.url)
    try:
        contracts = await deploy_devnet_contracts(
            rpc, DEV_PRIVATE_KEYS[1], program_hash=program_hash, config_hash=devnet_config_hash()
        )
        yield LocalL1(anvil, rpc, contracts)
    finally:
        await rpc.aclose()
        await asyncio.to_thread(anvil_pool.give_back, anvil)


@asynccontextmanager
async def devnet_sequencer() -> AsyncIterator[str]:
    sequencer = DevnetSequencer(block_time_s=0.2, tx_per_block=3)
    server = BackgroundServer(sequencer.app)
    await server.start()
    sequencer.start_producing(max_blocks=BLOCKS)
    try:
        yield server.url
    finally:
        await sequencer.stop_producing()
        await server.stop()


def settlement_args(l1: LocalL1) -> list[str]:
    return [
        "--settle-on-ethereum",
        "--ethereum-rpc-url",
        l1.anvil.url,
        "--ethereum-private-key",
        DEV_PRIVATE_KEYS[0],
        "--l1-core-contract-address",
        l1.contracts.core_contract,
        "--ethereum-confirmations",
        "0",
        "--ethereum-finality-retry-wait-in-secs",
        "0.2",
        "--disable-peerdas",
    ]


def atlantic_args(atlantic: MockAtlanticServer, settlement_layer: str = "ethereum") -> list[str]:
    """``run``'s Atlantic flags for the mock Atlantic server (mocked facts, SHARP prover, facts checked on
    ``settlement_layer``), with the devnet SNOS stand-in, whose PIEs the mock reads."""
    return [
        "--snos-runner",
        "devnet",
        "--prover",
        "atlantic",
        "--atlantic-service-url",
        atlantic.url,
        "--atlantic-artifacts-base-url",
        atlantic.artifacts_url,
        "--atlantic-network",
        "TESTNET",
        "--atlantic-mock-fact-hash",
        "true",
        "--atlantic-prover-type",
        "starkware_sharp",
        "--atlantic-settlement-layer",
        settlement_layer,
    ]


@dataclass
class Run:
    process: asyncio.subprocess.Process
    log: Path
    url: str

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@asynccontextmanager
async def orchestrator_run(
    tmp_path: Path, sequencer_url: str, port: int, args: Sequence[str], env: dict[str, str] | None = None
) -> AsyncIterator[Run]:
    """``orchestrator run`` as a process (its log in a file, so a full pipe never blocks it); SIGTERM at the end."""
    log = tmp_path / "orchestrator.log"
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")},
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "MADARA_ORCHESTRATOR_MADARA_RPC_URL": sequencer_url,
        **(env or {}),
    }
    argv = [
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(port),
        "--max-batch-size",
        "3",
        "--max-blocks-per-snos-batch",
        "2",
        "--verification-poll-seconds",
        "0.5",
        "--chain-poll-interval-seconds",
        "0.2",
        "--retry-base-delay-seconds",
        "0.5",
        *args,
    ]
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "madara_orchestrator.cli.main",
            "run",
            *argv,
            cwd=tmp_path,
            env=environ,
            stdout=sink,
            stderr=sink,
        )
    run = Run(process, log, f"http://127.0.0.1:{port}")
    try:
        yield run
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()
    assert process.returncode == 0, run.log_tail()
    assert "Traceback" not in log.read_text(errors="replace"), run.log_tail()


async def wait_until_settled(l1: LocalL1, run: Run, last_block: int) -> float:
    """Until the core contract's stateBlockNumber reaches ``last_block``; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < TIMEOUT_S:
        if run.process.returncode is not None:
            raise AssertionError(f"orchestrator run exited with {run.process.returncode}:\n{run.log_tail()}")
        if await l1.state_block_number() >= last_block:
            return time.monotonic() - started
        await asyncio.sleep(0.3)
    raise AssertionError(
        f"stateBlockNumber is {await l1.state_block_number()} after {TIMEOUT_S} s, "
        f"expected {last_block}:\n{run.log_tail()}"
    )


async def wait_for_completed_settlements(run: Run, count: int) -> list[dict[str, Any]]:
    """Until ``count`` StateTransition jobs are Completed (verified after landing); the Completed jobs."""
    deadline = time.monotonic() + 30
    while True:
        completed = await jobs_by_status(run, "Completed")
        if len([j for j in completed if j["job_type"] == "StateTransition"]) >= count:
            return completed
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} StateTransition jobs not Completed:\n{run.log_tail()}")
        await asyncio.sleep(0.3)


async def jobs_by_status(run: Run, status: str) -> list[dict[str, Any]]:
    """The jobs with ``status``, each as ``GET /jobs/{id}`` shows it (external id, metadata)."""
    async with httpx.AsyncClient(base_url=run.url, timeout=10) as client:
        listed = (await client.get("/jobs", params={"status": status})).json()["data"]["jobs"]
        return [(await client.get(f"/jobs/{job['id']}")).json()["data"] for job in listed]


@pytest.mark.slow
async def test_run_with_atlantic_settles_on_anvil_through_buckets_and_webhooks(tmp_path: Path) -> None:
    port = free_port()
    key_file = tmp_path / "atlantic-api-key"
    key_file.write_text("test-key\n")
    webhook_secret = "webhook-secret-" + "0" * 16
    secret_file = tmp_path / "atlantic-webhook-secret"
    secret_file.write_text(webhook_secret + "\n")
    async with (
        local_l1(tmp_path, program_hash=mock_aggregator_program_hash()) as l1,
        devnet_sequencer() as sequencer_url,
        MockAtlanticServer(
            MockAtlanticConfig(
                processing_s=1.0,  # a webhook before the job waits for it would find nothing to wake
                api_key="test-key",
                webhook_url=f"http://127.0.0.1:{port}/webhooks/atlantic",
                webhook_secret=webhook_secret,
            ),
            fact_registry=l1.fact_registry(),
        ) as atlantic,
    ):
        # Verification polls every 5 s (not 0.5): each proof is verified because its webhook woke it.
        args = [*atlantic_args(atlantic), *settlement_args(l1), "--verification-poll-seconds", "5"]
        env = {
            "MADARA_ORCHESTRATOR_ATLANTIC_API_KEY_FILE": str(key_file),
            "MADARA_ORCHESTRATOR_ATLANTIC_WEBHOOK_SECRET_FILE": str(secret_file),
        }
        async with orchestrator_run(tmp_path, sequencer_url, port, args, env) as run:
            await wait_until_settled(l1, run, BLOCKS - 1)
            completed = await wait_for_completed_settlements(run, 2)
            assert await jobs_by_status(run, "Failed") == []

        state = atlantic.state
        # One bucket per aggregator batch, each closed and aggregated, its children in order.
        assert len(state.buckets) == 2 and all(b["status"] == "DONE" for b in state.buckets.values())
        for bucket_id in state.buckets:
            children = [q.data for q in state.queries.values() if q.data["bucketId"] == bucket_id]
            indexes = sorted(q["bucketJobIndex"] for q in children if q["step"] != "FACT_HASH_REGISTRATION")
            assert indexes == [1, 2], f"two SNOS batches per aggregator batch, 1-based: {indexes}"
            (aggregator,) = [q for q in children if q["step"] == "FACT_HASH_REGISTRATION"]
            assert aggregator["status"] == "DONE" and aggregator["transactionId"], "fact registered on L1"
        # Every query's completion reached the run's webhook route, which answered 2xx and woke the job.
        delivered = {d["atlanticQueryId"] for d in state.webhook_deliveries}
        assert delivered == set(state.queries), "one accepted webhook per query (children and aggregators)"
        woken = run.log.read_text().count("verification woken by a prover webhook")
        assert woken == 6, f"4 ProofCreation and 2 Aggregator jobs woken by webhooks, got {woken}"
        assert webhook_secret not in run.log.read_text()
        # Every child query was submitted once (dedupId = the ProofCreation job's id).
        assert state.submissions == 4 and len(state.by_dedup) == 4
        aggregators = [j for j in completed if j["job_type"] == "Aggregator"]
        assert sorted(j["external_id"] for j in aggregators) == sorted(state.buckets)
        assert len([j for j in completed if j["job_type"] == "StateTransition"]) == 2


@pytest.mark.slow
async def test_run_with_sharp_settles_on_anvil_over_mutual_tls(tmp_path: Path) -> None:
    port = free_port()
    pki = make_pki(tmp_path / "pki")
    async with (
        local_l1(tmp_path, program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH) as l1,
        devnet_sequencer() as sequencer_url,
    ):
        fake = FakeSharp(fact_registry=l1.fact_registry())
        async with serve_fake_sharp(fake, pki) as sharp_url:
            args = [
                *DEVNET_RUNNERS,
                "--prover",
                "sharp",
                "--sharp-url",
                sharp_url,
                "--sharp-customer-id",
                CUSTOMER_ID,
                "--sharp-user-crt-file",
                pki.client_crt,
                "--sharp-user-key-file",
                pki.client_key,
                "--sharp-server-crt-file",
                pki.ca_crt,
                "--sharp-rpc-node-url",
                l1.anvil.url,
                "--gps-verifier-contract-address",
                l1.contracts.fact_registry,
                *settlement_args(l1),
            ]
            async with orchestrator_run(tmp_path, sequencer_url, port, args) as run:
                await wait_until_settled(l1, run, BLOCKS - 1)
                completed = await wait_for_completed_settlements(run, 2)
                assert await jobs_by_status(run, "Failed") == []

        assert fake.errors == []
        assert {scheme for _, _, scheme in fake.calls} == {"https"}
        submitted = [(path, params["cairo_job_key"]) for path, params, _ in fake.calls if path.startswith("add_")]
        children = [key for path, key in submitted if path == "add_job"]
        applicative = [key for path, key in submitted if path == "add_applicative_job"]
        assert len(children) == len(set(children)) == 4, "each SNOS batch proven once, keyed by its fact"
        assert len(applicative) == 2 and fake.registered == applicative, "aggregator facts registered on L1"
        assert sorted(k for key in applicative for k in fake.children[key]) == sorted(children)
        aggregators = [j for j in completed if j["job_type"] == "Aggregator"]
        assert sorted(j["external_id"] for j in aggregators) == sorted(applicative)
        assert len([j for j in completed if j["job_type"] == "StateTransition"]) == 2


async def test_mock_atlantic_server_flag_serves_the_mock_in_process(tmp_path: Path) -> None:
    """``--mock-atlantic-server``: the mock on 127.0.0.1:4001, the Atlantic client pointed at it."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", MOCK_ATLANTIC_PORT))
    except OSError:
        pytest.skip(f"port {MOCK_ATLANTIC_PORT} is in use")
    async with devnet_sequencer() as sequencer_url:
        await _check_mock_atlantic_flag(tmp_path, sequencer_url)
    async with httpx.AsyncClient(timeout=2) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{MOCK_ATLANTIC_PORT}/_mock/health")


async def _check_mock_atlantic_flag(tmp_path: Path, sequencer_url: str) -> None:
    values = {o.name: o.default for o in RUN_OPTIONS}
    values.update(
        data_dir=str(tmp_path / "data"),
        madara_rpc_url=sequencer_url,
        snos_runner="devnet",
        prover="atlantic",
        settle_on_devnet=True,
        mock_atlantic_server=True,
        atlantic_api_key="k",
        atlantic_network="testnet",
        atlantic_mock_fact_hash="true",
        atlantic_prover_type="starkware_sharp",
        atlantic_settlement_layer="ethereum",
        port=3999,
    )
    stack = await build_embedded_stack(Settings(values))
    try:
        assert stack.mock_atlantic is not None and stack.mock_atlantic.url == f"http://127.0.0.1:{MOCK_ATLANTIC_PORT}"
        assert stack.mock_atlantic.state.config.webhook_url == "http://127.0.0.1:3999/webhooks/atlantic"
        # No --atlantic-webhook-secret: the mock signs with one made for the run, which the API then requires.
        assert stack.mock_atlantic.state.config.webhook_secret
        assert stack.atlantic_webhook_secret == stack.mock_atlantic.state.config.webhook_secret
        prover = stack.prover
        assert isinstance(prover, AtlanticClient)
        assert prover.config.service_url == stack.mock_atlantic.url
        assert prover.config.artifacts_base_url == stack.mock_atlantic.artifacts_url
        bucket = await prover.create_bucket()
        assert bucket.id in stack.mock_atlantic.state.buckets
        # The bucket names the chain (SPEC §7.3: chain_id_hex, the sequencer's chain id in hex).
        assert (stack.mock_atlantic.state.buckets[bucket.id]["aggregatorParams"] or {}).get("chain_id_hex")
    finally:
        await stack.close()


async def test_mock_atlantic_aggregates_os_outputs_into_a_settleable_batch() -> None:
    """The bucket's aggregator artifacts continue the children's blocks and carry a registered fact."""
    p = 2**251 + 17 * 2**192 + 1

    def os_output(prev: int, end: int, prev_hash: int, diff: list[int]) -> list[int]:
        header = [100 + prev, 100 + end, prev % p, end, prev_hash, 1000 + end, 7, devnet_config_hash(), 0, 1]
        return [*header, 0, 0, *diff]

    children = [os_output(-1, 1, 0, [1, 11, 12]), os_output(1, 3, 1001, [2, 21, 22, 23])]
    registry = InMemoryFactRegistry()
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0.05), fact_registry=registry) as server:
        client = AtlanticClient(
            AtlanticConfig(
                service_url=server.url,
                api_key="k",
                network=AtlanticNetwork.TESTNET,
                artifacts_base_url=server.artifacts_url,
                mock_fact_hash="true",
                # The devnet chain's: the aggregator checks they give the children's OS config hash.
                chain_id=CHAIN_ID,
                fee_token_address=STRK_TOKEN,
            )
        )
        try:
            bucket_id = await client.submit_task(CreateBucket())
            for index, output in enumerate(children, start=1):
                # The devnet SNOS runner's stand-in PIE: the mock reads its output.
                pie = devnet_pie("snos", output)
                job = CreateJob(cairo_pie_zip=pie, dedup_id=f"job-{index}", bucket_id=bucket_id, bucket_job_index=index)
                await client.submit_task(job)
            await client.submit_task(RunAggregation(bucket_id=bucket_id))
            for _ in range(200):
                if (await client.get_task_status(TaskType.AGGREGATION, bucket_id)).state != TaskState.PROCESSING:
                    break
                await asyncio.sleep(0.05)
            assert await client.get_task_status(TaskType.AGGREGATION, bucket_id) == TaskStatus.succeeded()
            artifacts = await client.get_aggregation_artifacts(bucket_id, include_proof=False)
        finally:
            await client.aclose()
    assert artifacts.cairo_pie is not None and artifacts.da_segment is not None
    info = aggregator_fact_info(read_pie(artifacts.cairo_pie))
    output = info.program_output
    assert output[:8] == [99, 103, p - 1, 3, 0, 1003, 7, devnet_config_hash()], "blocks 0..3, roots and hashes joined"
    assert output[8] == 1 and output[11] == 1, "KZG DA with one blob"
    da_segment = decode_felts_json(artifacts.da_segment)
    assert da_segment == [2, 1, 11, 12, 2, 21, 22, 23], "the children's state-diff areas"
    # The fact a core contract deployed with the mock aggregator's program hash checks, registered.
    assert info.program_hash == mock_aggregator_program_hash()
    assert registry.registrations == ["0x" + program_output_fact(info.program_hash, output).hex()]
    parse_kzg_section(output)  # commitments and evaluations are those of the DA segment's blob
