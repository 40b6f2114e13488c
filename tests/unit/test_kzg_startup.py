"""KZG in an ``orchestrator run`` process: computed in a worker process, which loads the trusted setup at
the first blob; the service's own process never loads it.

ckzg holds the GIL for the load (seconds) and for each blob's cell proofs: in the service's process it
stopped the event loop, and ``/health`` with it, even from a worker thread. ``ckzg.load_trusted_setup`` is
replaced here by a recorder in this process, so the tests see that nothing loads it here."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import ckzg
import pytest

from madara_orchestrator.cli import run
from madara_orchestrator.cli.compose import build_embedded_stack, needs_kzg_setup
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.domain.chain import BYTES_PER_BLOB
from madara_orchestrator.domain.errors import BackendUnavailable
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


async def test_run_serves_without_loading_the_setup_and_computes_kzg_in_a_worker_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(monkeypatch)
    real_start = BackgroundServer.start
    wanted_while_serving: list[bool] = []

    async def start(server: BackgroundServer) -> None:
        recorder.events.append(("serve", threading.get_ident()))
        wanted_while_serving.append(kzg._worker.wanted)
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
        kzg.stop_worker_process()
    assert recorder.names() == ["serve"], "nothing loaded in the service's process"
    assert wanted_while_serving == [True], "KZG goes to the worker process while the service runs"
    assert not kzg._worker.wanted, "closing the stack ended the worker mode"


async def test_an_embedded_stack_that_settles_blobs_loads_the_setup_once_off_the_loop_before_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the worker (a process embedding the stack: the tests) KZG is computed in this process, the setup
    loaded while the stack is built, in a worker thread, so that no blob of the run stops the loop for it."""
    recorder = Recorder(monkeypatch)
    stack = await build_embedded_stack(settings(tmp_path, **ETHEREUM))
    try:
        assert recorder.names() == ["load"]
        assert recorder.events[0][1] != threading.get_ident()
        assert not kzg._worker.wanted
        assert kzg.kzg_settings() is recorder.settings  # shared: the first blob loads nothing
    finally:
        await stack.close()
    assert recorder.names() == ["load"]


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


async def test_the_worker_computes_what_this_process_computes_and_this_process_loads_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blob = bytes(31 * [0]) + bytes([7]) + bytes(BYTES_PER_BLOB - 32)
    expected = kzg.blob_to_commitment(blob), kzg.compute_cell_proofs(blob)[:2]
    recorder = Recorder(monkeypatch)  # from here, a load in this process would be recorded
    kzg.compute_in_worker_process()
    try:
        got = await asyncio.to_thread(lambda: (kzg.blob_to_commitment(blob), kzg.compute_cell_proofs(blob)[:2]))
        with pytest.raises(RuntimeError, match="event loop's thread"):
            kzg.blob_to_commitment(blob)
        with pytest.raises(kzg.KzgError, match="KZG commitment failed"):
            await asyncio.to_thread(kzg.blob_to_commitment, bytes([0xFF]) * BYTES_PER_BLOB)  # not canonical
    finally:
        await asyncio.to_thread(kzg.stop_worker_process)
    assert got == expected
    assert recorder.events == []


async def test_a_dead_worker_is_an_outage_and_the_next_computation_starts_another() -> None:
    blob = bytes(BYTES_PER_BLOB)
    expected = kzg.blob_to_commitment(blob)  # in this process
    kzg.compute_in_worker_process()
    try:
        await asyncio.to_thread(kzg.blob_to_commitment, blob)
        first = await asyncio.to_thread(lambda: kzg._worker._pool)
        assert first is not None
        for pid in list(first._processes):  # the worker killed, as the OOM killer would
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BackendUnavailable, match="KZG worker process ended"):
            await asyncio.to_thread(kzg.blob_to_commitment, blob)
        assert await asyncio.to_thread(kzg.blob_to_commitment, blob) == expected
    finally:
        await asyncio.to_thread(kzg.stop_worker_process)


def test_the_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A parent killed with SIGKILL does not leave its worker (with the trusted setup in memory) behind."""
    code = (
        "import asyncio, os, sys, time\n"
        "from madara_orchestrator.starknet import kzg\n"
        "kzg.compute_in_worker_process()\n"
        f"kzg.blob_to_commitment(bytes({BYTES_PER_BLOB}))\n"
        "print(*kzg._worker._pool._processes, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        exited = os.pidfd_open(worker)  # readable once the worker has ended
    finally:
        parent.kill()
        parent.wait()
    try:
        readable, _, _ = select.select([exited], [], [], 30.0)  # it looks for its parent once a second
    finally:
        os.close(exited)
    assert readable, "the worker outlived its parent"
