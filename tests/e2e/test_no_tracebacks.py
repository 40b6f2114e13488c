"""No traceback reaches a user (issue 9): each bad input gets one clear line and a proper exit code.

Every case runs ``orchestrator`` as a real process: a busy port, a corrupt or foreign database file, a
sequencer answering the wrong JSON shapes, a closed stdout; and ``orchestrator jobs`` against a live API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.rpc import StarknetRpcClient
from tests.conftest import REPO_ROOT
from tests.helpers.jsonrpc_server import running_jsonrpc_server
from tests.helpers.pipeline import eventually, start_pipeline
from tests.unit.pie.conftest import pie_path

CHAIN_ID = "0x534e5f5345504f4c4941"  # SN_SEPOLIA


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")}
    return {**env, "PYTHONPATH": str(REPO_ROOT / "src")}


def orchestrator(*args: str, cwd: Path, stdout: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "madara_orchestrator.cli.main", *args],
        cwd=cwd,
        env=environment(),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout_s: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out or "", err


def assert_one_line(err: str, *words: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@contextmanager
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@contextmanager
def sequencer(chain_id: Any = CHAIN_ID, block_number: Any = 0) -> Iterator[str]:
    handlers = {"starknet_chainId": lambda _: chain_id, "starknet_blockNumber": lambda _: block_number}
    with running_jsonrpc_server(handlers) as server:
        yield server.url


def run_args(rpc_url: str, data_dir: Path, port: int) -> list[str]:
    return [
        "run",
        "--settle-on-devnet",
        "--prover",
        "devnet",
        "--snos-runner",
        "devnet",
        "--aggregator-runner",
        "devnet",
        "--madara-rpc-url",
        rpc_url,
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]


# -- 1. a busy port -------------------------------------------------------------------------------


def test_run_on_a_busy_port_says_so_in_one_line_before_creating_anything(tmp_path: Path) -> None:
    with busy_port() as port, sequencer() as url:
        code, _, err = finish(orchestrator(*run_args(url, tmp_path / "data", port), cwd=tmp_path))
    assert code == 2
    line = assert_one_line(err, f"127.0.0.1:{port}", "already in use", "--port")
    assert line.startswith("error: ")
    assert not (tmp_path / "data").exists(), "nothing is created when the API cannot listen"


def listening_pids(port: int) -> list[int]:
    """The processes holding a listening TCP socket on ``port`` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in inodes for fd in fds):
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_devnet_on_a_busy_port_says_so_and_leaves_nothing_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with busy_port() as port:
        args = ["devnet", "--port", str(port), "--data-dir", str(data_dir), "--blocks", "1", "--timeout", "60"]
        code, out, err = finish(orchestrator(*args, cwd=tmp_path))
    assert code == 2, out + err
    assert_one_line(err, f"127.0.0.1:{port}", "already in use", "--port")
    anvil_log = data_dir / "anvil.log"
    listening = re.search(r"Listening on 127\.0\.0\.1:(\d+)", anvil_log.read_text()) if anvil_log.exists() else None
    if listening is None:
        return  # anvil was never started
    anvil_port = int(listening.group(1))
    deadline = time.monotonic() + 5  # a parent-death signal is delivered as the parent exits, not before
    while (survivors := listening_pids(anvil_port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in survivors:  # do not leak it into the rest of the test run
        os.kill(pid, 15)
    assert not survivors, f"anvil (pid {survivors}) outlived orchestrator devnet"


# -- 2. a corrupt or foreign database file ---------------------------------------------------------


def foreign_database(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (name TEXT, salary INTEGER)")
        conn.execute("INSERT INTO jobs VALUES ('plumber', 50000)")
    conn.close()


@pytest.mark.parametrize("kind", ["random bytes", "another application's database"])
def test_run_and_setup_refuse_a_database_file_that_is_not_theirs(tmp_path: Path, kind: str) -> None:
    procs = {}
    files = {}
    with sequencer() as url:
        for command in ("setup", "run"):
            data_dir = tmp_path / command
            data_dir.mkdir()
            db = data_dir / "orchestrator.db"
            if kind == "random bytes":
                db.write_bytes(os.urandom(8192))
            else:
                foreign_database(db)
            files[command] = (db, hashlib.sha256(db.read_bytes()).hexdigest())
            args = ["setup", "--data-dir", str(data_dir)] if command == "setup" else run_args(url, data_dir, 0)
            procs[command] = orchestrator(*args, cwd=tmp_path)
        results = {command: finish(proc) for command, proc in procs.items()}
    for command, (code, _, err) in results.items():
        db, digest = files[command]
        assert code == 2, f"{command}: {err}"
        line = assert_one_line(err, str(db))
        assert ("not an SQLite database" if kind == "random bytes" else "not an orchestrator database") in line
        assert "--data-dir" in line, "the line says what to do"
        assert hashlib.sha256(db.read_bytes()).hexdigest() == digest, "the file is left untouched"
        assert sorted(p.name for p in db.parent.iterdir()) == ["orchestrator.db"], "nothing is added beside it"


# -- 5. a sequencer answering the wrong JSON shapes -----------------------------------------------


def test_run_refuses_a_sequencer_whose_chain_id_has_the_wrong_shape(tmp_path: Path) -> None:
    with sequencer(chain_id={"foo": [1, 2, 3]}) as url:
        code, _, err = finish(orchestrator(*run_args(url, tmp_path / "data", 0), cwd=tmp_path))
    assert code == 2, err
    line = assert_one_line(err, "starknet_chainId", url.rstrip("/"), "expected")
    assert "connected to chain" not in err
    assert "{'foo': [1, 2, 3]}" in line or '{"foo": [1, 2, 3]}' in line, "the answer is shown"


@pytest.mark.parametrize(
    ("method", "result", "expected"),
    [
        ("starknet_chainId", {"foo": [1, 2, 3]}, "a hex string"),
        ("starknet_chainId", "SN_MAIN", "a hex string"),
        ("starknet_blockNumber", {"foo": [1, 2, 3]}, "a non-negative integer"),
        ("starknet_blockNumber", "0x10", "a non-negative integer"),
        ("starknet_blockNumber", -1, "a non-negative integer"),
        ("starknet_getBlockWithTxHashes", {"foo": [1, 2, 3]}, "a block"),
        ("starknet_getBlockWithTxHashes", [1, 2, 3], "a block"),
        ("starknet_getBlockWithTxHashes", {"timestamp": "soon", "transactions": []}, "a block"),
    ],
)
async def test_wrong_shaped_rpc_results_are_one_clear_error(method: str, result: Any, expected: str) -> None:
    with running_jsonrpc_server({method: lambda _: result}) as server:
        client = StarknetRpcClient(server.url, attempts=1)
        try:
            call = {
                "starknet_chainId": client.chain_id,
                "starknet_blockNumber": client.block_number,
                "starknet_getBlockWithTxHashes": lambda: client.get_block_with_tx_hashes(7),
            }[method]
            with pytest.raises(InvalidInput) as caught:
                await call()
        finally:
            await client.aclose()
    message = str(caught.value)
    assert method in message and "expected " + expected in message and "\n" not in message, message


# -- 6. a closed pipe ------------------------------------------------------------------------------


def test_a_closed_stdout_ends_quietly(tmp_path: Path, vectors_dir: Path) -> None:
    felts = tmp_path / "felts.json"
    felts.write_text(json.dumps([hex(i) for i in range(20_000)]))
    commands = [
        ["pie", "info", "--json", str(pie_path(vectors_dir, "fibonacci.zip"))],
        ["pie", "info", str(pie_path(vectors_dir, "fibonacci.zip"))],
        ["blob", "compress", str(felts)],
    ]
    procs = []
    for command in commands:
        proc = orchestrator(*command, cwd=tmp_path)
        assert proc.stdout is not None
        proc.stdout.close()  # like `| head -c 10` having exited: every write now fails with EPIPE
        procs.append(proc)
    for command, proc in zip(commands, procs, strict=True):
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=60)
        assert err == "", f"{command}: {err}"
        assert proc.returncode in (0, 141), f"{command}: exit {proc.returncode}"


def test_a_pipe_closed_by_head_ends_quietly(tmp_path: Path) -> None:
    felts = tmp_path / "felts.json"
    felts.write_text(json.dumps([hex(i) for i in range(200_000)]))
    command = f"{sys.executable} -m madara_orchestrator.cli.main blob compress {felts} | head -c 10"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], env=environment(), capture_output=True, text=True, timeout=60
    )
    assert len(done.stdout) == 10
    assert done.stderr == "", done.stderr
    assert done.returncode in (0, 141)


# -- 7. orchestrator jobs --------------------------------------------------------------------------


async def test_jobs_takes_url_anywhere_and_lists_block_ranges(tmp_path: Path) -> None:
    p = await start_pipeline(tmp_path, blocks=3, overrides={"max_batch_size": 3})
    try:

        async def settled() -> bool:
            return await p.stack.settlement.last_settled_block() == 2

        await eventually(settled, 30, "blocks 0-2 to settle in one batch")
        outputs = []
        for args in (["--url", p.api.url, "list"], ["list", "--url", p.api.url]):
            command = [sys.executable, "-m", "madara_orchestrator.cli.main", "jobs", *args, "--status", "Completed"]
            done = await asyncio.to_thread(
                subprocess.run, command, env=environment(), capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
            outputs.append(done.stdout)
        assert outputs[0] == outputs[1]
        jobs = [line for line in outputs[0].splitlines() if re.match(r"^[0-9a-f-]{36} ", line)]
        assert {line.split()[1] for line in jobs} == {"SnosRun", "ProofCreation", "Aggregator", "StateTransition"}
        for line in jobs:
            assert line.split()[2] == "Completed" and line.endswith("blocks 0-2"), line
    finally:
        await p.close()


# -- signals during start-up waits ------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_at_once_on_a_signal_while_it_waits_for_the_sequencer(tmp_path: Path, sig: int) -> None:
    """The sequencer does not answer (nothing listens on its port): ``run`` retries for up to 300 s, and
    Ctrl-C or SIGTERM must end that wait at once, cleanly."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # bound, never listening: connections are refused
        proc = orchestrator(*run_args(f"http://127.0.0.1:{dead}", tmp_path / "data", 0), cwd=tmp_path)
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # wait until it is in the start-up wait
            seen.append(line)
            if "sequencer not reachable yet" in line:
                break
        else:
            raise AssertionError("".join(seen))
        signalled = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=20)
        took = time.monotonic() - signalled
    rest = proc.stderr.read()
    assert code == 0, "".join(seen) + rest
    assert took < 10, f"took {took:.1f} s to stop"
    assert "Traceback" not in rest and "stopped before the sequencer answered" in rest
