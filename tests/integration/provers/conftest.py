"""Real servers on 127.0.0.1 with free ports: the mock Atlantic server and a webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.provers.atlantic import AtlanticQuery, parse_atlantic_webhook
from tests.conftest import require


@pytest.fixture
def fibonacci(vectors_dir: Path) -> bytes:
    path = vectors_dir / "pie" / "fibonacci.zip"
    require(path.is_file(), f"PIE vector {path}")
    return path.read_bytes()


class UvicornApp:
    """An ASGI app served on a free port of 127.0.0.1 (optionally over TLS) inside the test's loop."""

    def __init__(self, app: object, **ssl: object) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, log_config=None, **ssl)  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> UvicornApp:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        for _ in range(500):
            if self.server.started:
                return self
            await asyncio.sleep(0.01)
        raise RuntimeError("test server did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, timeout=10)
        self.sock.close()


class WebhookReceiver:
    """What the orchestrator's HTTP API will do: parse the webhook and wake whoever waits on the query."""

    def __init__(self) -> None:
        self.received: list[AtlanticQuery] = []
        self.rejected: list[str] = []
        self._events: dict[str, asyncio.Event] = {}

    def event(self, query_id: str) -> asyncio.Event:
        return self._events.setdefault(query_id, asyncio.Event())

    async def handle(self, request: Request) -> Response:
        try:
            hook = parse_atlantic_webhook(await request.body())
        except InvalidInput as exc:
            self.rejected.append(str(exc))
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.received.append(hook)
        self.event(hook.id).set()
        return JSONResponse({"ok": True})


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver()
    app = Starlette(routes=[Route("/webhooks/atlantic", receiver.handle, methods=["POST"])])
    async with UvicornApp(app) as server:
        yield receiver, f"http://127.0.0.1:{server.port}/webhooks/atlantic"
