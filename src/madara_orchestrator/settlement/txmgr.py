"""Durable send-and-confirm loop for settlement transactions, keyed by an idempotency key (the batch).

Better than the original's (nonce re-read from the node per job, attempts kept in memory only):

- every signed attempt is stored (``TxStore``) BEFORE it is broadcast, so a crash at any point leaves a
  record of every transaction that may be in a mempool or mined;
- the nonce is reserved per key in the store and reconciled with the node (``latest`` and ``pending``
  counts): a key keeps its nonce across fee bumps and restarts; a nonce spent by a foreign transaction is
  released and a new one taken; two keys never share a nonce, and a key never skips one;
- a restart first looks for a receipt of any stored attempt (mined → finalize, never send again), else
  re-broadcasts the latest stored attempt unchanged, then continues the fee policy;
- fees follow SPEC §8.2: fresh caps from the latest base fee and blob base fee, replacements at least
  2.1× the previous caps, at most ``max_fee_bumps`` replacements per call, and a hard cap on the signed
  fee liability: above it nothing is signed and ``FeeCapExceeded`` says what to do; the transaction
  already in the mempool keeps its place, and the next call resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from eth_keys.datatypes import PrivateKey

from madara_orchestrator.backends.tx_store import (
    AttemptRecord,
    AttemptStatus,
    KeyStatus,
    TxKeyRecord,
    TxStore,
    attempts_summary,
)
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.interfaces import SettlementAttempt
from madara_orchestrator.settlement.blob_tx import (
    GAS_PER_BLOB,
    Fees,
    Sidecar,
    SignedTx,
    sign_blob_tx,
    sign_dynamic_fee_tx,
)
from madara_orchestrator.settlement.durable import (
    KeyGuard,
    KeyLocks,
    to_settlement_attempts,
)
from madara_orchestrator.settlement.errors import (
    FeeBumpsExhausted,
    FeeCapExceeded,
    SettlementTxError,
    TxReverted,
)
from madara_orchestrator.settlement.eth_rpc import EthBackend, EthRpcError

log = logging.getLogger(__name__)

GWEI = 10**9


@dataclass(frozen=True, slots=True, kw_only=True)
class FeePolicy:
    """SPEC §8.2 steps 3, 4 and 9."""

    gas_limit: int = 1_500_000
    priority_fee_wei: int = 200_000_000
    base_fee_multiplier: float = 1.1
    blob_fee_multiplier: float = 1.1
    replacement_numerator: int = 21
    replacement_denominator: int = 10
    """Each replacement cap is at least previous × 21/10 (blob pools require a 100 % bump)."""
    max_fee_bumps: int = 2
    max_total_fee_wei: int = 10**16
    """Hard cap on ``gas_limit · max_fee_per_gas + n_blobs · 131072 · max_fee_per_blob_gas``."""

    def fresh_fees(self, base_fee: int, blob_base_fee: int) -> Fees:
        return Fees(
            max_fee_per_gas=math.ceil(2 * base_fee * self.base_fee_multiplier) + self.priority_fee_wei,
            max_priority_fee_per_gas=self.priority_fee_wei,
            max_fee_per_blob_gas=max(1, math.ceil(blob_base_fee * self.blob_fee_multiplier)),
        )

    def _floor(self, previous: int) -> int:
        return -(-previous * self.replacement_numerator // self.replacement_denominator)

    def replacement_fees(self, fresh: Fees, previous: Fees) -> Fees:
        return Fees(
            max_fee_per_gas=max(fresh.max_fee_per_gas, self._floor(previous.max_fee_per_gas)),
            max_priority_fee_per_gas=max(
                fresh.max_priority_fee_per_gas, self._floor(previous.max_priority_fee_per_gas)
            ),
            max_fee_per_blob_gas=max(fresh.max_fee_per_blob_gas, self._floor(previous.max_fee_per_blob_gas)),
        )

    def liability(self, fees: Fees, n_blobs: int) -> int:
        return self.gas_limit * fees.max_fee_per_gas + n_blobs * GAS_PER_BLOB * fees.max_fee_per_blob_gas


@dataclass(frozen=True, slots=True, kw_only=True)
class TxRequest:
    """What to send for a key: a blob transaction to ``to`` with ``data`` and ``sidecar`` (type 3), or
    a plain type-2 transaction when ``sidecar`` is None (calldata DA)."""

    to: str
    data: bytes
    sidecar: Sidecar | None

    @property
    def n_blobs(self) -> int:
        return len(self.sidecar.blobs) if self.sidecar else 0


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


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalizedTx:
    """What a final receipt says a settlement transaction cost (``TxManager.on_finalized``)."""

    key: str
    tx_hash: str | None
    fee_paid_wei: int | None
    gas_used: int | None
    effective_gas_price_wei: int | None
    blob_gas_used: int | None
    blob_gas_price_wei: int | None


def _is_underpriced(exc: EthRpcError) -> bool:
    return "underpriced" in exc.rpc_message.lower()


def _is_already_known(exc: EthRpcError) -> bool:
    msg = exc.rpc_message.lower()
    return "already known" in msg or "alreadyknown" in msg or "known transaction" in msg or "already imported" in msg


def _is_nonce_too_low(exc: EthRpcError) -> bool:
    msg = exc.rpc_message.lower()
    return "nonce too low" in msg or "noncetoolow" in msg or "nonce is too low" in msg


class TxManager:
    """Sends blob transactions for idempotency keys: one ``send`` per key at a time, in this process by a
    lock and across processes by ``key_guard``. Nonces are reserved in the store's transaction."""

    def __init__(
        self,
        *,
        backend: EthBackend,
        store: TxStore,
        private_key: str | bytes | PrivateKey,
        policy: FeePolicy | None = None,
        confirmations: int = 3,
        confirmation_timeout_s: float = 300.0,
        poll_interval_s: float = 60.0,
        chain_id: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        crash_hook: Callable[[str], None] | None = None,
        key_guard: KeyGuard | None = None,
    ) -> None:
        if isinstance(private_key, PrivateKey):
            self._key = private_key
        else:
            raw = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else private_key
            if len(raw) != 32:
                raise InvalidInput("the Ethereum private key must be 32 bytes (64 hex characters)")
            self._key = PrivateKey(raw)
        self.address = self._key.public_key.to_checksum_address()
        self.backend = backend
        self.store = store
        self.policy = policy or FeePolicy()
        self.confirmations = confirmations
        self.confirmation_timeout_s = confirmation_timeout_s
        self.poll_interval_s = poll_interval_s
        self._chain_id = chain_id
        self._monotonic = monotonic
        self._sleep = sleep
        self._crash_hook = crash_hook
        self._keys = KeyLocks(key_guard)
        self.on_finalized: Callable[[FinalizedTx], None] | None = None
        """Told each transaction this manager sees become final (metrics: gas and fees)."""

    def __repr__(self) -> str:
        return f"TxManager(address={self.address})"

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = await self.backend.chain_id()
        return self._chain_id

    def _crash_point(self, point: str) -> None:
        if self._crash_hook is not None:
            self._crash_hook(point)

    async def attempts(self, key: str) -> list[SettlementAttempt]:
        return to_settlement_attempts(await self.store.attempts(key))

    async def send(self, key: str, build: Callable[[], Awaitable[TxRequest]]) -> TxOutcome:
        """Settle ``key`` once. ``build`` is only awaited when a new transaction must be signed.

        Returns when an attempt is mined and confirmed; raises ``SettlementTxError`` (with the attempts)
        otherwise. A key that was finalized before returns its stored outcome without any RPC send.
        """
        async with self._keys.hold(key):
            return await self._send(key, build)

    async def _send(self, key: str, build: Callable[[], Awaitable[TxRequest]]) -> TxOutcome:
        record = await self.store.create_key(key, self.address)
        if record.sender != self.address.lower():
            raise InvalidInput(
                f"settlement key {key!r} was started by {record.sender}, not by this signer {self.address}"
            )
        if record.status is KeyStatus.FINALIZED:
            log.info("settlement %s already finalized in tx %s; nothing sent", key, record.final_tx_hash)
            return await self._outcome(record, already_settled=True)
        if record.status is KeyStatus.REVERTED:
            log.info("settlement %s reverted before (%s); starting again with a new nonce", key, record.error)
            await self.store.restart_key(key)
            record = await self._get(key)

        # 1. Recovery: is any stored attempt already mined?
        in_flight = await self._in_flight(key, record.nonce)
        if in_flight:
            found = await self._find_receipt(in_flight)
            if found is not None:
                log.info("settlement %s: attempt %s found mined on restart", key, found[0].attempt_no)
                return await self._confirm(key, found[0], found[1])

        # 2. Nonce: reserve, or reconcile the reserved one with the chain.
        chain_latest = await self.backend.transaction_count(self.address, "latest")
        if record.nonce is not None and chain_latest > record.nonce:
            # Spent, and by none of our stored attempts (none has a receipt): a foreign transaction.
            log.warning(
                "settlement %s: nonce %s was spent by a transaction this store does not know; taking a new nonce",
                key,
                record.nonce,
            )
            await self.store.release_nonce(key)
            in_flight = []
        request: TxRequest | None = None
        if not in_flight:
            # Built before a nonce is reserved: an output that cannot be settled must not hold a nonce.
            request = await build()
        chain_pending = await self.backend.transaction_count(self.address, "pending")
        nonce = await self.store.reserve_nonce(key, chain_latest=chain_latest, chain_pending=chain_pending)
        if chain_pending > nonce and not in_flight:
            log.warning(
                "settlement %s: the node has %s pending transactions from %s above nonce %s that this store "
                "does not know; nonce %s will replace one of them",
                key,
                chain_pending - chain_latest,
                self.address,
                nonce,
                nonce,
            )

        bumps = 0
        current: AttemptRecord
        if in_flight:
            current = in_flight[-1]
            log.info(
                "settlement %s: resuming attempt %s (nonce %s, tx %s): re-broadcasting it",
                key,
                current.attempt_no,
                current.nonce,
                current.tx_hash,
            )
            resent = await self._broadcast(key, current, resuming=True)
            if resent is not None:
                return resent
        else:
            assert request is not None
            try:
                current = await self._new_attempt(key, nonce, request, previous=None, multiplier=1.1)
            except Exception:
                if not await self._in_flight(key, nonce):
                    await self.store.release_nonce(key)  # nothing was stored: do not hold the nonce
                raise
            resent = await self._broadcast(key, current, resuming=False)
            if resent is not None:
                return resent

        # 3. Wait; bump on timeout within the budget and the cap.
        while True:
            status = (await self._attempt(key, current.attempt_no)).status
            if status is AttemptStatus.SENT:
                outcome = await self._wait(key, nonce)
                if outcome is not None:
                    return outcome
                await self.store.set_attempt_status(
                    key,
                    current.attempt_no,
                    AttemptStatus.TIMED_OUT,
                    error=f"timed out after {self.confirmation_timeout_s:g}s",
                )
            if bumps >= self.policy.max_fee_bumps:
                multiplier = current.gas_multiplier * 2
                raise FeeBumpsExhausted(
                    f"State update transaction failed after {len(await self.store.attempts(key))} fee attempts "
                    f"({bumps} / {self.policy.max_fee_bumps} max fee bumps used) over "
                    f"{self.confirmation_timeout_s:g}s confirmation windows. Fee attempts: "
                    f"{attempts_summary(await self.store.attempts(key))} Failure: Next required bump would be "
                    f"{multiplier:.2f}x, but fee bump retry budget is exhausted "
                    f"({bumps}/{self.policy.max_fee_bumps}). The last transaction stays in the mempool; "
                    "retrying the job resumes it.",
                    attempts=await self.attempts(key),
                    nonce=nonce,
                    tx_hash=current.tx_hash,
                )
            bumps += 1
            if request is None:
                request = await build()
            current = await self._new_attempt(
                key, nonce, request, previous=current, multiplier=current.gas_multiplier * 2
            )
            resent = await self._broadcast(key, current, resuming=False)
            if resent is not None:
                return resent

    # ----------------------------------------------------------------------------------------------

    async def _get(self, key: str) -> TxKeyRecord:
        record = await self.store.get_key(key)
        assert record is not None
        return record

    async def _attempt(self, key: str, attempt_no: int) -> AttemptRecord:
        for a in await self.store.attempts(key):
            if a.attempt_no == attempt_no:
                return a
        raise AssertionError(f"attempt {attempt_no} of {key} vanished from the tx store")

    async def _in_flight(self, key: str, nonce: int | None) -> list[AttemptRecord]:
        if nonce is None:
            return []
        return [a for a in await self.store.attempts(key) if a.status.is_in_flight and a.nonce == nonce]

    async def _outcome(self, record: TxKeyRecord, *, already_settled: bool) -> TxOutcome:
        assert record.final_tx_hash is not None and record.nonce is not None
        return TxOutcome(
            key=record.key,
            tx_hash=record.final_tx_hash,
            nonce=record.nonce,
            block_number=record.block_number,
            fee_paid_wei=record.fee_paid_wei,
            attempts=await self.attempts(record.key),
            already_settled=already_settled,
        )

    async def _fresh_fees(self) -> Fees:
        block = await self.backend.latest_block()
        if block.get("baseFeePerGas") is None:
            raise SettlementTxError(
                "the latest L1 block has no baseFeePerGas: the settlement layer must be post-London"
            )
        return self.policy.fresh_fees(int(block["baseFeePerGas"], 16), await self.backend.blob_base_fee())

    async def _new_attempt(
        self,
        key: str,
        nonce: int,
        request: TxRequest,
        *,
        previous: AttemptRecord | None,
        multiplier: float,
    ) -> AttemptRecord:
        fresh = await self._fresh_fees()
        if previous is None:
            fees = fresh
        else:
            prev = Fees(
                max_fee_per_gas=previous.max_fee_per_gas,
                max_priority_fee_per_gas=previous.max_priority_fee_per_gas,
                max_fee_per_blob_gas=previous.max_fee_per_blob_gas,
            )
            fees = self.policy.replacement_fees(fresh, prev)
        n_blobs = request.n_blobs
        liability = self.policy.liability(fees, n_blobs)
        if liability > self.policy.max_total_fee_wei:
            attempts = await self.store.attempts(key)
            pending = [a for a in attempts if a.status.is_in_flight]
            if not pending:
                await self.store.release_nonce(key)  # nothing holds the nonce: do not leave a gap behind
            log.error(
                "settlement %s: fee liability %s wei exceeds the hard cap %s wei; nothing signed",
                key,
                liability,
                self.policy.max_total_fee_wei,
            )
            raise FeeCapExceeded(
                f"L2 state update signed fee liability {liability} wei (max_fee_per_gas {fees.max_fee_per_gas}, "
                f"max_fee_per_blob_gas {fees.max_fee_per_blob_gas}, {n_blobs} blobs) exceeds configured hard cap "
                f"{self.policy.max_total_fee_wei} wei (--ethereum-l2-state-update-max-fee-wei). Nothing was signed"
                + (
                    f"; transaction {pending[-1].tx_hash} (nonce {nonce}) stays in the mempool and lands if fees fall"
                    if pending
                    else ""
                )
                + ". Retry when L1 fees fall (the job retry resumes this settlement), or raise the cap."
                + (f" Fee attempts: {attempts_summary(attempts)}" if attempts else ""),
                attempts=to_settlement_attempts(attempts),
                nonce=nonce,
                tx_hash=pending[-1].tx_hash if pending else None,
            )
        signed: SignedTx
        if request.sidecar is not None:
            signed = sign_blob_tx(
                private_key=self._key,
                chain_id=await self.chain_id(),
                nonce=nonce,
                to=request.to,
                data=request.data,
                gas_limit=self.policy.gas_limit,
                fees=fees,
                sidecar=request.sidecar,
            )
        else:
            signed = sign_dynamic_fee_tx(
                private_key=self._key,
                chain_id=await self.chain_id(),
                nonce=nonce,
                to=request.to,
                data=request.data,
                gas_limit=self.policy.gas_limit,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            )
            fees = Fees(
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                max_fee_per_blob_gas=0,
            )
        existing = await self.store.attempts(key)
        attempt_no = (existing[-1].attempt_no + 1) if existing else 1
        now = time.time()
        record = AttemptRecord(
            key=key,
            attempt_no=attempt_no,
            nonce=nonce,
            tx_hash=signed.tx_hash,
            gas_multiplier=multiplier,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            max_fee_per_blob_gas=fees.max_fee_per_blob_gas,
            status=AttemptStatus.SIGNED,
            error=None,
            raw=signed.raw,
            created_at=now,
            updated_at=now,
        )
        await self.store.add_attempt(record)
        log.info(
            "settlement %s: attempt %s signed and stored: nonce %s, tx %s, max fee %s gwei, priority %s gwei, "
            "blob fee cap %s wei, %s blobs (%s form)",
            key,
            attempt_no,
            nonce,
            signed.tx_hash,
            fees.max_fee_per_gas / GWEI,
            fees.max_priority_fee_per_gas / GWEI,
            fees.max_fee_per_blob_gas,
            n_blobs,
            request.sidecar.form.value if request.sidecar else "no sidecar",
        )
        self._crash_point("signed")
        return record

    async def _broadcast(self, key: str, attempt: AttemptRecord, *, resuming: bool) -> TxOutcome | None:
        """Send the stored attempt. Returns an outcome if it turns out to be mined already, else None
        (the attempt's status says whether it was accepted)."""
        if attempt.raw is None:
            raise SettlementTxError(f"settlement {key}: attempt {attempt.attempt_no} has no stored transaction")
        try:
            await self.backend.send_raw_transaction(attempt.raw)
        except EthRpcError as exc:
            if _is_already_known(exc):
                log.info("settlement %s: the node already has attempt %s", key, attempt.attempt_no)
            elif _is_nonce_too_low(exc):
                in_flight = await self._in_flight(key, attempt.nonce)
                found = await self._find_receipt(in_flight)
                if found is not None:
                    return await self._confirm(key, found[0], found[1])
                await self.store.set_attempt_status(
                    key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc)
                )
                raise SettlementTxError(
                    f"State update transaction submission failed: nonce {attempt.nonce} was spent by another "
                    f"transaction ({exc}). Retrying the job takes a new nonce.",
                    attempts=await self.attempts(key),
                    nonce=attempt.nonce,
                ) from exc
            elif resuming and attempt.status is not AttemptStatus.SIGNED:
                # The node accepted it before; it may refuse a re-broadcast (priced out, pool rules) while
                # still holding it. Wait on it as usual: the fee policy replaces it if it does not land.
                log.warning(
                    "settlement %s: re-broadcast of attempt %s refused (%s); it was accepted before, waiting on it",
                    key,
                    attempt.attempt_no,
                    exc,
                )
            elif _is_underpriced(exc):
                log.warning("settlement %s: attempt %s rejected as underpriced: %s", key, attempt.attempt_no, exc)
                await self.store.set_attempt_status(
                    key, attempt.attempt_no, AttemptStatus.REJECTED_UNDERPRICED, error=str(exc)
                )
                return None
            elif resuming:
                # Signed before a crash and never known to be accepted; refused now: replace it.
                log.warning("settlement %s: stored attempt %s refused: %s", key, attempt.attempt_no, exc)
                await self.store.set_attempt_status(
                    key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc)
                )
                return None
            else:
                await self.store.set_attempt_status(
                    key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc)
                )
                attempts = await self.store.attempts(key)
                if not any(a.status.is_in_flight for a in attempts):
                    await self.store.release_nonce(key)
                raise SettlementTxError(
                    f"State update transaction submission failed after {len(attempts)} fee attempts: {exc}. "
                    f"Fee attempts: {attempts_summary(attempts)}"
                    + (
                        " The earlier transaction will be reconciled on job retry."
                        if any(a.status.is_in_flight for a in attempts)
                        else ""
                    ),
                    attempts=to_settlement_attempts(attempts),
                    nonce=attempt.nonce,
                ) from exc
        self._crash_point("sent")
        await self.store.set_attempt_status(key, attempt.attempt_no, AttemptStatus.SENT)
        log.info("settlement %s: attempt %s broadcast (tx %s)", key, attempt.attempt_no, attempt.tx_hash)
        return None

    async def _find_receipt(self, attempts: list[AttemptRecord]) -> tuple[AttemptRecord, dict[str, Any]] | None:
        for a in attempts:
            if a.tx_hash is None:
                continue
            receipt = await self.backend.transaction_receipt(a.tx_hash)
            if receipt is not None and receipt.get("blockNumber") is not None:
                return a, receipt
        return None

    async def _wait(self, key: str, nonce: int) -> TxOutcome | None:
        """Poll all in-flight attempts of the nonce for a receipt during one confirmation window."""
        deadline = self._monotonic() + self.confirmation_timeout_s
        while True:
            found = await self._find_receipt(await self._in_flight(key, nonce))
            if found is not None:
                return await self._confirm(key, found[0], found[1])
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return None
            await self._sleep(min(self.poll_interval_s, remaining))

    async def _confirm(
        self, key: str, attempt: AttemptRecord, receipt: dict[str, Any], *, deadline: float | None = None
    ) -> TxOutcome:
        """A receipt was seen: revert → TxReverted; success → wait for the confirmations, then finalize."""
        block = int(receipt["blockNumber"], 16)
        if int(receipt.get("status", "0x1"), 16) != 1:
            error = f"Transaction {attempt.tx_hash} was rejected by the settlement layer (reverted in block {block})"
            self._crash_point("mined")
            await self.store.mark_reverted(key, attempt.attempt_no, error=error, block_number=block)
            log.error("settlement %s: %s", key, error)
            raise TxReverted(
                error + ". Check the program output, the fact registration and the contract's state.",
                attempts=await self.attempts(key),
                nonce=attempt.nonce,
                tx_hash=attempt.tx_hash,
            )
        if deadline is None:
            deadline = self._monotonic() + self.confirmation_timeout_s
        while True:
            latest = await self.backend.block_number()
            if latest - block >= self.confirmations:
                break
            if self._monotonic() >= deadline:
                # Mined but not yet deep enough: keep the key pending; a retry finds the receipt again.
                raise SettlementTxError(
                    f"settlement {key}: tx {attempt.tx_hash} is mined in block {block} but has "
                    f"{latest - block}/{self.confirmations} confirmations after the window; retry to finish",
                    attempts=await self.attempts(key),
                    nonce=attempt.nonce,
                    tx_hash=attempt.tx_hash,
                )
            await self._sleep(min(self.poll_interval_s, max(0.0, deadline - self._monotonic())))
            fresh = await self.backend.transaction_receipt(attempt.tx_hash or "")
            if fresh is None or fresh.get("blockNumber") is None:
                log.warning("settlement %s: tx %s left the chain (reorg); waiting again", key, attempt.tx_hash)
                return await self._reorged(key, attempt.nonce)
            receipt, block = fresh, int(fresh["blockNumber"], 16)
        fee = _fee_paid(receipt)
        self._crash_point("mined")
        await self.store.finalize(key, attempt.attempt_no, fee_paid_wei=fee, block_number=block)
        self._report_finalized(key, attempt.tx_hash, fee, receipt)
        log.info(
            "settlement %s finalized: tx %s (attempt %s, nonce %s) in block %s with %s confirmations, fee %s wei",
            key,
            attempt.tx_hash,
            attempt.attempt_no,
            attempt.nonce,
            block,
            self.confirmations,
            fee,
        )
        return await self._outcome(await self._get(key), already_settled=False)

    def _report_finalized(self, key: str, tx_hash: str | None, fee: int | None, receipt: dict[str, Any]) -> None:
        if self.on_finalized is None:
            return
        figures = FinalizedTx(
            key=key,
            tx_hash=tx_hash,
            fee_paid_wei=fee,
            gas_used=_quantity(receipt, "gasUsed"),
            effective_gas_price_wei=_quantity(receipt, "effectiveGasPrice"),
            blob_gas_used=_quantity(receipt, "blobGasUsed"),
            blob_gas_price_wei=_quantity(receipt, "blobGasPrice"),
        )
        try:
            self.on_finalized(figures)
        except Exception:
            log.exception("settlement %s: on_finalized failed", key)

    async def _reorged(self, key: str, nonce: int) -> TxOutcome:
        outcome = await self._wait(key, nonce)
        if outcome is None:
            raise SettlementTxError(
                f"settlement {key}: the mined transaction was reorged out and did not come back in time; retry",
                attempts=await self.attempts(key),
                nonce=nonce,
            )
        return outcome


def _fee_paid(receipt: dict[str, Any]) -> int | None:
    try:
        fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        if receipt.get("blobGasUsed") and receipt.get("blobGasPrice"):
            fee += int(receipt["blobGasUsed"], 16) * int(receipt["blobGasPrice"], 16)
        return fee
    except (KeyError, TypeError, ValueError):
        return None


def _quantity(receipt: dict[str, Any], name: str) -> int | None:
    """A receipt's hex quantity, or None when absent or malformed."""
    try:
        value = receipt.get(name)
        return None if value is None else int(value, 16)
    except (TypeError, ValueError):
        return None
