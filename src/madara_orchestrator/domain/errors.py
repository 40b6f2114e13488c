"""The error model: one root, a few kinds; messages say what happened and what to do.

Three kinds of failure, each with its delay (``classify`` tells them apart, for the job service, the queue
consumers and the triggers alike):

- an outage to wait out: ``BackendUnavailable`` (itself or what an error was raised from). The job goes back
  as it was, no attempt spent, and is tried again after the engine's outage wait;
- a job's own failure: ``JobError`` (and any unexpected error). Retried after the redelivery back-off, or
  failed at once (``retryable=False``); a condition outside the job (``OutsideCondition``, fees above the
  cap) says how long to wait instead (``wait_s``), without spending the retry budget;
- a bad input: ``InvalidInput``, the caller's mistake, refused at once (``server/`` answers 400, the CLI
  exits 2). ``Retryable`` marks one that is only *not yet* good (a pending block) or a failure that may
  pass. With an outage it is ``Failure.temporary``: what the callers that give up on anything else (the
  SnosRun handler, the sweep of orphaned prover buckets) read from ``classify``.

Adapters translate driver exceptions at the edge (``raise BackendUnavailable(...) from exc``);
``server/`` maps the kinds to HTTP status codes in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
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
    """Input that is not good *yet* (a pending block, a block the gateway does not know yet), or a failure
    that may pass (a SNOS run's RPC trouble, SPEC §2.8): asking again later may succeed, so a job fed it is
    retried rather than failed. Unlike an outage, the retry spends an attempt."""


class OutsideCondition(OrchestratorError):
    """Marks a failure caused by the world, not the job (fees above the cap): wait, alert, try again. The
    job handler turns it into ``JobError(wait_s=...)``, which says how long."""


class OutOfTurn(OrchestratorError):
    """A settlement must wait for the one before it (several settlements in flight, strictly in order): its
    predecessor is not broadcast yet, or reverted (and this one, chained on its roots, with it). Not the job's
    failure: the handler turns it into ``JobError(wait_s=...)``, which keeps the retry budget."""

    def __init__(self, message: str, *, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


class SettlementPaused(OutOfTurn):
    """Settlement is paused (``domain/pause.py``): no new transaction is signed. Not the job's failure: it is
    put back (``wait_s``), and a transaction already broadcast is still followed to its receipt."""


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


class RetriesExhausted(BackendUnavailable):
    """Every attempt of a client's call failed with a retryable error; ``last_error`` is the final one."""

    def __init__(self, message: str, last_error: BaseException, attempts: int) -> None:
        self.last_error = last_error
        self.attempts = attempts
        super().__init__(message)


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


class FailureKind(enum.StrEnum):
    OUTAGE = "outage"
    """An outside service is down: put the job back as it was and wait it out (no attempt spent)."""
    WAIT = "wait"
    """A condition outside the job: come back after ``Failure.delay_s`` with a fresh message (the retry
    budget is kept), even when an outage lies behind it."""
    RETRY = "retry"
    """The job's own failure (or an unexpected error): try again after the redelivery back-off."""
    FINAL = "final"
    """The job's own failure that another attempt cannot fix: fail now."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What ``classify`` makes of an exception."""

    kind: FailureKind
    error: BaseException
    outage: BackendUnavailable | None = None
    """The outside service failure behind the error (always set for ``OUTAGE``)."""
    delay_s: float | None = None
    """For ``WAIT``: how long. Otherwise the engine's ``RetryPolicy`` decides."""
    expected: bool = False
    """Raised on purpose as a job's failure (``JobError``), not a bug: logged without a traceback."""

    @property
    def is_outage(self) -> bool:
        return self.kind == FailureKind.OUTAGE

    @property
    def temporary(self) -> bool:
        """Asking again later may succeed: an outside service is down (``OUTAGE``) or the error is
        ``Retryable``. What a caller that gives up on anything else asks (a SnosRun's runner failure, SPEC
        §2.8; an orphaned prover bucket that cannot be closed)."""
        return self.is_outage or isinstance(self.error, Retryable)


def classify(exc: BaseException) -> Failure:
    """The one place an exception is sorted into outage, wait, retry or final failure."""
    outage = outage_cause(exc)
    own = isinstance(exc, JobError)
    wait_s = exc.wait_s if isinstance(exc, JobError) else None
    if outage is not None and wait_s is None:
        return Failure(FailureKind.OUTAGE, exc, outage, expected=own)
    if isinstance(exc, JobError) and not exc.retryable:
        return Failure(FailureKind.FINAL, exc, outage, expected=True)
    if wait_s is not None:
        return Failure(FailureKind.WAIT, exc, outage, delay_s=wait_s, expected=True)
    return Failure(FailureKind.RETRY, exc, expected=own)
