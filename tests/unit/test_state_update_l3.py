"""StateTransition on an L3 (SPEC §8.4): a SNOS batch settles with calldata made of the outputs its SNOS
proof and its bridge proof attest; verification completes the SNOS batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from madara_orchestrator.backends.memory import MemoryObjectStore, MemoryStore
from madara_orchestrator.domain.batches import SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.domain.jobs import Job, JobType, SettlementContext, StateUpdateMetadata
from madara_orchestrator.interfaces import SettlementAttempt, SettlementResult
from madara_orchestrator.jobs.artifacts import encode_felts_json
from madara_orchestrator.jobs.base import Verification
from madara_orchestrator.jobs.state_update import BatchKind, StateUpdateJobHandler
from madara_orchestrator.settlement.errors import SettlementTxError
from madara_orchestrator.starknet.stone_proof import stone_proof_json
from tests.helpers.engine import FakeClock

OS_OUTPUT = [0x11, 0x22, 1, 3, 0xAA, 0xBB, 0, 0, 0, 5, 6]
BRIDGE_OUTPUT = [0x99, 0x98, 0x97]


class CalldataSettlement:
    def __init__(self) -> None:
        self.last: int | None = 1
        self.calls: list[tuple[list[int], list[int], str]] = []
        self.errors: list[Exception] = []
        self.settles_to = 3
        self.lands_despite_error = False
        """The failed call's transaction lands anyway (it was mined after the sender gave up)."""

    async def last_settled_block(self) -> int | None:
        return self.last

    async def update_state_with_blobs(
        self,
        program_output: Sequence[int],
        blobs: Sequence[bytes],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult:  # pragma: no cover
        raise AssertionError("an L3 settles with calldata")

    async def update_state_calldata(
        self,
        snos_output: Sequence[int],
        program_output: Sequence[int],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult:
        self.calls.append((list(snos_output), list(program_output), idempotency_key))
        if self.errors:
            if self.lands_despite_error:
                self.last = self.settles_to
            raise self.errors.pop(0)
        self.last = self.settles_to
        attempt = SettlementAttempt(attempt_no=1, tx_hash="0x5e771e", nonce=9, gas_multiplier=1.0, status="Finalized")
        return SettlementResult(tx_hash="0x5e771e", nonce=9, attempts=[attempt])

    async def verify_tx_inclusion(self, tx_hash: str) -> str:  # pragma: no cover
        return "Verified"


@dataclass
class RecordingFigures:
    done: list[dict[str, object]] = field(default_factory=list)

    def settlement_done(
        self, *, blocks: int, felts: int, blobs: int, seconds: float, fee_wei: int | None, layer: str = "L1"
    ) -> None:
        self.done.append({"blocks": blocks, "felts": felts, "blobs": blobs, "layer": layer})

    def settlement_fee_capped(self) -> None:  # pragma: no cover
        raise AssertionError


@dataclass
class L3:
    handler: StateUpdateJobHandler
    settlement: CalldataSettlement
    store: MemoryStore
    objects: MemoryObjectStore
    figures: RecordingFigures


@pytest.fixture
async def l3() -> L3:
    store = MemoryStore()
    objects = MemoryObjectStore()
    settlement = CalldataSettlement()
    figures = RecordingFigures()
    handler = StateUpdateJobHandler(
        settlement=settlement, objects=objects, db=store, clock=FakeClock(), figures=figures, settles=BatchKind.SNOS
    )
    for index, (start, end) in enumerate([(0, 1), (2, 3)], start=1):
        await store.insert_snos_batch(
            SnosBatch(
                index=index, start_block=start, end_block=end, status=SnosBatchStatus.CLOSED, created_at=0, updated_at=0
            )
        )
    await objects.put("2/snos_output.json", encode_felts_json(OS_OUTPUT))
    await objects.put("2/proof.json", stone_proof_json(OS_OUTPUT).encode())
    await objects.put("2/proof_part2.json", stone_proof_json(BRIDGE_OUTPUT).encode())
    return L3(handler, settlement, store, objects, figures)


def settle_job(to_settle: int = 2) -> Job:
    meta = StateUpdateMetadata(
        context=SettlementContext(type="Batch", to_settle=to_settle),
        snos_output_path=f"{to_settle}/snos_output.json",
        program_output_path=f"{to_settle}/program_output.txt",
        blob_data_path=f"{to_settle}/blob_data.txt",
    )
    return Job.new(JobType.STATE_TRANSITION, to_settle, meta, now=0, orchestrator_version="0.1.0")


async def test_the_calldata_is_the_two_proven_outputs(l3: L3) -> None:
    processed = await l3.handler.process(settle_job())
    assert l3.settlement.calls == [(OS_OUTPUT, BRIDGE_OUTPUT, "StateTransition-2")]
    assert processed.external_id == "2"
    meta = processed.specific
    assert isinstance(meta, StateUpdateMetadata)
    assert meta.tx_hash == "0x5e771e" and meta.tx_nonce == 9
    assert [a["status"] for a in meta.tx_attempts] == ["Finalized"]
    assert l3.figures.done == [{"blocks": 2, "felts": len(OS_OUTPUT) + len(BRIDGE_OUTPUT), "blobs": 0, "layer": "L2"}]


async def test_an_output_asking_for_kzg_da_is_refused(l3: L3) -> None:
    await l3.objects.put("2/snos_output.json", encode_felts_json([*OS_OUTPUT[:8], 2, *OS_OUTPUT[9:]]))
    with pytest.raises(JobError, match="UseKZGDaError") as caught:
        await l3.handler.process(settle_job())
    assert not caught.value.retryable
    assert l3.settlement.calls == []


async def test_a_snos_output_path_is_required(l3: L3) -> None:
    job = settle_job()
    meta = job.metadata.specific
    assert isinstance(meta, StateUpdateMetadata)
    bare = job.with_specific(StateUpdateMetadata(context=meta.context, program_output_path="2/program_output.txt"))
    with pytest.raises(JobError, match="snos_output_path") as caught:
        await l3.handler.process(bare)
    assert not caught.value.retryable


async def test_an_invalid_bridge_proof_fails_at_once_naming_it(l3: L3) -> None:
    await l3.objects.put("2/proof_part2.json", b'{"proof_parameters": {}, "public_input": {}}')
    with pytest.raises(JobError, match=r"2/proof_part2\.json") as caught:
        await l3.handler.process(settle_job())
    assert not caught.value.retryable
    assert l3.settlement.calls == []


async def test_an_already_settled_batch_is_not_sent(l3: L3) -> None:
    l3.settlement.last = 3
    processed = await l3.handler.process(settle_job())
    assert l3.settlement.calls == []
    assert isinstance(processed.specific, StateUpdateMetadata)
    assert processed.specific.tx_hash == "0x" + "0" * 64
    assert l3.figures.done == []


async def test_a_failed_send_keeps_its_attempts_and_a_late_landing_counts_as_settled(l3: L3) -> None:
    attempt = SettlementAttempt(attempt_no=1, tx_hash="0xfee", nonce=9, gas_multiplier=1.0, status="TimedOut")
    l3.settlement.errors.append(SettlementTxError("not confirmed in time", attempts=[attempt], nonce=9))
    with pytest.raises(JobError, match="Error occurred during state update of batch 2") as caught:
        await l3.handler.process(settle_job())
    failed = caught.value.specific
    assert isinstance(failed, StateUpdateMetadata)
    assert failed.tx_hash == "0xfee" and failed.tx_nonce == 9 and failed.context.last_failed == 2
    # The same error, but the transaction landed meanwhile: the batch is settled, move on to verification.
    l3.settlement.errors.append(SettlementTxError("not confirmed in time", attempts=[attempt], nonce=9))
    l3.settlement.lands_despite_error = True
    processed = await l3.handler.process(settle_job())
    assert isinstance(processed.specific, StateUpdateMetadata) and processed.specific.tx_hash == "0xfee"


async def test_verification_completes_the_snos_batch(l3: L3) -> None:
    await l3.handler.process(settle_job())
    assert (await l3.handler.verify(settle_job())).status == Verification.VERIFIED
    batch = await l3.store.get_snos_batch(2)
    assert batch is not None and batch.status == SnosBatchStatus.COMPLETED
    other = await l3.store.get_snos_batch(1)
    assert other is not None and other.status == SnosBatchStatus.CLOSED


async def test_verification_waits_at_the_previous_boundary_and_rejects_a_gap(l3: L3) -> None:
    l3.settlement.last = 1
    assert (await l3.handler.verify(settle_job())).status == Verification.PENDING
    l3.settlement.last = 0
    result = await l3.handler.verify(settle_job())
    assert result.status == Verification.REJECTED
    assert result.reason == "Last settle block expected was 3 but found 0"
    batch = await l3.store.get_snos_batch(2)
    assert batch is not None and batch.status == SnosBatchStatus.CLOSED
