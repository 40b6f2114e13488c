"""Run an ASGI app with uvicorn inside the current event loop, on 127.0.0.1 (a free port by default)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class BackgroundServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=self.port, log_level="warning", access_log=False, lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        # _serve skips uvicorn's signal capture: the process's owner (cli/) handles signals itself.
        self._task = asyncio.create_task(self._server._serve())
        for _ in range(500):
            if self._server.started:
                return self.url
            if self._task.done():
                self._task.result()  # raises the bind error
                raise RuntimeError(f"server on {self.url} stopped during start-up")
            await asyncio.sleep(0.01)
        raise RuntimeError(f"server on {self.url} did not start within 5 s")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._task, timeout=5)
        self._task = None
