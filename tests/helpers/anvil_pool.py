"""anvil nodes reused from one test to the next within a pytest process, reset to their genesis in between.

anvil loads its KZG trusted setup at the first blob transaction it sees: 3.5 to 5 s of CPU, in every anvil
the tests start (about thirty in a run, a tenth of the suite's CPU). A test that wants a plain anvil (a
hardfork, the development accounts, automine: ``AnvilConfig(hardfork=...)`` and nothing else) leases one
here; when it gives it back, the node is reset with ``anvil_reset`` (a fresh chain from genesis: block 0,
the accounts' balances and nonces, no code, an empty pool; the next base fee, which the reset keeps and
makes the genesis block's, is first set back to the first genesis block's) and automine is switched on
again. It is kept only if it then looks exactly as it did when it was started: the node's environment
(base fee, gas price and limit, chain id, hardfork), the genesis block's base fee, gas limit and blob gas,
the next block's base fee and blob base fee (``eth_feeHistory``), automine, an empty pool; else, or if it
stopped, it is stopped and the next lease starts a new one. A test that needs anything
else (a genesis file, interval or no mining, another chain id, a node it stops or restarts) starts its own.

The reused node keeps its port and its log (the first lease's ``anvil.log``; later leases get a link to it).
Each pytest process (each xdist worker) has its own pool, stopped at the end of the session.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig

log = logging.getLogger(__name__)

KEEP_PER_CONFIG = 2
"""Idle nodes kept per configuration (a test uses at most two at once)."""

_lock = threading.Lock()
_idle: dict[AnvilConfig, list[Anvil]] = {}
_fresh: dict[int, dict[str, Any]] = {}
"""Each pooled node's ``fingerprint`` when it had just started, by its process id."""
_logs: dict[int, Path] = {}


def poolable(config: AnvilConfig) -> bool:
    return config == AnvilConfig(hardfork=config.hardfork)


def fingerprint(node: Anvil) -> dict[str, Any]:
    """What a test may change and ``anvil_reset`` must have put back (timestamps aside)."""
    info = node.rpc("anvil_nodeInfo")
    head = node.rpc("eth_getBlockByNumber", ["latest", False])
    return {
        "environment": info["environment"],
        "hardfork": info["hardFork"],
        "transaction order": info["transactionOrder"],
        "head": head["number"],
        "base fee": head.get("baseFeePerGas"),
        "gas limit": head["gasLimit"],
        "excess blob gas": head.get("excessBlobGas"),
        "automine": node.rpc("anvil_getAutomine"),
        "pool": node.rpc("txpool_status"),
        "fee history": node.rpc("eth_feeHistory", ["0x1", "latest", []]),
    }


def lease(config: AnvilConfig, log_path: Path, *, binary: str | None = None) -> Anvil:
    """A running anvil for ``config``: an idle pooled one reset to genesis, else a new one (``log_path``
    gets its output, or a link to the reused node's log)."""
    if poolable(config):
        with _lock:
            idle = _idle.get(config, [])
            node = idle.pop() if idle else None
        if node is not None:
            with contextlib.suppress(OSError):
                if not log_path.exists():
                    log_path.symlink_to(_logs[node.pid or 0])
            log.info("anvil at %s reused (reset to genesis)", node.url)
            return node
    node = Anvil(config, binary=binary, log_path=log_path).start()
    if poolable(config) and node.pid is not None:
        _fresh[node.pid] = fingerprint(node)
        _logs[node.pid] = log_path
    return node


def give_back(node: Anvil) -> None:
    """Reset ``node`` and keep it for the next lease, or stop it (not pooled, stopped, or not as new)."""
    pid = node.pid
    fresh = _fresh.get(pid or 0)
    if fresh is None or not node.running:
        node.stop()
        return
    try:
        # anvil_reset keeps the fee market's next base fee, which becomes the new genesis block's
        node.rpc("anvil_setNextBlockBaseFeePerGas", [fresh["base fee"]])
        node.rpc("anvil_reset", [])
        node.rpc("evm_setAutomine", [True])
        now = fingerprint(node)
    except Exception as exc:
        log.info("anvil at %s not reused: its reset failed: %s", node.url, exc)
        now = None
    if now != fresh:
        if now is not None:
            changed = {k: (fresh[k], now[k]) for k in fresh if fresh[k] != now.get(k)}
            log.info("anvil at %s not reused: not as new after its reset: %s", node.url, changed)
        _forget(node)
        return
    with _lock:
        idle = _idle.setdefault(node.config, [])
        if len(idle) < KEEP_PER_CONFIG:
            idle.append(node)
            return
    _forget(node)


def _forget(node: Anvil) -> None:
    _fresh.pop(node.pid or 0, None)
    _logs.pop(node.pid or 0, None)
    node.stop()


@contextlib.contextmanager
def leased(config: AnvilConfig, log_path: Path, *, binary: str | None = None) -> Iterator[Anvil]:
    node = lease(config, log_path, binary=binary)
    try:
        yield node
    finally:
        give_back(node)


def stop_all() -> None:
    """Stop every idle node (the end of the session)."""
    with _lock:
        nodes = [node for idle in _idle.values() for node in idle]
        _idle.clear()
    for node in nodes:
        _forget(node)
