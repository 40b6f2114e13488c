"""What a job handler is: one per job type, ``process`` then ``verify`` (SPEC §2.5)."""

from __future__ import annotations

import abc
from typing import ClassVar, Generic, TypeVar

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.jobs import Job, JobType
from madara_orchestrator.domain.lifecycle import Processed as Processed
from madara_orchestrator.domain.lifecycle import Verification as Verification
from madara_orchestrator.domain.lifecycle import Verified as Verified

M = TypeVar("M")


class JobHandler(abc.ABC, Generic[M]):
    """One handler per job type, typed by its metadata (``metadata_type``): ``process`` then ``verify``.
    A handler writes ``process_with`` and ``verify_with``, which receive the job's metadata as an ``M``."""

    job_type: ClassVar[JobType]
    metadata_type: type[M]

    async def check_ready(self, job: Job) -> float | None:
        """None when the job can be processed now, else the delay (s) before trying again.
        Not being ready costs no attempt."""
        return None

    async def process(self, job: Job) -> Processed:
        """Do the work. Raise ``JobError(retryable=False)`` to fail at once; other errors are retried."""
        return await self.process_with(job, self.metadata_of(job))

    async def verify(self, job: Job) -> Verified:
        return await self.verify_with(job, self.metadata_of(job))

    def metadata_of(self, job: Job) -> M:
        meta = job.metadata.specific
        if not isinstance(meta, self.metadata_type):
            raise InvalidInput(
                f"{job.describe()} carries {type(meta).__name__} metadata; its handler reads "
                f"{self.metadata_type.__name__}"
            )
        return meta

    @abc.abstractmethod
    async def process_with(self, job: Job, meta: M) -> Processed: ...

    @abc.abstractmethod
    async def verify_with(self, job: Job, meta: M) -> Verified: ...
