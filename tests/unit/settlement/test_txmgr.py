"""The transaction manager against a fake chain: replacement rules, fee policy, give-up, nonce reconciliation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.domain.settlement_tx import AttemptStatus, KeyStatus
from madara_orchestrator.settlement.blob_tx import Sidecar, SidecarForm, build_sidecar, decode_pooled_blob_tx
from madara_orchestrator.settlement.errors import FeeBumpsExhausted, FeeCapExceeded, SettlementTxError, TxReverted
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
        self.mine()
        return self.receipts.get(tx_hash)

    async def call(self, to: str, data: bytes, block: str = "latest") -> bytes:
        raise NotImplementedError


@pytest.fixture(scope="module")
def sidecar() -> Sidecar:
    return build_sidecar([bytes(31) + b"\x01" + bytes(131072 - 32)], SidecarForm.EIP4844)


def _manager(chain: FakeChain, tmp_path: Path, **policy: Any) -> TxManager:
    policy.setdefault("max_total_fee_wei", 10**24)
    return TxManager(
        backend=chain,
        store=SqliteTxStore(tmp_path / "tx.db"),
        private_key=KEY,
        policy=FeePolicy(**policy),
        confirmations=0,
        confirmation_timeout_s=0.05,
        poll_interval_s=0.005,
    )


def _build(sidecar: Sidecar) -> Any:
    async def build() -> TxRequest:
        return TxRequest(to="0x" + "22" * 20, data=b"\x50\x7e\xe5\x28", sidecar=sidecar)

    return build


def test_fee_policy_formulas() -> None:
    policy = FeePolicy()
    fresh = policy.fresh_fees(10 * GWEI, 7)
    assert fresh.max_fee_per_gas == 22 * GWEI + 200_000_000
    assert fresh.max_priority_fee_per_gas == 200_000_000
    assert fresh.max_fee_per_blob_gas == 8  # ceil(7 · 1.1)
    cheap = policy.fresh_fees(GWEI, 1)
    bumped = policy.replacement_fees(cheap, fresh)
    assert bumped.max_fee_per_gas == -(-fresh.max_fee_per_gas * 21 // 10)
    assert bumped.max_priority_fee_per_gas == 420_000_000
    assert bumped.max_fee_per_blob_gas == 17  # ceil(8 · 2.1)
    spiked = policy.fresh_fees(100 * GWEI, 1000)
    assert policy.replacement_fees(spiked, fresh).max_fee_per_gas == spiked.max_fee_per_gas
    assert policy.liability(fresh, 2) == 1_500_000 * fresh.max_fee_per_gas + 2 * 131072 * 8


async def test_an_underpriced_replacement_is_recorded_and_bumped_again(tmp_path: Path, sidecar: Sidecar) -> None:
    chain = FakeChain(replacement_factor=3.0)  # stricter than 2.1×: the first replacement is refused
    mgr = _manager(chain, tmp_path)
    original_mine = chain.mine

    def priced_out_until_third() -> None:
        chain.base_fee = 50 * GWEI if len(chain.sent) < 2 else GWEI
        original_mine()

    chain.mine = priced_out_until_third  # type: ignore[method-assign]
    outcome = await mgr.send("batch-1", _build(sidecar))
    assert [(a.attempt_no, a.status, f"{a.gas_multiplier:.2f}") for a in outcome.attempts] == [
        (1, "TimedOut", "1.10"),
        (2, "RejectedUnderpriced", "2.20"),
        (3, "Finalized", "4.40"),
    ]
    assert outcome.attempts[1].tx_hash is None and "underpriced" in (outcome.attempts[1].error or "")
    assert outcome.nonce == 0 and len(chain.sent) == 2
    assert outcome.fee_paid_wei == 100_000 * (GWEI + 4 * 200_000_000 * 21 * 21 // 400) + 131072


async def test_bump_budget_exhausted_leaves_the_tx_pending_and_says_so(tmp_path: Path, sidecar: Sidecar) -> None:
    chain = FakeChain(base_fee=GWEI)
    mgr = _manager(chain, tmp_path, max_fee_bumps=1)
    original_mine = chain.mine
    spiking = True

    def outbid_every_cap() -> None:  # the base fee keeps running away from whatever we sign
        if spiking and chain.pool:
            chain.base_fee = 10 * max(tx.max_fee for tx in chain.pool.values())
        original_mine()

    chain.mine = outbid_every_cap  # type: ignore[method-assign]
    build = _build(sidecar)
    with pytest.raises(FeeBumpsExhausted) as info:
        await mgr.send("batch-1", build)
    message = str(info.value)
    assert "fee bump retry budget is exhausted (1/1)" in message and "Next required bump would be 4.40x" in message
    assert "1. 1.10x attempted, nonce=0" in message and "2. 2.20x attempted, nonce=0" in message
    assert [a.status for a in info.value.attempts] == ["TimedOut", "TimedOut"]
    assert info.value.retryable and info.value.tx_hash == info.value.attempts[-1].tx_hash
    # Fees fall: the next call finds the pending transaction and lands it without signing a new one.
    spiking = False
    chain.base_fee = GWEI
    outcome = await mgr.send("batch-1", build)
    assert outcome.tx_hash == info.value.attempts[-1].tx_hash and len(outcome.attempts) == 2


async def test_hard_cap_signs_nothing_and_releases_an_unused_nonce(tmp_path: Path, sidecar: Sidecar) -> None:
    chain = FakeChain(base_fee=100 * GWEI)
    mgr = _manager(chain, tmp_path, max_total_fee_wei=10**15)
    with pytest.raises(FeeCapExceeded, match="exceeds configured hard cap 1000000000000000 wei") as info:
        await mgr.send("batch-1", _build(sidecar))
    assert info.value.attempts == [] and chain.sent == []
    key = await mgr.store.get_key("batch-1")
    assert key is not None and key.nonce is None  # no gap held for a transaction that does not exist


async def test_other_send_errors_fail_at_once(tmp_path: Path, sidecar: Sidecar) -> None:
    chain = FakeChain(send_errors=["insufficient funds for gas * price + value"])
    mgr = _manager(chain, tmp_path)
    with pytest.raises(
        SettlementTxError, match=r"submission failed after 1 fee attempts: .*insufficient funds"
    ) as info:
        await mgr.send("batch-1", _build(sidecar))
    assert [a.status for a in info.value.attempts] == ["SubmissionFailed"]
    outcome = await mgr.send("batch-1", _build(sidecar))  # funded again: same nonce, no gap
    assert outcome.nonce == 0 and [a.status for a in outcome.attempts] == ["SubmissionFailed", "Finalized"]


async def test_a_nonce_spent_by_a_foreign_transaction_is_replaced(tmp_path: Path, sidecar: Sidecar) -> None:
    chain = FakeChain()

    class Crash(Exception):
        pass

    def crash(point: str) -> None:
        if point == "signed":
            raise Crash

    mgr = _manager(chain, tmp_path)
    mgr._crash_hook = crash
    with pytest.raises(Crash):
        await mgr.send("batch-1", _build(sidecar))
    chain.foreign_tx()  # nonce 0 is spent by someone else while we were down
    mgr._crash_hook = None
    outcome = await mgr.send("batch-1", _build(sidecar))
    assert outcome.nonce == 1
    assert [(a.nonce, a.status) for a in outcome.attempts] == [(0, "Replaced"), (1, "Finalized")]


async def test_a_revert_is_final_for_the_attempt_and_a_retry_takes_the_next_nonce(
    tmp_path: Path, sidecar: Sidecar
) -> None:
    chain = FakeChain(reverting=True)
    mgr = _manager(chain, tmp_path)
    with pytest.raises(TxReverted, match="rejected by the settlement layer") as info:
        await mgr.send("batch-1", _build(sidecar))
    assert not info.value.retryable and [a.status for a in info.value.attempts] == ["Reverted"]
    assert (await mgr.store.get_key("batch-1")).status is KeyStatus.REVERTED  # type: ignore[union-attr]
    chain.reverting = False
    outcome = await mgr.send("batch-1", _build(sidecar))
    assert outcome.nonce == 1 and [a.status for a in outcome.attempts] == ["Reverted", "Finalized"]


@dataclass
class ReorgedIntoARevert(FakeChain):
    """The transaction is mined (success), then a reorg re-mines it in a later block where it reverts (the
    state it ran on changed): the receipt read while waiting for confirmations says so."""

    reads: int = 0

    async def transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        receipt = await super().transaction_receipt(tx_hash)
        if receipt is not None:
            self.reads += 1
            if self.reads > 1:
                receipt = {**receipt, "status": "0x0", "blockNumber": hex(int(receipt["blockNumber"], 16) + 1)}
        return receipt


async def test_a_receipt_that_turns_into_a_revert_while_confirming_is_a_revert_not_settled(
    tmp_path: Path, sidecar: Sidecar
) -> None:
    chain = ReorgedIntoARevert()
    mgr = _manager(chain, tmp_path)
    mgr.send_policy = dataclasses.replace(mgr.send_policy, confirmations=3, confirmation_timeout_s=5.0)
    with pytest.raises(TxReverted) as info:
        await mgr.send("batch-1", _build(sidecar))
    assert [a.status for a in info.value.attempts] == ["Reverted"]
    assert (await mgr.store.get_key("batch-1")).status is KeyStatus.REVERTED  # type: ignore[union-attr]


async def test_a_finalized_key_is_never_sent_again(tmp_path: Path, sidecar: Sidecar) -> None:
    chain = FakeChain()
    mgr = _manager(chain, tmp_path)
    first = await mgr.send("batch-1", _build(sidecar))

    async def must_not_build() -> TxRequest:
        raise AssertionError("a finalized key built a new transaction")

    again = await _manager(chain, tmp_path).send("batch-1", must_not_build)
    assert again.already_settled and again.tx_hash == first.tx_hash and len(chain.sent) == 1
    second = await mgr.send("batch-2", _build(sidecar))
    assert second.nonce == 1
    assert [a.status for a in await mgr.store.attempts("batch-2")] == [AttemptStatus.FINALIZED]


async def test_an_output_that_cannot_be_built_holds_no_nonce(tmp_path: Path, sidecar: Sidecar) -> None:
    chain = FakeChain()
    mgr = _manager(chain, tmp_path)

    async def broken() -> TxRequest:
        raise ValueError("y_0 value is different than expected")

    with pytest.raises(ValueError, match="y_0"):
        await mgr.send("batch-1", broken)
    key = await mgr.store.get_key("batch-1")
    assert key is not None and key.nonce is None
    assert (await mgr.send("batch-2", _build(sidecar))).nonce == 0  # no gap left behind by batch-1


async def test_two_processes_sending_one_key_at_once_send_one_transaction(tmp_path: Path, sidecar: Sidecar) -> None:
    """Two managers, each with its own connections to the shared database (as two processes have): the key
    guard on the database's named leases lets one send; the other is told to wait (an outage, not a failure)."""
    import asyncio

    from madara_orchestrator.backends.sqlite import SqliteStore
    from madara_orchestrator.backends.sqlite_db import SqliteDatabase
    from madara_orchestrator.domain.errors import BackendUnavailable
    from madara_orchestrator.engine.lease import LeaseTiming, key_guard
    from madara_orchestrator.engine.service import SystemClock
    from madara_orchestrator.settlement.durable import SettlementKeyBusy

    chain = FakeChain()
    databases = [SqliteDatabase(tmp_path / "orchestrator.db") for _ in range(2)]
    managers = []
    for n, database in enumerate(databases):
        await database.open()
        guard = key_guard(
            SqliteStore(database),
            f"instance-{n}",
            prefix="settlement:",
            timing=LeaseTiming(duration_s=30),
            clock=SystemClock(),
        )
        managers.append(
            TxManager(
                backend=chain,
                store=SqliteTxStore(tmp_path / "orchestrator.db"),
                private_key=KEY,
                policy=FeePolicy(max_total_fee_wei=10**24),
                confirmations=0,
                confirmation_timeout_s=0.05,
                poll_interval_s=0.005,
                key_guard=guard,
            )
        )
    building = asyncio.Event()
    release = asyncio.Event()

    async def slow_build() -> TxRequest:
        building.set()
        await release.wait()
        return await _build(sidecar)()

    first = asyncio.create_task(managers[0].send("batch-1", slow_build))
    await building.wait()
    with pytest.raises(SettlementKeyBusy, match="another orchestrator process is sending it"):
        await managers[1].send("batch-1", _build(sidecar))
    assert issubclass(SettlementKeyBusy, BackendUnavailable), "waited out by the engine, no attempt spent"
    release.set()
    outcome = await first
    assert len(chain.sent) == 1 and outcome.nonce == 0
    again = await managers[1].send("batch-1", _build(sidecar))
    assert again.already_settled and len(chain.sent) == 1, "the guard is free again and nothing is resent"
    for database in databases:
        await database.close()


async def test_a_key_behind_an_unmined_lower_nonce_is_not_replaced(tmp_path: Path, sidecar: Sidecar) -> None:
    """Several in flight: batch-2 (nonce 1) cannot be mined before batch-1 (nonce 0). While batch-1 is stuck,
    batch-2's confirmation window ends; replacing batch-2 then pays a higher fee (2.1x tip) for nothing and
    spends its bump budget (FeeBumpsExhausted: a failed job attempt) for batch-1's delay. It must wait for
    its turn instead (OutOfTurn: no attempt spent), and land on its first transaction once batch-1 does."""
    import asyncio

    from madara_orchestrator.domain.errors import OutOfTurn

    chain = FakeChain()
    original_mine = chain.mine
    stuck = True

    def mine_unless_stuck() -> None:  # nonce 0 does not land (e.g. dropped or priced out on its node)
        if stuck:
            chain.block += 1
            return
        original_mine()

    chain.mine = mine_unless_stuck  # type: ignore[method-assign]
    mgr = _manager(chain, tmp_path, max_fee_bumps=2)
    build = _build(sidecar)
    first = asyncio.create_task(mgr.send("batch-1", build))
    second = asyncio.create_task(mgr.send("batch-2", build, after="batch-1"))
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(outcomes[0], FeeBumpsExhausted), outcomes[0]  # the stuck one is replaced, as before
    behind = await mgr.store.attempts("batch-2")
    assert [(a.nonce, a.status) for a in behind] == [(1, AttemptStatus.SENT)], "batch-2 was replaced needlessly"
    assert isinstance(outcomes[1], OutOfTurn), outcomes[1]
    stuck = False
    done = await mgr.send("batch-1", build)
    then = await mgr.send("batch-2", build, after="batch-1")
    assert (done.nonce, then.nonce) == (0, 1)
    assert then.tx_hash == behind[0].tx_hash and len(then.attempts) == 1
