"""An L3's StateTransition job run by the engine's JobService, with the real Starknet settlement client, against
the Piltover double: a batch the double refuses fails the job's attempt with Piltover's error in the job's
failure reason; the right batch then settles with the original's calldata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.devnet.starknet_l2 import CORE_CONTRACT_ADDRESS, OPERATOR_ACCOUNT, StarknetL2Double
from madara_orchestrator.domain.batches import SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.jobs import (
    DEFAULT_POLICIES,
    Job,
    JobStatus,
    JobType,
    SettlementContext,
    StateUpdateMetadata,
)
from madara_orchestrator.domain.queues import Layer
from madara_orchestrator.engine.runtime import RuntimeConfig
from madara_orchestrator.engine.service import JobService, RetryPolicy
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.jobs.artifacts import encode_felts_json
from madara_orchestrator.jobs.state_update import BatchKind, StateUpdateJobHandler
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.settlement.starknet import StarknetSettlementConfig, starknet_json_rpc
from madara_orchestrator.starknet.stone_proof import stone_proof_json
from tests.helpers.engine import FakeClock
from tests.helpers.piltover import (
    MESSAGES,
    OS,
    ToL1,
    batch,
    bridge_of,
    fact_of,
    update_state_calldata,
)
from tests.helpers.settlement_clients import starknet_client

ST = JobType.STATE_TRANSITION


@dataclass
class Setup:
    double: StarknetL2Double
    objects: FilesystemObjectStore
    store: SqliteStore
    service: JobService


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    double = StarknetL2Double()
    server = BackgroundServer(double.app)
    await server.start()
    tx_store = SqliteTxStore(tmp_path / "tx.db")
    config = StarknetSettlementConfig(
        rpc_url=server.url,
        account_address=hex(OPERATOR_ACCOUNT.address),
        private_key=hex(OPERATOR_ACCOUNT.private_key),
        core_contract_address=hex(CORE_CONTRACT_ADDRESS),
        finality_retry_wait_s=0.01,
        confirmation_timeout_s=5.0,
    )
    rpc = starknet_json_rpc(config.rpc_url, timeout_s=config.rpc_timeout_s)
    client = starknet_client(config, rpc, tx_store)
    db = SqliteDatabase(tmp_path / "jobs.db")
    await db.open()
    store = SqliteStore(db)
    objects = FilesystemObjectStore(tmp_path / "objects")
    clock = FakeClock()
    config = RuntimeConfig(policies=DEFAULT_POLICIES, layer=Layer.L3)
    by_name, dead_letters = config.physical_queue_configs()
    queue = SqliteQueue(db, by_name, dead_letter_names=dead_letters, clock=clock, poll_interval_s=0.01)
    handler = StateUpdateJobHandler(settlement=client, objects=objects, db=store, clock=clock, settles=BatchKind.SNOS)
    service = JobService(
        db=store,
        queue=queue,
        queue_names=config.queue_names,
        handlers={ST: handler},
        alerts=RecordingAlerts(),
        metrics=NoTelemetry(),
        clock=clock,
        policies=DEFAULT_POLICIES,
        retry=RetryPolicy(base_delay_s=1, max_delay_s=8),
    )
    await store.insert_snos_batch(
        SnosBatch(index=1, start_block=0, end_block=0, status=SnosBatchStatus.CLOSED, created_at=0, updated_at=0)
    )
    try:
        yield Setup(double, objects, store, service)
    finally:
        await client.aclose()
        tx_store.close()
        await db.close()
        await server.stop()


async def settle_batch_1(s: Setup, snos: list[int], bridge: list[int]) -> Job:
    """Store what ProofCreation and ProofRegistration store for SNOS batch 1 (its OS output, the SNOS proof
    attesting the bootloaded output, the bridge proof) and process its StateTransition job once."""
    await s.objects.put("1/snos_output.json", encode_felts_json(snos[OS:]))
    await s.objects.put("1/proof.json", stone_proof_json(snos).encode())
    await s.objects.put("1/proof_part2.json", stone_proof_json(bridge).encode())
    meta = StateUpdateMetadata(
        context=SettlementContext(type="Batch", to_settle=1),
        snos_output_path="1/snos_output.json",
        program_output_path="1/program_output.txt",
        blob_data_path="1/blob_data.txt",
    )
    job = await s.service.create_job(ST, 1, meta)
    assert job is not None
    await s.service.process_job(job.id)
    fresh = await s.store.get_job(job.id)
    assert fresh is not None
    return fresh


def _set(words: list[int], index: int, value: int) -> list[int]:
    return [*words[:index], value, *words[index + 1 :]]


Refusal = Callable[[list[int]], tuple[list[int], list[int], int | None]]
"""From the right SNOS output: ``(snos_output, layout_bridge_output, fact to register or None)``."""
REFUSALS: dict[str, tuple[Refusal, str]] = {
    "layout-bridge-program-hash": (
        lambda snos: (snos, b := bridge_of(snos, layout_bridge_program_hash=0xBAD), fact_of(b)),
        "lb: invalid program hash",
    ),
    "snos-output-hash": (
        lambda snos: (snos, b := _set(bridge_of(snos), 4, 0xBAD), fact_of(b)),
        "snos: invalid output hash",
    ),
    "bootloader-program-hash": (
        lambda snos: (snos, b := bridge_of(snos), fact_of(b, bootloader_program_hash=0xB007)),
        "no fact registered",
    ),
    "fact-not-registered": (lambda snos: (snos, bridge_of(snos), None), "no fact registered"),
    "messages-segment": (
        lambda snos: (s := _set(batch(0, to_l1=[ToL1(0xA, 0xB)]), MESSAGES + 3, 2**32), b := bridge_of(s), fact_of(b)),
        "Invalid payload size",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refused_batch_fails_the_attempt_with_piltovers_error(setup: Setup, case: str) -> None:
    s = setup
    refusal, error = REFUSALS[case]
    snos, bridge, fact = refusal(batch(0))
    if fact is not None:
        s.double.register_fact_directly(fact)

    job = await settle_batch_1(s, snos, bridge)

    assert job.status == JobStatus.CREATED  # to be retried: the fact may be registered later
    reason = job.common.failure_reason or ""
    assert reason.startswith("Processing attempt 1 failed: Error occurred during state update of batch 1: ")
    assert f"Execution failed. Failure reason: 0x{error.encode().hex()} ('{error}')." in reason, reason
    assert s.double.update_state_count == 0 and s.double.nonce_of(OPERATOR_ACCOUNT.address) == 0


async def test_the_right_batch_settles_with_the_originals_calldata(setup: Setup) -> None:
    s = setup
    snos = batch(0)
    bridge = bridge_of(snos)
    s.double.register_fact_directly(fact_of(bridge))

    job = await settle_batch_1(s, snos, bridge)

    assert job.status == JobStatus.PENDING_VERIFICATION, job.common.failure_reason
    (tx,) = s.double.transactions
    assert not tx.is_reverted
    assert list(tx.calls[0].calldata) == update_state_calldata(snos, bridge)
    assert s.double.state.last_settled_block == 0
