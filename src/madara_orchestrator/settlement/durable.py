"""What the durable settlement senders share (Ethereum ``txmgr.py``, Starknet ``starknet.py``).

Both store every signed attempt before it is sent and settle each idempotency key (a batch) once; a key
is sent by one caller at a time: in this process by a lock, across processes by a ``KeyGuard`` (the
composition root builds it on the database's named leases, ``engine/lease.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx

from madara_orchestrator.backends.tx_store import AttemptRecord, AttemptStatus
from madara_orchestrator.domain.errors import BackendUnavailable
from madara_orchestrator.interfaces import SettlementAttempt

CRASH_POINTS = ("signed", "sent", "mined")
"""Where a sender's ``crash_hook`` is called: after an attempt is stored and before it is broadcast; after
the node accepted it and before that is recorded; after its receipt is seen and before it is recorded final."""

KeyGuard = Callable[[str], contextlib.AbstractAsyncContextManager[bool]]
"""Holds a key against other processes while it is sent: yields False when another process holds it."""


class SettlementKeyBusy(BackendUnavailable):
    """Another orchestrator process is sending this key now: a condition to wait out, not a failure."""


class KeyLocks:
    """One send per key at a time: a lock in this process, ``guard`` across processes."""

    def __init__(self, guard: KeyGuard | None = None) -> None:
        self.guard = guard
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self._locks.setdefault(key, asyncio.Lock()):
            if self.guard is None:
                yield
                return
            async with self.guard(key) as held:
                if not held:
                    raise SettlementKeyBusy(
                        f"settlement {key}: another orchestrator process is sending it now; waiting for it to finish"
                    )
                yield


ACCEPTED_STATUSES = frozenset(
    {
        AttemptStatus.FINALIZED,
        AttemptStatus.REPLACED,
        AttemptStatus.TIMED_OUT,
        AttemptStatus.SENT,
        AttemptStatus.REVERTED,
    }
)
"""Attempts a node accepted: only those show a transaction hash in the job's ``tx_attempts``."""


def to_settlement_attempts(records: list[AttemptRecord]) -> list[SettlementAttempt]:
    """The store's attempts as the job's ``tx_attempts`` (a hash only for what a node accepted)."""
    return [
        SettlementAttempt(
            attempt_no=r.attempt_no,
            tx_hash=r.tx_hash if r.status in ACCEPTED_STATUSES else None,
            nonce=r.nonce,
            gas_multiplier=r.gas_multiplier,
            status=r.status.value,
            error=r.error,
        )
        for r in records
    ]


def redact_url(url: str) -> str:
    """The URL without credentials or path (RPC URLs often carry an API key)."""
    try:
        parsed = httpx.URL(url)
    except Exception:
        return "<rpc url>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"
