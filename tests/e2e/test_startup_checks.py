"""``orchestrator run``'s start-up checks (issue 17), each against a real process: the Ethereum RPC must be
an Ethereum node with the core contract, the settled block must not be beyond the sequencer's head, an
unknown ``MADARA_ORCHESTRATOR_*`` variable is warned about, ``/health`` answers while start-up waits, and a
PostgreSQL that refuses the connection stops the start at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from madara_orchestrator.cli.run import wait_until_answered
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput
from madara_orchestrator.server.background import free_port
from madara_orchestrator.settlement.encoding import STATE_BLOCK_NUMBER_SELECTOR
from tests.conftest import REPO_ROOT
from tests.helpers.jsonrpc_server import JsonRpcServer, running_jsonrpc_server
from tests.helpers.postgres import PostgresCluster

CHAIN_ID = "0x534e5f5345504f4c4941"  # SN_SEPOLIA
CORE = "0x" + "c0" * 20
VERIFIER = "0x" + "fa" * 20
OPERATOR_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
VERIFIER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")}
    return {**env, "PYTHONPATH": str(REPO_ROOT / "src")}


def word(value: int) -> str:
    return "0x" + (value % (1 << 256)).to_bytes(32, "big").hex()


@contextmanager
def sequencer(head: int) -> Iterator[JsonRpcServer]:
    handlers = {"starknet_chainId": lambda _: CHAIN_ID, "starknet_blockNumber": lambda _: head}
    with running_jsonrpc_server(handlers) as server:
        yield server


@contextmanager
def l1(*, settled: int, code: str = "0x6080604052") -> Iterator[JsonRpcServer]:
    def call(params: Any) -> str:
        data = params[0]["data"]
        assert data == "0x" + STATE_BLOCK_NUMBER_SELECTOR.hex(), data
        return word(settled)

    handlers = {"eth_chainId": lambda _: "0x7a69", "eth_getCode": lambda _: code, "eth_call": call}
    with running_jsonrpc_server(handlers) as server:
        yield server


def settle_on_ethereum(sequencer_url: str, l1_url: str, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "madara_orchestrator.cli.main",
        "run",
        "--madara-rpc-url",
        sequencer_url,
        "--settle-on-ethereum",
        "--ethereum-rpc-url",
        l1_url,
        "--ethereum-private-key",
        OPERATOR_KEY,
        "--l1-core-contract-address",
        CORE,
        "--prover",
        "mock",
        "--snos-runner",
        "devnet",
        "--aggregator-runner",
        "devnet",
        "--mock-verifier-address",
        VERIFIER,
        "--mock-verifier-private-key",
        VERIFIER_KEY,
        "--data-dir",
        str(data_dir),
        "--port",
        "0",
    ]


def run(command: list[str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr


def error_line(err: str) -> str:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_a_settled_block_beyond_the_sequencers_head_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MADARA_ORCHESTRATOR_MAX_BATCH_SIZ=5\n")
    with sequencer(head=5) as seq, l1(settled=100) as node:
        code, err = run(settle_on_ethereum(seq.url, node.url, tmp_path / "data"), tmp_path)
    assert code == 2, err
    line = error_line(err)
    assert "settled block 100" in line and "block 5" in line, line
    assert "--madara-rpc-url" in line and "--l1-core-contract-address" in line, "it says what to check"
    assert "runtime" not in err and "starting: layer" not in err, "nothing started"
    assert (
        "unknown variable MADARA_ORCHESTRATOR_MAX_BATCH_SIZ is ignored: did you mean "
        "MADARA_ORCHESTRATOR_MAX_BATCH_SIZE?" in err
    ), "a typo in .env is warned about"


def test_a_settled_block_up_to_the_head_starts(tmp_path: Path) -> None:
    """The other side of the check: settled block 5 of a chain at block 5 is fine."""
    with sequencer(head=5) as seq, l1(settled=5) as node:
        proc = subprocess.Popen(
            settle_on_ethereum(seq.url, node.url, tmp_path / "data"),
            cwd=tmp_path,
            env=environment(),
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "HTTP API on" in line or line.startswith("error:"):
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        code = proc.wait(timeout=60)
    text = "".join(seen) + rest
    assert code == 0, text
    assert "Ethereum chain id 31337" in text and "settled up to block 5" in text, text


def test_an_ethereum_rpc_url_pointing_at_the_sequencer_is_refused_at_start(tmp_path: Path) -> None:
    """The sequencer answers ``eth_chainId`` with "Method not found": said at start-up, not by failing
    jobs later."""
    with sequencer(head=5) as seq:
        code, err = run(settle_on_ethereum(seq.url, seq.url, tmp_path / "data"), tmp_path)
    assert code == 2, err
    line = error_line(err)
    assert "refused eth_chainId (Method not found)" in line and "check --ethereum-rpc-url" in line, line


def test_no_contract_at_the_core_contract_address_is_refused_at_start(tmp_path: Path) -> None:
    with sequencer(head=5) as seq, l1(settled=0, code="0x") as node:
        code, err = run(settle_on_ethereum(seq.url, node.url, tmp_path / "data"), tmp_path)
    assert code == 2, err
    line = error_line(err)
    assert f"no contract at --l1-core-contract-address {CORE}" in line and "chain id 31337" in line, line


def test_health_answers_while_start_up_waits_for_the_sequencer(tmp_path: Path) -> None:
    """Nothing listens at the sequencer's address: run says once what it waits for, and ``/health``
    answers meanwhile that the sequencer is down."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # bound, never listening: connections are refused
        command = devnet_run(f"http://127.0.0.1:{dead}", tmp_path / "data", "--port", str(port))
        proc = subprocess.Popen(command, cwd=tmp_path, env=environment(), stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "sequencer not reachable yet" in line:
                break
        waiting = "".join(seen)
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)
            live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=10)
        finally:
            proc.send_signal(signal.SIGTERM)
            rest = proc.stderr.read()
            code = proc.wait(timeout=30)
    assert "sequencer not reachable yet" in waiting, waiting
    assert f"waiting up to 300 s, trying every 5 s; meanwhile GET /health on http://127.0.0.1:{port}" in waiting
    assert answer.status_code == 503 and "sequencer_rpc" in answer.text, answer.text
    assert live.status_code == 200
    assert code == 0, waiting + rest
    assert waiting.count("not reachable yet") == 1


def devnet_run(sequencer_url: str, data_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "madara_orchestrator.cli.main",
        "run",
        "--settle-on-devnet",
        "--prover",
        "devnet",
        "--snos-runner",
        "devnet",
        "--aggregator-runner",
        "devnet",
        "--madara-rpc-url",
        sequencer_url,
        "--data-dir",
        str(data_dir),
        "--port",
        "0",
        *extra,
    ]


def test_a_postgresql_that_refuses_stops_the_start_at_once(postgres_server: PostgresCluster, tmp_path: Path) -> None:
    """A wrong password or a database that does not exist is not an outage: one line, exit 2, no wait (an
    unreachable server is waited for: tests/e2e/test_postgres_restart.py)."""
    role = f"r_{uuid.uuid4().hex[:12]}"
    postgres_server.create_role(role, "the-right-one")
    refusals = {
        "a wrong password": (
            postgres_server.url("postgres", user=role, password="pw-wrong-Hx71c"),
            "password authentication failed",
        ),
        "a database that does not exist": (
            postgres_server.url("no_such_db", user="postgres"),
            'database "no_such_db" does not exist',
        ),
    }
    with sequencer(head=0) as seq:
        for name, (url, reason) in refusals.items():
            command = devnet_run(seq.url, tmp_path / "data", "--postgres-url", url)
            code, err = run(command, tmp_path)
            assert code == 2, f"{name}: {err}"
            line = error_line(err)
            assert "refused the connection" in line and reason in line, f"{name}: {line}"
            assert "not reachable yet" not in err, f"{name}: refused, not waited for: {err}"
            assert "pw-wrong" not in err, f"{name}: {err}"


def test_the_wait_is_reported_once_then_once_a_minute() -> None:
    """``wait_until_answered`` with an injected clock: one line when the wait begins, one a minute after,
    and the end of the wait after 300 s is one error naming how long."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def down() -> int:
        raise BackendUnavailable("connection refused")

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("madara_orchestrator")
    logger.addHandler(handler)
    try:
        with pytest.raises(BackendUnavailable, match="did not answer within 300 s: connection refused"):
            asyncio.run(wait_until_answered("sequencer", "http://h:1", down, clock=lambda: now[0], sleep=sleep))

        async def wrong() -> int:
            raise InvalidInput("not a Starknet node")

        with pytest.raises(InvalidInput):
            asyncio.run(wait_until_answered("sequencer", "http://h:1", wrong, clock=lambda: now[0], sleep=sleep))
    finally:
        logger.removeHandler(handler)
    assert len(lines) == 1 + 4, lines  # the first line, then at 60, 120, 180 and 240 s
    assert lines[0].startswith("sequencer not reachable yet at http://h:1 (connection refused); waiting up to 300 s")
    assert [line.split(": ")[1].split(" s so far")[0] for line in lines[1:]] == ["60", "120", "180", "240"]
