"""Errors of the settlement path. Each carries the attempts made so far, for the job's ``tx_attempts``."""

from __future__ import annotations

from collections.abc import Sequence

from madara_orchestrator.domain.errors import JobError, OutsideCondition
from madara_orchestrator.interfaces import SettlementAttempt


class SettlementTxError(JobError):
    """A settlement transaction did not land (SPEC §8.1 ``StateUpdateTxError``): message + attempts."""

    def __init__(
        self,
        message: str,
        *,
        attempts: Sequence[SettlementAttempt] = (),
        nonce: int | None = None,
        tx_hash: str | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.attempts = list(attempts)
        self.nonce = nonce
        self.tx_hash = tx_hash
        """The last attempt's hash, if any: it may still be in the mempool and land later."""


class FeeCapExceeded(SettlementTxError, OutsideCondition):
    """The next fee attempt would exceed ``--ethereum-l2-state-update-max-fee-wei``.

    Nothing above the cap was signed. A transaction sent before stays in the mempool; calling again with
    the same idempotency key resumes it (it lands on its own when fees fall, or is replaced within the cap).
    """


class FeeBumpsExhausted(SettlementTxError):
    """``--ethereum-max-fee-bumps`` replacements were made in this call and none was confirmed in time."""


class TxReverted(SettlementTxError):
    """The transaction was mined but reverted: the settlement layer rejected the state update."""

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
