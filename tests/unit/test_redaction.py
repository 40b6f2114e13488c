"""No secret in what people see (issue 17): URLs cut to ``scheme://host[:port]`` and configured secrets masked
in log lines, alerts, job failure reasons and the messages of the RPC clients."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from madara_orchestrator.backends.alerts import FanoutAlerts, RecordingAlerts, WebhookAlerts
from madara_orchestrator.cli.run import RedactingFilter, configure_logging
from madara_orchestrator.cli.settings import RUN_OPTIONS, add_options, load_run_settings
from madara_orchestrator.domain.errors import BackendUnavailable
from madara_orchestrator.domain.jobs import CommonMetadata
from madara_orchestrator.domain.redaction import SecretMask, cut_urls, redact, url_origin
from madara_orchestrator.settlement.eth_rpc import EthRpc
from madara_orchestrator.starknet.feeder import FeederGatewayClient
from madara_orchestrator.starknet.rpc import StarknetRpcClient

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
URL = "https://bob:hunter2pw@rpc.example.com:8443/v2/path-key-0123456789abcdef?apikey=K3yK3yK3y&x=1"


def test_urls_are_cut_to_scheme_host_and_port() -> None:
    text = f"call to {URL} failed; see 'http://alice:pw@10.0.0.1/x?token=abc'."
    assert cut_urls(text) == "call to https://rpc.example.com:8443 failed; see 'http://10.0.0.1'."
    assert url_origin(URL) == "https://rpc.example.com:8443"
    assert url_origin("http://[::1]:9944/?k=v") == "http://[::1]:9944"
    assert url_origin("not a url") == "<url>"


def test_a_mask_hides_secret_values_and_the_secret_parts_of_urls() -> None:
    mask = SecretMask([KEY, URL, "ab"])
    text = f"key {KEY} (bare {KEY[2:]}), password hunter2pw, query K3yK3yK3y, path path-key-0123456789abcdef, ab"
    masked = mask(text)
    for secret in (KEY[2:], "hunter2pw", "K3yK3yK3y", "path-key-0123456789abcdef"):
        assert secret not in masked
    assert masked.endswith(", ab"), "a fragment too short to be a secret is left alone"
    assert redact(f"at {URL}", mask) == "at https://rpc.example.com:8443", "the origin of a URL stays readable"


def test_job_failure_reasons_are_stored_without_credentials_path_or_query() -> None:
    common = CommonMetadata().with_failure(f"Processing attempt 1 failed: RPC {URL} answered 500")
    common = common.with_failure("second")
    waiting = common.waiting(f"Waiting for an outside service: {URL} down", since=1)
    for stored in (common.previous_failure_reasons[0], waiting.failure_reason or ""):
        assert "hunter2pw" not in stored and "K3yK3yK3y" not in stored and "path-key" not in stored
        assert "https://rpc.example.com:8443" in stored


async def test_alerts_leave_through_the_fanout_redacted() -> None:
    recorded = RecordingAlerts()
    alerts = FanoutAlerts([recorded], mask=SecretMask([KEY]))
    await alerts.send(f"Job failed at {URL}", f"reason: signing with {KEY} at {URL}")
    ((subject, message),) = recorded.sent
    assert subject == "Job failed at https://rpc.example.com:8443"
    assert KEY not in message and "hunter2pw" not in message and "https://rpc.example.com:8443" in message


async def test_a_failing_webhook_is_logged_without_its_url(caplog: pytest.LogCaptureFixture) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="no")

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    webhook = WebhookAlerts(URL, client=client)
    with caplog.at_level(logging.WARNING):
        await webhook.send("subject", "text")
    await client.aclose()
    assert "alert webhook https://rpc.example.com:8443 answered HTTP 500" in caplog.text
    assert "hunter2pw" not in caplog.text and "K3yK3yK3y" not in caplog.text


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``configure_logging`` replaces the root logger's handlers: put them back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_every_log_line_is_redacted_message_arguments_and_exception(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(SecretMask([KEY]))
    log = logging.getLogger("madara_orchestrator.test")
    log.warning("calling %s with %s", URL, KEY)
    try:
        raise BackendUnavailable(f"{URL} refused {KEY}")
    except BackendUnavailable:
        log.exception("failed")
    logging.getLogger("uvicorn.error").error("from a library: %s", URL)
    out = capsys.readouterr().err
    assert "calling https://rpc.example.com:8443 with ***" in out
    assert "Traceback" in out and "BackendUnavailable: https://rpc.example.com:8443 refused ***" in out
    assert "from a library: https://rpc.example.com:8443" in out
    for secret in (KEY, KEY[2:], "hunter2pw", "K3yK3yK3y", "path-key"):
        assert secret not in out


@pytest.mark.usefixtures("root_logging")
def test_the_json_log_is_redacted_too(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    configure_logging(SecretMask([KEY]))
    try:
        raise ValueError(URL)
    except ValueError:
        logging.getLogger("x").exception("with %s", KEY)
    out = capsys.readouterr().err
    assert '"message": "with ***"' in out and "ValueError: https://rpc.example.com:8443" in out
    assert "hunter2pw" not in out and KEY[2:] not in out


def test_the_filter_leaves_ordinary_lines_alone() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "HTTP API on %s (%d)", ("http://127.0.0.1:3000", 7), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "HTTP API on http://127.0.0.1:3000 (7)"


def test_settings_describe_cuts_urls_and_the_mask_covers_every_url_setting() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_options(parser, RUN_OPTIONS)
    args = parser.parse_args(
        [
            "--madara-rpc-url",
            URL,
            "--prover",
            "devnet",
            "--snos-runner",
            "devnet",
            "--aggregator-runner",
            "devnet",
            "--settle-on-devnet",
            "--admin-enabled",
            "--admin-token",
            "t0k3n!",
        ]
    )
    settings = load_run_settings(args, {})
    shown = settings.describe()
    assert shown["madara_rpc_url"] == "https://rpc.example.com:8443"
    assert shown["admin_token"] == "***"
    mask = settings.secret_mask()
    assert mask("hunter2pw K3yK3yK3y t0k3n!") == "*** *** ***"


async def test_rpc_clients_name_only_the_origin_of_their_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"upstream {request.url} down")

    for make in (
        lambda c: StarknetRpcClient(URL, attempts=1, client=c),
        lambda c: FeederGatewayClient(URL, attempts=1, client=c),
        lambda c: EthRpc(URL, client=c),
    ):
        client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
        rpc = make(client)
        with pytest.raises(BackendUnavailable) as caught:
            if isinstance(rpc, StarknetRpcClient):
                await rpc.chain_id()
            elif isinstance(rpc, FeederGatewayClient):
                await rpc.get_block_bouncer_weights(1)
            else:
                await rpc.chain_id()
        await client.aclose()
        message = cut_urls(str(caught.value))  # the answer's text may quote a URL; logs and reasons cut it
        assert "https://rpc.example.com:8443" in str(caught.value)
        assert "hunter2pw" not in message and "K3yK3yK3y" not in message and "path-key" not in message
        assert "bob" not in str(caught.value).split("upstream")[0], "no credentials before the answer's text"
