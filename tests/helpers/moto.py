"""A moto server (AWS S3, SQS, SNS, EventBridge, Scheduler, IAM on one port) for the test session.

``moto_server`` (from the virtualenv's bin, installed by ``moto[server]``) runs as a subprocess on
127.0.0.1 at a free port for the whole session and is stopped at its end. Tests point the AWS clients at
it through the environment (``aws_env``: ``AWS_ENDPOINT_URL``, test credentials, ``AWS_REGION=us-east-1``)
and isolate themselves with unique names (``aws_prefix``) or by resetting moto (``moto_reset``).

Fixtures (registered by ``tests/conftest.py``): ``moto_server``, ``aws_env``, ``moto_reset``,
``aws_prefix``. Without moto_server the tests are skipped, or fail under CI=true.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.backends.aws_names import QueueAddressing
from madara_orchestrator.backends.aws_sqs import SqsQueue
from madara_orchestrator.domain.queues import QueueConfig
from madara_orchestrator.tls import default_tls
from tests.conftest import require

REGION = "us-east-1"
ACCOUNT = "123456789012"
"""moto's default account id."""


def find_moto_server() -> str | None:
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    return shutil.which("moto_server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/moto-api/", timeout=1, verify=default_tls()).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(
                f"moto_server exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto_server did not answer at {url} within {timeout_s:g} s")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto server running for the whole session. Its log (a line per request) goes to a
    file: a pipe nobody reads would fill up and block the server."""
    binary = find_moto_server()
    require(binary is not None, "moto_server (pip install 'moto[server]')")
    assert binary is not None
    with served_moto([binary], tmp_path_factory.mktemp("moto")) as url:
        yield url


@contextlib.contextmanager
def served_moto(command: list[str], log_dir: Path) -> Iterator[str]:
    """Run a moto server (``command`` plus its host and port) until the block ends; yields its URL. Its log
    (a line per request) goes to ``log_dir/moto_server.log``."""
    port = _free_port()
    log = log_dir / "moto_server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)], stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def aws_environment(url: str) -> dict[str, str]:
    """The variables that point the AWS SDK at moto with test credentials."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the AWS SDK at the session's moto server (for this test); returns its URL."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    for name, value in aws_environment(moto_server).items():
        monkeypatch.setenv(name, value)
    return moto_server


def reset_moto(url: str) -> None:
    httpx.post(f"{url}/moto-api/reset", timeout=10, verify=default_tls()).raise_for_status()


@pytest.fixture
def moto_reset(aws_env: str) -> str:
    """A moto with nothing in it (every backend reset), pointed at by the environment."""
    reset_moto(aws_env)
    return aws_env


@pytest.fixture
def aws_prefix() -> str:
    """A prefix no other test uses: lowercase, valid in every resource name."""
    return f"t{uuid.uuid4().hex[:10]}"


def create_sqs_queues(
    aws: Aws, configs: Mapping[str, QueueConfig], dead_letter_names: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Create queues named as ``configs`` says (dead-letter queues first, redrive after each config's
    ``max_receive_count``); returns their URLs by name. For tests that name queues themselves; the
    orchestrator's own queues are made by ``orchestrator setup --aws``."""
    sqs = aws.client("sqs")
    dead_letters = dict(dead_letter_names or {})
    order = sorted(configs, key=lambda name: name not in dead_letters.values())
    urls: dict[str, str] = {}
    for name in order:
        config = configs[name]
        attributes = {"VisibilityTimeout": str(math.ceil(config.visibility_timeout_s))}
        if config.retention_s is not None:
            attributes["MessageRetentionPeriod"] = str(max(60, int(config.retention_s)))
        if name in dead_letters:
            target = sqs.get_queue_attributes(QueueUrl=urls[dead_letters[name]], AttributeNames=["QueueArn"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": target["Attributes"]["QueueArn"], "maxReceiveCount": config.max_receive_count}
            )
        urls[name] = str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    return urls


@contextlib.asynccontextmanager
async def sqs_contract_queue(
    request: pytest.FixtureRequest, configs: Mapping[str, QueueConfig], dead_letter_names: Mapping[str, str]
) -> AsyncIterator[SqsQueue]:
    """The SQS queue of the queue contract (``tests/integration/test_queue_contract.py``), on a reset moto.

    SQS runs on real time: a contract test that drives a fake clock (it takes the ``clock`` fixture) is
    skipped here; ``tests/integration/aws/test_sqs_semantics.py`` checks the same with short real timeouts."""
    if "clock" in inspect.signature(request.function).parameters:
        pytest.skip("SQS runs on real time (tests/integration/aws/test_sqs_semantics.py covers this)")
    request.getfixturevalue("moto_reset")
    aws = Aws()
    try:
        create_sqs_queues(aws, configs, dead_letter_names)
        yield SqsQueue(aws, QueueAddressing.parse(), configs)
    finally:
        aws.close()
