"""Blob-fee-aware posting under a deadline (issue 20, item 2), at the engine: a proven batch gets no
StateTransition job while the L1's fees are over the target, until they fall or the deadline nears; the
batches that waited go together; the reason is logged once per change and exposed; a missed deadline alerts
once. In-memory store, a fake clock, scripted fee history; the triggers are the real ones."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from madara_orchestrator.backends.memory import MemoryStore
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, StateUpdateMetadata
from madara_orchestrator.domain.posting import GWEI, FeeCap, FeeHistory, PostingPolicy, Send, Wait
from madara_orchestrator.engine.batching import Batcher
from madara_orchestrator.engine.metrics import Metrics
from madara_orchestrator.engine.plan import L2_PLAN, TriggerName
from madara_orchestrator.engine.posting import PAGE_BLOCKS, SettlementGate
from madara_orchestrator.engine.runtime import Adapters, Runtime, RuntimeConfig, Storage
from madara_orchestrator.engine.triggers import TriggerConfig, Triggers
from madara_orchestrator.interfaces import SequencerRpc
from madara_orchestrator.jobs.aggregator import aggregator_metadata
from madara_orchestrator.server.models import Posting
from tests.helpers.engine import Harness, ScriptedHandler, make_harness

HOUR = 3600.0
CAP = FeeCap(max_total_fee_wei=10**17)
POLICY = PostingPolicy(deadline_s=HOUR, percentile=30, window_blocks=300)
PAST_BASE = [GWEI + i * GWEI // 100 for i in range(300)]
"""1 to ~4 gwei; p30 = the 90th = 1.89 gwei."""
PAST_BLOB = [GWEI + i * GWEI // 10 for i in range(300)]
"""1 to ~31 gwei; p30 = 9.9 gwei."""
CHEAP = (GWEI, GWEI)
DEAR = (2 * GWEI, 25 * GWEI)
"""Over the p30 targets, well under the hard cap."""
OVER_CAP = (CAP.max_base_fee() + 1, GWEI)


@dataclass
class ScriptedFees:
    """``eth_feeHistory`` of a chain whose newest block is ``newest``: the past fees fixed, the next block's
    set by the test; each call recorded."""

    next_fees: tuple[int, int] = CHEAP
    newest: int = 10_000
    calls: list[tuple[int, int | str]] = field(default_factory=list)

    async def fee_history(self, block_count: int, newest_block: int | str = "latest") -> FeeHistory:
        self.calls.append((block_count, newest_block))
        newest = self.newest if newest_block == "latest" else int(newest_block)
        count = min(block_count, newest + 1)
        oldest = newest - count + 1
        past_base = [PAST_BASE[b % 300] for b in range(oldest, newest + 1)]
        past_blob = [PAST_BLOB[b % 300] for b in range(oldest, newest + 1)]
        after = (
            self.next_fees if newest == self.newest else (PAST_BASE[(newest + 1) % 300], PAST_BLOB[(newest + 1) % 300])
        )
        return FeeHistory(
            oldest_block=oldest,
            base_fees=(*past_base, after[0]),
            blob_base_fees=(*past_blob, after[1]),
            gas_used_ratio=tuple(0.5 for _ in past_base),
            blob_gas_used_ratio=tuple(0.5 for _ in past_base),
        )


@dataclass
class Setup:
    harness: Harness
    store: MemoryStore
    fees: ScriptedFees
    gate: SettlementGate
    triggers: Triggers
    metrics: Metrics
    t0: float

    async def prove(self, index: int, *, opened_at: float | None = None) -> None:
        """Aggregator batch ``index`` (one block) proven: ReadyForStateUpdate, its Aggregator job Completed."""
        now = self.harness.clock.now()
        batch = AggregatorBatch(
            index=index,
            start_block=index,
            end_block=index,
            status=AggregatorBatchStatus.READY_FOR_STATE_UPDATE,
            created_at=self.t0 if opened_at is None else opened_at,
            updated_at=now,
            blob_len=5000,
        )
        await self.store.insert_aggregator_batch(batch)
        job = Job.new(JobType.AGGREGATOR, index, aggregator_metadata(index), now=now, orchestrator_version="test")
        assert await self.store.create_job(dataclasses.replace(job, status=JobStatus.COMPLETED))

    async def settlement_jobs(self) -> list[int]:
        jobs = await self.store.list_jobs(job_types=[JobType.STATE_TRANSITION])
        return sorted(j.internal_id for j in jobs)

    async def settle(self, index: int) -> None:
        job = await self.store.get_job_by_internal_id(JobType.STATE_TRANSITION, index)
        assert job is not None and isinstance(job.metadata.specific, StateUpdateMetadata)
        await self.store.update_job(dataclasses.replace(job, status=JobStatus.COMPLETED), now=self.harness.clock.now())

    def next_block(self, fees: tuple[int, int]) -> None:
        """An L1 slot later, the next block's fees are ``fees`` (the gate reads the history once a look)."""
        self.harness.clock.advance(12)
        self.fees.next_fees = fees

    def gauge(self, name: str) -> dict[str, float]:
        return {s.labels.get("reason", ""): s.value for s in self.metrics.collect(name)}


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    harness = await make_harness(tmp_path / "jobs.db", handler=ScriptedHandler(job_type=JobType.STATE_TRANSITION))
    store = harness.store
    assert isinstance(store, MemoryStore)
    fees = ScriptedFees()
    metrics = Metrics()
    gate = SettlementGate(
        policy=POLICY, cap=CAP, fees=fees, db=store, clock=harness.clock, alerts=harness.alerts, metrics=metrics
    )
    triggers = Triggers(
        config=TriggerConfig(),
        plan=L2_PLAN,
        service=harness.service,
        db=store,
        sequencer=cast(SequencerRpc, None),
        clock=harness.clock,
        metrics=metrics,
        batcher=cast(Batcher, None),
        settlement_gate=gate,
    )
    yield Setup(harness, store, fees, gate, triggers, metrics, harness.clock.now())
    gate.close()
    await triggers.stop()
    await harness.close()


async def test_a_batch_waits_while_fees_are_over_the_target_and_goes_when_they_fall(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    s = setup
    await s.prove(1)
    s.fees.next_fees = DEAR
    caplog.set_level(logging.INFO, logger="madara_orchestrator.posting")
    for _ in range(5):
        s.harness.clock.advance(12)
        assert not await s.triggers.update_state()
    assert await s.settlement_jobs() == []
    waits = [r.getMessage() for r in caplog.records if "waits for lower L1 fees" in r.getMessage()]
    assert len(waits) == 1, "the reason is logged once, not on every look"
    assert waits[0] == (
        "settlement of batch 1 waits for lower L1 fees: blob base fee 25 gwei above target 9.9 gwei and base fee "
        "2 gwei above target 1.89 gwei (p30 of the last 300 blocks); deadline in 60 min"
    )
    # Exposed: the metrics and the dashboard's state.
    assert s.gauge("orchestrator_settlement_posting_waiting") == {Wait.BOTH: 1.0}
    assert s.gauge("orchestrator_settlement_deadline_seconds") == {Wait.BOTH: HOUR - 60}
    assert s.gauge("orchestrator_settlement_posting_batch") == {Wait.BOTH: 1.0}
    assert s.gate.state is not None
    view = s.gate.state.to_json()
    assert view["waiting"] is True and view["batch"] == 1 and view["seconds_to_deadline"] == HOUR - 60
    assert Posting.model_validate(view).reason == s.gate.state.decision.reason, "the overview's documented shape"
    # The fees fall (a new L1 block): the job is created, and the waiting figures go.
    s.next_block(CHEAP)
    assert await s.triggers.update_state()
    assert await s.settlement_jobs() == [1]
    assert s.gauge("orchestrator_settlement_posting_waiting") == {}
    assert s.gate.state.to_json()["waiting"] is False and s.gate.state.decision.code == Send.AT_TARGET
    assert any("settlement of batch 1 goes" in r.getMessage() for r in caplog.records)
    assert s.harness.alerts.sent == []


async def test_the_target_relaxes_as_the_deadline_nears_until_the_batch_goes(setup: Setup) -> None:
    s = setup
    await s.prove(1)
    s.fees.next_fees = DEAR
    # Up to 65 % of the deadline the percentile target holds; then it relaxes toward the cap.
    s.harness.clock.advance(POLICY.relax_from * HOUR)
    assert not await s.triggers.update_state()
    goes_at = None
    for _ in range(int((1 - POLICY.relax_from) * HOUR / 60)):
        s.harness.clock.advance(60)
        if await s.triggers.update_state():
            goes_at = s.harness.clock.now() - s.t0
            break
    assert goes_at is not None and POLICY.relax_from * HOUR < goes_at < HOUR - POLICY.margin_s
    assert await s.settlement_jobs() == [1]
    assert s.gate.state is not None and s.gate.state.decision.code == Send.RELAXED
    assert s.harness.alerts.sent == []


async def test_waiting_batches_go_together_when_fees_fall_each_judged_by_its_own_age(setup: Setup) -> None:
    s = setup
    s.triggers.config = dataclasses.replace(s.triggers.config, max_settlements_in_flight=3)
    for index in (1, 2, 3):
        await s.prove(index)
    s.fees.next_fees = DEAR
    assert not await s.triggers.update_state()
    assert s.gate.state is not None and s.gate.state.waiting_batches == 3
    # The fees fall: the three go in one run of the trigger, the fee history read once for all three.
    s.next_block(CHEAP)
    asked = len(s.fees.calls)
    assert await s.triggers.update_state()
    assert await s.settlement_jobs() == [1, 2, 3]
    assert len(s.fees.calls) == asked + 1, "one look at the fees for the three batches"
    # Each batch by its own age: an old one (its target relaxed) goes at fees that hold back a young one.
    for index in (1, 2, 3):
        await s.settle(index)
    now = s.harness.clock.now()
    await s.prove(4, opened_at=now - 0.95 * HOUR)
    await s.prove(5, opened_at=now - 60)
    s.next_block(DEAR)
    assert await s.triggers.update_state()
    assert await s.settlement_jobs() == [1, 2, 3, 4], "the old batch went; the young one waits"
    assert s.gate.state is not None and s.gate.state.batch == 5 and s.gate.state.decision.code == Wait.BOTH
    # A batch that went is not judged again (its job's creation may be retried).
    s.next_block(OVER_CAP)
    assert await s.gate.may_send(4)


async def test_over_the_hard_cap_nothing_goes_and_a_missed_deadline_alerts_once(setup: Setup) -> None:
    s = setup
    await s.prove(1)
    s.fees.next_fees = OVER_CAP
    s.harness.clock.advance(HOUR - 10)
    assert not await s.triggers.update_state()
    assert s.harness.alerts.sent == []
    for _ in range(3):
        s.harness.clock.advance(60)
        assert not await s.triggers.update_state()
    assert await s.settlement_jobs() == []
    assert len(s.harness.alerts.sent) == 1
    subject, message = s.harness.alerts.sent[0]
    assert subject == "Settlement deadline missed: batch 1"
    assert "--ethereum-l2-state-update-max-fee-wei" in message and "still not sent" in message
    missed = [
        x.value for x in s.metrics.collect("orchestrator_settlement_deadline_missed") if x.name.endswith("_total")
    ]
    assert missed == [1.0]
    assert s.gauge("orchestrator_settlement_posting_waiting") == {Wait.HARD_CAP: 1.0}
    assert s.gauge("orchestrator_settlement_deadline_seconds")[Wait.HARD_CAP] < 0
    # Fees come under the cap: it goes at once (the deadline passed), and no second alert.
    s.next_block(DEAR)
    assert await s.triggers.update_state()
    assert await s.settlement_jobs() == [1]
    assert len(s.harness.alerts.sent) == 1


async def test_a_long_window_is_read_in_pages(setup: Setup) -> None:
    s = setup
    wide = SettlementGate(
        policy=dataclasses.replace(POLICY, window_blocks=2500),
        cap=CAP,
        fees=s.fees,
        db=s.store,
        clock=s.harness.clock,
        alerts=s.harness.alerts,
        metrics=s.metrics,
    )
    history = await wide.history()
    assert history.blocks == 2500 and history.newest_block == s.fees.newest
    assert history.next_base_fee == s.fees.next_fees[0]
    newest = s.fees.newest
    assert s.fees.calls == [(PAGE_BLOCKS, "latest"), (PAGE_BLOCKS, newest - PAGE_BLOCKS), (452, newest - 2048)]


def test_the_runtime_has_a_gate_only_with_a_deadline_a_fee_history_and_a_cap() -> None:
    store = MemoryStore()
    any_: Any = None
    adapters = Adapters(
        storage=Storage(db=store, queue=any_, objects=any_, locks=store), alerts=any_, sequencer=any_,
        feeder=any_, batch_rpc=any_, snos=any_, prover=any_, settlement=any_,
    )  # fmt: skip
    assert Runtime(RuntimeConfig(), adapters).settlement_gate is None, "no deadline: sent at once, as the original"
    with_fees = dataclasses.replace(adapters, fee_history=ScriptedFees())
    assert Runtime(RuntimeConfig(posting=POLICY), with_fees).settlement_gate is None, "no cap: no gate"
    assert Runtime(RuntimeConfig(fee_cap=CAP), with_fees).settlement_gate is None
    runtime = Runtime(RuntimeConfig(posting=POLICY, fee_cap=CAP), with_fees)
    assert runtime.settlement_gate is not None and runtime.triggers.settlement_gate is runtime.settlement_gate
    kicked: list[TriggerName] = []
    runtime.triggers.kick = kicked.append  # type: ignore[method-assign]
    assert runtime.settlement_gate.rekick is not None
    runtime.settlement_gate.rekick()
    assert kicked == [TriggerName.UPDATE_STATE]


async def test_without_a_gate_the_batch_goes_at_once_whatever_the_fees(setup: Setup) -> None:
    s = setup
    s.triggers.settlement_gate = None
    await s.prove(1)
    s.fees.next_fees = OVER_CAP
    assert await s.triggers.update_state()
    assert await s.settlement_jobs() == [1]
    assert s.fees.calls == []
