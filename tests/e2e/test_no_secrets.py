"""No secret in any output (issue 17): ``orchestrator run`` as a real process with a user:password and an
``?apikey=`` in every URL it takes (sequencer RPC, SNOS RPC, feeder gateway, replay-bounds reference,
Ethereum RPC, alert webhook, PostgreSQL) and private keys, made to fail every way it can: the sequencer
down at start-up, the replay-bounds reference and then the feeder gateway answering 502, the L1 answering
503 and then errors, a job failing and its alert going to a webhook that answers 500; plus the start-up
refusals (an unknown flag followed by a key, an L1 URL that is the sequencer's, a malformed URL) and the
wait for an unreachable PostgreSQL. Then stdout, stderr, the API's answers, the alerts sent and every file
the run stored (its database: failure reasons) are searched for each password, API key and private key.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.server.background import BackgroundServer, free_port
from madara_orchestrator.settlement.encoding import STATE_BLOCK_NUMBER_SELECTOR
from tests.conftest import REPO_ROOT
from tests.helpers.flaky_proxy import FlakyProxy
from tests.helpers.jsonrpc_server import running_jsonrpc_server

OPERATOR_KEY = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"
VERIFIER_KEY = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e"
CORE = "0x" + "c0" * 20
VERIFIER = "0x" + "fa" * 20


def credentials(name: str) -> tuple[str, str]:
    """A password and an API key for one URL, each unique and long enough to search for."""
    return f"pw-{name}-Zq81xV", f"key-{name}-Jm42wR"


def secret_url(base: str, name: str) -> str:
    password, key = credentials(name)
    return base.replace("http://", f"http://user-{name}:{password}@", 1).rstrip("/") + f"/?apikey={key}"


URL_OPTIONS = ("madara", "snos", "feeder", "reference", "ethereum", "webhook", "postgres")
SECRETS = [s for name in URL_OPTIONS for s in credentials(name)] + [
    OPERATOR_KEY,
    OPERATOR_KEY[2:],
    VERIFIER_KEY,
    VERIFIER_KEY[2:],
]


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")}
    return {**env, "PYTHONPATH": str(REPO_ROOT / "src")}


def orchestrator(*args: str) -> list[str]:
    return [sys.executable, "-m", "madara_orchestrator.cli.main", *args]


class FakeL1:
    """An Ethereum node for the start-up checks (chain id, the core contract's code, ``stateBlockNumber()``
    = nothing settled); every other call fails: HTTP 503 for the first ``outages``, then a JSON-RPC error."""

    def __init__(self, outages: int = 2) -> None:
        self.outages = outages
        self.failed: list[str] = []
        self.server = BackgroundServer(Starlette(routes=[Route("/", self.endpoint, methods=["POST"])]))

    async def endpoint(self, request: Request) -> Response:
        call = await request.json()
        method, params = call["method"], call.get("params") or []
        answers: dict[str, Callable[[], Any]] = {
            "eth_chainId": lambda: "0x7a69",
            "eth_getCode": lambda: "0x6080604052",
            "eth_blockNumber": lambda: "0x10",
        }
        if method == "eth_call" and params and params[0].get("data") == "0x" + STATE_BLOCK_NUMBER_SELECTOR.hex():
            return JSONResponse({"jsonrpc": "2.0", "id": call["id"], "result": "0x" + "ff" * 32})
        if method in answers:
            return JSONResponse({"jsonrpc": "2.0", "id": call["id"], "result": answers[method]()})
        self.failed.append(method)
        if len(self.failed) <= self.outages:
            return PlainTextResponse("L1 temporarily unavailable", status_code=503)
        error = {"code": -32000, "message": "execution reverted: the test's L1 refuses"}
        return JSONResponse({"jsonrpc": "2.0", "id": call["id"], "error": error})


class Webhook:
    """Records each alert POSTed, answers 500."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.server = BackgroundServer(Starlette(routes=[Route("/", self.endpoint, methods=["POST"])]))

    async def endpoint(self, request: Request) -> Response:
        self.bodies.append((await request.body()).decode())
        return PlainTextResponse("webhook broken", status_code=500)


async def until(condition: Callable[[], Any], timeout_s: float, what: str, log: Path) -> None:
    """Bounded polling on an observable condition."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition() if asyncio.iscoroutinefunction(condition) else condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s:g} s; log:\n{tail(log)}")


def tail(log: Path) -> str:
    return log.read_text()[-4000:]


@pytest.mark.slow
async def test_no_password_api_key_or_private_key_in_any_output_or_stored_reason(tmp_path: Path) -> None:
    sequencer = DevnetSequencer(block_time_s=0.1)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    sequencer.start_producing(max_blocks=2)  # one aggregator batch (--max-batch-size 2), whose job fails
    sequencer_proxy = FlakyProxy(target=rpc.url, down=True)  # the sequencer does not answer at first
    feeder_proxy = FlakyProxy(target=rpc.url, down=True)  # nor does the feeder gateway
    reference_proxy = FlakyProxy(target=rpc.url, down=True)  # nor the replay-bounds reference
    l1, webhook = FakeL1(), Webhook()
    for server in (l1.server, webhook.server):
        await server.start()
    await sequencer_proxy.start()
    await feeder_proxy.start()
    await reference_proxy.start()
    port = free_port()
    data_dir, out_path, err_path = tmp_path / "data", tmp_path / "out.log", tmp_path / "err.log"
    env = {
        **environment(),
        "MADARA_ORCHESTRATOR_MOCK_VERIFIER_PRIVATE_KEY": VERIFIER_KEY,
        "MADARA_ORCHESTRATOR_ALERT_WEBHOOK_URL": secret_url(webhook.server.url, "webhook"),
        "MADARA_ORCHESTRATOR_VERIFICATION_POLL_SECONDS": "0.1",
    }
    command = orchestrator(
        "run",
        "--madara-rpc-url",
        secret_url(sequencer_proxy.url, "madara"),
        "--rpc-for-snos",
        secret_url(sequencer_proxy.url, "snos"),
        "--madara-feeder-gateway-url",
        secret_url(feeder_proxy.url, "feeder"),
        "--replay-bounds-rpc-url",
        secret_url(reference_proxy.url, "reference"),
        "--settle-on-ethereum",
        "--ethereum-rpc-url",
        secret_url(l1.server.url, "ethereum"),
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
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--max-batch-size",
        "2",
        "--max-blocks-per-snos-batch",
        "1",
        "--retry-base-delay-seconds",
        "0.05",
        "--chain-poll-interval-seconds",
        "0.2",
    )
    api: dict[str, str] = {}
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = await asyncio.create_subprocess_exec(*command, cwd=tmp_path, env=env, stdout=out, stderr=err)
    try:
        log = err_path

        def logged(*words: str) -> Callable[[], bool]:
            return lambda: all(word in log.read_text() for word in words)

        await until(logged("sequencer not reachable yet"), 60, "the wait for the sequencer", log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            api["health while waiting"] = (await client.get("/health")).text
            sequencer_proxy.down = False
            await until(logged("connected to chain"), 60, "the connection to the sequencer", log)
            await until(logged("the reference node cannot give block"), 60, "a replay-bounds reference failure", log)
            reference_proxy.down = False
            await until(logged("feeder gateway", "502"), 60, "a feeder gateway failure", log)
            feeder_proxy.down = False

            async def failed_job() -> bool:
                # The KZG trusted setup was loaded before the API served (cli/compose.py): the first
                # aggregation no longer stops the API while ckzg holds the GIL.
                reply = await client.get("/jobs", params={"status": "Failed"})
                return bool(reply.json()["data"]["jobs"])

            await until(failed_job, 180, "a job failing on the L1's errors", log)
            await until(lambda: bool(webhook.bodies), 30, "the failed job's alert", log)
            await until(logged("alert webhook", "HTTP 500"), 30, "the webhook's failure in the log", log)
            for path in ("/health", "/jobs?status=Failed", "/api/v1/dashboard/overview", "/metrics"):
                api[path] = (await client.get(path)).text
            for job in json.loads(api["/jobs?status=Failed"])["data"]["jobs"]:
                api[f"job {job['id']}"] = (await client.get(f"/jobs/{job['id']}")).text
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        await sequencer.stop_producing()
        for server in (sequencer_proxy, feeder_proxy, reference_proxy):
            await server.stop()
        for background in (l1.server, webhook.server, rpc):
            await background.stop()
    stderr, stdout = err_path.read_text(), out_path.read_text()
    assert code == 0, stderr[-3000:]
    # Every kind of failure happened, and was said ...
    assert "sequencer not reachable yet at http://127.0.0.1:" in stderr
    assert f"feeder gateway: {feeder_proxy.url}" in stderr or "feeder gateway unavailable" in stderr
    assert f"the reference node cannot give block 0 (BackendUnavailable: Starknet RPC {reference_proxy.url}" in stderr
    assert f"Ethereum RPC eth_call to {l1.server.url} answered HTTP 503" in stderr
    assert "execution reverted: the test's L1 refuses" in stderr
    assert "ALERT Job Failed" in stderr and f"alert webhook {webhook.server.url} answered HTTP 500" in stderr
    assert "sequencer_rpc" in api["health while waiting"]
    # ... without a password, an API key or a private key anywhere.
    assert leaks(stderr) == [], stderr
    assert leaks(stdout) == [], stdout
    for what, text in api.items():
        assert leaks(text) == [], f"{what}: {text}"
    for body in webhook.bodies:
        assert leaks(body) == [], body
    stored = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(".db" in p.name for p in stored)
    for path in stored:
        content = path.read_bytes().decode("latin-1")
        assert leaks(content) == [], f"{path} holds a secret"
    database = "".join(p.read_bytes().decode("latin-1") for p in stored if ".db" in p.name)
    assert f"Ethereum RPC eth_call to {l1.server.url} answered HTTP 503" in database, (
        "the stored failure reasons name the L1, its URL cut"
    )


def start_refusal(args: list[str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run(orchestrator(*args), cwd=cwd, env=environment(), capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def start_then_stop(args: list[str], cwd: Path, waiting: str) -> tuple[int, str]:
    """Start, read stderr until the ``waiting`` line (or the end), SIGTERM; the exit code and the output."""
    proc = subprocess.Popen(
        orchestrator(*args), cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None and proc.stdout is not None
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if waiting in line:
                break
        assert waiting in "".join(seen), "".join(seen)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        code = proc.wait(timeout=60)
    return code, proc.stdout.read() + "".join(seen) + rest


def test_no_secret_in_what_a_refused_start_prints(tmp_path: Path) -> None:
    """The ways ``run`` refuses to start, each with credentials in its URLs and keys on its command line."""
    dead = f"http://127.0.0.1:{free_port()}"
    base = [
        "run",
        "--prover",
        "mock",
        "--snos-runner",
        "devnet",
        "--aggregator-runner",
        "devnet",
        "--settle-on-ethereum",
        "--mock-verifier-address",
        VERIFIER,
        "--mock-verifier-private-key",
        VERIFIER_KEY,
        "--l1-core-contract-address",
        CORE,
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        "0",
    ]
    postgres_password, postgres_key = credentials("postgres")
    cases = {
        "an unknown flag followed by a key": (
            [*base, "--eth-private-key", OPERATOR_KEY, f"--eth-key={VERIFIER_KEY}"],
            "unknown options --eth-private-key",
        ),
        "a malformed URL": (
            [
                *base,
                "--madara-rpc-url",
                secret_url(dead, "madara").replace(dead.rsplit(":", 1)[1], "port"),
                "--ethereum-rpc-url",
                "not-a-url-" + credentials("ethereum")[0],
                "--ethereum-private-key",
                OPERATOR_KEY,
            ],
            "--madara-rpc-url must be an http:// or https:// URL",
        ),
    }
    for name, (args, expected) in cases.items():
        code, output = start_refusal(args, tmp_path)
        assert code != 0, f"{name}: {output}"
        assert expected in output, f"{name}: {output}"
        assert "Traceback" not in output, f"{name}: {output}"
        assert leaks(output) == [], f"{name}: {output}"
    # An unreachable PostgreSQL is waited for (an outage): the line that says so, then a SIGTERM meanwhile.
    code, output = start_then_stop(
        [
            *base,
            "--madara-rpc-url",
            secret_url(dead, "madara"),
            "--ethereum-rpc-url",
            secret_url(dead, "ethereum"),
            "--ethereum-private-key",
            OPERATOR_KEY,
            "--postgres-url",
            f"postgresql://orch:{postgres_password}@127.0.0.1:{free_port()}/db?application_name={postgres_key}",
        ],
        tmp_path,
        "PostgreSQL not reachable yet",
    )
    assert code == 0 and "stopped before the backends answered" in output, output
    assert "Traceback" not in output, output
    assert leaks(output) == [], output


def test_no_secret_when_the_ethereum_rpc_is_the_sequencer(tmp_path: Path) -> None:
    """``--ethereum-rpc-url`` pointing at the sequencer (with credentials): refused at start, in one line
    that names the address but not the password or key."""
    handlers = {"starknet_chainId": lambda _: "0x534e5f5345504f4c4941", "starknet_blockNumber": lambda _: 3}
    with running_jsonrpc_server(handlers) as node:
        code, output = start_refusal(
            [
                "run",
                "--madara-rpc-url",
                secret_url(node.url, "madara"),
                "--settle-on-ethereum",
                "--ethereum-rpc-url",
                secret_url(node.url, "ethereum"),
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
                "--alert-webhook-url",
                secret_url(node.url, "webhook"),
                "--data-dir",
                str(tmp_path / "data"),
                "--port",
                "0",
            ],
            tmp_path,
        )
    assert code == 2, output
    assert f"the node at {node.url.rstrip('/')} refused eth_chainId (Method not found)" in output, output
    assert leaks(output) == [], output
