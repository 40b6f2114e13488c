"""The ProofRegistration job (SPEC §7.9) run by the engine's JobService against the mock Atlantic server over HTTP.

The SNOS proof goes out as an L2 verification query; the bridge proof comes back to ``<id>/proof_part2.json``.
A failed query rejects the verification with its reason, and a query that never ends runs out the verification
budget (VerificationTimeout).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.devnet.adapters import devnet_pie
from madara_orchestrator.devnet.layout_bridge import (
    BOOTLOADER_PROGRAM_HASH,
    bootloaded_output,
    bridge_output,
    l2_fact,
)
from madara_orchestrator.devnet.mock_atlantic import Fault, MockAtlanticConfig, MockAtlanticServer
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, Job, JobPolicy, JobStatus, JobType, ProvingMetadata
from madara_orchestrator.domain.proving import CreateJob, TaskState, TaskType
from madara_orchestrator.domain.queues import Layer
from madara_orchestrator.engine.runtime import RuntimeConfig
from madara_orchestrator.engine.service import JobService, RetryPolicy
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.jobs.base import Verification
from madara_orchestrator.jobs.proof_registration import ProofRegistrationJobHandler
from madara_orchestrator.provers.atlantic import AtlanticClient, AtlanticConfig, AtlanticNetwork
from madara_orchestrator.provers.http import RetryPolicy as HttpRetryPolicy
from madara_orchestrator.starknet.stone_proof import program_output_of_proof, stone_proof_json
from tests.helpers.engine import FakeClock
from tests.helpers.fact_registry import RecordingL2Registry

PR = JobType.PROOF_REGISTRATION
S = JobStatus
VERIFIER_PROGRAM_HASH = 0x5AB580B04E3532B6B18F81CFA654A05E29DD8E2352D88DF1E765A84072DB07
SNOS_OUTPUT = [0x11, 0x22, 7, 8, 0x33, 0x44, 0x55, 0x66, 0, 0, 0, 0]
POLICY = JobPolicy(max_process_attempts=2, max_verification_attempts=3, verification_delay_s=5, lease_s=30)


@dataclass
class Setup:
    atlantic: MockAtlanticServer
    registry: RecordingL2Registry
    client: AtlanticClient
    objects: FilesystemObjectStore
    handler: ProofRegistrationJobHandler
    service: JobService
    store: SqliteStore
    alerts: RecordingAlerts


@contextlib.asynccontextmanager
async def running(tmp_path: Path, processing_s: float) -> AsyncIterator[Setup]:
    registry = RecordingL2Registry()
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=processing_s), l2_fact_registry=registry) as atlantic:
        client = AtlanticClient(
            AtlanticConfig(
                service_url=atlantic.url,
                api_key="test-key",
                network=AtlanticNetwork.TESTNET,
                artifacts_base_url=atlantic.artifacts_url,
                settlement_layer="starknet",
                cairo_verifier_program_hash=hex(VERIFIER_PROGRAM_HASH),
                timeout_s=2.0,
                retry=HttpRetryPolicy(base_delay_s=0.02, max_delay_s=0.1, budget_s=5.0, max_attempts=4),
            )
        )
        objects = FilesystemObjectStore(tmp_path / "objects")
        handler = ProofRegistrationJobHandler(prover=client, objects=objects)
        clock = FakeClock()
        policies = {**DEFAULT_POLICIES, PR: POLICY}
        config = RuntimeConfig(policies=policies, layer=Layer.L3)  # L3: ProofRegistration's queues exist
        db = SqliteDatabase(tmp_path / "jobs.db")
        await db.open()
        store = SqliteStore(db)
        by_name, dead_letters = config.physical_queue_configs()
        queue = SqliteQueue(db, by_name, dead_letter_names=dead_letters, clock=clock, poll_interval_s=0.01)
        alerts = RecordingAlerts()
        service = JobService(
            db=store,
            queue=queue,
            queue_names=config.queue_names,
            handlers={PR: handler},
            alerts=alerts,
            metrics=NoTelemetry(),
            clock=clock,
            policies=policies,
            retry=RetryPolicy(base_delay_s=1, max_delay_s=8),
        )
        try:
            yield Setup(atlantic, registry, client, objects, handler, service, store, alerts)
        finally:
            await client.aclose()
            await db.close()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with running(tmp_path, processing_s=0) as value:
        yield value


@pytest.fixture
async def stalled(tmp_path: Path) -> AsyncIterator[Setup]:
    """A mock Atlantic whose queries stay RECEIVED for an hour: longer than any test."""
    async with running(tmp_path, processing_s=3600) as value:
        yield value


async def registration_job(s: Setup, internal_id: int, proof: str) -> Job:
    """A ProofRegistration job as the trigger creates it, with ProofCreation's proof in place."""
    await s.objects.put(f"{internal_id}/proof.json", proof.encode())
    meta = ProvingMetadata(
        block_number=internal_id,
        input_path={"Proof": f"{internal_id}/proof.json"},
        download_proof=f"{internal_id}/proof_part2.json",
        n_steps=1_000_000,
    )
    job = await s.service.create_job(PR, internal_id, meta)
    assert job is not None
    return job


async def processed(s: Setup, job: Job) -> Job:
    """Process the job (the L2 verification query is submitted); it then waits for verification."""
    assert (await s.service.process_job(job.id)).ack
    fresh = await stored(s, job)
    assert fresh.status == S.PENDING_VERIFICATION and fresh.external_id in s.atlantic.state.queries
    return fresh


async def query_done(s: Setup, job: Job) -> None:
    """Wait (bounded) until the mock has ended the job's L2 verification query."""
    async with asyncio.timeout(10):
        await s.atlantic.state.queries[str(job.external_id)].done.wait()


async def stored(s: Setup, job: Job) -> Job:
    fresh = await s.store.get_job(job.id)
    assert fresh is not None
    return fresh


async def test_a_registered_proof_stores_the_bridge_proof(setup: Setup) -> None:
    s = setup
    stand_in = devnet_pie("snos", SNOS_OUTPUT, program_hash=0x5305)
    snos_query = await s.client.submit_task(CreateJob(cairo_pie_zip=stand_in, dedup_id="p"))
    async with asyncio.timeout(10):
        await s.atlantic.state.queries[snos_query].done.wait()
    snos_proof = await s.client.get_proof(snos_query)  # what ProofCreation stores as <id>/proof.json
    job = await processed(s, await registration_job(s, 5, snos_proof))
    query = s.atlantic.state.queries[str(job.external_id)]
    assert query.data["result"] == "PROOF_VERIFICATION_ON_L2" and query.data["formFields"]["declaredJobSize"] == ["S"]
    await query_done(s, job)
    assert (await s.service.verify_job(job.id)).ack
    done = await stored(s, job)
    assert done.status == S.COMPLETED and done.common.verification_attempt_no == 1
    proven_output = bootloaded_output(0x5305, SNOS_OUTPUT)  # what the SNOS proof attests
    expected = bridge_output(proven_output, layout_bridge_program_hash=VERIFIER_PROGRAM_HASH)
    assert program_output_of_proof(await s.objects.get("5/proof_part2.json")) == expected
    assert s.registry.facts == [l2_fact(BOOTLOADER_PROGRAM_HASH, expected)]


async def test_a_failed_query_is_rejected_with_its_reason_then_processed_again(setup: Setup) -> None:
    s = setup
    s.atlantic.state.inject(Fault(kind="fail_query", reason="Integrity verifier rejected the proof"))
    job = await processed(s, await registration_job(s, 6, stone_proof_json(SNOS_OUTPUT)))
    await query_done(s, job)
    verdict = await s.handler.verify(job)
    message = (
        "Proof registration job #6 failed with error: Task failed while processing on Atlantic side: "
        "Integrity verifier rejected the proof"
    )
    assert verdict.status == Verification.REJECTED and verdict.reason == message
    await s.service.verify_job(job.id)
    rejected = await stored(s, job)
    assert rejected.status == S.VERIFICATION_FAILED and rejected.common.failure_reason == message
    assert not await s.objects.exists("6/proof_part2.json")
    assert s.registry.facts == []
    # the second process attempt sends a new query, which succeeds
    again = await processed(s, rejected)
    assert again.external_id != job.external_id
    await query_done(s, again)
    await s.service.verify_job(job.id)
    assert (await stored(s, job)).status == S.COMPLETED
    assert await s.objects.exists("6/proof_part2.json")


async def test_a_garbage_proof_is_rejected_by_atlantic_with_its_reason(setup: Setup) -> None:
    """A proof that parses but attests no output: the handler sends it, the mock's verification refuses it."""
    s = setup
    proof = '{"proof_parameters": {}, "public_input": {"memory_segments": {}}}'
    job = await processed(s, await registration_job(s, 7, proof))
    await query_done(s, job)
    verdict = await s.handler.verify(job)
    assert verdict.status == Verification.REJECTED
    assert verdict.reason.startswith("Proof registration job #7 failed with error: ")
    assert "INVALID_PROOF" in verdict.reason


async def test_a_query_that_never_ends_times_out_the_verification(stalled: Setup) -> None:
    s = stalled
    job = await processed(s, await registration_job(s, 8, stone_proof_json(SNOS_OUTPUT)))
    for attempt in range(1, POLICY.max_verification_attempts):
        assert (await s.handler.verify(await stored(s, job))).status == Verification.PENDING
        await s.service.verify_job(job.id)
        pending = await stored(s, job)
        assert pending.status == S.PENDING_VERIFICATION and pending.common.verification_attempt_no == attempt
    await s.service.verify_job(job.id)
    timed_out = await stored(s, job)
    assert timed_out.status == S.VERIFICATION_TIMEOUT
    assert timed_out.common.verification_attempt_no == POLICY.max_verification_attempts
    assert s.alerts.sent[-1][0] == "Job Verification Timeout"
    assert s.atlantic.state.queries[str(job.external_id)].data["status"] == "RECEIVED"
    assert not await s.objects.exists("8/proof_part2.json") and s.registry.facts == []
    assert (await s.client.get_task_status(TaskType.JOB, str(job.external_id))).state is TaskState.PROCESSING
