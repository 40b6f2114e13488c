"""``orchestrator backtest`` against what ``orchestrator run`` made: a devnet chain with traffic, ``run`` on the
embedded default backends batching it, then the backtest over the same blocks with the same batching flags
finds the same batches (ranges, felts, blob counts)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.domain.chain import FELTS_PER_BLOB
from madara_orchestrator.server.background import BackgroundServer, free_port
from tests.conftest import REPO_ROOT
from tests.helpers.batching import make_chain

BLOCKS = 24
TX_PER_BLOCK = 10
BATCHING_FLAGS = [
    # One blob less a large buffer (196 felts): a few blocks of 10 transactions each, so batches close by
    # blob size, and by their number of blocks with --max-batch-size 5.
    "--max-num-blobs",
    "1",
    "--blob-size-buffer",
    "3900",
    "--max-batch-size",
    "5",
    "--max-blocks-per-snos-batch",
    "2",
]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "madara_orchestrator.cli.main", *args]


async def batches_of_run(port: int, last_block: int, *, timeout_s: float) -> list[dict[str, Any]]:
    """The aggregator batches ``run`` serves on its API, once they reach ``last_block``."""
    deadline = time.monotonic() + timeout_s
    batches: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        while time.monotonic() < deadline:
            try:
                reply = await client.get("/batches/aggregator", params={"limit": 500})
                batches = reply.json()["data"]["batches"]
            except (httpx.HTTPError, ValueError, KeyError):
                batches = []
            if batches and max(b["end_block"] for b in batches) == last_block:
                return sorted(batches, key=lambda b: b["index"])
            await asyncio.sleep(0.05)
    raise AssertionError(f"run did not batch up to block {last_block} in {timeout_s:.0f} s: {batches}")


async def test_backtest_finds_exactly_the_batches_run_made(tmp_path: Path) -> None:
    chain = make_chain([TX_PER_BLOCK] * (BLOCKS - 1))  # and the genesis block
    assert chain.head == BLOCKS - 1
    rpc = BackgroundServer(DevnetSequencer(chain).app)
    await rpc.start()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "MADARA_ORCHESTRATOR_MADARA_RPC_URL": rpc.url,
        "MADARA_ORCHESTRATOR_PROVER": "devnet",
        "MADARA_ORCHESTRATOR_SNOS_RUNNER": "devnet",
        "MADARA_ORCHESTRATOR_AGGREGATOR_RUNNER": "devnet",
        "MADARA_ORCHESTRATOR_CHAIN_POLL_INTERVAL_SECONDS": "0.2",
        # Every block in one batching run: the chain is made before run starts. How blocks are split into
        # runs changes no batch.
        "MADARA_ORCHESTRATOR_MAX_BATCH_PROCESSING_SIZE": str(BLOCKS),
    }
    data = tmp_path / "data"
    run = await asyncio.create_subprocess_exec(
        *command("run", "--settle-on-devnet", "--data-dir", str(data), "--port", str(port), *BATCHING_FLAGS),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        made = await batches_of_run(port, BLOCKS - 1, timeout_s=60)
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 0, err.decode()[-2000:]
    files = {b["index"]: len(list((data / "objects" / "blob" / "batch" / str(b["index"])).glob("*.txt"))) for b in made}

    backtest_dir = tmp_path / "backtest"
    backtest_dir.mkdir()
    flags = ["--rpc-url", rpc.url, "--from", "0", "--to", str(BLOCKS - 1), "--json", *BATCHING_FLAGS]
    done = await asyncio.to_thread(
        subprocess.run,
        command("backtest", *flags),
        cwd=backtest_dir,
        env={k: v for k, v in env.items() if not k.startswith("MADARA_ORCHESTRATOR_")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    await rpc.stop()
    assert done.returncode == 0, done.stderr
    assert not list(backtest_dir.iterdir()), "the backtest writes nothing"
    found = json.loads(done.stdout)["batches"]

    assert len(made) >= 4, made
    assert [(b["start_block"], b["end_block"]) for b in found] == [(b["start_block"], b["end_block"]) for b in made]
    assert [b["felts"] for b in found] == [b["blob_len"] for b in made]
    run_blobs = [math.ceil(b["blob_len"] / FELTS_PER_BLOB) for b in made]
    assert [b["blobs"] for b in found] == run_blobs
    closed = [b for b in made if b["status"] != "Open"]
    assert closed and all(files[b["index"]] == math.ceil(b["blob_len"] / FELTS_PER_BLOB) for b in closed), files
    assert {b["closed_by"] for b in found} >= {"blob_size", "max_blocks"}, found
