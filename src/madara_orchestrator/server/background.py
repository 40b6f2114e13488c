"""Run an ASGI app with uvicorn inside the current event loop, on 127.0.0.1 (a free port by default).

The listening socket is bound by us, not by uvicorn (which calls ``sys.exit`` when it cannot bind), so a
port already in use is one ``PortInUse`` error, and a command can bind before it starts anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from typing import Any

import uvicorn

from madara_orchestrator.domain.errors import InvalidInput


class PortInUse(InvalidInput):
    """Another process listens on the address the API was asked to use."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening: connections are refused until the server
    starts). Raises ``PortInUse``, or ``InvalidInput`` for an address this machine cannot bind."""
    if not 0 <= port <= 65535:
        raise InvalidInput(f"cannot listen on port {port}: a port is a number from 0 to 65535; check --port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}; check --host") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"{where} is already in use by another process: stop it, or choose another port with --port"
            ) from None
        raise InvalidInput(f"cannot listen on {where}: {exc.strerror or exc}; check --host and --port") from None
    return sock


class BackgroundServer:
    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int | None = None, sock: socket.socket | None = None
    ) -> None:
        """``sock``: a socket from ``bind_listener`` (then ``host`` and ``port`` are read from it)."""
        self._sock = sock
        if sock is not None:
            host, port = sock.getsockname()[:2]
        self.host = host
        self.port = port if port is not None else free_port(host)
        # log_config=None: uvicorn's lines go through the root logger's handler (and its redaction), not
        # through handlers of uvicorn's own.
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                log_config=None,
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        """Bind (unless given a socket) and serve; raises ``PortInUse`` when the port is taken."""
        if self._sock is None:
            self._sock = bind_listener(self.host, self.port)
            self.port = self._sock.getsockname()[1]
        # _serve skips uvicorn's signal capture: the process's owner (cli/) handles signals itself.
        self._task = asyncio.create_task(self._server._serve(sockets=[self._sock]))
        for _ in range(500):
            if self._server.started:
                return self.url
            if self._task.done():
                cause = None if self._task.cancelled() else self._task.exception()
                raise RuntimeError(f"server on {self.url} stopped during start-up") from cause
            await asyncio.sleep(0.01)
        raise RuntimeError(f"server on {self.url} did not start within 5 s")

    async def stop(self) -> None:
        if self._task is None:
            if self._sock is not None:
                self._sock.close()
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._task, timeout=5)
        self._task = None
