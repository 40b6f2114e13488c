"""The transaction manager in two processes sharing one SQLite database (each with its own connections): the
key guard on the database's named leases lets one send a key; the other is told to wait. Against the fake chain
of the unit tests (tests/unit/settlement/test_txmgr.py); the point here is the shared database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.domain.errors import BackendUnavailable
from madara_orchestrator.engine.lease import LeaseTiming, key_guard
from madara_orchestrator.engine.service import SystemClock
from madara_orchestrator.settlement.blob_tx import Sidecar
from madara_orchestrator.settlement.durable import SettlementKeyBusy
from madara_orchestrator.settlement.txmgr import FeePolicy, TxManager, TxRequest
from tests.helpers.fake_l1 import KEY, FakeChain, one_blob_sidecar, request_builder


@pytest.fixture(scope="module")
def sidecar() -> Sidecar:
    return one_blob_sidecar()


async def test_two_processes_sending_one_key_at_once_send_one_transaction(tmp_path: Path, sidecar: Sidecar) -> None:
    """Two managers, each with its own connections to the shared database (as two processes have): the key
    guard on the database's named leases lets one send; the other is told to wait (an outage, not a failure)."""
    chain = FakeChain()
    databases = [SqliteDatabase(tmp_path / "orchestrator.db") for _ in range(2)]
    tx_stores = [SqliteTxStore(tmp_path / "orchestrator.db") for _ in range(2)]
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
                store=tx_stores[n],
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
        return await request_builder(sidecar)()

    first = asyncio.create_task(managers[0].send("batch-1", slow_build))
    await building.wait()
    with pytest.raises(SettlementKeyBusy, match="another orchestrator process is sending it"):
        await managers[1].send("batch-1", request_builder(sidecar))
    assert issubclass(SettlementKeyBusy, BackendUnavailable), "waited out by the engine, no attempt spent"
    release.set()
    outcome = await first
    assert len(chain.sent) == 1 and outcome.nonce == 0
    again = await managers[1].send("batch-1", request_builder(sidecar))
    assert again.already_settled and len(chain.sent) == 1, "the guard is free again and nothing is resent"
    for database in databases:
        await database.close()
    for tx_store in tx_stores:
        tx_store.close()
