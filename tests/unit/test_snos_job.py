"""The SnosRun handler reads only typed errors from its runner (SPEC §2.8): an outage or a failure that may
pass is retried, the rest fails at once, and the failure says which job and what the runner said."""

from __future__ import annotations

import pytest

from madara_orchestrator.backends.memory import MemoryObjectStore
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, JobError, Retryable, classify
from madara_orchestrator.domain.jobs import Job, JobType
from madara_orchestrator.interfaces import SnosResult
from madara_orchestrator.jobs.snos import SnosJobHandler, snos_metadata
from madara_orchestrator.snos.contract import unclassified_failure


class FailingRunner:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def is_ready(self) -> bool:
        return True

    async def run(self, start_block: int, end_block: int) -> SnosResult:
        raise self.error


async def failure_of(error: Exception, internal_id: int = 7) -> JobError:
    job = Job.new(JobType.SNOS_RUN, internal_id, snos_metadata(internal_id, 3, 4), now=1000.0, orchestrator_version="t")
    with pytest.raises(JobError) as caught:
        await SnosJobHandler(snos=FailingRunner(error), objects=MemoryObjectStore()).process(job)
    return caught.value


CASES = [
    (BackendUnavailable("SNOS runner http://r is not reachable: ConnectError"), True),
    (Retryable("block 4 is still pending"), True),
    (unclassified_failure("Block processing failed for block 2222689: RPC client error: BlockNotFound"), True),
    (unclassified_failure("Block processing failed: state read error: ContractNotFound"), False),
    (InvalidInput("SNOS request: DA public key 'zz' is not hex"), False),
]


@pytest.mark.parametrize(("error", "retryable"), CASES, ids=lambda v: str(v)[:40])
async def test_typed_errors_decide_and_the_message_names_the_job(error: Exception, retryable: bool) -> None:
    failure = await failure_of(error)
    assert failure.retryable is retryable
    assert str(failure) == f"Snos Error: Error while running SNOS (snos job #7): {error}"
    assert failure.__cause__ is error


async def test_an_outage_is_waited_out() -> None:
    failure = await failure_of(BackendUnavailable("SNOS runner down"))
    assert classify(failure).is_outage


async def test_the_runners_own_verdict_passes_unchanged() -> None:
    verdict = JobError("the OS failed on blocks 3..4 (SNOS command exit code 65): boom", retryable=False)
    assert await failure_of(verdict) is verdict


async def test_the_jobs_number_is_not_read_as_a_marker() -> None:
    """Job #503's prefix holds "503", a retryable marker; only the runner's words are classified."""
    failure = await failure_of(unclassified_failure("the SNOS command exited with code 1: assertion failed"), 503)
    assert "#503" in str(failure) and failure.retryable is False
