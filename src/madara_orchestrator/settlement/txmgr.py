"""Ethereum settlement transactions through the durable send loop (``durable.DurableSender``), keyed by an
idempotency key (the batch).

Better than the original's (nonce re-read from the node per job, attempts kept in memory only): every
signed attempt is stored before it is broadcast, the nonce is reserved per key and reconciled with the node,
a restart looks for receipts before sending again (see ``durable``); two keys never share a nonce, and a
key never skips one.

Fees follow SPEC §8.2: fresh caps from the latest base fee and blob base fee, replacements at least 2.1×
the previous caps, at most ``max_fee_bumps`` replacements per call, and a hard cap on the signed fee
liability: above it nothing is signed and ``FeeCapExceeded`` says what to do; the transaction already in
the mempool keeps its place, and the next call resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from eth_keys.datatypes import PrivateKey

from madara_orchestrator.domain.chain import GAS_PER_BLOB
from madara_orchestrator.domain.cost import FeeSplit
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.eth_tx import UnsignedTx
from madara_orchestrator.domain.settlement_tx import (
    AttemptRecord,
    attempts_summary,
)
from madara_orchestrator.interfaces import EthBackend, TxSigner, TxStore
from madara_orchestrator.settlement.blob_tx import (
    Fees,
    Sidecar,
    pooled_blob_tx,
)
from madara_orchestrator.settlement.durable import (
    DurableSender,
    KeyGuard,
    Receipt,
    Refusal,
    SenderWords,
    SendPolicy,
    SignedAttempt,
    TxOutcome,
    to_settlement_attempts,
)
from madara_orchestrator.settlement.errors import FeeCapExceeded, SettlementTxError
from madara_orchestrator.settlement.eth_rpc import EthRpcError
from madara_orchestrator.settlement.signing import LocalKeySigner

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


__all__ = ["FeePolicy", "FinalizedTx", "TxManager", "TxOutcome", "TxRequest"]


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


def _refusal(exc: Exception) -> Refusal | None:
    if not isinstance(exc, EthRpcError):
        return None
    msg = exc.rpc_message.lower()
    if "already known" in msg or "alreadyknown" in msg or "known transaction" in msg or "already imported" in msg:
        return "already known"
    if "nonce too low" in msg or "noncetoolow" in msg or "nonce is too low" in msg:
        return "nonce too low"
    if "underpriced" in msg:
        return "underpriced"
    return "other"


ETHEREUM_WORDS = SenderWords(
    signer="signer",
    settled="finalized",
    settled_log="finalized",
    found="mined",
    revert_advice=". Check the program output, the fact registration and the contract's state.",
)


class EthereumChain:
    """The ``ChainBackend`` of an Ethereum L1: type-3 (blob) or type-2 transactions of one account, signed by
    its ``TxSigner`` (a local key, a remote signer or KMS); what the signer returns is what is stored."""

    words = ETHEREUM_WORDS

    def __init__(self, backend: EthBackend, signer: TxSigner, policy: FeePolicy, chain_id: int | None) -> None:
        self.backend = backend
        self.signer = signer
        self.address: str = signer.address
        self.sender: str = self.address
        self.policy = policy
        self._chain_id = chain_id

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = await self.backend.chain_id()
        return self._chain_id

    async def nonce(self, block: Literal["latest", "pending"]) -> int:
        return await self.backend.transaction_count(self.address, block)

    async def head(self) -> int:
        return await self.backend.block_number()

    async def broadcast(self, raw: bytes) -> None:
        await self.backend.send_raw_transaction(raw)

    def refusal(self, exc: Exception) -> Refusal | None:
        return _refusal(exc)

    async def nonce_lost(self, attempt: AttemptRecord, exc: Exception) -> str:
        return f"nonce {attempt.nonce} was spent by another transaction ({exc})"

    def submission_error(self, exc: Exception, attempts: list[AttemptRecord], nonce: int | None) -> SettlementTxError:
        in_flight = any(a.status.is_in_flight for a in attempts)
        return SettlementTxError(
            f"State update transaction submission failed after {len(attempts)} fee attempts: {exc}. "
            f"Fee attempts: {attempts_summary(attempts)}"
            + (" The earlier transaction will be reconciled on job retry." if in_flight else ""),
            attempts=to_settlement_attempts(attempts),
            nonce=nonce,
        )

    async def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt once mined (a receipt without a block is none)."""
        receipt = await self.backend.transaction_receipt(tx_hash)
        if receipt is None or receipt.get("blockNumber") is None:
            return None
        block = int(receipt["blockNumber"], 16)
        reverted = int(receipt.get("status", "0x1"), 16) != 1
        fee = _fee_paid(receipt)
        return Receipt(
            block_number=block,
            final=True,
            revert_error=(
                f"Transaction {tx_hash} was rejected by the settlement layer (reverted in block {block})"
                if reverted
                else None
            ),
            fee_paid=fee,
            fee_text=f"fee {fee} wei",
            raw=receipt,
            fee_split=FeeSplit.from_receipt(receipt),
        )

    async def _fees(self, previous: AttemptRecord | None) -> Fees:
        block = await self.backend.latest_block()
        if block.get("baseFeePerGas") is None:
            raise SettlementTxError(
                "the latest L1 block has no baseFeePerGas: the settlement layer must be post-London"
            )
        fresh = self.policy.fresh_fees(int(block["baseFeePerGas"], 16), await self.backend.blob_base_fee())
        if previous is None:
            return fresh
        prev = Fees(
            max_fee_per_gas=previous.max_fee_per_gas,
            max_priority_fee_per_gas=previous.max_priority_fee_per_gas,
            max_fee_per_blob_gas=previous.max_fee_per_blob_gas,
        )
        return self.policy.replacement_fees(fresh, prev)

    def _check_cap(self, key: str, nonce: int, fees: Fees, n_blobs: int, existing: list[AttemptRecord]) -> None:
        liability = self.policy.liability(fees, n_blobs)
        if liability <= self.policy.max_total_fee_wei:
            return
        pending = [a for a in existing if a.status.is_in_flight]
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
            + (f" Fee attempts: {attempts_summary(existing)}" if existing else ""),
            attempts=to_settlement_attempts(existing),
            nonce=nonce,
            tx_hash=pending[-1].tx_hash if pending else None,
        )

    async def sign(
        self, key: str, nonce: int, request: TxRequest, *, previous: AttemptRecord | None, existing: list[AttemptRecord]
    ) -> SignedAttempt:
        """Fresh fees (at least the replacement floor over ``previous``), the hard cap, the signature."""
        fees = await self._fees(previous)
        self._check_cap(key, nonce, fees, request.n_blobs, existing)
        blob = request.sidecar is not None
        if not blob:
            fees = Fees(
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                max_fee_per_blob_gas=0,
            )
        unsigned = UnsignedTx(
            chain_id=await self.chain_id(),
            nonce=nonce,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            max_fee_per_gas=fees.max_fee_per_gas,
            gas_limit=self.policy.gas_limit,
            to=request.to,
            data=request.data,
            max_fee_per_blob_gas=fees.max_fee_per_blob_gas if blob else None,
            blob_versioned_hashes=request.sidecar.versioned_hashes if request.sidecar else (),
        )
        signed = await self.signer.sign(unsigned)
        raw = pooled_blob_tx(signed.raw, request.sidecar) if request.sidecar else signed.raw
        form = request.sidecar.form.value if request.sidecar else "no sidecar"
        return SignedAttempt(
            tx_hash=signed.tx_hash,
            raw=raw,
            gas_multiplier=1.1 if previous is None else previous.gas_multiplier * 2,
            fees=fees,
            detail=(
                f"max fee {fees.max_fee_per_gas / GWEI} gwei, priority {fees.max_priority_fee_per_gas / GWEI} gwei, "
                f"blob fee cap {fees.max_fee_per_blob_gas} wei, {request.n_blobs} blobs ({form} form)"
            ),
        )


class TxManager(DurableSender[TxRequest]):
    """Sends blob transactions for idempotency keys: one ``send`` per key at a time, in this process by a
    lock and across processes by ``key_guard``. Nonces are reserved in the store's transaction."""

    def __init__(
        self,
        *,
        backend: EthBackend,
        store: TxStore,
        private_key: str | bytes | PrivateKey | None = None,
        signer: TxSigner | None = None,
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
        if (private_key is None) == (signer is None):
            raise InvalidInput("a TxManager signs with either a private key or a signer")
        if signer is None:
            assert private_key is not None
            signer = (
                LocalKeySigner(private_key)
                if isinstance(private_key, PrivateKey)
                else LocalKeySigner.from_hex(private_key)
            )
        self.policy = policy or FeePolicy()
        self.ethereum = EthereumChain(backend, signer, self.policy, chain_id)
        self.address = self.ethereum.address
        self.backend = backend
        self.confirmations = confirmations
        self.confirmation_timeout_s = confirmation_timeout_s
        self.poll_interval_s = poll_interval_s
        sending = SendPolicy(
            confirmation_timeout_s=confirmation_timeout_s,
            poll_interval_s=poll_interval_s,
            max_bumps=self.policy.max_fee_bumps,
            confirmations=confirmations,
        )
        super().__init__(
            self.ethereum, store, sending, monotonic=monotonic, sleep=sleep, crash_hook=crash_hook, key_guard=key_guard
        )
        self.on_finalized: Callable[[FinalizedTx], None] | None = None
        """Told each transaction this manager sees become final (metrics: gas and fees)."""

    def __repr__(self) -> str:
        return f"TxManager(address={self.address})"

    async def chain_id(self) -> int:
        return await self.ethereum.chain_id()

    def _report_finalized(self, key: str, attempt: AttemptRecord, receipt: Receipt) -> None:
        if self.on_finalized is None:
            return
        figures = FinalizedTx(
            key=key,
            tx_hash=attempt.tx_hash,
            fee_paid_wei=receipt.fee_paid,
            gas_used=_quantity(receipt.raw, "gasUsed"),
            effective_gas_price_wei=_quantity(receipt.raw, "effectiveGasPrice"),
            blob_gas_used=_quantity(receipt.raw, "blobGasUsed"),
            blob_gas_price_wei=_quantity(receipt.raw, "blobGasPrice"),
        )
        try:
            self.on_finalized(figures)
        except Exception:
            log.exception("settlement %s: on_finalized failed", key)


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
