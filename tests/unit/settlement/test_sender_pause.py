"""A paused settlement signs no new transaction (issue 21, item 2): the durable sender asks its ``hold``
before the first attempt and before a replacement; an attempt already broadcast is still followed to its
receipt, without a new signature."""

from __future__ import annotations

import pytest

from madara_orchestrator.backends.memory import MemoryTxStore
from madara_orchestrator.domain.errors import SettlementPaused
from madara_orchestrator.settlement.blob_tx import Sidecar
from tests.helpers.fake_l1 import GWEI, FakeChain, make_manager, one_blob_sidecar, request_builder

WHY = "settlement paused by ops@pager since 2026-01-01 00:00:00 UTC: incident 42"


@pytest.fixture(scope="module")
def sidecar() -> Sidecar:
    return one_blob_sidecar()


class Hold:
    def __init__(self) -> None:
        self.why: str | None = None

    async def __call__(self) -> str | None:
        return self.why


async def test_nothing_is_built_signed_or_sent_while_paused(sidecar: Sidecar) -> None:
    chain = FakeChain()
    mgr = make_manager(chain, MemoryTxStore())
    hold = Hold()
    mgr.hold = hold
    built: list[int] = []
    build = request_builder(sidecar)

    async def counting_build() -> object:
        built.append(1)
        return await build()

    hold.why = WHY
    with pytest.raises(SettlementPaused, match="no new transaction is signed while settlement paused by ops@pager"):
        await mgr.send("batch-1", counting_build)  # type: ignore[arg-type]
    assert chain.sent == [] and built == []
    assert await mgr.store.attempts("batch-1") == []
    record = await mgr.store.get_key("batch-1")
    assert record is None or record.nonce is None, "no nonce held by a paused settlement"
    hold.why = None
    outcome = await mgr.send("batch-1", counting_build)  # type: ignore[arg-type]
    assert len(chain.sent) == 1 and outcome.tx_hash == chain.sent[0] and outcome.nonce == 0


async def test_a_broadcast_transaction_is_followed_to_its_receipt_but_not_replaced(
    sidecar: Sidecar,
) -> None:
    chain = FakeChain(base_fee=GWEI)
    mgr = make_manager(chain, MemoryTxStore(), max_fee_bumps=3)
    hold = Hold()
    mgr.hold = hold
    original_mine, original_send = chain.mine, chain.send_raw_transaction
    spiking = True

    def outbid_every_cap() -> None:  # the base fee runs away from what was signed: it would be replaced
        if spiking and chain.pool:
            chain.base_fee = 10 * max(tx.max_fee for tx in chain.pool.values())
        original_mine()

    async def pause_once_sent(raw: bytes) -> str:
        tx_hash = await original_send(raw)
        hold.why = WHY  # the operator pauses while the first attempt is in the mempool
        return tx_hash

    chain.mine = outbid_every_cap  # type: ignore[method-assign]
    chain.send_raw_transaction = pause_once_sent  # type: ignore[method-assign]
    build = request_builder(sidecar)
    with pytest.raises(SettlementPaused):
        await mgr.send("batch-1", build)
    assert len(chain.sent) == 1, "no replacement signed while paused"
    first = chain.sent[0]
    # Still paused; fees fall: the stored attempt is re-broadcast unchanged and followed to its receipt.
    spiking = False
    chain.base_fee = GWEI
    outcome = await mgr.send("batch-1", build)
    assert outcome.tx_hash == first and chain.sent == [first]
    assert [a.attempt_no for a in outcome.attempts] == [1]
