"""anvil nodes reused from one test to the next within a pytest process, reset to their genesis in between.

anvil loads its KZG trusted setup at the first blob transaction it sees: 3.5 to 5 s of CPU, in every anvil
the tests start (about thirty in a run, a tenth of the suite's CPU). A test that wants a plain anvil (a
hardfork, the development accounts, automine: ``AnvilConfig(hardfork=...)`` and nothing else) leases one
here. When it gives it back, the node is reset with ``anvil_reset`` (a fresh chain from genesis: block 0, the
accounts' balances and nonces, no code, an empty pool), automine is switched on again and its clock set to
now (the reset dates the new chain from the node's first start). ``anvil_reset`` makes the node's next base
fee the new genesis block's, so that fee is first set back to the first genesis block's. The node is kept
only if it then looks as it did when it was new (``fingerprint``: the node's environment, the genesis block,
the pending block's base fee and excess blob gas, the next base and blob fees, automine, an empty pool, its
clock), and it is checked again when it is leased (still running, at block 0, its pool empty: nothing left
from the last test wrote to it meanwhile); else it is stopped and a new node is started.

A reset does not undo everything a test could do to a node: impersonated accounts, snapshots, a timestamp
interval, the coinbase, the logging flag and the chain id stay. No test that leases a node does any of these
(a test that needs another kind of node, or one it stops, restarts or reconfigures, starts its own), and a
changed chain id shows in the fingerprint.

The reused node keeps its port and its log (the first lease's ``anvil.log``; later leases get a link to it).
Each pytest process (each xdist worker) has its own pool, stopped at the end of the session.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig

log = logging.getLogger(__name__)

KEEP_PER_CONFIG = 2
"""Idle nodes kept per configuration (a test uses at most two at once)."""

CLOCK_SLACK_S = 30
"""How far a node's pending block may be dated from now (a busy machine answers late)."""

_lock = threading.Lock()
_idle: dict[AnvilConfig, list[Anvil]] = {}
_fresh: dict[Anvil, dict[str, Any]] = {}
"""Each pooled node's ``fingerprint`` from when it had just started."""
_logs: dict[Anvil, Path] = {}


def poolable(config: AnvilConfig) -> bool:
    return config == AnvilConfig(hardfork=config.hardfork)


def fingerprint(node: Anvil) -> dict[str, Any]:
    """What a test may change and the reset must have put back (timestamps aside: ``clock_is_now``)."""
    info = node.rpc("anvil_nodeInfo")
    head = node.rpc("eth_getBlockByNumber", ["latest", False])
    pending = node.rpc("eth_getBlockByNumber", ["pending", False])
    return {
        "environment": info["environment"],
        "hardfork": info["hardFork"],
        "transaction order": info["transactionOrder"],
        "head": head["number"],
        "base fee": head.get("baseFeePerGas"),
        "gas limit": head["gasLimit"],
        "excess blob gas": head.get("excessBlobGas"),
        "pending base fee": pending.get("baseFeePerGas"),
        "pending excess blob gas": pending.get("excessBlobGas"),
        "automine": node.rpc("anvil_getAutomine"),
        "pool": node.rpc("txpool_status"),
        "fee history": node.rpc("eth_feeHistory", ["0x1", "latest", []]),
    }


def clock_is_now(node: Anvil) -> bool:
    pending = node.rpc("eth_getBlockByNumber", ["pending", False])
    return abs(int(pending["timestamp"], 16) - time.time()) <= CLOCK_SLACK_S


def as_new(node: Anvil) -> bool:
    """Still running, at block 0 with an empty pool: what give_back left (checked again at lease)."""
    try:
        return (
            node.running
            and node.rpc("eth_blockNumber") == "0x0"
            and node.rpc("txpool_status") == {"pending": "0x0", "queued": "0x0"}
        )
    except Exception:  # a node that does not answer is not reused
        return False


def lease(config: AnvilConfig, log_path: Path, *, binary: str | None = None) -> Anvil:
    """A running anvil for ``config``: an idle pooled one reset to genesis, else a new one (``log_path``
    gets its output, or a link to the reused node's log)."""
    while poolable(config):
        with _lock:
            idle = _idle.get(config, [])
            node = idle.pop() if idle else None
        if node is None:
            break
        if not as_new(node):
            log.info("anvil at %s not reused: it changed or stopped while idle", node.url if node.running else "?")
            _forget(node)
            continue
        with contextlib.suppress(OSError):
            if not log_path.exists():
                log_path.symlink_to(_logs[node])
        log.info("anvil at %s reused (reset to genesis)", node.url)
        return node
    node = Anvil(config, binary=binary, log_path=log_path).start()
    if poolable(config):
        try:
            _fresh[node] = fingerprint(node)
        except BaseException:
            node.stop()
            raise
        _logs[node] = log_path
    return node


def give_back(node: Anvil) -> None:
    """Reset ``node`` and keep it for the next lease, or stop it (not pooled, stopped, or not as new)."""
    fresh = _fresh.get(node)
    if fresh is None or not node.running:
        _forget(node)
        return
    try:
        node.rpc("anvil_setNextBlockBaseFeePerGas", [fresh["base fee"]])
        node.rpc("anvil_reset", [])
        node.rpc("evm_setAutomine", [True])
        node.rpc("evm_setTime", [int(time.time())])
        now = fingerprint(node)
        clock = clock_is_now(node)
    except Exception as exc:  # any failure: the node is not reused
        log.info("anvil at %s not reused: its reset failed: %s", node.url, exc)
        _forget(node)
        return
    if now != fresh or not clock:
        changed = {k: (fresh[k], now.get(k)) for k in fresh if fresh[k] != now.get(k)}
        log.info("anvil at %s not reused: not as new after its reset: %s (clock now: %s)", node.url, changed, clock)
        _forget(node)
        return
    with _lock:
        idle = _idle.setdefault(node.config, [])
        if len(idle) < KEEP_PER_CONFIG:
            idle.append(node)
            return
    _forget(node)


def _forget(node: Anvil) -> None:
    _fresh.pop(node, None)
    _logs.pop(node, None)
    node.stop()


def stop_all() -> None:
    """Stop every idle node (the end of the session)."""
    with _lock:
        nodes = [node for idle in _idle.values() for node in idle]
        _idle.clear()
    for node in nodes:
        _forget(node)
