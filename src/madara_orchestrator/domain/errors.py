"""The error hierarchy: one root, a few kinds; messages say what happened and what to do.

Adapters translate driver exceptions at the edge (``raise BackendUnavailable(...) from exc``);
``server/`` maps the kinds to HTTP status codes in one place.
"""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    """Root of every error the orchestrator raises on purpose."""


class InvalidInput(OrchestratorError):
    """The caller gave data we cannot use (malformed JSON, a value outside the field, ...)."""


class ConfigError(OrchestratorError):
    """Configuration is missing or wrong; ``problems`` names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class NotFound(OrchestratorError):
    pass


class Conflict(OrchestratorError):
    """The write lost a race (stale version) or the item already exists."""


class StaleVersion(Conflict):
    pass


class AlreadyExists(Conflict):
    pass


class InvalidTransition(Conflict):
    """A job status change that the transition table refuses."""


class BackendUnavailable(OrchestratorError):
    """An outside service (database, queue, RPC node, prover) could not be reached."""


class RpcError(OrchestratorError):
    """A JSON-RPC error object returned by the node."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.rpc_message = message
        self.data = data
        super().__init__(f"RPC error {code}: {message}" + (f" ({data})" if data is not None else ""))


class Retryable(OrchestratorError):
    """A failure that may succeed if tried again later (network, rate limit, pending block)."""


class OutsideCondition(OrchestratorError):
    """Marks a failure caused by the world, not the job (fees above the cap): wait, alert, try again."""


class JobError(OrchestratorError):
    """A job handler failure. ``retryable`` tells the engine whether another attempt may help;
    ``specific`` is job-specific metadata to save with the failure (e.g. settlement attempts);
    ``wait_s`` marks a condition outside the job (fees above the cap): come back after that long,
    without spending the job's retry budget."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        specific: object | None = None,
        wait_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.specific = specific
        self.wait_s = wait_s


class QueueFull(OrchestratorError):
    def __init__(self, current: int, maximum: int) -> None:
        self.current = current
        self.maximum = maximum
        super().__init__(
            f"Priority queue is full (current: {current}, max: {maximum}). Please try again later or use normal queue."
        )


def outage_cause(exc: BaseException) -> BackendUnavailable | None:
    """The outside service failure behind ``exc`` (itself, or what it was raised from), if any: an
    unreachable or misbehaving sequencer, L1, prover or store is a condition to wait out, not the job's
    failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BackendUnavailable):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
