"""The doubles a killed orchestrator talks to (the mock Atlantic, the tests' flaky proxy): a client that goes
away before its body has arrived is one line in the log, not an "Exception in ASGI application" traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.types import ASGIApp

from madara_orchestrator.devnet.mock_atlantic.routes import create_app
from madara_orchestrator.devnet.mock_atlantic.state import MockAtlanticConfig
from tests.helpers.flaky_proxy import FlakyProxy


async def _gone_mid_request(app: ASGIApp, path: str, content_type: bytes) -> list[dict[str, Any]]:
    """POST ``path`` as a client that is killed before its body arrives; what the app sent back."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", content_type), (b"api-key", b"test-key")]
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b"", "root_path": ""}
    await app({**scope, "scheme": "http", "server": ("127.0.0.1", 1), "asgi": {"version": "3.0"}}, receive, send)
    return sent


UPLOAD = b"multipart/form-data; boundary=xyz"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/atlantic-query", UPLOAD), ("/buckets", b"application/json"), ("/_mock/faults", b"application/json")],
)
async def test_the_mock_atlantic_logs_a_client_gone_mid_upload_in_one_line(
    path: str, content_type: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(MockAtlanticConfig(api_key="test-key", webhook_url=None))
    sent = await _gone_mid_request(app, path, content_type)
    assert sent[0]["status"] == 499, "answered to nobody, not raised into uvicorn's log"
    assert app.state.mock.submissions == 0 and app.state.mock.buckets == {} and app.state.mock.faults == []
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.INFO, None)], caplog.text
    assert f"the client went away during POST {path}" in caplog.records[0].getMessage()


async def test_the_flaky_proxy_drops_a_request_whose_client_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = FlakyProxy("http://127.0.0.1:9")
    try:
        sent = await _gone_mid_request(proxy.app(), "/", b"application/json")
    finally:
        await proxy.stop()
    assert sent[0]["status"] == 499 and proxy.forwarded == 0
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.INFO, None)], caplog.text
