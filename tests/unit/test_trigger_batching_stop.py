"""A batching run stopped by a gate (domain/batching.py ``BatchingStopped``) fails the batching trigger with
the stop's line, an outage when it waits for the reference node; what the run batched before the stop goes
on at once (the following triggers are kicked), as after a run that made progress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator.domain.batching import StarknetVersions, reference_unavailable
from madara_orchestrator.domain.health import TriggerPolicy
from madara_orchestrator.engine.plan import L2_PLAN, TriggerName
from madara_orchestrator.engine.triggers import Triggers
from tests.helpers.engine import make_harness
from tests.unit.test_trigger_health import ScriptedBatcher, make_triggers

BATCHING = TriggerName.AGGREGATOR_BATCHING


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedBatcher, Triggers, list[TriggerName]]]:
    harness = await make_harness(tmp_path / "jobs.db")
    batcher = ScriptedBatcher()
    triggers = make_triggers(harness, batcher, TriggerPolicy())
    kicked: list[TriggerName] = []
    triggers.kick = kicked.append  # type: ignore[method-assign]
    yield batcher, triggers, kicked
    await triggers.stop()
    await harness.close()


@pytest.mark.parametrize("progressed", [True, False])
async def test_a_stop_fails_the_trigger_and_what_was_batched_goes_on(
    scripted: tuple[ScriptedBatcher, Triggers, list[TriggerName]], progressed: bool
) -> None:
    batcher, triggers, kicked = scripted
    hold = StarknetVersions().check(8, "0.99.0")
    assert hold is not None
    batcher.outcomes = [hold.error(progressed=progressed)]
    assert not await triggers.run_once(BATCHING)
    health = triggers.health()[BATCHING]
    assert health.failures == 1 and not health.outage
    assert health.last_error == f"BatchingStopped: {hold.describe()}"
    assert kicked == (list(L2_PLAN.after_batching) if progressed else [])


async def test_waiting_for_the_reference_is_an_outage(
    scripted: tuple[ScriptedBatcher, Triggers, list[TriggerName]],
) -> None:
    batcher, triggers, _ = scripted
    batcher.outcomes = [reference_unavailable(3, "BackendUnavailable: refused").error(progressed=False)]
    await triggers.run_once(BATCHING)
    health = triggers.health()[BATCHING]
    assert health.outage and "the reference node cannot give block 3" in (health.last_error or "")
