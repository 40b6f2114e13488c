"""What a job handler is: one per job type, ``process`` then ``verify`` (SPEC §2.5)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from madara_orchestrator.domain.jobs import Job, JobType, SpecificMetadata


@dataclass(frozen=True, slots=True, kw_only=True)
class Processed:
    external_id: str
    specific: SpecificMetadata | None = None


class Verification(enum.StrEnum):
    PENDING = "Pending"
    VERIFIED = "Verified"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    status: Verification
    reason: str = ""
    specific: SpecificMetadata | None = None

    @classmethod
    def pending(cls, specific: SpecificMetadata | None = None) -> Verified:
        return cls(status=Verification.PENDING, specific=specific)

    @classmethod
    def verified(cls, specific: SpecificMetadata | None = None) -> Verified:
        return cls(status=Verification.VERIFIED, specific=specific)

    @classmethod
    def rejected(cls, reason: str, specific: SpecificMetadata | None = None) -> Verified:
        return cls(status=Verification.REJECTED, reason=reason, specific=specific)


class JobHandler(Protocol):
    job_type: JobType

    async def check_ready(self, job: Job) -> float | None:
        """None when the job can be processed now, else the delay (s) before trying again.
        Not being ready costs no attempt."""
        ...

    async def process(self, job: Job) -> Processed:
        """Do the work. Raise ``JobError(retryable=False)`` to fail at once; other errors are retried."""
        ...

    async def verify(self, job: Job) -> Verified: ...
