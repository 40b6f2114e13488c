"""The settlement process SIGKILLed at each step (after signing, after sending, before recording the
outcome): on restart the block is settled exactly once and the operator's nonce sequence has no gap.

One anvil for the module (its first blob transaction loads its KZG setup: seconds); each test deploys its own
contracts and settles with its own funded operator key, whose nonces start at 0."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from eth_account import Account

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig
from madara_orchestrator.domain.settlement_tx import AttemptStatus, KeyStatus
from tests.conftest import REPO_ROOT
from tests.helpers import anvil_pool
from tests.integration.settlement.conftest import Batch, Devnet, anvil_binary, deploy, make_batch
from tests.integration.settlement.helpers import make_client, operator_transactions, state_updates

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    node = anvil_pool.lease(
        AnvilConfig(hardfork="prague"), tmp_path_factory.mktemp("anvil") / "anvil.log", binary=anvil_binary()
    )
    yield node
    anvil_pool.give_back(node)


@pytest.fixture
async def devnet(anvil: Anvil) -> AsyncIterator[Devnet]:
    devnet = await deploy(anvil)  # fresh contracts: the core contract at genesis
    yield devnet
    # As the next test expects, even after a failure: no transaction of this test left pending, automine on.
    await devnet.rpc.request("anvil_dropAllTransactions", [])
    await devnet.rpc.request("evm_setAutomine", [True])
    await devnet.rpc.aclose()


async def _fresh_operator(devnet: Devnet, name: str) -> str:
    """A private key of its own for one test (nonce 0 on the shared anvil), funded with 1,000 ether."""
    key = "0x" + hashlib.sha256(f"crash-recovery operator {name}".encode()).hexdigest()
    address = Account.from_key(key).address
    await devnet.rpc.request("anvil_setBalance", [address, hex(1000 * 10**18)])
    return key


def _worker(
    devnet: Devnet, db: Path, batch: Batch, batch_file: Path, crash_at: str | None, operator: str
) -> subprocess.Popen[str]:
    batch_file.write_text(json.dumps({"program_output": batch.program_output, "blobs": [b.hex() for b in batch.blobs]}))
    cmd = [
        sys.executable,
        "-m",
        "tests.integration.settlement.settle_worker",
        "--rpc-url",
        devnet.anvil.url,
        "--core",
        devnet.contracts.core_contract,
        "--db",
        str(db),
        "--key",
        f"batch-{batch.index}",
        "--batch",
        str(batch_file),
    ]
    if crash_at:
        cmd += ["--crash-at", crash_at]
    env = {**os.environ, "SETTLE_WORKER_PRIVATE_KEY": operator}
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def _finish(proc: subprocess.Popen[str], devnet: Devnet | None = None, timeout_s: float = 60.0) -> str:
    """Wait for the worker; with ``devnet`` given, mine a block every 0.2 s meanwhile (automine off)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while proc.poll() is None:
        if loop.time() > deadline:
            proc.kill()
            raise AssertionError("settle worker did not finish")
        if devnet is not None:
            await devnet.rpc.request("evm_mine")
        await asyncio.sleep(0.2)
    out, err = proc.communicate()
    assert proc.returncode == 0, f"worker failed ({proc.returncode}): {err[-3000:]}"
    return out


@pytest.mark.parametrize(
    ("crash_at", "automine"),
    [("signed", True), ("sent", True), ("sent", False), ("mined", True)],
    ids=["after-signing", "after-sending-mined-at-once", "after-sending-still-in-mempool", "before-recording"],
)
async def test_settlement_killed_at_each_step_settles_exactly_once_without_nonce_gap(
    devnet: Devnet, tmp_path: Path, crash_at: str, automine: bool
) -> None:
    operator = await _fresh_operator(devnet, f"{crash_at} {automine}")
    db = tmp_path / "orchestrator.db"
    batch = make_batch(0)
    await devnet.register(batch)
    if not automine:
        await devnet.rpc.request("evm_setAutomine", [False])

    crashed = _worker(devnet, db, batch, tmp_path / "batch-0.json", crash_at, operator)
    crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL

    store = SqliteTxStore(db)
    stored = await store.attempts("batch-0")
    # Stored before it was sent; recorded as Sent only once the node took it; never recorded as final.
    expected = AttemptStatus.SENT if crash_at == "mined" else AttemptStatus.SIGNED
    assert [a.status for a in stored] == [expected]
    if crash_at == "signed":
        assert await devnet.rpc.transaction_receipt(stored[0].tx_hash or "") is None
        pool = await devnet.rpc.request("txpool_content")
        assert not pool["pending"], "the crashed worker sent its transaction"
    if not automine:
        pool = await devnet.rpc.request("txpool_content")
        assert len(next(iter(pool["pending"].values()))) == 1

    restarted = _worker(devnet, db, batch, tmp_path / "batch-0.json", None, operator)
    result = json.loads(await _finish(restarted, None if automine else devnet))
    assert result["tx_hash"] == stored[0].tx_hash  # the stored transaction, not a second one
    assert result["nonce"] == 0
    assert [a[:2] for a in result["attempts"]] == [[1, "Finalized"]]
    key = await store.get_key("batch-0")
    assert key is not None and key.status is KeyStatus.FINALIZED

    # The next batch follows with the next nonce, and a third run of batch 0 sends nothing.
    if not automine:
        await devnet.rpc.request("evm_setAutomine", [True])
    client = make_client(devnet.anvil.url, devnet.contracts.core_contract, db, operator)
    following = make_batch(1)
    await devnet.register(following)
    assert (
        await client.update_state_with_blobs(following.program_output, following.blobs, idempotency_key="batch-1")
    ).nonce == 1
    again = json.loads(await _finish(_worker(devnet, db, batch, tmp_path / "batch-0.json", None, operator)))
    assert again["already_settled"] is True

    assert [u[1] for u in await state_updates(devnet.rpc, devnet.contracts.core_contract)] == [0, 1]
    sent = await operator_transactions(devnet.rpc, client.operator_address)
    assert [int(t["nonce"], 16) for t in sent] == [0, 1]
    assert await client.last_settled_block() == 1
    store.close()
    await client.aclose()
