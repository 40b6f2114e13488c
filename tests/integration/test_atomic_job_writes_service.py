"""A process that dies where the job service used to send a job's next message, after writing the job: on a
real SQLite store whose queue is in the same file, the message was written in the job's transaction and is
there; sent apart (the original's two writes) it is lost until the heal sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator.domain.jobs import JobPolicy, JobStatus, JobType
from madara_orchestrator.domain.queues import parse_job_message
from madara_orchestrator.jobs.base import Verified
from tests.helpers.engine import Harness, ScriptedHandler, make_harness, proving_meta

PT = JobType.PROOF_CREATION
S = JobStatus


class Killed(BaseException):
    """The process dying: nothing catches it."""


async def _harness(tmp_path: Path, *, atomic: bool) -> Harness:
    policy = JobPolicy(max_process_attempts=2, max_verification_attempts=3, verification_delay_s=5, lease_s=30)
    return await make_harness(tmp_path / "jobs.db", sqlite=True, atomic=atomic, policy=policy)


@pytest.fixture(params=[True, False], ids=["one-transaction", "two-writes"])
async def h(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    harness = await _harness(tmp_path, atomic=request.param)
    yield harness
    await harness.close()


def _die_on_send(h: Harness) -> None:
    async def killed(queue: str, body: str, *, delay_s: float = 0.0) -> str:
        raise Killed(f"SIGKILL before sending {body} to {queue}")

    h.queue.send = killed  # type: ignore[method-assign]


async def _take(h: Harness, queue: str) -> str | None:
    message = await h.queue.receive(queue)
    if message is None:
        return None
    await h.queue.ack(message)
    return message.body


async def test_a_kill_after_processed_leaves_the_verification_message(h: Harness) -> None:
    atomic = h.service.atomic_writes is not None
    job = await h.service.create_job(PT, 1, proving_meta(1))
    assert job is not None and await _take(h, h.names.processing(PT)) is not None
    _die_on_send(h)
    if atomic:
        await h.service.process_job(job.id)
    else:
        with pytest.raises(Killed):
            await h.service.process_job(job.id)
    stored = await h.store.get_job(job.id)
    assert stored is not None and stored.status == S.PENDING_VERIFICATION, "the state change was written"
    h.clock.advance(5)
    body = await _take(h, h.names.verification(PT))
    if atomic:
        assert body is not None and parse_job_message(body) == job.id, "the message came with it"
    else:
        assert body is None, "the original's two writes: lost until the heal sweep"


async def test_a_kill_after_a_rejected_verification_leaves_the_processing_message(h: Harness) -> None:
    """The other change with a message: VerificationFailed and its processing message."""
    assert isinstance(h.handler, ScriptedHandler)
    h.handler.verify_outcomes.append(Verified.rejected("bad proof"))
    job = await h.service.create_job(PT, 1, proving_meta(1))
    assert job is not None and await _take(h, h.names.processing(PT)) is not None
    await h.service.process_job(job.id)
    h.clock.advance(5)
    assert await _take(h, h.names.verification(PT)) is not None
    _die_on_send(h)
    if h.service.atomic_writes is not None:
        await h.service.verify_job(job.id)
    else:
        with pytest.raises(Killed):
            await h.service.verify_job(job.id)
    stored = await h.store.get_job(job.id)
    assert stored is not None and stored.status == S.VERIFICATION_FAILED
    body = await _take(h, h.names.processing(PT))
    assert (body is not None) == (h.service.atomic_writes is not None)
