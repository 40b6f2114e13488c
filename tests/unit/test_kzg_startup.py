"""The KZG trusted setup is loaded at start-up, before the HTTP API serves, when the settings will need it.

ckzg holds the GIL for most of the load (seconds): loaded at the first blob settlement or aggregation, it
stopped the event loop, and ``/health`` with it, even from a worker thread. ``ckzg.load_trusted_setup`` is
replaced here by a recorder (which thread called it, and when), so the tests check the order and the thread,
not timings."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any

import ckzg
import pytest

from madara_orchestrator.cli import run
from madara_orchestrator.cli.compose import build_embedded_stack, needs_kzg_setup
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.starknet import kzg

ETHEREUM = {
    "settle_on_devnet": False,
    "settle_on_ethereum": True,
    "ethereum_rpc_url": "http://127.0.0.1:9",
    "ethereum_private_key": "0x" + "11" * 32,
    "l1_core_contract_address": "0x" + "22" * 20,
}
STARKNET = {
    "settle_on_devnet": False,
    "layer": "l3",
    "settle_on_starknet": True,
    "starknet_rpc_url": "http://127.0.0.1:9",
    "starknet_account_address": "0x1",
    "starknet_private_key": "0x2",
    "starknet_cairo_core_contract_address": "0x3",
}


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    base = devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0)
    return Settings({**base.values, "host": "127.0.0.1", **overrides})


class Recorder:
    """What happened, in order: ``("load", thread id)`` for each trusted-setup load, ``("serve", ...)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, int]] = []
        self.settings = object()
        monkeypatch.setattr(kzg, "_settings", None)  # as in a fresh process
        monkeypatch.setattr(ckzg, "load_trusted_setup", self.load)

    def load(self, path: str, precompute: int) -> object:
        assert Path(path) == kzg.trusted_setup_path() and precompute == 0
        self.events.append(("load", threading.get_ident()))
        return self.settings

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


class StopAfterServing(Exception):
    """Ends ``serve`` once the API serves (where it would wait for the sequencer)."""


async def test_run_loads_the_setup_once_off_the_loop_before_the_api_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(monkeypatch)
    real_start = BackgroundServer.start

    async def start(server: BackgroundServer) -> None:
        recorder.events.append(("serve", threading.get_ident()))
        await real_start(server)

    async def stop_here(*_: Any, **__: Any) -> str:
        raise StopAfterServing

    monkeypatch.setattr(BackgroundServer, "start", start)
    monkeypatch.setattr(run, "wait_for_sequencer", stop_here)
    loop = asyncio.get_running_loop()
    try:
        with pytest.raises(StopAfterServing):
            await run.serve(settings(tmp_path, **ETHEREUM))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            loop.remove_signal_handler(sig)
    assert recorder.names() == ["load", "serve"]
    (_, load_thread), (_, loop_thread) = recorder.events
    assert loop_thread == threading.get_ident()
    assert load_thread != loop_thread  # a worker thread: the loop is not the one that waits in ckzg
    # Shared: the first blob settlement finds it loaded and loads nothing.
    assert kzg.kzg_settings() is recorder.settings
    assert recorder.names() == ["load", "serve"]


async def test_a_stack_that_settles_no_blob_loads_no_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(monkeypatch)
    stack = await build_embedded_stack(settings(tmp_path))  # the devnet ledger
    await stack.close()
    assert recorder.events == []


@pytest.mark.parametrize(
    ("overrides", "needed"),
    [
        ({}, False),  # L2 on the devnet ledger: no L1, no blob checked
        (ETHEREUM, True),  # L2 on Ethereum: sidecars, point proofs, the aggregator's KZG section
        ({"mock_atlantic_server": True}, True),  # its aggregations carry a KZG section
        (STARKNET, False),  # L3 on Starknet: calldata
        ({**STARKNET, "mock_atlantic_server": True}, False),  # an L3 has no aggregator bucket
    ],
)
def test_only_blob_da_needs_the_setup(tmp_path: Path, overrides: dict[str, Any], needed: bool) -> None:
    assert needs_kzg_setup(settings(tmp_path, **overrides)) is needed
