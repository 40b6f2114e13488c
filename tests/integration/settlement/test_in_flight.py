"""Three settlements in flight on anvil (issue 20, item 1): the core contract (devnet's, which checks each
output's previous block against its state, the fact and every blob) applies them in nonce order.

- a crash at every step of the transaction manager (signed but not stored, stored but not broadcast,
  broadcast but not recorded, mined but not confirmed, confirmed but not recorded) of each of the three;
  in process (the crash ends every send, as the end of a process does), and a real kill -9 for two;
- a replacement (fee bump) of the lowest while the two above it wait in the pool;
- a revert of the middle one: its job fails with the reason, the third is not counted as settled, and
  both are sent again after it;
- an anvil reorg that drops mined settlements before their confirmations: seen, re-sent, not lost.

Each time: each batch settled once, in order, and the operator's nonces without a gap. One anvil for the
module; each test deploys its own contracts and has its own tx store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig
from madara_orchestrator.domain.errors import OutOfTurn
from madara_orchestrator.domain.settlement_tx import AttemptStatus, KeyStatus
from madara_orchestrator.settlement.durable import CRASH_POINTS, sending_key
from madara_orchestrator.settlement.errors import TxReverted
from madara_orchestrator.settlement.ethereum import EthereumSettlementClient
from tests.conftest import REPO_ROOT
from tests.helpers import anvil_pool
from tests.integration.settlement.conftest import OPERATOR_KEY, Batch, Devnet, anvil_binary, deploy, make_batch
from tests.integration.settlement.helpers import SteppedClock
from tests.integration.settlement.in_flight import (
    BATCHES,
    check_settled_once_in_order,
    in_flight_client,
    key,
    mining,
    settle,
    settle_all,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    node = anvil_pool.lease(
        AnvilConfig(hardfork="prague"), tmp_path_factory.mktemp("anvil") / "anvil.log", binary=anvil_binary()
    )
    yield node
    anvil_pool.give_back(node)


@dataclass
class Setup:
    devnet: Devnet
    batches: list[Batch]
    db: Path
    first_nonce: int

    def client(self, **kwargs: object) -> EthereumSettlementClient:
        return in_flight_client(
            self.devnet.anvil.url, self.devnet.contracts.core_contract, self.db, OPERATOR_KEY, **kwargs
        )  # type: ignore[arg-type]

    @property
    def outputs(self) -> list[tuple[list[int], list[bytes]]]:
        return [(b.program_output, b.blobs) for b in self.batches]


@pytest.fixture
async def setup(anvil: Anvil, tmp_path: Path) -> AsyncIterator[Setup]:
    devnet = await deploy(anvil)  # fresh contracts: the core contract at genesis
    await devnet.rpc.request("evm_setAutomine", [False])
    batches = [make_batch(block) for block in range(BATCHES)]
    async with mining(devnet.rpc, 0.1):
        for batch in batches:
            await devnet.register(batch)
    sender = in_flight_client(anvil.url, devnet.contracts.core_contract, tmp_path / "tx.db", OPERATOR_KEY)
    first_nonce = await devnet.rpc.transaction_count(sender.operator_address, "latest")
    await sender.aclose()
    yield Setup(devnet, batches, tmp_path / "tx.db", first_nonce)
    async with mining(devnet.rpc, 0.1):  # leave nothing in the pool for the next test
        await _until(lambda: _pool_empty(devnet))
    await devnet.rpc.request("evm_setAutomine", [True])
    await devnet.rpc.aclose()


class Crash(BaseException):
    """Raised by the crash hook: nothing in the sender catches it, every send ends (as in a kill -9)."""


async def finish_after_restart(s: Setup) -> None:
    client = s.client()
    async with mining(s.devnet.rpc):
        results = await settle_all(client, s.outputs)
    assert [r.nonce for r in results] == [s.first_nonce + i for i in range(BATCHES)], "consecutive nonces"
    store = client.txmgr.store
    for i in range(BATCHES):
        record = await store.get_key(key(i))
        assert record is not None and record.status is KeyStatus.FINALIZED
    sent = await check_settled_once_in_order(
        s.devnet.rpc, s.devnet.contracts.core_contract, client.operator_address, s.first_nonce
    )
    assert len(sent) == BATCHES, "one transaction per batch: nothing sent twice"
    await client.aclose()


@pytest.mark.parametrize("victim", range(BATCHES), ids=[f"batch{i + 1}" for i in range(BATCHES)])
@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_a_crash_at_any_step_of_any_of_three_pending(setup: Setup, point: str, victim: int) -> None:
    s = setup

    def crash(at: str) -> None:
        if at == point and sending_key() == key(victim):
            raise Crash(f"{point} of {key(victim)}")

    client = s.client(crash_hook=crash)
    async with mining(s.devnet.rpc):
        with pytest.raises(Crash):
            await settle_all(client, s.outputs)
    stored = await client.txmgr.store.attempts(key(victim))
    if point == "unstored":
        assert stored == [], "signed, never stored: nothing can have been sent"
    else:
        assert len(stored) == 1 and stored[0].status is (
            AttemptStatus.SIGNED if point in ("signed", "sent") else AttemptStatus.SENT
        )
    await client.aclose()
    await finish_after_restart(s)


def _worker(s: Setup, tmp_path: Path, crash_at: str, crash_key: str | None) -> subprocess.Popen[str]:
    batches = tmp_path / "batches.json"
    batches.write_text(json.dumps([{"program_output": po, "blobs": [b.hex() for b in bl]} for po, bl in s.outputs]))
    cmd = [
        sys.executable,
        "-m",
        "tests.integration.settlement.settle_many_worker",
        "--rpc-url",
        s.devnet.anvil.url,
        "--core",
        s.devnet.contracts.core_contract,
        "--db",
        str(s.db),
        "--batches",
        str(batches),
    ]
    if crash_key is not None:
        cmd += ["--crash-at", crash_at, "--crash-key", crash_key]
    env = {**os.environ, "SETTLE_WORKER_PRIVATE_KEY": OPERATOR_KEY}
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("point", "victim"), [("sent", 1), ("included", 2)], ids=["sent-batch2", "mined-batch3"])
async def test_kill_9_with_three_pending(setup: Setup, tmp_path: Path, point: str, victim: int) -> None:
    s = setup
    proc = _worker(s, tmp_path, point, key(victim))
    async with mining(s.devnet.rpc):
        await asyncio.to_thread(proc.wait, 120)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    store = SqliteTxStore(s.db)
    assert (await store.attempts(key(victim)))[0].status is (
        AttemptStatus.SIGNED if point == "sent" else AttemptStatus.SENT
    )
    store.close()
    await finish_after_restart(s)


async def test_a_replacement_of_the_lowest_keeps_the_order(setup: Setup) -> None:
    """Batch 1's transaction waits past its window while batches 2 and 3 wait in the pool behind it: it is
    replaced (2.1x every fee cap, blob fee included, as blob pools require 2x) with the same nonce, and all
    three land in order."""
    s = setup
    clock = SteppedClock()
    client = s.client(timeout_s=20.0, monotonic=clock)
    store = client.txmgr.store
    first = asyncio.create_task(settle(client, *s.outputs[0], 0))
    await _until(lambda: _sent(store, key(0), 1))
    clock.advance(15)  # batch 1's window is three quarters gone; the others' start now
    rest = [asyncio.create_task(settle(client, *s.outputs[i], i)) for i in (1, 2)]
    await _until(lambda: _sent(store, key(2), 1))
    pool = await s.devnet.rpc.request("txpool_content")
    assert len(next(iter(pool["pending"].values()))) == BATCHES, "three pending nonces"
    clock.advance(6)  # only batch 1's window ends
    await _until(lambda: _sent(store, key(0), 2))
    async with mining(s.devnet.rpc):
        results = await asyncio.gather(first, *rest)
    attempts = [await store.attempts(key(i)) for i in range(BATCHES)]
    assert [len(a) for a in attempts] == [2, 1, 1], "only the lowest was replaced"
    old, new = attempts[0]
    assert new.nonce == old.nonce == s.first_nonce and new.max_fee_per_blob_gas >= 2 * old.max_fee_per_blob_gas
    assert results[0].tx_hash == new.tx_hash and [a.status for a in attempts[0]] == [
        AttemptStatus.TIMED_OUT,
        AttemptStatus.FINALIZED,
    ]
    sent = await check_settled_once_in_order(
        s.devnet.rpc, s.devnet.contracts.core_contract, client.operator_address, s.first_nonce
    )
    assert len(sent) == BATCHES
    await client.aclose()


async def test_a_revert_of_the_middle_one(setup: Setup, anvil: Anvil) -> None:
    """Batch 2 reverts (its fact is not registered): its job fails with the reason; batch 3, which chains
    on batch 2's roots, reverts with it and is not counted as settled but told to wait for batch 2; once
    batch 2 can settle both are sent again, batch 2 first."""
    async with mining(setup.devnet.rpc, 0.1):
        devnet = await deploy(anvil)  # a core contract whose registry lacks batch 2's fact
        for i in (0, 2):
            await devnet.register(setup.batches[i])
    s = Setup(devnet, setup.batches, setup.db, setup.first_nonce)
    s.first_nonce = await devnet.rpc.transaction_count(s.client().operator_address, "latest")
    client = s.client()
    tasks = [asyncio.create_task(settle(client, *s.outputs[i], i)) for i in range(BATCHES)]
    async with mining(devnet.rpc):
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert outcomes[0].nonce == s.first_nonce  # type: ignore[union-attr]
    assert isinstance(outcomes[1], TxReverted) and "rejected by the settlement layer" in str(outcomes[1])
    assert isinstance(outcomes[2], OutOfTurn) and "sent again after StateTransition-2" in str(outcomes[2])
    store = client.txmgr.store
    assert [(await store.get_key(key(i))).status for i in range(BATCHES)] == [  # type: ignore[union-attr]
        KeyStatus.FINALIZED,
        KeyStatus.REVERTED,
        KeyStatus.REVERTED,
    ]
    assert await client.last_settled_block() == 0, "batch 3 is not counted as settled"

    async with mining(devnet.rpc, 0.1):
        await devnet.register(s.batches[1])  # the operator fixes batch 2, then retries its job
    async with mining(devnet.rpc):
        third = asyncio.create_task(settle(client, *s.outputs[2], 2))  # batch 3's job comes back first
        await _until(lambda: _status(store, key(2), KeyStatus.PENDING))  # restarted: waits for batch 2
        assert len(await store.attempts(key(2))) == 1, "nothing signed for batch 3 before batch 2"
        second = await settle(client, *s.outputs[1], 1)
        final = await third
    assert final.nonce == second.nonce + 1 == s.first_nonce + 4
    sent = await check_settled_once_in_order(
        devnet.rpc, devnet.contracts.core_contract, client.operator_address, s.first_nonce
    )
    assert len(sent) == 5, "batch 1, the two reverted, batch 2 and 3 again"
    await client.aclose()


async def test_an_l1_reorg_dropping_mined_settlements_is_seen_and_they_are_sent_again(setup: Setup) -> None:
    """With 3 confirmations: the three land in one block, then anvil rolls that block back before they
    are confirmed. Their senders see the receipts gone, broadcast the stored transactions
    again, and the batches land again, in order, once each."""
    s = setup
    rpc = s.devnet.rpc
    included: set[str | None] = set()

    def seen(point: str) -> None:  # not a crash: tells when a sender waits for confirmations
        if point == "included":
            included.add(sending_key())

    client = s.client(confirmations=3, crash_hook=seen)
    store = client.txmgr.store
    tasks = [asyncio.create_task(settle(client, *s.outputs[i], i)) for i in range(BATCHES)]
    await _until(lambda: _sent(store, key(2), 1))
    await rpc.request("evm_mine")  # the three in one block
    await _until(lambda: _true(len(included) == BATCHES))  # each sender saw its receipt: 0 of 3 confirmations
    pool = await rpc.request("txpool_content")
    assert not pool["pending"], "all three mined"
    mined = await rpc.block_number()
    receipts = [await rpc.transaction_receipt((await store.attempts(key(i)))[0].tx_hash or "") for i in range(3)]
    assert all(r is not None for r in receipts)
    await rpc.request("anvil_rollback", [1])  # drop the newest block: what it held is unconfirmed
    assert await rpc.block_number() == mined - 1
    dropped = [i for i, r in enumerate(receipts) if r is not None and int(r["blockNumber"], 16) == mined]
    assert dropped, "the rollback dropped a settlement"
    async with mining(rpc, 0.2):
        results = await asyncio.gather(*tasks)
    assert [r.nonce for r in results] == [s.first_nonce + i for i in range(BATCHES)]
    sent = await check_settled_once_in_order(
        rpc, s.devnet.contracts.core_contract, client.operator_address, s.first_nonce
    )
    assert len(sent) == BATCHES, "re-sent, not signed anew"
    for i in dropped:
        attempts = await store.attempts(key(i))
        assert len(attempts) == 1, (i, attempts)
        (attempt,) = attempts
        assert attempt.status is AttemptStatus.FINALIZED and results[i].tx_hash == attempt.tx_hash
    await client.aclose()


async def test_a_restart_with_three_pending_whose_middle_one_the_node_dropped(setup: Setup) -> None:
    """Three broadcast, none mined, the process ends; meanwhile the node drops the middle one from its pool
    (and, as anvil does, the one above it). The restart re-broadcasts the stored transactions: each batch once, in
    order, no nonce gap, nothing signed anew."""
    s = setup
    client = s.client()
    store = client.txmgr.store
    tasks = [asyncio.create_task(settle(client, *s.outputs[i], i)) for i in range(BATCHES)]
    await _until(lambda: _sent(store, key(2), 1))
    for task in tasks:  # the end of the process: nothing mined yet
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()
    middle = (await store.attempts(key(1)))[0].tx_hash
    await s.devnet.rpc.request("anvil_dropTransaction", [middle])
    pool = await s.devnet.rpc.request("txpool_content")
    pooled = {tx["hash"] for by_nonce in pool["pending"].values() for tx in by_nonce.values()}
    pooled |= {tx["hash"] for by_nonce in pool["queued"].values() for tx in by_nonce.values()}
    lowest = (await store.attempts(key(0)))[0].tx_hash
    assert middle not in pooled and lowest in pooled, "the node dropped the middle one (anvil: and what follows it)"
    await finish_after_restart(s)
    for i in range(BATCHES):
        assert len(await SqliteTxStore(s.db).attempts(key(i))) == 1, "re-broadcast, not signed anew"


async def _sent(store: SqliteTxStore, k: str, attempt_no: int) -> bool:
    return any(a.attempt_no == attempt_no and a.status is AttemptStatus.SENT for a in await store.attempts(k))


async def _true(value: bool) -> bool:
    return value


async def _pool_empty(devnet: Devnet) -> bool:
    return bool(await devnet.rpc.request("txpool_status") == {"pending": "0x0", "queued": "0x0"})


async def _status(store: SqliteTxStore, k: str, status: KeyStatus) -> bool:
    record = await store.get_key(k)
    return record is not None and record.status is status


async def _has_receipt(client: EthereumSettlementClient, k: str) -> bool:
    attempts = await client.txmgr.store.attempts(k)
    return bool(attempts) and await client.rpc.transaction_receipt(attempts[0].tx_hash or "") is not None


async def _until(check: object, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)
