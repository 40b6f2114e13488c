"""The one lease mechanism (engine/lease.py), and the job service's use of it.

Time is a fake clock moved by an injected sleep, so the heartbeat's pace costs no real time."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from madara_orchestrator.domain.errors import BackendUnavailable
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.domain.queues import parse_job_message
from madara_orchestrator.engine.lease import LeaseLost, LeaseTiming, hold
from tests.helpers.engine import FakeClock, Harness, ScriptedHandler, make_harness, proving_meta

PT = JobType.PROOF_CREATION
S = JobStatus


def fake_sleep(clock: FakeClock) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return sleep


class Renewals:
    """A scripted renew(): each call takes the next outcome (True, False or an exception); then True."""

    def __init__(self, *outcomes: bool | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.called = asyncio.Event()

    async def __call__(self) -> bool:
        self.calls += 1
        self.called.set()
        outcome = self.outcomes.pop(0) if self.outcomes else True
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def wait_for_calls(renew: Renewals, n: int) -> None:
    while renew.calls < n:
        renew.called.clear()
        await renew.called.wait()


async def test_a_refused_renewal_cancels_the_body_and_raises_lease_lost() -> None:
    clock = FakeClock()
    renew = Renewals(True, False)
    reached_end = False
    with pytest.raises(LeaseLost, match="taken over"):
        async with hold(renew, timing=LeaseTiming(duration_s=30), clock=clock, what="job #1", sleep=fake_sleep(clock)):
            await asyncio.Event().wait()  # a slow handler
            reached_end = True
    assert renew.calls == 2 and not reached_end


async def test_failed_renewals_are_retried_while_the_lease_is_still_valid() -> None:
    clock = FakeClock()
    renew = Renewals(BackendUnavailable("db down"), BackendUnavailable("db down"), True)
    timing = LeaseTiming(duration_s=30)
    async with hold(renew, timing=timing, clock=clock, what="job #1", sleep=fake_sleep(clock)):
        await wait_for_calls(renew, 5)
    assert renew.calls >= 5, "the heartbeat went on after the errors"


async def test_renewals_failing_until_the_expiry_lose_the_lease() -> None:
    clock = FakeClock()
    renew = Renewals(*[BackendUnavailable("db down")] * 1000)
    start = clock.now()
    with pytest.raises(LeaseLost, match="could not be renewed before it expired"):
        async with hold(renew, timing=LeaseTiming(duration_s=30), clock=clock, what="job #1", sleep=fake_sleep(clock)):
            await asyncio.Event().wait()
    assert clock.now() - start <= 30 + 10, "given up no later than the expiry"
    assert renew.calls > 3, "retried before giving up"


async def test_a_cancellation_from_outside_is_not_a_lost_lease() -> None:
    clock = FakeClock()

    async def body() -> None:
        async with hold(Renewals(), timing=LeaseTiming(duration_s=30), clock=clock, what="x"):
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- the job service ---------------------------------------------------------------------------------


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await make_harness(tmp_path / "jobs.db", handler=ScriptedHandler())
    harness.service._sleep = fake_sleep(harness.clock)
    yield harness
    await harness.close()


async def create(h: Harness) -> Job:
    job = await h.service.create_job(PT, 1, proving_meta(1))
    assert job is not None
    message = await h.queue.receive(h.names.processing(PT))
    assert message is not None
    await h.queue.ack(message)
    return job


async def test_a_handler_whose_lease_is_taken_over_is_cancelled_and_its_result_dropped(h: Harness) -> None:
    job = await create(h)
    cancelled = asyncio.Event()

    async def slow(_: Job) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    h.handler.process_hook = slow
    real_renew = h.store.renew_lease
    calls = 0

    async def renew(job_id: object, owner: str, expires_at: float) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            # Another worker took the job over (as after a long pause of this one).
            stored = await h.store.get_job(job.id)
            assert stored is not None
            await h.store.update_job(dataclasses.replace(stored, lease_owner="other-worker"), now=h.clock.now())
        return await real_renew(job_id, owner, expires_at)  # type: ignore[arg-type]

    h.store.renew_lease = renew  # type: ignore[method-assign]
    decision = await asyncio.wait_for(h.service.process_job(job.id), timeout=10)
    assert decision.ack and cancelled.is_set(), "the handler was cancelled when the lease was lost"
    fresh = await h.store.get_job(job.id)
    assert fresh is not None
    assert fresh.status == S.LOCKED_FOR_PROCESSING and fresh.lease_owner == "other-worker", "the new owner's job"
    later = await h.queue.receive(h.names.processing(PT))
    assert later is None, "the fresh message is delayed past the lease"
    h.clock.advance(h.service.policy(PT).lease_s + 2)
    later = await h.queue.receive(h.names.processing(PT))
    assert later is not None and parse_job_message(later.body) == job.id


async def test_a_database_blip_during_renewal_does_not_stop_the_handler(h: Harness) -> None:
    job = await create(h)
    real_renew = h.store.renew_lease
    calls = 0
    done = asyncio.Event()

    async def renew(job_id: object, owner: str, expires_at: float) -> bool:
        nonlocal calls
        calls += 1
        if calls in (1, 2):
            raise BackendUnavailable("SQLite database jobs.db: database is locked")
        if calls >= 4:
            done.set()
        return await real_renew(job_id, owner, expires_at)  # type: ignore[arg-type]

    async def slow(_: Job) -> None:
        await done.wait()

    h.store.renew_lease = renew  # type: ignore[method-assign]
    h.handler.process_hook = slow
    await asyncio.wait_for(h.service.process_job(job.id), timeout=10)
    fresh = await h.store.get_job(job.id)
    assert fresh is not None and fresh.status == S.PENDING_VERIFICATION, "the handler ran to its end"
    assert calls >= 4, "renewals went on after the errors (they stopped at the first one before)"


async def test_a_job_left_locked_by_an_earlier_run_of_this_instance_is_taken_back_at_once(h: Harness) -> None:
    job = await create(h)
    stored = await h.store.get_job(job.id)
    assert stored is not None
    await h.store.update_job(
        dataclasses.replace(
            stored,
            status=S.LOCKED_FOR_PROCESSING,
            lease_owner=h.service.owner,
            lease_expires_at=h.clock.now() + 300,
        ),
        now=h.clock.now(),
    )
    await h.service.process_job(job.id)
    assert h.handler.processed == [1], "no wait for the lease of the dead earlier run"
    fresh = await h.store.get_job(job.id)
    assert fresh is not None and fresh.status == S.PENDING_VERIFICATION


async def test_at_start_jobs_locked_by_an_earlier_run_of_this_instance_get_their_messages_again(h: Harness) -> None:
    mine, theirs = await create(h), await h.service.create_job(PT, 2, proving_meta(2))
    assert theirs is not None
    while await h.queue.receive(h.names.processing(PT)) is not None:
        pass
    for job, owner in ((mine, h.service.owner), (theirs, "another-instance")):
        stored = await h.store.get_job(job.id)
        assert stored is not None
        await h.store.update_job(
            dataclasses.replace(
                stored, status=S.LOCKED_FOR_PROCESSING, lease_owner=owner, lease_expires_at=h.clock.now() + 300
            ),
            now=h.clock.now(),
        )
    assert await h.service.reclaim_earlier_run() == 1
    message = await h.queue.receive(h.names.processing(PT))
    assert message is not None and parse_job_message(message.body) == mine.id
    assert await h.queue.receive(h.names.processing(PT)) is None, "another instance's live lease is left alone"


async def test_work_still_running_after_slow_after_s_is_logged_at_each_doubling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    renew = Renewals()
    timing = LeaseTiming(duration_s=30, slow_after_s=100)
    with caplog.at_level(logging.WARNING, logger="madara_orchestrator.engine.lease"):
        async with hold(renew, timing=timing, clock=clock, what="SnosRun #9", sleep=fake_sleep(clock)):
            await wait_for_calls(renew, 30)  # 300 s of renewals, every 10 s
    warnings = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert [w.split(" after ")[1].split(" s;")[0] for w in warnings] == ["100", "200"]
    assert all(w.startswith("SnosRun #9: still running") for w in warnings)


async def test_no_slow_warning_without_slow_after_s(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    renew = Renewals()
    with caplog.at_level(logging.WARNING, logger="madara_orchestrator.engine.lease"):
        async with hold(renew, timing=LeaseTiming(duration_s=30), clock=clock, what="x", sleep=fake_sleep(clock)):
            await wait_for_calls(renew, 30)
    assert not [r for r in caplog.records if "still running" in r.getMessage()]
