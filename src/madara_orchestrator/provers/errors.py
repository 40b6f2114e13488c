"""Prover errors (SPEC §7.1), as kinds of the domain hierarchy so the engine knows what to do with them."""

from __future__ import annotations

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, NotFound
from madara_orchestrator.domain.errors import RetriesExhausted as RetriesExhausted


class TaskInvalid(InvalidInput):
    """This backend cannot run the task (unsupported kind, missing fact, conflicting bucket, ...)."""


class MissingCairoVerifierProgramHash(TaskInvalid):
    def __init__(self) -> None:
        super().__init__(
            "the Cairo verifier program hash is not configured: set --cairo-verifier-program-hash "
            "to submit L2 verification queries"
        )


class InvalidProofFormat(InvalidInput):
    """The prover returned a proof that does not parse as a Stark proof."""


class ProverApiError(BackendUnavailable):
    """The prover answered with an error status. ``retryable`` says whether asking again may help."""

    def __init__(self, service: str, operation: str, status_code: int, body: str, *, retryable: bool) -> None:
        self.service = service
        self.operation = operation
        self.status_code = status_code
        self.body = body
        self.retryable = retryable
        super().__init__(f"{service} {operation}: HTTP {status_code}: {body[:300]!r}")


class MalformedResponse(BackendUnavailable):
    """A 2xx answer we cannot read (not JSON, a missing field, an unknown status)."""


class AggregatorQueryNotFound(NotFound):
    """An Atlantic bucket has no aggregator query (``FailedToGetAggregatorId``)."""


class FactRegistrationFailed(BackendUnavailable):
    """Registering a fact on the verifier did not make ``isValid(fact)`` true."""
