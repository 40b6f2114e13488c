"""AtlanticClient against the mock Atlantic server over real HTTP (127.0.0.1, a free port)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from madara_orchestrator.devnet.fact_registry import InMemoryFactRegistry
from madara_orchestrator.devnet.mock_atlantic import Fault, MockAtlanticConfig, MockAtlanticServer
from madara_orchestrator.domain.proving import (
    CreateBucket,
    CreateJob,
    RunAggregation,
    RunAggregationWithPie,
    TaskState,
    TaskStatus,
    TaskType,
)
from madara_orchestrator.interfaces import ProverClient
from madara_orchestrator.provers.atlantic import AtlanticClient, AtlanticConfig, AtlanticNetwork
from madara_orchestrator.provers.errors import (
    InvalidProofFormat,
    MalformedResponse,
    MissingCairoVerifierProgramHash,
    ProverApiError,
    RetriesExhausted,
    TaskInvalid,
)
from madara_orchestrator.provers.http import RetryPolicy
from madara_orchestrator.starknet.stone_proof import stone_proof_json, wrap_proof
from tests.integration.provers.conftest import WebhookReceiver

FIBONACCI_FACT = "0xca15503f02f8406b599cb220879e842394f5cf2cef753f3ee430647b5981b782"
FAST_RETRY = RetryPolicy(base_delay_s=0.02, max_delay_s=0.1, budget_s=5.0, max_attempts=4)


def make_client(server: MockAtlanticServer, **overrides: object) -> AtlanticClient:
    options: dict[str, object] = {
        "service_url": server.url,
        "api_key": "test-key",
        "network": AtlanticNetwork.TESTNET,
        "artifacts_base_url": server.artifacts_url,
        "timeout_s": 0.5,
        "retry": FAST_RETRY,
    }
    fact_checker = overrides.pop("fact_checker", None)
    options.update(overrides)
    return AtlanticClient(AtlanticConfig(**options), fact_checker=fact_checker)  # type: ignore[arg-type]


@pytest.fixture
async def server() -> AsyncIterator[MockAtlanticServer]:
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0.1)) as running:
        yield running


@pytest.fixture
async def client(server: MockAtlanticServer) -> AsyncIterator[AtlanticClient]:
    atlantic = make_client(server)
    yield atlantic
    await atlantic.aclose()


async def poll(
    client: ProverClient, task_type: TaskType, key: str, fact: str | None = None, limit_s: float = 10
) -> TaskStatus:
    async with asyncio.timeout(limit_s):
        while True:
            status = await client.get_task_status(task_type, key, fact)
            if status.state is not TaskState.PROCESSING:
                return status
            await asyncio.sleep(0.05)


def lookups(server: MockAtlanticServer) -> int:
    return sum(1 for _, path in server.state.requests if path == "/atlantic-query-by-dedup-id")


async def test_submit_then_poll_until_done(
    server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes
) -> None:
    assert isinstance(client, ProverClient)
    query_id = await client.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-1", num_steps=72))
    first = await client.get_task_status(TaskType.JOB, query_id)
    assert first.state is TaskState.PROCESSING
    assert await poll(client, TaskType.JOB, query_id) == TaskStatus.succeeded()
    query = await client.get_query(query_id)
    assert query.raw["sharpFactHash"] == FIBONACCI_FACT  # the mock read the PIE we uploaded
    fields = server.state.queries[query_id].data["formFields"]
    assert fields["declaredJobSize"] == ["S"]
    assert fields["result"] == ["PROOF_GENERATION"]
    assert fields["network"] == ["TESTNET"]
    assert fields["cairoVersion"] == ["cairo0"] and fields["cairoVm"] == ["rust"]
    assert fields["sharpProver"] == ["stone"] and fields["mockFactHash"] == ["false"]
    assert "layout" not in fields  # Ethereum settlement sends no layout
    assert server.state.queries[query_id].pie == fibonacci


async def test_duplicate_submission_returns_the_same_query(
    server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes
) -> None:
    task = CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-dup")
    first = await client.submit_task(task)
    second = await client.submit_task(task)
    assert first == second
    assert server.state.submissions == 1


async def test_a_failed_query_is_resubmitted_under_the_same_dedup_id(
    server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes
) -> None:
    server.state.inject(Fault(kind="fail_query", reason="prover crashed"))
    task = CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-again")
    first = await client.submit_task(task)
    assert (await poll(client, TaskType.JOB, first)).state is TaskState.FAILED
    second = await client.submit_task(task)
    assert second != first and server.state.submissions == 2


async def test_a_dedup_hit_in_another_bucket_is_refused(client: AtlanticClient, fibonacci: bytes) -> None:
    bucket = await client.submit_task(CreateBucket())
    await client.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="j", bucket_id=bucket, bucket_job_index=1))
    with pytest.raises(TaskInvalid, match="bucket"):
        await client.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="j", bucket_id=bucket, bucket_job_index=2))


async def test_5xx_answers_are_retried(server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes) -> None:
    server.state.inject(Fault(kind="status", status_code=503, count=2, path_contains="dedup"))
    server.state.inject(Fault(kind="status", status_code=500, count=1, path_contains="/atlantic-query/"))
    query_id = await client.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-5xx"))
    assert lookups(server) == 3
    assert (await client.get_task_status(TaskType.JOB, query_id)).state in TaskState
    assert server.state.faults == []


async def test_5xx_retries_stop_at_the_limit(server: MockAtlanticServer, client: AtlanticClient) -> None:
    server.state.inject(Fault(kind="status", status_code=502, count=100))
    with pytest.raises(RetriesExhausted) as info:
        await client.get_task_status(TaskType.JOB, "q")
    assert info.value.attempts == FAST_RETRY.max_attempts
    assert isinstance(info.value.last_error, ProverApiError) and info.value.last_error.status_code == 502
    assert len(server.state.requests) == FAST_RETRY.max_attempts


async def test_a_timeout_is_retried(server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes) -> None:
    server.state.inject(Fault(kind="delay", delay_s=1.5, count=1, path_contains="dedup"))
    query_id = await client.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-slow"))
    assert query_id in server.state.queries
    assert lookups(server) == 2 and server.state.submissions == 1


async def test_timeouts_stop_at_the_limit(server: MockAtlanticServer) -> None:
    policy = RetryPolicy(base_delay_s=0.01, budget_s=5, max_attempts=2)
    atlantic = make_client(server, timeout_s=0.2, retry=policy)
    server.state.inject(Fault(kind="delay", delay_s=1.0, count=5))
    with pytest.raises(RetriesExhausted) as info:
        await atlantic.get_task_status(TaskType.JOB, "q")
    assert isinstance(info.value.last_error, httpx.TimeoutException)
    assert info.value.attempts == 2
    await atlantic.aclose()


async def test_a_client_error_is_not_retried(server: MockAtlanticServer) -> None:
    async with MockAtlanticServer(MockAtlanticConfig(api_key="right")) as strict:
        atlantic = make_client(strict, api_key="wrong")
        with pytest.raises(ProverApiError) as info:
            await atlantic.get_task_status(TaskType.JOB, "q")
        assert info.value.status_code == 401 and not info.value.retryable
        assert len(strict.state.requests) == 1
        await atlantic.aclose()


async def test_a_failed_query_is_surfaced_with_its_reason(
    server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes
) -> None:
    server.state.inject(Fault(kind="fail_query", reason="trace generation ran out of memory"))
    query_id = await client.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-oom"))
    status = await poll(client, TaskType.JOB, query_id)
    assert status.state is TaskState.FAILED
    assert status.message == "Task failed while processing on Atlantic side: trace generation ran out of memory"


async def test_a_damaged_pie_fails_on_the_prover_side_with_the_reason(client: AtlanticClient) -> None:
    query_id = await client.submit_task(CreateJob(cairo_pie_zip=b"PK\x03\x04garbage", dedup_id="job-bad"))
    status = await poll(client, TaskType.JOB, query_id)
    assert status.state is TaskState.FAILED and "not a zip archive" in status.message


@pytest.mark.parametrize(
    "body",
    ["<html>oops</html>", "[1, 2]", '{"atlanticQuery": {"id": "q"}}', '{"atlanticQuery": {"id": "q", "status": "?"}}'],
)
async def test_a_malformed_answer_is_a_typed_error(
    server: MockAtlanticServer, client: AtlanticClient, body: str
) -> None:
    server.state.inject(Fault(kind="malformed", body=body, path_contains="/atlantic-query/"))
    with pytest.raises(MalformedResponse):
        await client.get_task_status(TaskType.JOB, "q")


async def test_a_malformed_submission_answer_is_a_typed_error(
    server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes
) -> None:
    server.state.inject(
        Fault(kind="malformed", body='{"queryId": "x"}', path_contains="/atlantic-query", method="POST")
    )
    with pytest.raises(MalformedResponse, match="atlanticQueryId"):
        await client.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-m"))


async def test_the_webhook_wakes_the_verification(
    webhook_receiver: tuple[WebhookReceiver, str], fibonacci: bytes
) -> None:
    receiver, url = webhook_receiver
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0.3, webhook_url=url)) as server:
        atlantic = make_client(server)
        query_id = await atlantic.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-hook"))
        async with asyncio.timeout(10):
            await receiver.event(query_id).wait()  # no polling: woken by the webhook
        assert await atlantic.get_task_status(TaskType.JOB, query_id) == TaskStatus.succeeded()
        [hook] = receiver.received
        assert (hook.id, hook.status.value, hook.step) == (query_id, "DONE", "PROOF_GENERATION")
        assert server.state.webhook_deliveries[0]["atlanticQueryId"] == query_id
        await atlantic.aclose()


async def test_done_with_an_unregistered_fact_fails_and_a_registered_one_succeeds(
    server: MockAtlanticServer, fibonacci: bytes
) -> None:
    registry = InMemoryFactRegistry()
    atlantic = make_client(server, fact_checker=registry)
    query_id = await atlantic.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-fact"))
    status = await poll(atlantic, TaskType.JOB, query_id, FIBONACCI_FACT)
    assert status == TaskStatus.failed(f"Fact {FIBONACCI_FACT} is not valid or not registered")
    await registry.register(FIBONACCI_FACT)
    assert await atlantic.get_task_status(TaskType.JOB, query_id, FIBONACCI_FACT) == TaskStatus.succeeded()
    mocked = make_client(server, fact_checker=InMemoryFactRegistry(), mock_fact_hash="true")
    assert await mocked.get_task_status(TaskType.JOB, query_id, FIBONACCI_FACT) == TaskStatus.succeeded()
    await atlantic.aclose()
    await mocked.aclose()


async def test_bucket_flow_to_aggregation_artifacts(
    server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes
) -> None:
    client = make_client(server, chain_id="SN_SEPOLIA", fee_token_address=0x4718, da_public_keys=(1,))
    bucket_id = await client.submit_task(CreateBucket())
    bucket = server.state.buckets[bucket_id]
    assert bucket["aggregatorVersion"] == "snos_aggregator_0.14.1"
    assert bucket["aggregatorParams"]["chain_id_hex"] == "0x" + b"SN_SEPOLIA".hex()
    assert bucket["aggregatorParams"]["public_keys"] == ["0x1"]
    assert bucket["mockProof"] is False
    for index in (1, 2):
        task = CreateJob(
            cairo_pie_zip=fibonacci, dedup_id=f"child-{index}", bucket_id=bucket_id, bucket_job_index=index
        )
        await client.submit_task(task)
    assert await client.submit_task(RunAggregation(bucket_id=bucket_id)) == bucket_id
    assert await client.submit_task(RunAggregation(bucket_id=bucket_id)) == bucket_id  # closed once only
    assert sum(1 for _, path in server.state.requests if path == "/buckets/close") == 1
    assert await poll(client, TaskType.AGGREGATION, bucket_id) == TaskStatus.succeeded()
    artifacts = await client.get_aggregation_artifacts(bucket_id, include_proof=True)
    assert artifacts.cairo_pie == fibonacci
    assert isinstance(json.loads(artifacts.da_segment or b""), list)
    assert artifacts.proof is not None and "public_input" in json.loads(artifacts.proof)
    without_proof = await client.get_aggregation_artifacts(bucket_id, include_proof=False)
    assert without_proof.proof is None
    await client.aclose()


async def test_run_builds_buckets_with_the_sequencers_chain_id(server: MockAtlanticServer) -> None:
    """SPEC §7.3 / §17 step 3: the prover client gets ``chain_id_hex``. ``run`` learns the chain id from the
    sequencer only after start-up, so compose hands the client ``starknet_chainId``, asked at the first bucket."""
    from madara_orchestrator.cli.compose import build_prover
    from madara_orchestrator.cli.settings import load_run_settings

    p = "MADARA_ORCHESTRATOR_"
    env = {
        p + "MADARA_RPC_URL": "http://127.0.0.1:9944",
        p + "SETTLE_ON_DEVNET": "true",
        p + "SNOS_RUNNER": "devnet",
        p + "PROVER": "atlantic",
        p + "ATLANTIC_API_KEY": "test-key",
        p + "ATLANTIC_SERVICE_URL": server.url,
        p + "ATLANTIC_ARTIFACTS_BASE_URL": server.artifacts_url,
        p + "ATLANTIC_NETWORK": "TESTNET",
        p + "ATLANTIC_MOCK_FACT_HASH": "true",
        p + "ATLANTIC_PROVER_TYPE": "starkware_sharp",
        p + "ATLANTIC_SETTLEMENT_LAYER": "ethereum",
    }
    asked: list[str] = []

    async def chain_id() -> str:  # what StarknetRpcClient.chain_id gives for the devnet sequencer
        asked.append("starknet_chainId")
        return "0x" + b"MADARA_DEVNET".hex()

    async with contextlib.AsyncExitStack() as exits:
        atlantic = build_prover(load_run_settings(argparse.Namespace(), env), exits, chain_id=chain_id)
        assert isinstance(atlantic, AtlanticClient)
        first = await atlantic.submit_task(CreateBucket())
        second = await atlantic.submit_task(CreateBucket())
    for bucket_id in (first, second):
        params = server.state.buckets[bucket_id]["aggregatorParams"]
        assert params["chain_id_hex"] == "0x" + b"MADARA_DEVNET".hex() == "0x4d41444152415f4445564e4554"
    assert asked == ["starknet_chainId"], "asked once, then kept"


async def test_proof_download_and_validation(
    server: MockAtlanticServer, client: AtlanticClient, fibonacci: bytes
) -> None:
    query_id = await client.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-proof"))
    await poll(client, TaskType.JOB, query_id)
    assert "proof_parameters" in json.loads(await client.get_proof(query_id))
    server.state.inject(Fault(kind="malformed", body="{not a proof", path_contains="proof.json"))
    with pytest.raises(InvalidProofFormat):
        await client.get_proof(query_id)


async def test_l2_verification_query(server: MockAtlanticServer, fibonacci: bytes) -> None:
    without = make_client(server)
    with pytest.raises(MissingCairoVerifierProgramHash):
        await without.submit_l2_query("7", "{}", 100)
    atlantic = make_client(server, cairo_verifier_program_hash="0x123", settlement_layer="starknet")
    wrapped = wrap_proof(stone_proof_json([1, 2]))
    query_id = await atlantic.submit_l2_query("7", wrapped, 20_000_000)
    query = server.state.queries[query_id]
    fields = query.data["formFields"]
    assert fields["result"] == ["PROOF_VERIFICATION_ON_L2"]
    assert fields["layout"] == ["recursive_with_poseidon"] and fields["programHash"] == ["0x123"]
    assert fields["declaredJobSize"] == ["M"] and fields["cairoVm"] == ["python"]
    assert query.proof_input == wrapped.encode()
    assert await poll(atlantic, TaskType.JOB, query_id) == TaskStatus.succeeded()
    # settling on Starknet: a PIE query sends result twice and the prover layout
    pie_query = await atlantic.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id="job-sn"))
    pie_fields = server.state.queries[pie_query].data["formFields"]
    assert pie_fields["result"] == ["PROOF_GENERATION", "PROOF_GENERATION"] and pie_fields["layout"] == ["dynamic"]
    await without.aclose()
    await atlantic.aclose()


async def test_pie_aggregation_is_not_an_atlantic_task(client: AtlanticClient) -> None:
    with pytest.raises(TaskInvalid):
        await client.submit_task(RunAggregationWithPie(cairo_pie_zip=b"", children_cairo_job_keys=[]))


async def test_random_failures_are_absorbed_by_retries(fibonacci: bytes) -> None:
    config = MockAtlanticConfig(processing_s=0.05, failure_rate=0.3, seed=7)
    async with MockAtlanticServer(config) as flaky:
        atlantic = make_client(flaky, retry=RetryPolicy(base_delay_s=0.01, budget_s=5, max_attempts=10))
        for i in range(4):
            query_id = await atlantic.submit_task(CreateJob(cairo_pie_zip=fibonacci, dedup_id=f"f{i}"))
            assert await poll(atlantic, TaskType.JOB, query_id) == TaskStatus.succeeded()
        assert flaky.state.submissions == 4
        await atlantic.aclose()


async def test_random_failures_follow_the_seed() -> None:
    patterns = []
    for seed in (7, 7, 8):
        async with MockAtlanticServer(MockAtlanticConfig(failure_rate=0.5, seed=seed)) as flaky:
            async with httpx.AsyncClient() as http:
                url = flaky.url + "/atlantic-query/none"
                patterns.append([(await http.get(url, headers={"api-key": "k"})).status_code for _ in range(24)])
    assert patterns[0] == patterns[1] != patterns[2]
    assert set(patterns[0]) == {503, 404}
