"""Jobs: types, statuses, metadata (with the original's field names, SPEC §2.2) and the transition table.

Pure values. A status change is made only by ``transition()``, which consults ``ALLOWED``; stores persist
the result with a guarded write on ``version`` and never decide status on their own.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from madara_orchestrator.domain.errors import InvalidInput, InvalidTransition
from madara_orchestrator.domain.redaction import cut_urls


class JobType(enum.StrEnum):
    SNOS_RUN = "SnosRun"
    PROOF_CREATION = "ProofCreation"
    PROOF_REGISTRATION = "ProofRegistration"
    DATA_SUBMISSION = "DataSubmission"
    STATE_TRANSITION = "StateTransition"
    AGGREGATOR = "Aggregator"


class JobStatus(enum.StrEnum):
    CREATED = "Created"
    LOCKED_FOR_PROCESSING = "LockedForProcessing"
    PENDING_VERIFICATION = "PendingVerification"
    COMPLETED = "Completed"
    VERIFICATION_TIMEOUT = "VerificationTimeout"
    VERIFICATION_FAILED = "VerificationFailed"
    FAILED = "Failed"
    PENDING_RETRY = "PendingRetry"


S = JobStatus

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.CREATED: frozenset({S.LOCKED_FOR_PROCESSING, S.FAILED}),
    # From LockedForProcessing: success, restore the pre-lock status for a retry, heal an expired lease
    # (back to Created), or give up.
    S.LOCKED_FOR_PROCESSING: frozenset(
        {S.PENDING_VERIFICATION, S.CREATED, S.VERIFICATION_FAILED, S.PENDING_RETRY, S.FAILED}
    ),
    S.PENDING_VERIFICATION: frozenset({S.COMPLETED, S.VERIFICATION_FAILED, S.VERIFICATION_TIMEOUT, S.FAILED}),
    S.VERIFICATION_TIMEOUT: frozenset({S.COMPLETED, S.VERIFICATION_FAILED, S.FAILED, S.PENDING_VERIFICATION}),
    S.VERIFICATION_FAILED: frozenset(
        {S.LOCKED_FOR_PROCESSING, S.COMPLETED, S.VERIFICATION_TIMEOUT, S.FAILED, S.PENDING_VERIFICATION}
    ),
    # A failed job comes back only through an operator: retry (re-process) or re-verify.
    S.FAILED: frozenset({S.PENDING_RETRY, S.PENDING_VERIFICATION}),
    S.PENDING_RETRY: frozenset({S.LOCKED_FOR_PROCESSING, S.FAILED}),
    # Completed is terminal. (The original lets "verify" reopen it: SPEC §2.6 quirk; refused here.)
    S.COMPLETED: frozenset(),
}

PROCESSABLE = frozenset({S.CREATED, S.VERIFICATION_FAILED, S.PENDING_RETRY})
VERIFIABLE = frozenset({S.PENDING_VERIFICATION, S.VERIFICATION_TIMEOUT, S.VERIFICATION_FAILED})
TERMINAL = frozenset({S.COMPLETED, S.FAILED})


def is_allowed(current: JobStatus, target: JobStatus) -> bool:
    """Same-status writes (metadata only) are always allowed; changes must be in the table."""
    return current == target or target in ALLOWED[current]


# ---------------------------------------------------------------------------------------------------
# Policies (SPEC §2.4)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPolicy:
    max_process_attempts: int
    max_verification_attempts: int
    verification_delay_s: float
    """Delay before each verification poll (the longest, when polls back off)."""
    lease_s: float = 60.0
    """How long a processing lease lasts without a heartbeat: a dead worker's job is taken up after it."""
    first_verification_delay_s: float | None = None
    """When set, polls start this soon and double up to ``verification_delay_s``: a fast answer is seen
    at once, a slow prover is still polled no more often than the original does."""

    def verification_delay(self, attempt: int) -> float:
        """The delay before verification poll number ``attempt + 1`` (``attempt`` polls done so far)."""
        if self.first_verification_delay_s is None:
            return self.verification_delay_s
        return min(self.verification_delay_s, self.first_verification_delay_s * 2.0 ** max(0, attempt))


DEFAULT_POLICIES: dict[JobType, JobPolicy] = {
    JobType.SNOS_RUN: JobPolicy(max_process_attempts=1, max_verification_attempts=1, verification_delay_s=1),
    # Polls back off from 1 s to the original's 30 s (900 attempts still cover about 7.5 h), so a prover that
    # answers quickly is not waited on for half a minute per stage.
    JobType.PROOF_CREATION: JobPolicy(
        max_process_attempts=1, max_verification_attempts=900, verification_delay_s=30, first_verification_delay_s=1
    ),
    JobType.PROOF_REGISTRATION: JobPolicy(
        max_process_attempts=2, max_verification_attempts=300, verification_delay_s=300
    ),
    JobType.DATA_SUBMISSION: JobPolicy(max_process_attempts=1, max_verification_attempts=3, verification_delay_s=60),
    # Processing already waited for the receipt and its confirmations; verification re-reads the contract.
    # The next batch's settlement starts only when this one is verified, so a fixed 60 s poll would cap
    # settlement at one batch a minute: 1 s doubling to 60 s, 15 attempts (about 10 minutes, as before).
    JobType.STATE_TRANSITION: JobPolicy(
        max_process_attempts=3, max_verification_attempts=15, verification_delay_s=60, first_verification_delay_s=1
    ),
    JobType.AGGREGATOR: JobPolicy(
        max_process_attempts=1, max_verification_attempts=900, verification_delay_s=30, first_verification_delay_s=1
    ),
}


# ---------------------------------------------------------------------------------------------------
# Metadata


def _from_fields(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True, kw_only=True)
class CommonMetadata:
    process_attempt_no: int = 0
    process_retry_attempt_no: int = 0
    verification_attempt_no: int = 0
    verification_retry_attempt_no: int = 0
    process_started_at: int | None = None
    process_completed_at: int | None = None
    verification_started_at: int | None = None
    verification_completed_at: int | None = None
    failure_reason: str | None = None
    previous_failure_reasons: list[str] = field(default_factory=list)
    orchestrator_version: str = ""
    waiting_since: int | None = None
    """Ours, not the original's: since when the job has been waiting out an outside outage (unset when
    it is not). An outage never spends the job's attempts."""
    waiting_alerted: bool = False
    dead_letter: dict[str, Any] | None = None
    """Ours, not the original's: the message whose dead-lettering failed the job (``DeadLetter.to_json``),
    until the job is retried or re-verified (``domain/dead_letters.py``)."""

    def with_failure(self, reason: str) -> CommonMetadata:
        """Record a new failure; the previous reason moves to the history (oldest first). URLs in the
        reason are cut to ``scheme://host[:port]``: a reason is stored, shown and alerted, and an RPC URL
        may carry a key."""
        reason = cut_urls(reason)
        history = list(self.previous_failure_reasons)
        if self.failure_reason:
            history.append(self.failure_reason)
        return dataclasses.replace(self, failure_reason=reason, previous_failure_reasons=history)

    def waiting(self, reason: str, *, since: int) -> CommonMetadata:
        """Record that the job waits out an outage: the reason is shown, but a run of waits leaves one
        line in the history, not one per try."""
        reason = cut_urls(reason)
        base = self if self.waiting_since is not None else self.with_failure(reason)
        return dataclasses.replace(base, failure_reason=reason, waiting_since=since)

    def done_waiting(self) -> CommonMetadata:
        return dataclasses.replace(self, waiting_since=None, waiting_alerted=False)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommonMetadata:
        value: CommonMetadata = _from_fields(cls, data)
        return value


class _Specific:
    TAG: ClassVar[str]
    OMIT_WHEN_NULL: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)  # type: ignore[call-overload]
        for name in self.OMIT_WHEN_NULL:
            if body.get(name) is None:
                body.pop(name, None)
        return {"type": self.TAG, **body}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        value: Self = _from_fields(cls, data)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SnosMetadata(_Specific):
    TAG: ClassVar[str] = "Snos"
    snos_batch_index: int
    start_block: int
    end_block: int
    num_blocks: int
    full_output: bool = False
    cairo_pie_path: str | None = None
    on_chain_data_path: str | None = None
    snos_output_path: str | None = None
    program_output_path: str | None = None
    snos_fact: str | None = None
    snos_n_steps: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvingMetadata(_Specific):
    """Used by ProofCreation and ProofRegistration. ``input_path`` is ``{"CairoPie": p}`` or ``{"Proof": p}``."""

    TAG: ClassVar[str] = "Proving"
    OMIT_WHEN_NULL: ClassVar[frozenset[str]] = frozenset({"bucket_id", "bucket_job_index"})
    block_number: int
    input_path: dict[str, str] | None = None
    ensure_on_chain_registration: str | None = None
    download_proof: str | None = None
    n_steps: int | None = None
    bucket_id: str | None = None
    bucket_job_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DaMetadata(_Specific):
    TAG: ClassVar[str] = "Da"
    block_number: int
    blob_data_path: str | None = None
    tx_hash: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementContext:
    """What a StateTransition settles: ``Batch`` (aggregator or SNOS batch index) or legacy ``Block``."""

    type: str
    to_settle: int
    last_failed: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateUpdateMetadata(_Specific):
    TAG: ClassVar[str] = "StateUpdate"
    context: SettlementContext
    snos_output_path: str | None = None
    program_output_path: str | None = None
    blob_data_path: str | None = None
    da_segment_path: str | None = None
    tx_hash: str | None = None
    tx_nonce: int | None = None
    tx_attempts: list[dict[str, Any]] = field(default_factory=list)
    storage_artifacts_tagged_at: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        context = data.get("context") or {}
        data["context"] = SettlementContext(
            type=str(context.get("type", "Batch")),
            to_settle=int(context["to_settle"]),
            last_failed=context.get("last_failed"),
        )
        value: Self = _from_fields(cls, data)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatorMetadata(_Specific):
    TAG: ClassVar[str] = "Aggregator"
    OMIT_WHEN_NULL: ClassVar[frozenset[str]] = frozenset({"bucket_id"})
    batch_num: int
    bucket_id: str | None = None
    ensure_on_chain_registration: str | None = None
    download_proof: str | None = None
    blob_data_path: str | None = None
    da_segment_path: str | None = None
    cairo_pie_path: str | None = None
    snos_output_path: str | None = None
    program_output_path: str | None = None
    aggregator_query_id: str | None = None


SpecificMetadata = SnosMetadata | ProvingMetadata | DaMetadata | StateUpdateMetadata | AggregatorMetadata

_SPECIFIC_BY_TAG: dict[str, type[_Specific]] = {
    cls.TAG: cls for cls in (SnosMetadata, ProvingMetadata, DaMetadata, StateUpdateMetadata, AggregatorMetadata)
}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobMetadata:
    common: CommonMetadata
    specific: SpecificMetadata

    def to_json(self) -> dict[str, Any]:
        return {"common": self.common.to_json(), "specific": self.specific.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobMetadata:
        specific = data.get("specific") or {}
        tag = specific.get("type")
        if tag not in _SPECIFIC_BY_TAG:
            raise InvalidInput(f"job metadata has an unknown specific type {tag!r}")
        try:
            spec = _SPECIFIC_BY_TAG[tag].from_json({k: v for k, v in specific.items() if k != "type"})
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"job metadata of type {tag} is malformed: {exc}") from exc
        return cls(common=CommonMetadata.from_json(data.get("common") or {}), specific=spec)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# The job


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: uuid.UUID
    internal_id: int
    job_type: JobType
    status: JobStatus
    external_id: str
    metadata: JobMetadata
    version: int
    created_at: float
    updated_at: float
    lease_owner: str | None = None
    """Who holds the processing lease. Kept apart from ``status`` (SPEC's weakness: locks in the status)."""
    lease_expires_at: float | None = None

    @classmethod
    def new(
        cls,
        job_type: JobType,
        internal_id: int,
        specific: SpecificMetadata,
        *,
        now: float,
        orchestrator_version: str,
    ) -> Job:
        if internal_id < 0:
            raise InvalidInput(f"internal id must be non-negative, got {internal_id}")
        return cls(
            id=uuid.uuid4(),
            internal_id=internal_id,
            job_type=job_type,
            status=JobStatus.CREATED,
            external_id="",
            metadata=JobMetadata(common=CommonMetadata(orchestrator_version=orchestrator_version), specific=specific),
            version=0,
            created_at=now,
            updated_at=now,
        )

    @property
    def common(self) -> CommonMetadata:
        return self.metadata.common

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def has_live_lease(self, now: float) -> bool:
        return self.lease_expires_at is not None and self.lease_expires_at > now

    def describe(self) -> str:
        return f"{self.job_type} #{self.internal_id} ({self.id})"

    def with_common(self, **changes: Any) -> Job:
        return self.with_common_metadata(dataclasses.replace(self.metadata.common, **changes))

    def with_common_metadata(self, common: CommonMetadata) -> Job:
        return dataclasses.replace(self, metadata=dataclasses.replace(self.metadata, common=common))

    def with_specific(self, specific: SpecificMetadata) -> Job:
        return dataclasses.replace(self, metadata=dataclasses.replace(self.metadata, specific=specific))


def transition(job: Job, target: JobStatus, **changes: Any) -> Job:
    """The one place a job's status changes. Raises ``InvalidTransition`` for a move the table refuses."""
    if not is_allowed(job.status, target):
        raise InvalidTransition(f"job {job.describe()} cannot move from {job.status} to {target}")
    return dataclasses.replace(job, status=target, **changes)


def settlements_in_flight(counts: Mapping[tuple[JobType, JobStatus], int]) -> int:
    """StateTransition jobs created and not yet completed or failed, from jobs counted by type and status:
    the settlements in flight (at most ``--max-settlements-in-flight``)."""
    done = (JobStatus.COMPLETED, JobStatus.FAILED)
    return sum(
        n for (job_type, status), n in counts.items() if job_type == JobType.STATE_TRANSITION and status not in done
    )
