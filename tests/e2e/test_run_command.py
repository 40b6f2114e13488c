"""``orchestrator run`` as a real process against a sequencer over HTTP, driven with ``orchestrator jobs``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.server.background import BackgroundServer, free_port
from tests.conftest import REPO_ROOT


async def test_run_settles_blocks_serves_the_api_and_stops_on_sigterm(tmp_path: Path) -> None:
    sequencer = DevnetSequencer(block_time_s=0.1)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    sequencer.start_producing(max_blocks=5)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "MADARA_ORCHESTRATOR_MADARA_RPC_URL": rpc.url,
        "MADARA_ORCHESTRATOR_PROVER": "devnet",
        "MADARA_ORCHESTRATOR_SNOS_RUNNER": "devnet",
        "MADARA_ORCHESTRATOR_AGGREGATOR_RUNNER": "devnet",
        "MADARA_ORCHESTRATOR_VERIFICATION_POLL_SECONDS": "0.1",
        # Read by `run` (job control needs it) and by `orchestrator jobs retry` alike.
        "MADARA_ORCHESTRATOR_ADMIN_ENABLED": "true",
        "MADARA_ORCHESTRATOR_ADMIN_TOKEN": "admin-token-" + "0" * 20,
    }
    (tmp_path / ".env").write_text("MADARA_ORCHESTRATOR_CHAIN_POLL_INTERVAL_SECONDS=0.2\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "madara_orchestrator.cli.main",
        "run",
        "--settle-on-devnet",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(port),
        "--retry-base-delay-seconds",
        "0.5",
        "--max-batch-size",
        "5",
        "--max-blocks-per-snos-batch",
        "2",
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        completed: list[dict[str, str]] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while time.monotonic() < deadline:
                try:
                    body = (await client.get("/jobs", params={"status": "Completed"})).json()
                    completed = [j for j in body["data"]["jobs"] if j["job_type"] == "StateTransition"]
                except httpx.HTTPError:
                    pass
                if completed:
                    break
                await asyncio.sleep(0.2)
        # Five blocks, one aggregator batch (closed once full) of three SNOS batches: one settlement.
        assert len(completed) == 1, "5 blocks settled in one batch through orchestrator run"
        listing = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "madara_orchestrator.cli.main",
                "jobs",
                "--url",
                f"http://127.0.0.1:{port}",
                "list",
                "--status",
                "Completed",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        assert listing.stdout.count("StateTransition") == 1
        assert listing.stdout.count("SnosRun") == 3
        assert "Successfully fetched 8 jobs with status Completed" in listing.stdout
        shown = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "madara_orchestrator.cli.main",
                "jobs",
                "--url",
                f"http://127.0.0.1:{port}",
                "retry",
                completed[0]["id"],
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 2
        assert "invalid status Completed" in shown.stderr
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        await sequencer.stop_producing()
        await rpc.stop()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err
    assert b"stopped" in err, "the shutdown is logged"
