"""The transaction manager against a fake chain: replacement rules, fee policy, give-up, nonce reconciliation."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from madara_orchestrator.backends.memory import MemoryTxStore
from madara_orchestrator.domain.errors import OutOfTurn
from madara_orchestrator.domain.settlement_tx import AttemptStatus, KeyStatus
from madara_orchestrator.settlement.blob_tx import Sidecar
from madara_orchestrator.settlement.errors import FeeBumpsExhausted, FeeCapExceeded, SettlementTxError, TxReverted
from madara_orchestrator.settlement.txmgr import FeePolicy, TxRequest
from tests.helpers.fake_l1 import GWEI, FakeChain, make_manager, one_blob_sidecar, request_builder


@pytest.fixture(scope="module")
def sidecar() -> Sidecar:
    return one_blob_sidecar()


@pytest.fixture
def store() -> MemoryTxStore:
    """The settlement tx store; a manager made again on it is the sender after a restart."""
    return MemoryTxStore()


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


async def test_an_underpriced_replacement_is_recorded_and_bumped_again(store: MemoryTxStore, sidecar: Sidecar) -> None:
    chain = FakeChain(replacement_factor=3.0)  # stricter than 2.1×: the first replacement is refused
    mgr = make_manager(chain, store)
    original_mine = chain.mine

    def priced_out_until_third() -> None:
        chain.base_fee = 50 * GWEI if len(chain.sent) < 2 else GWEI
        original_mine()

    chain.mine = priced_out_until_third  # type: ignore[method-assign]
    outcome = await mgr.send("batch-1", request_builder(sidecar))
    assert [(a.attempt_no, a.status, f"{a.gas_multiplier:.2f}") for a in outcome.attempts] == [
        (1, "TimedOut", "1.10"),
        (2, "RejectedUnderpriced", "2.20"),
        (3, "Finalized", "4.40"),
    ]
    assert outcome.attempts[1].tx_hash is None and "underpriced" in (outcome.attempts[1].error or "")
    assert outcome.nonce == 0 and len(chain.sent) == 2
    assert outcome.fee_paid_wei == 100_000 * (GWEI + 4 * 200_000_000 * 21 * 21 // 400) + 131072


async def test_bump_budget_exhausted_leaves_the_tx_pending_and_says_so(store: MemoryTxStore, sidecar: Sidecar) -> None:
    chain = FakeChain(base_fee=GWEI)
    mgr = make_manager(chain, store, max_fee_bumps=1)
    original_mine = chain.mine
    spiking = True

    def outbid_every_cap() -> None:  # the base fee keeps running away from whatever we sign
        if spiking and chain.pool:
            chain.base_fee = 10 * max(tx.max_fee for tx in chain.pool.values())
        original_mine()

    chain.mine = outbid_every_cap  # type: ignore[method-assign]
    build = request_builder(sidecar)
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


async def test_hard_cap_signs_nothing_and_releases_an_unused_nonce(store: MemoryTxStore, sidecar: Sidecar) -> None:
    chain = FakeChain(base_fee=100 * GWEI)
    mgr = make_manager(chain, store, max_total_fee_wei=10**15)
    with pytest.raises(FeeCapExceeded, match="exceeds configured hard cap 1000000000000000 wei") as info:
        await mgr.send("batch-1", request_builder(sidecar))
    assert info.value.attempts == [] and chain.sent == []
    key = await mgr.store.get_key("batch-1")
    assert key is not None and key.nonce is None  # no gap held for a transaction that does not exist


async def test_other_send_errors_fail_at_once(store: MemoryTxStore, sidecar: Sidecar) -> None:
    chain = FakeChain(send_errors=["insufficient funds for gas * price + value"])
    mgr = make_manager(chain, store)
    with pytest.raises(
        SettlementTxError, match=r"submission failed after 1 fee attempts: .*insufficient funds"
    ) as info:
        await mgr.send("batch-1", request_builder(sidecar))
    assert [a.status for a in info.value.attempts] == ["SubmissionFailed"]
    outcome = await mgr.send("batch-1", request_builder(sidecar))  # funded again: same nonce, no gap
    assert outcome.nonce == 0 and [a.status for a in outcome.attempts] == ["SubmissionFailed", "Finalized"]


async def _down_at(point: str, chain: FakeChain, store: MemoryTxStore, sidecar: Sidecar) -> None:
    """Send batch-1 until ``point`` of the manager, where it stops as at the end of its process."""

    class Down(Exception):
        pass

    def crash(at: str) -> None:
        if at == point:
            raise Down

    mgr = make_manager(chain, store)
    mgr._crash_hook = crash
    with pytest.raises(Down):
        await mgr.send("batch-1", request_builder(sidecar))


def _stepped_clock() -> tuple[list[float], dict[str, Any]]:
    """A clock that moves only when the manager sleeps: its time, and the manager's ``monotonic``/``sleep``."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    return now, {"monotonic": lambda: now[0], "sleep": sleep}


async def test_a_nonce_spent_by_a_foreign_transaction_is_replaced(store: MemoryTxStore, sidecar: Sidecar) -> None:
    chain = FakeChain()
    await _down_at("signed", chain, store, sidecar)
    chain.foreign_tx()  # nonce 0 is spent by someone else while we were down
    outcome = await make_manager(chain, store).send("batch-1", request_builder(sidecar))
    assert outcome.nonce == 1
    assert [(a.nonce, a.status) for a in outcome.attempts] == [(0, "Replaced"), (1, "Finalized")]


async def test_a_nonce_counted_before_its_receipt_is_served_is_our_own(
    store: MemoryTxStore, sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    """Broadcast, then down before it was recorded; mined meanwhile. At the restart the node counts the nonce
    as spent but serves the receipt two polls later (anvil does, for a moment; so can the nodes behind one
    provider's URL): the key settles on its own transaction, nothing new is signed."""
    chain = FakeChain(mine_on_poll=False, receipt_lag=2)
    await _down_at("sent", chain, store, sidecar)
    chain.mine()  # it was mined while we were down
    assert chain.latest_nonce == 1
    _, clock = _stepped_clock()
    with caplog.at_level("INFO", logger="madara_orchestrator.settlement.durable"):
        outcome = await make_manager(chain, store, **clock).send("batch-1", request_builder(sidecar))
    assert outcome.nonce == 0 and [(a.nonce, a.status) for a in outcome.attempts] == [(0, "Finalized")]
    assert len(chain.sent) == 1, "nothing signed again"
    assert "receipt of attempt 1 came" in caplog.text and "does not know" not in caplog.text


async def test_a_resent_attempt_refused_for_its_nonce_finds_its_late_receipt(
    store: MemoryTxStore, sidecar: Sidecar
) -> None:
    """At the restart the stored attempt is not mined yet; a block comes just before its re-broadcast, which
    the node refuses as "nonce too low" while it still answers null for the receipt: the key settles on it."""
    chain = FakeChain(mine_on_poll=False, receipt_lag=2)
    await _down_at("sent", chain, store, sidecar)
    chain.mine_at_send = True
    _, clock = _stepped_clock()
    outcome = await make_manager(chain, store, **clock).send("batch-1", request_builder(sidecar))
    assert chain.latest_nonce == 1 and len(chain.sent) == 1
    assert outcome.nonce == 0 and [(a.nonce, a.status) for a in outcome.attempts] == [(0, "Finalized")]


async def test_a_receipt_later_than_the_grace_is_found_by_the_retry(store: MemoryTxStore, sidecar: Sidecar) -> None:
    """The receipt comes after the grace: the call fails (its nonce spent, it cannot tell by whom), the refused
    attempt stays a candidate, and the job's retry finds its receipt and settles on it, nothing signed again."""
    chain = FakeChain(mine_on_poll=False, receipt_lag=4)
    await _down_at("sent", chain, store, sidecar)
    chain.mine_at_send = True
    _, clock = _stepped_clock()
    mgr = make_manager(chain, store, **clock)
    with pytest.raises(SettlementTxError, match="nonce 0 was spent by another transaction"):
        await mgr.send("batch-1", request_builder(sidecar))
    assert [a.status for a in await store.attempts("batch-1")] == [AttemptStatus.SUBMISSION_FAILED]
    outcome = await mgr.send("batch-1", request_builder(sidecar))
    assert outcome.nonce == 0 and [(a.nonce, a.status) for a in outcome.attempts] == [(0, "Finalized")]
    assert len(chain.sent) == 1, "nothing signed again"


async def test_a_spent_nonce_without_our_receipt_is_released_after_the_grace(
    store: MemoryTxStore, sidecar: Sidecar
) -> None:
    """The grace is bounded: a nonce whose receipt never appears (a foreign spend) is released and a new
    transaction signed, after the manager looked for its own receipt for two polls."""
    chain = FakeChain(mine_on_poll=False)
    await _down_at("signed", chain, store, sidecar)
    chain.foreign_tx()
    chain.mine_on_poll = True
    polls: list[str] = []
    chain_receipt = chain.transaction_receipt

    async def counted(tx_hash: str) -> dict[str, Any] | None:
        polls.append(tx_hash)
        return await chain_receipt(tx_hash)

    chain.transaction_receipt = counted  # type: ignore[method-assign]
    now, clock = _stepped_clock()
    restarted = make_manager(chain, store, **clock)
    assert restarted.send_policy.spent_nonce_grace_s == pytest.approx(0.01)  # two polls of 5 ms
    outcome = await restarted.send("batch-1", request_builder(sidecar))
    assert outcome.nonce == 1
    assert [(a.nonce, a.status) for a in outcome.attempts] == [(0, "Replaced"), (1, "Finalized")]
    assert polls.count(outcome.attempts[0].tx_hash) == 4, "at the restart, then at 0, 5 and 10 ms of the grace"
    assert now[0] == pytest.approx(0.01), "the grace, and no more"


async def test_a_revert_is_final_for_the_attempt_and_a_retry_takes_the_next_nonce(
    store: MemoryTxStore, sidecar: Sidecar
) -> None:
    chain = FakeChain(reverting=True)
    mgr = make_manager(chain, store)
    with pytest.raises(TxReverted, match="rejected by the settlement layer") as info:
        await mgr.send("batch-1", request_builder(sidecar))
    assert not info.value.retryable and [a.status for a in info.value.attempts] == ["Reverted"]
    assert (await mgr.store.get_key("batch-1")).status is KeyStatus.REVERTED  # type: ignore[union-attr]
    chain.reverting = False
    outcome = await mgr.send("batch-1", request_builder(sidecar))
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
    store: MemoryTxStore, sidecar: Sidecar
) -> None:
    chain = ReorgedIntoARevert()
    mgr = make_manager(chain, store)
    mgr.send_policy = dataclasses.replace(mgr.send_policy, confirmations=3, confirmation_timeout_s=5.0)
    with pytest.raises(TxReverted) as info:
        await mgr.send("batch-1", request_builder(sidecar))
    assert [a.status for a in info.value.attempts] == ["Reverted"]
    assert (await mgr.store.get_key("batch-1")).status is KeyStatus.REVERTED  # type: ignore[union-attr]


async def test_a_finalized_key_is_never_sent_again(store: MemoryTxStore, sidecar: Sidecar) -> None:
    chain = FakeChain()
    mgr = make_manager(chain, store)
    first = await mgr.send("batch-1", request_builder(sidecar))

    async def must_not_build() -> TxRequest:
        raise AssertionError("a finalized key built a new transaction")

    again = await make_manager(chain, store).send("batch-1", must_not_build)
    assert again.already_settled and again.tx_hash == first.tx_hash and len(chain.sent) == 1
    second = await mgr.send("batch-2", request_builder(sidecar))
    assert second.nonce == 1
    assert [a.status for a in await mgr.store.attempts("batch-2")] == [AttemptStatus.FINALIZED]


async def test_an_output_that_cannot_be_built_holds_no_nonce(store: MemoryTxStore, sidecar: Sidecar) -> None:
    chain = FakeChain()
    mgr = make_manager(chain, store)

    async def broken() -> TxRequest:
        raise ValueError("y_0 value is different than expected")

    with pytest.raises(ValueError, match="y_0"):
        await mgr.send("batch-1", broken)
    key = await mgr.store.get_key("batch-1")
    assert key is not None and key.nonce is None
    assert (await mgr.send("batch-2", request_builder(sidecar))).nonce == 0  # no gap left behind by batch-1


async def test_a_key_behind_an_unmined_lower_nonce_is_not_replaced(store: MemoryTxStore, sidecar: Sidecar) -> None:
    """Several in flight: batch-2 (nonce 1) cannot be mined before batch-1 (nonce 0). While batch-1 is stuck,
    batch-2's confirmation window ends; replacing batch-2 then pays a higher fee (2.1x tip) for nothing and
    spends its bump budget (FeeBumpsExhausted: a failed job attempt) for batch-1's delay. It must wait for
    its turn instead (OutOfTurn: no attempt spent), and land on its first transaction once batch-1 does."""
    chain = FakeChain()
    original_mine = chain.mine
    stuck = True

    def mine_unless_stuck() -> None:  # nonce 0 does not land (e.g. dropped or priced out on its node)
        if stuck:
            chain.block += 1
            return
        original_mine()

    chain.mine = mine_unless_stuck  # type: ignore[method-assign]
    mgr = make_manager(chain, store, max_fee_bumps=2)
    build = request_builder(sidecar)
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
