"""A fake L1 for the transaction manager's tests: one sender's pool keyed by nonce, mining one block per receipt
poll (or when told); the key, blob sidecar and request those tests sign, and a manager on the fake chain."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from madara_orchestrator.interfaces import TxStore
from madara_orchestrator.settlement.blob_tx import Sidecar, SidecarForm, build_sidecar, decode_pooled_blob_tx
from madara_orchestrator.settlement.eth_rpc import EthRpcError
from madara_orchestrator.settlement.txmgr import FeePolicy, TxManager, TxRequest

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
GWEI = 10**9


@dataclass
class PoolTx:
    tx_hash: str
    nonce: int
    max_fee: int
    priority: int
    blob_fee: int


@dataclass
class FakeChain:
    """One sender's view of an L1: a pool keyed by nonce, mining one block per receipt poll."""

    base_fee: int = GWEI
    blob_fee: int = 1
    replacement_factor: float = 2.0
    latest_nonce: int = 0
    block: int = 100
    pool: dict[int, PoolTx] = field(default_factory=dict)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    reverting: bool = False
    send_errors: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    mine_on_poll: bool = True
    """Mine a block at every receipt poll (else only ``mine()`` and ``mine_at_send`` mine)."""
    mine_at_send: bool = False
    """Mine a block just before the next broadcast is answered (once): a block that came a moment before it."""
    receipt_lag: int = 0
    """Receipt polls that answer null for a transaction already mined (counted in the nonce): a node, or the
    nodes behind one provider's URL, can serve a receipt a moment after the nonce counts its transaction."""
    hidden: dict[str, int] = field(default_factory=dict)

    async def chain_id(self) -> int:
        return 31337

    async def block_number(self) -> int:
        return self.block

    async def latest_block(self) -> dict[str, Any]:
        return {"number": hex(self.block), "baseFeePerGas": hex(self.base_fee)}

    async def blob_base_fee(self) -> int:
        return self.blob_fee

    async def transaction_count(self, address: str, block: str = "latest") -> int:
        if block == "pending":
            return max([self.latest_nonce, *[n + 1 for n in self.pool]])
        return self.latest_nonce

    async def send_raw_transaction(self, raw: bytes) -> str:
        if self.mine_at_send:
            self.mine_at_send = False
            self.mine()
        if self.send_errors:
            raise EthRpcError("eth_sendRawTransaction", -32000, self.send_errors.pop(0))
        tx = decode_pooled_blob_tx(raw)
        new = PoolTx(
            tx_hash=str(tx["tx_hash"]),
            nonce=int(tx["nonce"]),  # type: ignore[call-overload]
            max_fee=int(tx["max_fee_per_gas"]),  # type: ignore[call-overload]
            priority=int(tx["max_priority_fee_per_gas"]),  # type: ignore[call-overload]
            blob_fee=int(tx["max_fee_per_blob_gas"]),  # type: ignore[call-overload]
        )
        if new.nonce < self.latest_nonce:
            raise EthRpcError("eth_sendRawTransaction", -32000, "nonce too low")
        old = self.pool.get(new.nonce)
        if old is not None:
            if old.tx_hash == new.tx_hash:
                raise EthRpcError("eth_sendRawTransaction", -32000, "already known")
            f = self.replacement_factor
            if new.max_fee < f * old.max_fee or new.priority < f * old.priority or new.blob_fee < f * old.blob_fee:
                raise EthRpcError("eth_sendRawTransaction", -32000, "replacement transaction underpriced")
        self.pool[new.nonce] = new
        self.sent.append(new.tx_hash)
        return new.tx_hash

    def mine(self) -> None:
        self.block += 1
        tx = self.pool.get(self.latest_nonce)
        if tx and tx.max_fee >= self.base_fee and tx.blob_fee >= self.blob_fee:
            del self.pool[tx.nonce]
            self.latest_nonce += 1
            self.hidden[tx.tx_hash] = self.receipt_lag
            self.receipts[tx.tx_hash] = {
                "transactionHash": tx.tx_hash,
                "blockNumber": hex(self.block),
                "status": "0x0" if self.reverting else "0x1",
                "gasUsed": hex(100_000),
                "effectiveGasPrice": hex(self.base_fee + tx.priority),
                "blobGasUsed": hex(131072),
                "blobGasPrice": hex(self.blob_fee),
            }

    def foreign_tx(self) -> None:
        """Someone else spends the next nonce."""
        self.pool.pop(self.latest_nonce, None)
        self.latest_nonce += 1
        self.block += 1

    async def transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        if self.mine_on_poll:
            self.mine()
        if self.hidden.get(tx_hash, 0) > 0:
            self.hidden[tx_hash] -= 1
            return None
        return self.receipts.get(tx_hash)

    async def call(self, to: str, data: bytes, block: str = "latest") -> bytes:
        raise NotImplementedError


@functools.cache
def one_blob_sidecar() -> Sidecar:
    """An EIP-4844 sidecar of one blob (its KZG proof takes seconds: built once per test run)."""
    return build_sidecar([bytes(31) + b"\x01" + bytes(131072 - 32)], SidecarForm.EIP4844)


def request_builder(sidecar: Sidecar) -> Callable[[], Awaitable[TxRequest]]:
    """What ``TxManager.send`` builds its transaction with: a fixed call carrying ``sidecar``."""

    async def build() -> TxRequest:
        return TxRequest(to="0x" + "22" * 20, data=b"\x50\x7e\xe5\x28", sidecar=sidecar)

    return build


def make_manager(
    chain: FakeChain,
    store: TxStore,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **policy: Any,
) -> TxManager:
    """A manager sending for ``KEY`` on ``chain``, recording in ``store`` (a manager made again on the same store
    is the sender after a restart); no confirmations, a 50 ms confirmation window. ``policy``: ``FeePolicy``'s
    fields (a fee cap far above anything signed unless given); ``monotonic`` and ``sleep``, its clock."""
    policy.setdefault("max_total_fee_wei", 10**24)
    return TxManager(
        backend=chain,
        store=store,
        private_key=KEY,
        policy=FeePolicy(**policy),
        confirmations=0,
        confirmation_timeout_s=0.05,
        poll_interval_s=0.005,
        monotonic=monotonic,
        sleep=sleep,
    )
