"""An embedded orchestrator against a devnet sequencer served over HTTP, for end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madara_orchestrator.cli.compose import EmbeddedStack, build_embedded_stack
from madara_orchestrator.cli.devnet import LocalL1, LocalL2, deploy_local_l1, devnet_settings, start_local_l2
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.devnet.adapters import DevnetSnosRunner
from madara_orchestrator.devnet.anvil import AnvilConfig
from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.server.app import create_app
from madara_orchestrator.server.background import BackgroundServer
from tests.helpers import anvil_pool


@dataclass
class Pipeline:
    sequencer: DevnetSequencer
    rpc: BackgroundServer
    stack: EmbeddedStack
    api: BackgroundServer
    l1: LocalL1 | None = None
    l2: LocalL2 | None = None

    async def close(self) -> None:
        await self.sequencer.stop_producing()
        await self.stack.runtime.stop()
        await self.api.stop()
        await self.rpc.stop()
        await self.stack.close()
        if self.l1 is not None:
            await asyncio.to_thread(anvil_pool.give_back, self.l1.anvil)
        if self.l2 is not None:
            await self.l2.stop()


async def start_pipeline(
    tmp_path: Path,
    *,
    blocks: int,
    snos_failures: dict[int, int] | None = None,
    admin_token: str | None = None,
    overrides: dict[str, Any] | None = None,
    l1_hardfork: str | None = None,
    tx_per_block: int = 3,
    l3: bool = False,
    sequencer: DevnetSequencer | None = None,
) -> Pipeline:
    """With ``l1_hardfork`` settlement goes to anvil (leased from tests/helpers/anvil_pool.py) instead of the
    devnet ledger.

    By default every block is its own aggregator batch (``max_batch_size`` 1) with light traffic: these
    tests are about the engine, one job per stage and block. Batching tests pass their own limits.
    With ``l3`` the chain is an L3 settling on the Starknet double (every block its own SNOS batch).
    ``sequencer``: the devnet to serve (it produces blocks up to ``blocks``), instead of a new one."""
    sequencer = sequencer or DevnetSequencer(block_time_s=0.02, tx_per_block=tx_per_block)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    base = devnet_settings(tmp_path / "data", rpc.url, port=0)
    l1 = None
    if l1_hardfork is not None:
        (tmp_path / "data").mkdir(parents=True, exist_ok=True)
        l1 = await leased_local_l1(l1_hardfork, tmp_path / "data" / "anvil.log")
    l2 = await start_local_l2() if l3 else None
    layer = {"max_blocks_per_snos_batch": 1, **l2.overrides} if l2 else {}
    settings = Settings(
        {**base.values, "max_batch_size": 1, **(l1.overrides if l1 else {}), **layer, **(overrides or {})}
    )
    snos = (lambda rpc: DevnetSnosRunner(rpc, failures=snos_failures)) if snos_failures else None
    stack = await build_embedded_stack(settings, snos=snos)
    api = BackgroundServer(create_app(stack.runtime, admin_enabled=admin_token is not None, admin_token=admin_token))
    await api.start()
    sequencer.start_producing(max_blocks=blocks)
    await stack.runtime.start()
    return Pipeline(sequencer, rpc, stack, api, l1, l2)


async def leased_local_l1(hardfork: str, log_path: Path) -> LocalL1:
    """A pooled anvil (tests/helpers/anvil_pool.py) with the devnet's contracts deployed on it; give its node
    back with ``anvil_pool.give_back(l1.anvil)``."""
    anvil = await asyncio.to_thread(anvil_pool.lease, AnvilConfig(hardfork=hardfork), log_path)
    try:
        return await deploy_local_l1(anvil)
    except BaseException:
        await asyncio.to_thread(anvil_pool.give_back, anvil)
        raise


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
