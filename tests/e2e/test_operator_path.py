"""The README's operator's path: ``orchestrator devnet-chain`` in one terminal, ``orchestrator run`` with the
``.env`` it wrote in another, both as real processes; blocks settle on the local L1."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS
from madara_orchestrator.server.background import free_port
from madara_orchestrator.settlement.encoding import STATE_BLOCK_NUMBER_SELECTOR
from tests.conftest import REPO_ROOT


def orchestrator_command() -> list[str]:
    """``orchestrator`` as the README runs it: the installed console script (else the module)."""
    script = Path(sys.executable).with_name("orchestrator")
    return [str(script)] if script.exists() else [sys.executable, "-m", "madara_orchestrator.cli.main"]


def clean_environment() -> dict[str, str]:
    """The test's environment without any MADARA_ORCHESTRATOR_* variable: run gets only the .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")}
    return {**env, "PYTHONPATH": str(REPO_ROOT / "src")}


def read_env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def state_block_number(client: httpx.Client, l1_url: str, core: str) -> int:
    call = {"to": core, "data": "0x" + STATE_BLOCK_NUMBER_SELECTOR.hex()}
    body = client.post(l1_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]})
    value = int(body.json()["result"], 16)
    return value - (1 << 256) if value >= 1 << 255 else value


def stop(proc: subprocess.Popen[str], *, timeout_s: float = 60) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"pid {proc.pid} did not stop within {timeout_s} s of SIGTERM: {err[-2000:]}") from None


@pytest.mark.slow
def test_devnet_chain_then_run_with_its_env_file_settles_blocks(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run_log = tmp_path / "run.log"
    api_port = free_port()
    # A block every 0.25 s (1 s in the README): the first batch fills sooner, the test is shorter.
    chain = subprocess.Popen(
        [
            *orchestrator_command(),
            "devnet-chain",
            "--env-file",
            str(env_file),
            "--api-port",
            str(api_port),
            "--block-time",
            "0.25",
        ],
        cwd=tmp_path,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run: subprocess.Popen[str] | None = None
    banner: list[str] = []
    try:
        assert chain.stdout is not None
        for line in chain.stdout:
            banner.append(line)
            if line.startswith("now, in another terminal"):
                break
        assert env_file.exists(), "".join(banner) + (chain.stderr.read() if chain.stderr else "")
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600, "the .env holds keys: owner-only"
        settings = read_env_file(env_file)
        assert settings["MADARA_ORCHESTRATOR_PROVER"] == "mock"
        assert settings["MADARA_ORCHESTRATOR_SETTLE_ON_ETHEREUM"] == "true"
        assert settings["MADARA_ORCHESTRATOR_PORT"] == str(api_port)
        assert not any(key in "".join(banner) for key in DEV_PRIVATE_KEYS), "keys are masked on stdout"
        # Terminal 2, as the README says: `orchestrator run` in the directory of the .env, nothing else.
        # Its log goes to a file: an unread pipe would fill up and block the service.
        with run_log.open("w") as log_file:
            run = subprocess.Popen(
                [*orchestrator_command(), "run"],
                cwd=tmp_path,
                env=clean_environment(),
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                text=True,
            )
        l1_url = settings["MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL"]
        core = settings["MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS"]
        settled = -1
        deadline = time.monotonic() + 240
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline and settled < 0:
                assert run.poll() is None, f"run exited with {run.returncode}"
                settled = state_block_number(client, l1_url, core)
                time.sleep(1)
            assert settled >= 0, "no block settled on the L1 in 240 s"
            jobs = client.get(f"http://127.0.0.1:{api_port}/jobs", params={"status": "Completed"}).json()
            done = {job["job_type"] for job in jobs["data"]["jobs"]}
            assert {"SnosRun", "ProofCreation", "Aggregator"} <= done, done
    finally:
        if run is not None:
            stop(run)
        chain_out, chain_err = stop(chain)
    run_err = run_log.read_text()
    assert run is not None and run.returncode == 0, run_err[-3000:]
    assert chain.returncode == 0, chain_err[-3000:]
    assert "Traceback" not in run_err, run_err[-3000:]
    assert "Traceback" not in chain_err, chain_err[-3000:]
    assert re.search(r"stopped: \d+ blocks produced", chain_out), chain_out


def test_an_existing_env_file_is_kept_unless_forced(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MINE=1\n")
    refused = subprocess.run(
        [*orchestrator_command(), "devnet-chain", "--block-time", "0"],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    # One message with every problem, before anything starts.
    assert "--env-file .env already exists: pass --force to replace it" in refused.stderr
    assert "--block-time must be positive" in refused.stderr
    assert env_file.read_text() == "MINE=1\n"
    assert "Traceback" not in refused.stderr
