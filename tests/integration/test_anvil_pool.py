"""The tests' anvil pool (tests/helpers/anvil_pool.py): a node given back is reset to genesis and reused only
when it then looks as a new node does; anything else starts a new one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig
from tests.helpers import anvil_pool
from tests.integration.settlement.conftest import anvil_binary

SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
"""anvil's first development account."""
OTHER = "0x" + "11" * 20


@pytest.fixture(autouse=True)
def own_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty pool for each test (not the session's), stopped after it."""
    monkeypatch.setattr(anvil_pool, "_idle", {})
    monkeypatch.setattr(anvil_pool, "_fresh", {})
    monkeypatch.setattr(anvil_pool, "_logs", {})
    yield
    anvil_pool.stop_all()


def lease(tmp_path: Path, name: str, config: AnvilConfig | None = None) -> Anvil:
    return anvil_pool.lease(config or AnvilConfig(hardfork="prague"), tmp_path / name, binary=anvil_binary())


def send(node: Anvil) -> dict[str, Any]:
    """Send a transfer and return the block that holds it (automine: mined as it comes)."""
    tx_hash = node.rpc("eth_sendTransaction", [{"from": SENDER, "to": OTHER, "value": "0x1000"}])
    deadline = time.monotonic() + 10
    while (receipt := node.rpc("eth_getTransactionReceipt", [tx_hash])) is None:
        assert time.monotonic() < deadline, "not mined (automine)"
        time.sleep(0.01)  # anvil's answer may come before its block is visible
    return dict(node.rpc("eth_getBlockByNumber", [receipt["blockNumber"], False]))


def state(node: Anvil) -> dict[str, Any]:
    return {
        "block": node.rpc("eth_blockNumber"),
        "nonce": node.rpc("eth_getTransactionCount", [SENDER, "pending"]),
        "balance": node.rpc("eth_getBalance", [SENDER, "latest"]),
        "other": node.rpc("eth_getBalance", [OTHER, "latest"]),
        "code": node.rpc("eth_getCode", [OTHER, "latest"]),
        "fees": node.rpc("eth_feeHistory", ["0x1", "latest", []]),
    }


def test_a_used_node_comes_back_as_a_new_one(tmp_path: Path) -> None:
    node = lease(tmp_path, "first.log")
    new = state(node)
    first_block = send(node)
    for _ in range(4):
        send(node)
    node.rpc("evm_setAutomine", [False])
    node.rpc("eth_sendTransaction", [{"from": SENDER, "to": OTHER, "value": "0x1"}])  # left in the pool
    node.rpc("anvil_setBalance", [SENDER, "0x1"])
    node.rpc("anvil_setCode", [OTHER, "0x6000"])
    assert state(node) != new
    anvil_pool.give_back(node)

    again = lease(tmp_path, "second.log")
    assert again is node, "reused"
    assert state(again) == new
    assert anvil_pool.clock_is_now(again), "its clock is set to now, not to its first start"
    assert send(again)["baseFeePerGas"] == first_block["baseFeePerGas"], "the next block is priced as on a new node"
    assert (tmp_path / "second.log").resolve() == (tmp_path / "first.log").resolve(), "the log is linked"
    anvil_pool.give_back(again)


def test_a_node_the_reset_cannot_make_new_is_stopped(tmp_path: Path) -> None:
    node = lease(tmp_path, "a.log")
    node.rpc("anvil_setChainId", [4242])
    anvil_pool.give_back(node)
    assert not node.running, "its chain id stays changed after a reset: not reused"
    other = lease(tmp_path, "b.log")
    assert other is not node and other.rpc("eth_chainId") == hex(31337)
    anvil_pool.give_back(other)


def test_a_stopped_node_and_a_node_of_another_kind_are_not_pooled(tmp_path: Path) -> None:
    node = lease(tmp_path, "a.log")
    node.stop()
    anvil_pool.give_back(node)
    assert lease(tmp_path, "b.log") is not node

    timed = lease(tmp_path, "c.log", AnvilConfig(hardfork="prague", block_time_s=0.5))
    anvil_pool.give_back(timed)
    assert not timed.running, "only plain nodes (a hardfork, automine, the defaults) are kept"

    osaka = lease(tmp_path, "d.log", AnvilConfig(hardfork="osaka"))
    anvil_pool.give_back(osaka)
    prague = lease(tmp_path, "e.log")
    assert prague is not osaka and prague.config.hardfork == "prague"
    assert lease(tmp_path, "f.log", AnvilConfig(hardfork="osaka")) is osaka
    anvil_pool.give_back(prague)
    anvil_pool.give_back(osaka)


def test_a_node_written_to_while_idle_is_not_leased_again(tmp_path: Path) -> None:
    node = lease(tmp_path, "a.log")
    anvil_pool.give_back(node)
    send(node)  # something of the last test's still at work after the give-back
    other = lease(tmp_path, "b.log")
    assert other is not node and not node.running
    assert other.rpc("eth_blockNumber") == "0x0"
    anvil_pool.give_back(other)
