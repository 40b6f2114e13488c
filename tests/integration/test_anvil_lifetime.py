"""anvil ends with the process that started it, even on SIGKILL; a start-up in progress can be interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account

from madara_orchestrator.devnet.anvil import (
    ANVIL_BIN_ENV,
    WARM_UP_KEY,
    Anvil,
    AnvilConfig,
    AnvilStartInterrupted,
    find_anvil_binary,
    interrupt_starting,
)
from madara_orchestrator.domain.errors import ConfigError
from tests.conftest import REPO_ROOT, require_tool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")


def anvil_binary() -> str:
    try:
        return str(find_anvil_binary())
    except ConfigError:
        return require_tool("anvil")


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a dead child whose new parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until_gone(pid: int, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.05)
    return not is_running(pid)


# The starter: anvil started from a short-lived thread (as asyncio.to_thread does), which then exits.
STARTER = textwrap.dedent(
    """
    import sys, threading, time
    from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig

    nodes = []
    starter = threading.Thread(target=lambda: nodes.append(Anvil(AnvilConfig(), binary=sys.argv[1]).start()))
    starter.start()
    starter.join()
    print(nodes[0].pid, nodes[0].url, flush=True)
    time.sleep(600)
    """
)


def test_anvil_outlives_the_thread_that_started_it_and_dies_with_a_sigkilled_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", STARTER, anvil_binary()],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    anvil_pid = 0
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, parent.stderr.read() if parent.stderr else ""
        anvil_pid = int(line.split()[0])
        time.sleep(0.5)  # the starter thread is gone: the parent-death signal must not have fired
        assert is_running(anvil_pid), "anvil died with the thread that started it"
        parent.kill()  # SIGKILL: no cleanup code of ours runs
        parent.wait(10)
        assert wait_until_gone(anvil_pid, timeout_s=10), f"anvil (pid {anvil_pid}) outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if anvil_pid and is_running(anvil_pid):
            os.kill(anvil_pid, signal.SIGKILL)


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


@pytest.mark.slow
def test_kill_9_of_devnet_chain_takes_its_anvil_with_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "madara_orchestrator.cli.main", "devnet-chain", "--env-file", str(tmp_path / ".env")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    anvil_pids: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("now, in another terminal"):
                break
        anvil_pids = [p for p in children_of(proc.pid) if "anvil" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(anvil_pids) == 1, children_of(proc.pid)
        proc.kill()
        proc.wait(10)
        assert wait_until_gone(anvil_pids[0], timeout_s=10), "anvil outlived kill -9 of devnet-chain"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in anvil_pids:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


def slow_fake_anvil(tmp_path: Path) -> tuple[Path, Path]:
    """An "anvil" that never reports a listening address, and the file where it writes its pid."""
    pid_file = tmp_path / "fake-anvil.pid"
    fake = tmp_path / "anvil"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake.chmod(0o755)
    return fake, pid_file


def wait_for_file(path: Path, *, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written within {timeout_s} s")


def test_an_anvil_start_in_a_thread_is_interrupted_and_its_process_stopped(tmp_path: Path) -> None:
    fake, pid_file = slow_fake_anvil(tmp_path)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Anvil(AnvilConfig(), binary=fake).start(timeout_s=60)
        except BaseException as exc:
            errors.append(exc)

    starter = threading.Thread(target=start)
    starter.start()
    pid = int(wait_for_file(pid_file, timeout_s=10))
    began = time.monotonic()
    interrupt_starting()
    starter.join(10)
    assert not starter.is_alive() and time.monotonic() - began < 2
    assert len(errors) == 1 and isinstance(errors[0], AnvilStartInterrupted)
    assert wait_until_gone(pid, timeout_s=5)


def test_ctrl_c_while_anvil_is_starting_stops_devnet_chain_at_once(tmp_path: Path) -> None:
    fake, pid_file = slow_fake_anvil(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "madara_orchestrator.cli.main", "devnet-chain", "--env-file", str(tmp_path / ".env")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), ANVIL_BIN_ENV: str(fake)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(wait_for_file(pid_file, timeout_s=30))
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert took < 3, f"devnet-chain took {took:.1f} s to stop on Ctrl-C during anvil's start-up"
    assert "stopped during start-up" in out
    assert "Traceback" not in err, err
    assert not (tmp_path / ".env").exists(), "no settings are written for a chain that never started"
    assert wait_until_gone(pid, timeout_s=5), "the starting anvil was left running"


def test_the_blob_check_warm_up_is_refused_and_changes_nothing() -> None:
    """``warm_up_blob_checks`` sends a blob transaction anvil takes apart (its blob checked) and then refuses
    for want of funds: no block is mined and the sender's nonce stays 0, so no test's chain is changed."""
    anvil_binary()
    with Anvil(AnvilConfig(hardfork="prague")) as node:
        answer = node.send_unfunded_blob_tx()
        assert "Insufficient funds" in answer["error"]["message"], answer
        assert node.rpc("eth_blockNumber") == "0x0"
        sender = Account.from_key(WARM_UP_KEY).address
        assert node.rpc("eth_getTransactionCount", [sender, "latest"]) == "0x0"
        assert node.rpc("eth_getBalance", [sender, "latest"]) == "0x0"
