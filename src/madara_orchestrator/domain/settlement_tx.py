"""The records of settlement transactions (``interfaces.TxStore``): one per idempotency key, one per
signed attempt, and the totals of a summary line."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum


class KeyStatus(StrEnum):
    PENDING = "pending"
    """Not settled yet: a nonce may be reserved and attempts may be in the mempool."""
    FINALIZED = "finalized"
    """One attempt was mined successfully and confirmed: never send again for this key."""
    REVERTED = "reverted"
    """An attempt was mined and reverted: the nonce is spent; a new call starts afresh with a new nonce."""


class AttemptStatus(StrEnum):
    SIGNED = "Signed"
    """Stored before broadcast; the node may or may not have it (crash window)."""
    SENT = "Sent"
    """The node accepted it; waiting for inclusion."""
    FINALIZED = "Finalized"
    REPLACED = "Replaced"
    """Not mined: another transaction with the same nonce was."""
    TIMED_OUT = "TimedOut"
    REJECTED_UNDERPRICED = "RejectedUnderpriced"
    SUBMISSION_FAILED = "SubmissionFailed"
    REVERTED = "Reverted"
    """Mined, but the call reverted."""

    @property
    def is_in_flight(self) -> bool:
        """Whether the transaction may still be in a mempool (it was or may have been broadcast)."""
        return self in (AttemptStatus.SIGNED, AttemptStatus.SENT, AttemptStatus.TIMED_OUT)


@dataclass(frozen=True, slots=True, kw_only=True)
class TxKeyRecord:
    key: str
    sender: str
    nonce: int | None
    status: KeyStatus
    final_tx_hash: str | None
    fee_paid_wei: int | None
    block_number: int | None
    error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    key: str
    attempt_no: int
    nonce: int
    tx_hash: str | None
    gas_multiplier: float
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    max_fee_per_blob_gas: int
    status: AttemptStatus
    error: str | None
    raw: bytes | None
    """The signed transaction in its network form; dropped once the key is finalized."""
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TxTotals:
    """For a summary line: how many keys were settled, how many transactions were signed, fees paid."""

    settled: int
    pending: int
    attempts: int
    fee_paid_wei: int


def free_nonce(held: set[int], *, chain_latest: int, chain_pending: int, settled: Collection[int] = ()) -> int:
    """The nonce a key takes: a gap below nonces other pending keys hold (one released while later ones were
    sent, several settlements in flight) is taken first, so later transactions are never stranded behind it;
    else the next one above everything held, mined and pending on the node.

    ``settled``: the nonces at or above ``chain_latest`` of the sender's keys that are finalized or reverted
    (their transactions mined after ``chain_latest`` was read): never a gap. Those the node's pending count
    passes are counted; one above it belongs to a chain the node no longer has (a devnet started again)."""
    taken = held | {n for n in settled if n < chain_pending}
    if taken:
        gap = next((n for n in range(chain_latest, max(taken)) if n not in taken), None)
        if gap is not None:
            return gap
    return max(chain_latest, chain_pending, max(taken) + 1 if taken else 0)


def attempts_summary(attempts: Sequence[AttemptRecord]) -> str:
    """One line per attempt, like the original's error message ("1. 1.10x attempted, nonce=N, ...")."""
    lines = []
    for a in attempts:
        what = {
            AttemptStatus.FINALIZED: "finalized",
            AttemptStatus.TIMED_OUT: "timed out",
            AttemptStatus.REPLACED: "replaced",
            AttemptStatus.REJECTED_UNDERPRICED: "rejected as underpriced",
            AttemptStatus.SUBMISSION_FAILED: "submission failed",
            AttemptStatus.REVERTED: "reverted",
            AttemptStatus.SENT: "pending",
            AttemptStatus.SIGNED: "signed, not known to be sent",
        }[a.status]
        tx = f"tx hash {a.tx_hash}" if a.tx_hash else "no hash"
        err = f" ({a.error})" if a.error else ""
        lines.append(f"{a.attempt_no}. {a.gas_multiplier:.2f}x attempted, nonce={a.nonce}, {tx}, {what}{err}.")
    return " ".join(lines)
