"""A reverse proxy for JSON-RPC over HTTP that a test can break: it forwards every POST to its target,
or, while ``down``, answers HTTP 502 (``mode="502"``) or drops the connection (``mode="drop"``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.tls import default_tls

log = logging.getLogger(__name__)


@dataclass
class FlakyProxy:
    target: str
    down: bool = False
    mode: str = "502"
    refused: int = 0
    forwarded: int = 0
    server: BackgroundServer | None = None
    _client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30, verify=default_tls()))

    async def _forward(self, request: Request) -> Response:
        if self.down:
            self.refused += 1
            if self.mode == "drop":
                raise ConnectionResetError("the test dropped the connection")
            return Response("Bad Gateway", status_code=502)
        try:
            body = await request.body()
        except ClientDisconnect:  # its client was killed mid-request: nobody to answer, nothing to forward
            log.info(
                "flaky proxy: the client went away during %s %s; request dropped", request.method, request.url.path
            )
            return Response(status_code=499)
        reply = await self._client.request(
            request.method,
            self.target.rstrip("/") + "/" + request.path_params.get("path", ""),
            content=body,
            params=dict(request.query_params),
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        self.forwarded += 1
        return Response(reply.content, status_code=reply.status_code, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self._forward, methods=["POST", "GET"]),
                Route("/{path:path}", self._forward, methods=["POST", "GET"]),
            ]
        )

    async def start(self) -> str:
        self.server = BackgroundServer(self.app())
        return await self.server.start()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self._client.aclose()
