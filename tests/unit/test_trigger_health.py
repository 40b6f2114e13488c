"""A trigger that keeps failing is visible (issue 17, item 5): its failures are counted, it backs off, the
log has one line per failure (a traceback only the first time a bug is seen), and a success clears it.

The triggers run on a real SQLite store with a fake clock; batching is a scripted stand-in whose runs
raise what the test queues."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from madara_orchestrator.domain.errors import BackendUnavailable
from madara_orchestrator.domain.health import (
    HealthStatus,
    TriggerHealth,
    TriggerPolicy,
    chain_problem,
    health_status,
)
from madara_orchestrator.engine.batching import Batcher
from madara_orchestrator.engine.plan import L2_PLAN, TriggerName
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.engine.triggers import TriggerConfig, Triggers
from madara_orchestrator.interfaces import SequencerRpc
from madara_orchestrator.starknet.rpc import RpcError
from tests.helpers.engine import Harness, make_harness
from tests.helpers.pipeline import eventually

BATCHING = TriggerName.AGGREGATOR_BATCHING
SECRET_URL = "https://user:pa55@rpc.example.com:8545/v3/KEY0123?apikey=SECRET"


@dataclass
class ScriptedBatcher:
    """Each run pops the next outcome: an exception to raise, or a bool (progress)."""

    outcomes: list[Any] = field(default_factory=list)
    runs: int = 0
    ran: asyncio.Event = field(default_factory=asyncio.Event)
    next_expiry: float | None = None

    async def run(self) -> bool:
        self.runs += 1
        self.ran.set()
        outcome = self.outcomes.pop(0) if self.outcomes else False
        if isinstance(outcome, BaseException):
            raise outcome
        return bool(outcome)

    async def next_run(self) -> None:
        self.ran.clear()
        await asyncio.wait_for(self.ran.wait(), timeout=10)


@dataclass
class Setup:
    harness: Harness
    batcher: ScriptedBatcher
    triggers: Triggers


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    harness = await make_harness(tmp_path / "jobs.db")
    batcher = ScriptedBatcher()
    triggers = make_triggers(harness, batcher, TriggerPolicy())
    yield Setup(harness, batcher, triggers)
    await triggers.stop()
    await harness.close()


def make_triggers(harness: Harness, batcher: ScriptedBatcher, policy: TriggerPolicy) -> Triggers:
    return Triggers(
        config=TriggerConfig(health=policy),
        plan=L2_PLAN,
        service=harness.service,
        db=harness.store,
        sequencer=cast(SequencerRpc, None),
        clock=harness.clock,
        metrics=NoTelemetry(),
        batcher=cast(Batcher, batcher),
    )


def rpc_error() -> RpcError:
    return RpcError(-32603, f"Internal error from {SECRET_URL}", None)


async def test_a_trigger_failing_three_times_in_a_row_is_failing_with_its_error_cut(setup: Setup) -> None:
    s = setup
    s.batcher.outcomes = [rpc_error(), rpc_error(), rpc_error()]
    await s.triggers.run_once(BATCHING)
    await s.triggers.run_once(BATCHING)
    assert s.triggers.failing() == {}, "two failures a second apart are not yet 'keeps failing'"
    await s.triggers.run_once(BATCHING)
    failing = s.triggers.failing()
    assert list(failing) == [BATCHING]
    health = failing[BATCHING]
    assert health.failures == 3 and health.failing_since == s.harness.clock.now() and not health.outage
    assert health.last_error == "RpcError: RPC error -32603: Internal error from https://rpc.example.com:8545"
    assert "KEY0123" not in health.describe(BATCHING) and "SECRET" not in health.describe(BATCHING)
    assert health.describe(BATCHING).startswith("trigger AggregatorBatching failing (3 times since ")


async def test_a_trigger_that_failed_and_was_not_run_again_is_failing_after_thirty_seconds(setup: Setup) -> None:
    s = setup
    s.batcher.outcomes = [BackendUnavailable(f"feeder gateway {SECRET_URL} answered 404")]
    await s.triggers.run_once(BATCHING)
    assert s.triggers.failing() == {}
    s.harness.clock.advance(30)
    health = s.triggers.failing()[BATCHING]
    assert health.outage and health.failures == 1
    assert health.last_error == "BackendUnavailable: feeder gateway https://rpc.example.com:8545 answered 404"


async def test_a_success_clears_the_failures_and_logs_one_recovery_line(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    s = setup
    s.batcher.outcomes = [rpc_error(), rpc_error(), rpc_error(), True]
    for _ in range(3):
        await s.triggers.run_once(BATCHING)
    assert BATCHING in s.triggers.failing()
    s.harness.clock.advance(14)
    caplog.set_level(logging.INFO, logger="madara_orchestrator.triggers")
    caplog.clear()
    assert await s.triggers.run_once(BATCHING)
    assert s.triggers.failing() == {} and s.triggers.health()[BATCHING] == TriggerHealth()
    recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert len(recovered) == 1 and recovered[0].startswith("trigger AggregatorBatching recovered after 3 failures")
    assert "14 s" in recovered[0]


async def test_each_failure_logs_one_line_with_its_back_off_and_a_bug_its_traceback_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    s = setup
    bug = KeyError("block_hash")
    s.batcher.outcomes = [bug, KeyError("block_hash"), rpc_error(), BackendUnavailable("sequencer down"), bug]
    caplog.set_level(logging.INFO, logger="madara_orchestrator.triggers")
    for _ in range(5):
        await s.triggers.run_once(BATCHING)
    records = [r for r in caplog.records if r.name == "madara_orchestrator.triggers"]
    assert len(records) == 5, [r.getMessage() for r in records]
    assert [r.getMessage().rsplit("; ", 1)[1] for r in records] == [
        "next try in 2 s",
        "next try in 4 s",
        "next try in 8 s",
        "next try in 16 s",
        "next try in 32 s",
    ]
    assert [r.exc_info is not None for r in records] == [True, False, False, False, False], (
        "a traceback for the first sight of a bug only; never for an outage or an error of ours"
    )
    assert [r.levelno for r in records] == [logging.ERROR] * 3 + [logging.WARNING, logging.ERROR]
    assert records[0].getMessage().startswith("trigger AggregatorBatching failing (once since ")
    assert records[0].getMessage().endswith("KeyError: 'block_hash'; next try in 2 s")
    assert all("SECRET" not in r.getMessage() and "KEY0123" not in r.getMessage() for r in records)


async def test_kicks_while_a_trigger_backs_off_do_not_run_it(setup: Setup) -> None:
    s = setup
    s.batcher.outcomes = [rpc_error()]
    s.triggers.kick(BATCHING)
    await s.batcher.next_run()
    await _until(lambda: s.triggers.health()[BATCHING].failures == 1)
    for _ in range(5):
        s.triggers.kick(BATCHING)
        await asyncio.sleep(0)  # lets a run the kick would start begin
    assert s.batcher.runs == 1, "the kicks wait for the retry the back-off scheduled (2 s away)"


async def test_a_failed_trigger_runs_again_after_its_back_off_without_any_kick(tmp_path: Path) -> None:
    harness = await make_harness(tmp_path / "jobs.db")
    batcher = ScriptedBatcher(outcomes=[rpc_error(), True])
    triggers = make_triggers(harness, batcher, TriggerPolicy(backoff_base_s=0.01))
    try:
        triggers.kick(BATCHING)
        await batcher.next_run()
        await batcher.next_run()  # the retry, 10 ms later
        await _until(lambda: triggers.health()[BATCHING].failures == 0)
        assert batcher.runs == 2
    finally:
        await triggers.stop()
        await harness.close()


async def _until(check: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return check()

    await eventually(holds, 10, "the trigger's health to change")


# -- the pure rules --------------------------------------------------------------------------------


def test_the_back_off_doubles_from_two_seconds_up_to_a_minute() -> None:
    policy = TriggerPolicy()
    assert [policy.retry_delay_s(n) for n in range(0, 9)] == [0, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.retry_delay_s(10_000) == 60


def test_a_settled_block_above_the_head_is_a_problem_and_below_or_unknown_is_not() -> None:
    problem = chain_problem(head=5, settled=72)
    assert problem is not None and problem.startswith("settled block 72 is above the sequencer's head 5")
    assert chain_problem(head=72, settled=72) is None
    assert chain_problem(head=5, settled=None) is None
    assert chain_problem(head=None, settled=72) is None


def test_health_is_down_when_a_backend_is_down_else_degraded_when_a_problem_is_known() -> None:
    up = {"database": None, "queue": None}
    assert health_status(up, []) == HealthStatus.UP
    assert health_status(up, ["trigger X failing"]) == HealthStatus.DEGRADED
    assert health_status({**up, "queue": "no answer"}, ["trigger X failing"]) == HealthStatus.DOWN


def test_a_long_error_is_kept_to_five_hundred_characters() -> None:
    health = TriggerHealth().failed("x" * 5000, now=0.0, outage=False, policy=TriggerPolicy())
    assert health.last_error is not None and len(health.last_error) == 500 and health.last_error.endswith("…")
