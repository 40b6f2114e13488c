"""`orchestrator mock-atlantic` as a process: it binds, answers the Atlantic API, and stops on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_command_serves_the_api_until_terminated() -> None:
    port = free_port()
    command = [sys.executable, "-m", "madara_orchestrator.cli.main", "mock-atlantic", "--port", str(port)]
    command += ["--failure-rate", "0", "--seed", "3", "--latency-s", "0", "--api-key", "k"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"{base}/_mock/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "mock-atlantic did not start"
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        request = {
            "aggregatorVersion": "snos_aggregator_0.14.1",
            "mockProof": True,
            "aggregatorParams": {"use_kzg_da": True, "full_output": False},
        }
        bucket = httpx.post(f"{base}/buckets", json=request, headers={"api-key": "k"}, timeout=5)
        assert bucket.json()["atlanticBucket"]["status"] == "OPEN", bucket.text
        refused = httpx.post(f"{base}/buckets", json=request, timeout=5)
        assert refused.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in err


def test_bad_flags_are_exit_2() -> None:
    command = [sys.executable, "-m", "madara_orchestrator.cli.main", "mock-atlantic", "--failure-rate", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "failure rate 2.0 is not between 0 and 1" in result.stderr
