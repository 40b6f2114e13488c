"""The mock Atlantic server's proofs and L2 verification queries, through the real ``AtlanticClient`` over HTTP.

A PIE query's ``proof.json`` attests the PIE's output as the bootloader outputs it (Atlantic proves a PIE by
bootloading it); an L2 verification query turns a wrapped Stone proof into the layout bridge's proof, whose
bootloaded output carries the layout bridge program hash at [2] and the verified output's hash at [4] (what
Piltover reads), and registers its Integrity fact (SPEC §7.3, §7.5, §7.9).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.devnet.adapters import devnet_pie
from madara_orchestrator.devnet.layout_bridge import (
    BOOTLOADER_PROGRAM_HASH,
    BRIDGE_VERIFIER_CONFIG,
    bootloaded_output,
    bridge_output,
    l2_fact,
    output_hash,
)
from madara_orchestrator.devnet.mock_atlantic import (
    Fault,
    MockAtlanticConfig,
    MockAtlanticServer,
)
from madara_orchestrator.domain.proving import CreateJob, TaskState, TaskStatus, TaskType
from madara_orchestrator.provers.atlantic import AtlanticClient, AtlanticConfig, AtlanticNetwork
from madara_orchestrator.provers.http import RetryPolicy
from madara_orchestrator.starknet.pie import read_pie
from madara_orchestrator.starknet.stone_proof import program_output_of_proof, stone_proof_json, wrap_proof
from tests.conftest import require
from tests.helpers.fact_registry import RecordingL2Registry

VERIFIER_PROGRAM_HASH = "0x5ab580b04e3532b6b18f81cfa654a05e29dd8e2352d88df1e765a84072db07"
FAST_RETRY = RetryPolicy(base_delay_s=0.02, max_delay_s=0.1, budget_s=5.0, max_attempts=4)


@pytest.fixture
def os_pie(vectors_dir: Path) -> bytes:
    path = vectors_dir / "pie" / "sepolia_924016.zip"
    require(path.is_file(), f"PIE vector {path}")
    return path.read_bytes()


@pytest.fixture
def registry() -> RecordingL2Registry:
    return RecordingL2Registry()


@pytest.fixture
async def server(registry: RecordingL2Registry) -> AsyncIterator[MockAtlanticServer]:
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0), l2_fact_registry=registry) as running:
        yield running


def make_client(server: MockAtlanticServer, verifier_program_hash: str = VERIFIER_PROGRAM_HASH) -> AtlanticClient:
    config = AtlanticConfig(
        service_url=server.url,
        api_key="test-key",
        network=AtlanticNetwork.TESTNET,
        artifacts_base_url=server.artifacts_url,
        settlement_layer="starknet",
        cairo_verifier_program_hash=verifier_program_hash,
        timeout_s=2.0,
        retry=FAST_RETRY,
    )
    return AtlanticClient(config)


@pytest.fixture
async def client(server: MockAtlanticServer) -> AsyncIterator[AtlanticClient]:
    atlantic = make_client(server)
    yield atlantic
    await atlantic.aclose()


async def finished(server: MockAtlanticServer, client: AtlanticClient, query_id: str) -> TaskStatus:
    """The query's final status, once the mock has ended it (its done event; the bound is for a hang, not a
    timing: on a loaded machine a query takes seconds)."""
    async with asyncio.timeout(60):
        await server.state.queries[query_id].done.wait()
    return await client.get_task_status(TaskType.JOB, query_id)


async def proven(server: MockAtlanticServer, client: AtlanticClient, pie: bytes, dedup_id: str) -> tuple[str, str]:
    """Submit a PIE, wait until DONE; ``(query id, proof)``."""
    query_id = await client.submit_task(CreateJob(cairo_pie_zip=pie, dedup_id=dedup_id))
    assert await finished(server, client, query_id) == TaskStatus.succeeded()
    return query_id, await client.get_proof(query_id)


async def test_the_proof_of_a_pie_query_attests_the_bootloaded_pie_output(
    server: MockAtlanticServer, client: AtlanticClient, os_pie: bytes
) -> None:
    query_id, proof = await proven(server, client, os_pie, "snos-1")
    program_hash = int(server.state.queries[query_id].data["programHash"], 16)
    os_output = read_pie(os_pie).output_segment()
    # Piltover's snos_output: [n_tasks, task size, SNOS program hash, OS output...].
    assert program_output_of_proof(proof) == [1, len(os_output) + 2, program_hash, *os_output]
    public_input = json.loads(proof)["public_input"]
    assert public_input["layout"] == "dynamic"  # the prover layout the client sent when settling on Starknet
    assert public_input["program_hash"] == hex(BOOTLOADER_PROGRAM_HASH)  # the proven program is the bootloader


async def test_the_proof_of_a_devnet_stand_in_attests_its_bootloaded_output(
    server: MockAtlanticServer, client: AtlanticClient
) -> None:
    output = [1, 2, 3, 0x800000000000011000000000000000000000000000000000000000000000000]
    query_id, proof = await proven(server, client, devnet_pie("snos", output, program_hash=0x5305), "devnet-1")
    assert program_output_of_proof(proof) == bootloaded_output(0x5305, output)
    assert server.state.queries[query_id].data["programHash"] == hex(0x5305)
    _, unnamed = await proven(server, client, devnet_pie("snos", output), "devnet-2")
    assert program_output_of_proof(unnamed) == bootloaded_output(0, output)


async def test_an_l2_verification_registers_the_bridge_fact_and_serves_the_bridge_proof(
    server: MockAtlanticServer, client: AtlanticClient, registry: RecordingL2Registry, os_pie: bytes
) -> None:
    _, snos_proof = await proven(server, client, os_pie, "snos-2")
    snos_output = program_output_of_proof(snos_proof)
    query_id = await client.submit_l2_query("7", wrap_proof(snos_proof), 20_000_000)
    assert await finished(server, client, query_id) == TaskStatus.succeeded()
    expected = bridge_output(snos_output, layout_bridge_program_hash=int(VERIFIER_PROGRAM_HASH, 16))
    # Bootloaded: [1, 4, layout bridge program hash, verified program (the bootloader), poseidon(snos_output)].
    assert expected == [1, 4, int(VERIFIER_PROGRAM_HASH, 16), BOOTLOADER_PROGRAM_HASH, output_hash(snos_output)]
    fact = l2_fact(BOOTLOADER_PROGRAM_HASH, expected)
    assert registry.facts == [fact]
    assert registry.verifications == [(16 * 3 + 30, BRIDGE_VERIFIER_CONFIG)]  # n_queries·log_n_cosets + PoW bits
    query = (await client.get_query(query_id)).raw
    assert query["integrityFactHash"] == hex(fact) and query["chain"] == "L2"
    assert query["transactionId"] == f"0x{1:064x}"
    assert query["step"] == "PROOF_VERIFICATION_ON_L2"
    bridge_proof = await client.get_proof(query_id)
    assert program_output_of_proof(bridge_proof) == expected
    assert json.loads(bridge_proof)["public_input"]["layout"] == "recursive_with_poseidon"


async def test_an_l2_verification_of_any_stone_proof_follows_its_output(
    server: MockAtlanticServer, client: AtlanticClient, registry: RecordingL2Registry
) -> None:
    output = [5, 6, 7]
    query_id = await client.submit_l2_query("8", wrap_proof(stone_proof_json(output)), None)
    assert await finished(server, client, query_id) == TaskStatus.succeeded()
    bridge = program_output_of_proof(await client.get_proof(query_id))
    assert bridge[:3] == [1, 4, int(VERIFIER_PROGRAM_HASH, 16)] and bridge[4] == output_hash(output)
    assert registry.facts == [l2_fact(BOOTLOADER_PROGRAM_HASH, bridge)]


@pytest.mark.parametrize(
    ("proof", "problem"),
    [
        ("not json at all", "not JSON"),
        ('{"something": 1}', 'should be an object {"proof"'),
        ('{\n\t"proof": {}\n}', "misses proof_parameters"),
        ('{\n\t"proof": {"proof_parameters": {}, "public_input": {}}\n}', "memory_segments"),
    ],
)
async def test_an_l2_verification_of_garbage_fails_with_the_reason(
    server: MockAtlanticServer, client: AtlanticClient, registry: RecordingL2Registry, proof: str, problem: str
) -> None:
    query_id = await client.submit_l2_query("9", proof, None)
    status = await finished(server, client, query_id)
    assert status.state is TaskState.FAILED
    assert status.message.startswith("Task failed while processing on Atlantic side: INVALID_PROOF: ")
    assert problem in status.message
    assert registry.facts == []
    assert server.state.queries[query_id].data["integrityFactHash"] is None


@pytest.mark.parametrize(("program_hash", "problem"), [(None, "programHash"), ("0xnope", "not a hex felt")])
async def test_an_l2_verification_needs_a_hex_program_hash(
    server: MockAtlanticServer, registry: RecordingL2Registry, program_hash: str | None, problem: str
) -> None:
    files = {"inputFile": ("proof.json", wrap_proof(stone_proof_json([1])).encode(), "application/json")}
    data = {"result": "PROOF_VERIFICATION_ON_L2", "layout": "recursive_with_poseidon"}
    if program_hash is not None:
        data["programHash"] = program_hash
    async with httpx.AsyncClient() as http:
        answer = await http.post(server.url + "/atlantic-query", data=data, files=files, headers={"api-key": "k"})
    query_id = answer.json()["atlanticQueryId"]
    query = server.state.queries[query_id]
    async with asyncio.timeout(60):
        await query.done.wait()
    assert query.data["status"] == "FAILED" and problem in query.data["errorReason"]
    assert registry.facts == []


async def test_a_failed_registration_fails_the_l2_verification() -> None:
    refusing = RecordingL2Registry(error=RuntimeError("integrity contract reverted"))
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0), l2_fact_registry=refusing) as server:
        atlantic = make_client(server)
        try:
            query_id = await atlantic.submit_l2_query("10", wrap_proof(stone_proof_json([1, 2])), None)
            status = await finished(server, atlantic, query_id)
        finally:
            await atlantic.aclose()
    assert status == TaskStatus.failed(
        "Task failed while processing on Atlantic side: fact registration failed: integrity contract reverted"
    )


async def test_an_injected_failure_ends_an_l2_verification_before_registration(
    server: MockAtlanticServer, client: AtlanticClient, registry: RecordingL2Registry
) -> None:
    server.state.inject(Fault(kind="fail_query", reason="the L2 verifier is down"))
    query_id = await client.submit_l2_query("11", wrap_proof(stone_proof_json([3])), None)
    status = await finished(server, client, query_id)
    assert status == TaskStatus.failed("Task failed while processing on Atlantic side: the L2 verifier is down")
    assert registry.facts == []


async def test_without_a_registry_the_l2_verification_still_serves_the_bridge_proof() -> None:
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0)) as bare:
        atlantic = make_client(bare, verifier_program_hash="0x1")
        try:
            query_id = await atlantic.submit_l2_query("12", wrap_proof(stone_proof_json([4])), None)
            assert await finished(bare, atlantic, query_id) == TaskStatus.succeeded()
            bridge = program_output_of_proof(await atlantic.get_proof(query_id))
            assert bridge[2] == 1 and bridge[4] == output_hash([4])
            assert (await atlantic.get_query(query_id)).raw["transactionId"] is None
        finally:
            await atlantic.aclose()


async def test_an_l2_verification_with_a_dedup_id_is_submitted_once_unless_it_failed(
    server: MockAtlanticServer, client: AtlanticClient, registry: RecordingL2Registry
) -> None:
    wrapped = wrap_proof(stone_proof_json([5]))
    first = await client.submit_l2_query("13", wrapped, None, dedup_id="registration-job-13")
    again = await client.submit_l2_query("13", wrapped, None, dedup_id="registration-job-13")
    assert again == first, "a retry after a crash finds the query instead of sending it again"
    assert server.state.queries[first].data["dedupId"] == "registration-job-13"
    assert await finished(server, client, first) == TaskStatus.succeeded()
    assert len(registry.facts) == 1

    server.state.inject(Fault(kind="fail_query", reason="verifier down"))
    failed = await client.submit_l2_query("14", wrapped, None, dedup_id="registration-job-14")
    assert (await finished(server, client, failed)).state is TaskState.FAILED
    retried = await client.submit_l2_query("14", wrapped, None, dedup_id="registration-job-14")
    assert retried != failed, "a failed query is submitted anew"
    assert await finished(server, client, retried) == TaskStatus.succeeded()
