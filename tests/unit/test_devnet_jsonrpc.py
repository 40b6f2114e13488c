"""The doubles' JSON-RPC endpoint: a client that goes away before its body arrives gets no traceback."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from madara_orchestrator.devnet.jsonrpc import jsonrpc_response


async def test_a_client_gone_before_its_body_is_answered_without_an_error() -> None:
    async def endpoint(request: Request) -> Response:
        return await jsonrpc_response(request, lambda item: {"jsonrpc": "2.0", "id": 1, "result": "0x1"})

    app = Starlette(routes=[Route("/", endpoint, methods=["POST"])])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}  # the client stopped mid-request

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b"", "root_path": ""}
    await app({**scope, "scheme": "http", "server": ("127.0.0.1", 1), "asgi": {"version": "3.0"}}, receive, send)
    assert sent[0]["status"] == 499, "answered (to nobody) instead of raising ClientDisconnect into the log"
