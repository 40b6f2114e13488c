"""The durable send loop of the settlement senders (Ethereum ``txmgr.py``, Starknet ``starknet.py``), over a
small chain backend (``ChainBackend``: nonce, fee estimate and signature, broadcast, receipt).

``DurableSender`` settles each idempotency key (a batch) once:

- every signed attempt is stored (``TxStore``) BEFORE it is broadcast, so a crash at any point leaves a
  record of every transaction that may be in a mempool or mined;
- the nonce is reserved per key in the store and reconciled with the node (``latest`` and ``pending``
  counts): a key keeps its nonce across fee bumps and restarts; a nonce spent by a foreign transaction is
  released and a new one taken (once no receipt of the key's own attempts appears within a short grace: a
  node can count a mined transaction in the nonce a moment before it serves the receipt);
- a restart first looks for a receipt of any stored attempt (landed → finalize, never send again), else
  re-broadcasts the latest stored attempt unchanged;
- a transaction that does not land within a confirmation window is replaced with a higher fee, at most
  ``max_bumps`` times (``None``: never replaced, the call fails and its retry resumes the transaction);
  the backend refuses to sign above its fee cap.

A key is sent by one caller at a time: in this process by a lock, across processes by a ``KeyGuard`` (the
composition root builds it on the database's named leases, ``engine/lease.py``).

Several keys in flight, strictly in order (``send(key, build, after=previous_key)``): a key is signed and
broadcast only once the key before it is broadcast (an attempt stored as Sent, or finalized), so it takes
the next nonce; a nonce released while later ones are held (a refused first attempt) is taken again by its
key, never skipped. A key whose transaction reverts while the key before it has not settled (they chain on
each other's roots) is not counted as settled and not failed: ``OutOfTurn`` says to send it again after
its predecessor. A key whose window ends while a lower nonce is not mined yet is not replaced (it cannot
land first; a higher fee would buy nothing): ``OutOfTurn`` too, and the retry resumes its transaction. A
mined transaction that leaves the chain before its confirmations (a reorg) is re-broadcast from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NoReturn, Protocol, TypeVar

import httpx

from madara_orchestrator.domain.cost import FeeSplit
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, OutOfTurn, SettlementPaused
from madara_orchestrator.domain.settlement_tx import (
    AttemptRecord,
    AttemptStatus,
    KeyStatus,
    TxKeyRecord,
    attempts_summary,
)
from madara_orchestrator.interfaces import SettlementAttempt, SettlementResult, TxStore
from madara_orchestrator.settlement.blob_tx import Fees
from madara_orchestrator.settlement.errors import FeeBumpsExhausted, FeeCapExceeded, SettlementTxError, TxReverted

log = logging.getLogger(__name__)

SPENT_NONCE_GRACE_MAX_S = 12.0
"""The longest a spent nonce's own receipts are looked for again (``SendPolicy.spent_nonce_grace_s``)."""
SPENT_NONCE_LOOK_S = 1.0
"""How often they are looked for meanwhile, at the most (a poll interval is longer on Ethereum: 60 s)."""

CRASH_POINTS = ("unstored", "signed", "sent", "included", "mined")
"""Where a sender's ``crash_hook`` is called: after an attempt is signed and before it is stored; after it is
stored and before it is broadcast; after the node accepted it and before that is recorded; after its receipt
is seen and before its confirmations are awaited (only with confirmations); after it is final (confirmed)
and before that is recorded."""

_sending: contextvars.ContextVar[str | None] = contextvars.ContextVar("settlement_key", default=None)


def sending_key() -> str | None:
    """The key the calling task is sending (for a ``crash_hook`` that crashes at one key of several)."""
    return _sending.get()


KeyGuard = Callable[[str], contextlib.AbstractAsyncContextManager[bool]]
"""Holds a key against other processes while it is sent: yields False when another process holds it."""


PAUSED_RECHECK_S = 30.0
"""How long a settlement put back by a pause waits before it is looked at again."""


class SettlementKeyBusy(BackendUnavailable):
    """Another orchestrator process is sending this key now: a condition to wait out, not a failure."""


@dataclass(slots=True)
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Sends holding or waiting for the lock."""


@dataclass(eq=False, repr=False)
class KeyLocks:
    """One send per key at a time: a lock in this process, ``guard`` across processes. A key's lock lives while
    a send holds or waits for it (every batch has a key of its own: kept, they would pile up)."""

    guard: KeyGuard | None = None
    _locks: dict[str, _KeyLock] = field(default_factory=dict, init=False)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._locks.setdefault(key, _KeyLock())
        entry.users += 1
        try:
            async with entry.lock:
                if self.guard is None:
                    yield
                    return
                async with self.guard(key) as held:
                    if not held:
                        raise SettlementKeyBusy(
                            f"settlement {key}: another orchestrator process is sending it now; "
                            "waiting for it to finish"
                        )
                    yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]

    def __len__(self) -> int:
        """Keys with a lock now (held or waited for)."""
        return len(self._locks)


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


# --------------------------------------------------------------------------------------------------
# The chain backend


Refusal = Literal["already known", "nonce too low", "underpriced", "other"]
"""How a node refused a broadcast."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedAttempt:
    """A signed transaction, its gas multiplier and the fee columns the store keeps for it (``fees``, in
    the chain's fee unit); ``detail`` ends the "signed and stored" log line (fees, size)."""

    tx_hash: str
    raw: bytes
    gas_multiplier: float
    fees: Fees
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """A receipt as the loop reads it. A backend answers None for a transaction not included yet."""

    block_number: int | None
    final: bool
    """Whether the receipt settles the key (Starknet: accepted on L2; Ethereum: mined, then confirmations)."""
    revert_error: str | None
    """None when the call succeeded; else the error, in the chain's words."""
    fee_paid: int | None
    fee_text: str
    """How the finalized log line names the fee ("fee 21000 wei")."""
    raw: dict[str, Any] = field(repr=False)
    fee_split: FeeSplit | None = None
    """Execution and blob gas and prices, when the chain's receipt tells them (Ethereum)."""

    @classmethod
    def not_final(cls, raw: dict[str, Any]) -> Receipt:
        """A receipt of a transaction included but not final yet (its block and fee are not read)."""
        return cls(block_number=None, final=False, revert_error=None, fee_paid=None, fee_text="", raw=raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderWords:
    """How the log lines and errors name what the chain does."""

    signer: str
    """"signer" / "account": who started a key."""
    settled: str
    """"finalized" / "accepted": a key's final state."""
    settled_log: str
    """"finalized" / "accepted on L2": the finalized log line."""
    found: str
    """"mined" / "executed": a stored attempt found on restart."""
    revert_advice: str = ""
    not_final: str = ""
    not_landed: str = ""


RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT", bound=SettlementResult)
RequestT_contra = TypeVar("RequestT_contra", contravariant=True)


class ChainBackend(Protocol[RequestT_contra]):
    """What ``DurableSender`` needs of a settlement chain."""

    words: SenderWords
    sender: str
    """The address that signs, as the store keeps it (``TxKeyRecord.sender``)."""

    async def nonce(self, block: Literal["latest", "pending"]) -> int:
        """The sender's transaction count at ``block``."""
        ...

    async def sign(
        self,
        key: str,
        nonce: int,
        request: RequestT_contra,
        *,
        previous: AttemptRecord | None,
        existing: list[AttemptRecord],
    ) -> SignedAttempt:
        """Estimate the fees (at least the replacement floor over ``previous``), check the fee cap (above it
        raise ``FeeCapExceeded``, nothing signed) and sign."""
        ...

    async def broadcast(self, raw: bytes) -> None: ...

    def refusal(self, exc: Exception) -> Refusal | None:
        """How the node refused a broadcast; None when ``exc`` is no node refusal (an outage: re-raised)."""
        ...

    async def nonce_lost(self, attempt: AttemptRecord, exc: Exception) -> str:
        """Why a broadcast was refused for its nonce, for the error."""
        ...

    def submission_error(
        self, exc: Exception, attempts: list[AttemptRecord], nonce: int | None
    ) -> SettlementTxError: ...

    async def receipt(self, tx_hash: str) -> Receipt | None: ...

    async def head(self) -> int:
        """The latest block number (for confirmations)."""
        ...


_RESULT_FIELDS = ("tx_hash", "nonce", "attempts", "fee_paid_wei", "already_settled", "fee_split")
"""What a ``TxOutcome`` tells a ``SettlementResult``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TxOutcome:
    key: str
    tx_hash: str
    nonce: int
    block_number: int | None
    fee_paid_wei: int | None
    attempts: list[SettlementAttempt] = field(default_factory=list)
    already_settled: bool = False
    """True when the key was finalized by an earlier call (nothing was sent by this one)."""
    fee_split: FeeSplit | None = None
    """The final receipt's fee split (cost ledger), when this call saw the receipt."""

    def result(self, cls: type[ResultT], **extra: Any) -> ResultT:
        """The outcome as the settlement client's result type (``extra``: its own fields)."""
        return cls(**{name: getattr(self, name) for name in _RESULT_FIELDS}, **extra)


@dataclass(frozen=True, slots=True)
class _Found:
    attempt: AttemptRecord
    receipt: Receipt


@dataclass(frozen=True, slots=True, kw_only=True)
class SendPolicy:
    """How long to wait and when to replace (the parts of the loop that differ between chains)."""

    confirmation_timeout_s: float
    poll_interval_s: float
    max_bumps: int | None
    """Replacements per call; None: none, a window without a final receipt fails the call."""
    confirmations: int | None = None
    """Blocks on top of a final receipt before the key is finalized; None: none are awaited."""
    release_lost_nonce: bool = False
    """Whether a broadcast refused for its nonce releases the key's nonce at once (else the retry does)."""
    turn_poll_s: float = 0.5
    """How often a key waiting for the key before it reads the store (another process may send that one)."""
    turn_wait_s: float = 2.0
    """How long a key that is out of turn (``OutOfTurn``) asks its caller to wait before trying again."""

    @property
    def spent_nonce_grace_s(self) -> float:
        """How long the receipts of a key's own attempts are looked for again once the node counts their nonce
        as spent, before it is taken as spent by a transaction the store does not know: a node (anvil, seen in
        the tests) or the several nodes behind one provider's URL can count a mined transaction in its sender's
        nonce a moment before they serve its receipt. Two polls, at most one L1 slot."""
        return min(2 * self.poll_interval_s, SPENT_NONCE_GRACE_MAX_S)


class DurableSender(Generic[RequestT]):
    """Sends transactions for idempotency keys through a ``ChainBackend``, durably (see the module doc)."""

    def __init__(
        self,
        chain: ChainBackend[RequestT],
        store: TxStore,
        policy: SendPolicy,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        crash_hook: Callable[[str], None] | None = None,
        key_guard: KeyGuard | None = None,
    ) -> None:
        self.chain = chain
        self.store = store
        self.sender = chain.sender
        self._keys = KeyLocks(key_guard)
        self.send_policy = policy
        self._monotonic = monotonic
        self._sleep = sleep
        self._crash_hook = crash_hook
        self._after: dict[str, str | None] = {}
        """Each key being sent: the key it follows (``send(after=...)``)."""
        self._progress = asyncio.Event()
        """Set (and renewed) whenever a key of this sender is broadcast, finalized or reverted here."""
        self.hold: Callable[[], Awaitable[str | None]] | None = None
        """Why no new transaction may be signed now (settlement paused: engine/pause.py), or None. A stored
        attempt is still re-broadcast and followed to its receipt; a new one (first, replacement) waits."""

    def _crash_point(self, point: str) -> None:
        if self._crash_hook is not None:
            self._crash_hook(point)

    async def attempts(self, key: str) -> list[SettlementAttempt]:
        return to_settlement_attempts(await self.store.attempts(key))

    async def send(self, key: str, build: Callable[[], Awaitable[RequestT]], *, after: str | None = None) -> TxOutcome:
        """Settle ``key`` once. ``build`` is only awaited when a new transaction must be signed.

        ``after``: the key this one follows (several in flight): nothing is signed or broadcast for ``key``
        until ``after`` is broadcast (waiting at most a confirmation window, then ``OutOfTurn``).

        Returns when an attempt is final; raises ``SettlementTxError`` (with the attempts) otherwise. A key
        that was finalized before returns its stored outcome without any RPC send.
        """
        async with self._keys.hold(key):
            self._after[key] = after
            token = _sending.set(key)
            try:
                return await self._send(key, build)
            finally:
                _sending.reset(token)
                self._after.pop(key, None)

    async def _held(self, key: str) -> None:
        """``SettlementPaused`` while ``hold`` says no new transaction may be signed."""
        why = None if self.hold is None else await self.hold()
        if why is not None:
            raise SettlementPaused(
                f"settlement {key}: no new transaction is signed while {why}", wait_s=PAUSED_RECHECK_S
            )

    def _progressed(self) -> None:
        """Wake the keys of this process that wait for their turn."""
        self._progress.set()
        self._progress = asyncio.Event()

    async def _turn(self, after: str) -> str | None:
        """None when ``after`` is broadcast or settled (the next key may go); else why not."""
        record = await self.store.get_key(after)
        if record is None:
            return "not started yet"
        if record.status is KeyStatus.FINALIZED:
            return None
        if record.status is KeyStatus.REVERTED:
            return "it reverted and is sent again first"
        if record.nonce is None:
            return "no nonce yet"
        accepted = (AttemptStatus.SENT, AttemptStatus.TIMED_OUT)
        if any(a.nonce == record.nonce and a.status in accepted for a in await self.store.attempts(after)):
            return None
        return "not broadcast yet"

    async def _await_turn(self, key: str, after: str) -> None:
        """Wait until ``after`` is broadcast (this process tells at once; another one, at the next poll)."""
        deadline = self._monotonic() + self.send_policy.confirmation_timeout_s
        logged = False
        while True:
            why = await self._turn(after)
            if why is None:
                return
            if self._monotonic() >= deadline:
                raise OutOfTurn(
                    f"settlement {key} waits for {after} before it ({why}): it is sent right after it, in nonce order",
                    wait_s=self.send_policy.turn_wait_s,
                )
            if not logged:
                log.info("settlement %s: waiting for %s before it (%s)", key, after, why)
                logged = True
            event = self._progress
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=self.send_policy.turn_poll_s)

    async def _send(self, key: str, build: Callable[[], Awaitable[RequestT]]) -> TxOutcome:
        record = await self._open(key)
        if isinstance(record, TxOutcome):
            return record
        # 1. Recovery: has any stored attempt landed?
        in_flight = await self._in_flight(key, record.nonce)
        found = await self._find_receipt(in_flight)
        if found is not None:
            log.info(
                "settlement %s: attempt %s found %s on restart", key, found.attempt.attempt_no, self.chain.words.found
            )
            return await self._landed(key, found)
        # Several in flight: nothing is signed or broadcast before the key this one follows is broadcast.
        after = self._after.get(key)
        if after is not None:
            await self._await_turn(key, after)
        # 2. Nonce: reserve, or reconcile the reserved one with the chain.
        chain_latest = await self.chain.nonce("latest")
        if record.nonce is not None and chain_latest > record.nonce:
            found = await self._receipt_of_spent(await self._sent_with(key, record.nonce))  # landed a moment ago?
            if found is not None:
                return await self._landed(key, found)
            log.warning(
                "settlement %s: nonce %s was spent by a transaction this store does not know; taking a new nonce",
                key,
                record.nonce,
            )
            await self.store.release_nonce(key)
            in_flight = []
        if not in_flight:
            await self._held(key)
        # Built before a nonce is reserved: an output that cannot be settled must not hold a nonce.
        request = None if in_flight else await build()
        if request is not None:
            chain_latest = await self.chain.nonce("latest")  # read again: a build can take seconds
        nonce = await self._reserve(key, chain_latest, foreign_pending_warning=not in_flight)
        # 3. Re-broadcast the stored attempt unchanged, or sign a new one; then wait, replace, cap.
        if in_flight:
            current = in_flight[-1]
            log.info(
                "settlement %s: resuming attempt %s (nonce %s, tx %s): re-broadcasting it",
                key,
                current.attempt_no,
                current.nonce,
                current.tx_hash,
            )
            landed = await self._broadcast(key, current, resuming=True)
        else:
            assert request is not None
            current = await self._first_attempt(key, nonce, request)
            landed = await self._broadcast(key, current, resuming=False)
        if landed is not None:
            return landed
        return await self._until_final(key, nonce, current, request, build)

    async def _open(self, key: str) -> TxKeyRecord | TxOutcome:
        """The key's record (created on first use); its outcome when it was finalized before."""
        record = await self.store.create_key(key, self.sender)
        if record.sender != self.sender.lower():
            raise InvalidInput(
                f"settlement key {key!r} was started by {record.sender}, not by this {self.chain.words.signer} "
                f"{self.sender}"
            )
        if record.status is KeyStatus.FINALIZED:
            log.info(
                "settlement %s already %s in tx %s; nothing sent", key, self.chain.words.settled, record.final_tx_hash
            )
            return await self._outcome(record, already_settled=True)
        if record.status is KeyStatus.REVERTED:
            log.info("settlement %s reverted before (%s); starting again with a new nonce", key, record.error)
            await self.store.restart_key(key)
            record = await self._get(key)
        return record

    async def _reserve(self, key: str, chain_latest: int, *, foreign_pending_warning: bool) -> int:
        chain_pending = await self.chain.nonce("pending")
        nonce = await self.store.reserve_nonce(key, chain_latest=chain_latest, chain_pending=chain_pending)
        held = [r.nonce for r in await self.store.pending_keys(self.sender) if r.nonce is not None and r.key != key]
        ours = max(held, default=-1) + 1  # pending transactions of this store's other keys are no strangers
        if chain_pending > max(nonce, ours) and foreign_pending_warning:
            log.warning(
                "settlement %s: the node has %s pending transactions from %s above nonce %s that this store "
                "does not know; nonce %s will replace one of them",
                key,
                chain_pending - chain_latest,
                self.sender,
                nonce,
                nonce,
            )
        return nonce

    async def _first_attempt(self, key: str, nonce: int, request: RequestT) -> AttemptRecord:
        try:
            return await self._new_attempt(key, nonce, request, previous=None)
        except Exception:
            if not await self._in_flight(key, nonce):
                await self.store.release_nonce(key)  # nothing holds the nonce: do not leave a gap behind
            raise

    async def _until_final(
        self,
        key: str,
        nonce: int,
        current: AttemptRecord,
        request: RequestT | None,
        build: Callable[[], Awaitable[RequestT]],
    ) -> TxOutcome:
        """Wait for the current attempt; on timeout replace it within the budget, or fail."""
        max_bumps = self.send_policy.max_bumps
        bumps = 0
        while True:
            status = (await self._attempt(key, current.attempt_no)).status
            if max_bumps is None and status is AttemptStatus.SUBMISSION_FAILED:
                # Signed before a crash, never known to be sent, refused now: sign anew (no replacement).
                await self._held(key)
                current = await self._first_attempt(key, nonce, request if request is not None else await build())
                landed = await self._broadcast(key, current, resuming=False)
                if landed is not None:
                    return landed
                continue
            if status is AttemptStatus.SENT or max_bumps is None:
                outcome = await self._wait(key, nonce)
                if isinstance(outcome, TxOutcome):
                    return outcome
                await self._behind(key, nonce)
                await self._timed_out(key, nonce, current, seen=outcome is not None)
            assert max_bumps is not None
            if bumps >= max_bumps:
                await self._bumps_exhausted(key, nonce, current, bumps)
            await self._held(key)
            bumps += 1
            if request is None:
                request = await build()
            current = await self._new_attempt(key, nonce, request, previous=current)
            landed = await self._broadcast(key, current, resuming=False)
            if landed is not None:
                return landed

    async def _behind(self, key: str, nonce: int) -> None:
        """Several in flight: a window ended while a lower nonce is not mined yet. This transaction cannot land
        before it, so replacing it would only pay more (and spend its bump budget) for the other one's delay:
        ``OutOfTurn`` (the caller tries again later and resumes this transaction unchanged)."""
        after = self._after.get(key)
        if after is None:
            return
        mined = await self.chain.nonce("latest")
        if mined >= nonce:
            return
        log.info("settlement %s: nonce %s waits for nonce %s below it to be mined; not replaced", key, nonce, mined)
        raise OutOfTurn(
            f"settlement {key} (nonce {nonce}) waits for the transactions before it ({after}) to be mined; "
            "it is not replaced meanwhile",
            wait_s=self.send_policy.turn_wait_s,
        )

    async def _timed_out(self, key: str, nonce: int, current: AttemptRecord, *, seen: bool) -> None:
        """A confirmation window ended without a final receipt: mark the attempt; without replacements, fail."""
        timeout_s = self.send_policy.confirmation_timeout_s
        if self.send_policy.max_bumps is not None:
            error = f"timed out after {timeout_s:g}s"
            await self.store.set_attempt_status(key, current.attempt_no, AttemptStatus.TIMED_OUT, error=error)
            return
        where = self.chain.words.not_final if seen else self.chain.words.not_landed
        in_flight = await self._in_flight(key, nonce)
        latest = in_flight[-1] if in_flight else None
        if latest is not None:
            error = f"{where} after {timeout_s:g}s"
            await self.store.set_attempt_status(key, latest.attempt_no, AttemptStatus.TIMED_OUT, error=error)
        attempts = await self.store.attempts(key)
        raise SettlementTxError(
            f"State update transaction {latest.tx_hash if latest else '?'} (nonce {nonce}) was {where} within "
            f"{timeout_s:g}s. Retrying the job resumes it. Attempts: {attempts_summary(attempts)}",
            attempts=to_settlement_attempts(attempts),
            nonce=nonce,
            tx_hash=latest.tx_hash if latest else None,
        )

    async def _bumps_exhausted(self, key: str, nonce: int, current: AttemptRecord, bumps: int) -> NoReturn:
        max_bumps = self.send_policy.max_bumps
        multiplier = current.gas_multiplier * 2
        raise FeeBumpsExhausted(
            f"State update transaction failed after {len(await self.store.attempts(key))} fee attempts "
            f"({bumps} / {max_bumps} max fee bumps used) over "
            f"{self.send_policy.confirmation_timeout_s:g}s confirmation windows. Fee attempts: "
            f"{attempts_summary(await self.store.attempts(key))} Failure: Next required bump would be "
            f"{multiplier:.2f}x, but fee bump retry budget is exhausted "
            f"({bumps}/{max_bumps}). The last transaction stays in the mempool; "
            "retrying the job resumes it.",
            attempts=await self.attempts(key),
            nonce=nonce,
            tx_hash=current.tx_hash,
        )

    # ----------------------------------------------------------------------------------------------

    async def _get(self, key: str) -> TxKeyRecord:
        record = await self.store.get_key(key)
        if record is None:
            raise AssertionError(f"settlement key {key} vanished from the tx store")
        return record

    async def _attempt(self, key: str, attempt_no: int) -> AttemptRecord:
        for a in await self.store.attempts(key):
            if a.attempt_no == attempt_no:
                return a
        raise AssertionError(f"attempt {attempt_no} of {key} vanished from the tx store")

    async def _sent_with(self, key: str, nonce: int) -> list[AttemptRecord]:
        """The key's attempts at ``nonce`` that a node may have had: in flight, or refused at a later broadcast
        (a re-broadcast refused because it had landed, its receipt not served yet)."""
        return [
            a
            for a in await self.store.attempts(key)
            if a.nonce == nonce and (a.status.is_in_flight or a.status is AttemptStatus.SUBMISSION_FAILED)
        ]

    async def _in_flight(self, key: str, nonce: int | None) -> list[AttemptRecord]:
        if nonce is None:
            return []
        return [a for a in await self.store.attempts(key) if a.status.is_in_flight and a.nonce == nonce]

    async def _outcome(self, record: TxKeyRecord, *, already_settled: bool) -> TxOutcome:
        if record.final_tx_hash is None or record.nonce is None:
            raise AssertionError(f"settlement key {record.key} is finalized without a tx hash or nonce")
        return TxOutcome(
            key=record.key,
            tx_hash=record.final_tx_hash,
            nonce=record.nonce,
            attempts=await self.attempts(record.key),
            block_number=record.block_number,
            fee_paid_wei=record.fee_paid_wei,
            already_settled=already_settled,
        )

    async def _new_attempt(
        self, key: str, nonce: int, request: RequestT, *, previous: AttemptRecord | None
    ) -> AttemptRecord:
        """Estimate, check the cap, sign and store (Signed) a new attempt; nothing is sent here."""
        existing = await self.store.attempts(key)
        try:
            signed = await self.chain.sign(key, nonce, request, previous=previous, existing=existing)
        except FeeCapExceeded:
            if previous is not None and not any(a.status.is_in_flight for a in existing):
                await self.store.release_nonce(key)  # nothing holds the nonce: do not leave a gap behind
            raise
        self._crash_point("unstored")
        attempt_no = (existing[-1].attempt_no + 1) if existing else 1
        now = time.time()
        record = AttemptRecord(
            key=key,
            attempt_no=attempt_no,
            nonce=nonce,
            tx_hash=signed.tx_hash,
            gas_multiplier=signed.gas_multiplier,
            max_fee_per_gas=signed.fees.max_fee_per_gas,
            max_priority_fee_per_gas=signed.fees.max_priority_fee_per_gas,
            max_fee_per_blob_gas=signed.fees.max_fee_per_blob_gas,
            status=AttemptStatus.SIGNED,
            error=None,
            raw=signed.raw,
            created_at=now,
            updated_at=now,
        )
        await self.store.add_attempt(record)
        log.info(
            "settlement %s: attempt %s signed and stored: nonce %s, tx %s, %s",
            key,
            attempt_no,
            nonce,
            signed.tx_hash,
            signed.detail,
        )
        self._crash_point("signed")
        return record

    async def _broadcast(self, key: str, attempt: AttemptRecord, *, resuming: bool) -> TxOutcome | None:
        """Send the stored attempt. Returns an outcome if it turns out to have landed already, else None
        (the attempt's status says whether the node has it)."""
        if attempt.raw is None:
            raise SettlementTxError(f"settlement {key}: attempt {attempt.attempt_no} has no stored transaction")
        try:
            await self.chain.broadcast(attempt.raw)
        except Exception as exc:
            refusal = self.chain.refusal(exc)
            if refusal is None:
                raise
            if refusal == "already known":
                log.info("settlement %s: the node already has attempt %s", key, attempt.attempt_no)
            elif refusal == "nonce too low":
                return await self._nonce_lost(key, attempt, exc)
            else:
                await self._refused(key, attempt, exc, refusal, resuming=resuming)
                return None
        self._crash_point("sent")
        await self.store.set_attempt_status(key, attempt.attempt_no, AttemptStatus.SENT)
        self._progressed()
        log.info("settlement %s: attempt %s broadcast (tx %s)", key, attempt.attempt_no, attempt.tx_hash)
        return None

    async def _nonce_lost(self, key: str, attempt: AttemptRecord, exc: Exception) -> TxOutcome:
        mine = await self._sent_with(key, attempt.nonce)
        if await self.chain.nonce("latest") > attempt.nonce:
            found = await self._receipt_of_spent(mine)
        else:  # refused for a nonce the node does not count as spent (Starknet: one too high): no receipt to wait for
            found = await self._find_receipt(mine)
        if found is not None:
            return await self._landed(key, found)  # our own transaction spent it
        await self.store.set_attempt_status(key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc))
        if self.send_policy.release_lost_nonce:
            await self.store.release_nonce(key)
        reason = await self.chain.nonce_lost(attempt, exc)
        raise SettlementTxError(
            f"State update transaction submission failed: {reason}. Retrying the job takes a new nonce.",
            attempts=await self.attempts(key),
            nonce=attempt.nonce,
        ) from exc

    async def _refused(
        self, key: str, attempt: AttemptRecord, exc: Exception, refusal: Refusal, *, resuming: bool
    ) -> None:
        if resuming and attempt.status is not AttemptStatus.SIGNED:
            # The node accepted it before; it may refuse a re-broadcast (priced out, pool rules) while
            # still holding it. Wait on it as usual: the fee policy replaces it if it does not land.
            log.warning(
                "settlement %s: re-broadcast of attempt %s refused (%s); it was accepted before, waiting on it",
                key,
                attempt.attempt_no,
                exc,
            )
        elif refusal == "underpriced":
            log.warning("settlement %s: attempt %s rejected as underpriced: %s", key, attempt.attempt_no, exc)
            await self.store.set_attempt_status(
                key, attempt.attempt_no, AttemptStatus.REJECTED_UNDERPRICED, error=str(exc)
            )
        elif resuming:
            # Signed before a crash and never known to be accepted; refused now: replace it.
            log.warning("settlement %s: stored attempt %s refused: %s", key, attempt.attempt_no, exc)
            await self.store.set_attempt_status(
                key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc)
            )
        else:
            await self.store.set_attempt_status(
                key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc)
            )
            attempts = await self.store.attempts(key)
            if not any(a.status.is_in_flight for a in attempts):
                await self.store.release_nonce(key)
            raise self.chain.submission_error(exc, attempts, attempt.nonce) from exc

    async def _find_receipt(self, attempts: list[AttemptRecord]) -> _Found | None:
        for a in attempts:
            if a.tx_hash is None:
                continue
            receipt = await self.chain.receipt(a.tx_hash)
            if receipt is not None:
                return _Found(a, receipt)
        return None

    async def _receipt_of_spent(self, attempts: list[AttemptRecord]) -> _Found | None:
        """A receipt of one of ``attempts``, whose nonce the node counts as spent: looked for again during
        ``spent_nonce_grace_s`` (the node may serve the receipt a moment after it counts the nonce); None
        when none appears, the nonce then spent by a transaction this store does not know."""
        start = self._monotonic()
        deadline = start + self.send_policy.spent_nonce_grace_s
        looks = 0
        while True:
            found = await self._find_receipt(attempts)
            looks += 1
            if found is not None and looks > 1:
                log.info(
                    "settlement %s: the receipt of attempt %s came %.2fs after the node counted its nonce as spent",
                    found.attempt.key,
                    found.attempt.attempt_no,
                    self._monotonic() - start,
                )
            remaining = deadline - self._monotonic()
            if found is not None or remaining <= 0 or all(a.tx_hash is None for a in attempts):
                return found
            await self._sleep(min(self.send_policy.poll_interval_s, SPENT_NONCE_LOOK_S, remaining))

    async def _wait(self, key: str, nonce: int) -> TxOutcome | _Found | None:
        """Poll the nonce's in-flight attempts for a final receipt during one confirmation window. On
        timeout: the last receipt seen (not final), or None."""
        deadline = self._monotonic() + self.send_policy.confirmation_timeout_s
        while True:
            found = await self._find_receipt(await self._in_flight(key, nonce))
            if found is not None and found.receipt.final:
                return await self._confirm(key, found)
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return found
            await self._sleep(min(self.send_policy.poll_interval_s, remaining))

    async def _landed(self, key: str, found: _Found) -> TxOutcome:
        """A stored attempt has a receipt: settle on it, or wait until it is final."""
        if not found.attempt.status.is_in_flight:  # refused at a re-broadcast because it had landed
            await self.store.set_attempt_status(key, found.attempt.attempt_no, AttemptStatus.SENT)
        if found.receipt.final:
            return await self._confirm(key, found)
        outcome = await self._wait(key, found.attempt.nonce)
        if isinstance(outcome, TxOutcome):
            return outcome
        await self._timed_out(key, found.attempt.nonce, found.attempt, seen=outcome is not None)
        raise AssertionError("a window without a final receipt ends the call when nothing is replaced")

    async def _confirm(self, key: str, found: _Found) -> TxOutcome:
        """A final receipt: revert → TxReverted; success → wait for the confirmations, then finalize."""
        attempt, receipt = found.attempt, found.receipt
        if receipt.revert_error is not None:
            error = receipt.revert_error
            self._crash_point("mined")
            await self.store.mark_reverted(key, attempt.attempt_no, error=error, block_number=receipt.block_number)
            self._progressed()
            await self._out_of_turn_revert(key, error)
            log.error("settlement %s: %s", key, error)
            raise TxReverted(
                error + self.chain.words.revert_advice,
                attempts=await self.attempts(key),
                nonce=attempt.nonce,
                tx_hash=attempt.tx_hash,
            )
        confirmations = ""
        if self.send_policy.confirmations is not None:
            self._crash_point("included")
            deeper = await self._confirmations(key, attempt, receipt)
            if deeper is None:
                log.warning("settlement %s: tx %s left the chain (reorg); waiting again", key, attempt.tx_hash)
                return await self._reorged(key, attempt.nonce)
            if deeper.revert_error is not None:
                # A reorg re-mined it where it reverts (the state it ran on changed): a revert, not settled.
                log.warning("settlement %s: tx %s was mined again after a reorg and reverted", key, attempt.tx_hash)
                return await self._confirm(key, _Found(attempt, deeper))
            receipt = deeper
            confirmations = f" with {self.send_policy.confirmations} confirmations"
        self._crash_point("mined")
        await self.store.finalize(
            key, attempt.attempt_no, fee_paid_wei=receipt.fee_paid, block_number=receipt.block_number
        )
        self._progressed()
        self._report_finalized(key, attempt, receipt)
        log.info(
            "settlement %s %s: tx %s (attempt %s, nonce %s) in block %s%s, %s",
            key,
            self.chain.words.settled_log,
            attempt.tx_hash,
            attempt.attempt_no,
            attempt.nonce,
            receipt.block_number,
            confirmations,
            receipt.fee_text,
        )
        outcome = await self._outcome(await self._get(key), already_settled=False)
        return dataclasses.replace(outcome, fee_split=receipt.fee_split)

    async def _out_of_turn_revert(self, key: str, error: str) -> None:
        """A revert while the key before has not settled is that key's doing (this output chains on its
        roots): raise ``OutOfTurn`` so this key is sent again after it, not failed."""
        after = self._after.get(key)
        if after is None:
            return
        record = await self.store.get_key(after)
        if record is not None and record.status is KeyStatus.FINALIZED:
            return
        if record is not None and record.status is KeyStatus.PENDING:
            found = await self._find_receipt(await self._in_flight(after, record.nonce))
            if found is not None and found.receipt.revert_error is None:
                return  # it landed (its sender has not recorded it yet): this revert is this key's own
        log.warning(
            "settlement %s reverted while %s before it has not settled (%s); it is not counted as settled and "
            "is sent again after %s",
            key,
            after,
            error,
            after,
        )
        raise OutOfTurn(
            f"settlement {key} reverted because {after} before it has not settled (each output chains on the "
            f"previous one's roots): it is sent again after {after}",
            wait_s=self.send_policy.turn_wait_s,
        )

    def _report_finalized(self, key: str, attempt: AttemptRecord, receipt: Receipt) -> None:
        """Told each transaction this sender sees become final (a subclass reports metrics)."""

    async def _confirmations(self, key: str, attempt: AttemptRecord, receipt: Receipt) -> Receipt | None:
        """The receipt once ``confirmations`` blocks are on top of it; None if it left the chain (reorg)."""
        confirmations = self.send_policy.confirmations or 0
        deadline = self._monotonic() + self.send_policy.confirmation_timeout_s
        while True:
            block = receipt.block_number or 0
            latest = await self.chain.head()
            if latest - block >= confirmations:
                return receipt
            if self._monotonic() >= deadline:
                # Mined but not yet deep enough: keep the key pending; a retry finds the receipt again.
                raise SettlementTxError(
                    f"settlement {key}: tx {attempt.tx_hash} is mined in block {block} but has "
                    f"{latest - block}/{confirmations} confirmations after the window; retry to finish",
                    attempts=await self.attempts(key),
                    nonce=attempt.nonce,
                    tx_hash=attempt.tx_hash,
                )
            await self._sleep(min(self.send_policy.poll_interval_s, max(0.0, deadline - self._monotonic())))
            fresh = await self.chain.receipt(attempt.tx_hash or "")
            if fresh is None:
                return None
            receipt = fresh

    async def _reorged(self, key: str, nonce: int) -> TxOutcome:
        """A mined attempt left the chain before its confirmations: the node may have dropped it with its
        block, so the latest stored attempt is broadcast again (a node that kept it says "already known")."""
        in_flight = [a for a in await self._in_flight(key, nonce) if a.raw is not None]
        if in_flight:
            landed = await self._broadcast(key, in_flight[-1], resuming=True)
            if landed is not None:
                return landed
        outcome = await self._wait(key, nonce)
        if not isinstance(outcome, TxOutcome):
            await self._behind(key, nonce)
            raise SettlementTxError(
                f"settlement {key}: the mined transaction was reorged out and did not come back in time; retry",
                attempts=await self.attempts(key),
                nonce=nonce,
            )
        return outcome
