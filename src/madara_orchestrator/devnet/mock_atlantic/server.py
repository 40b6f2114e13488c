"""The mock Atlantic app under uvicorn, in-process (tests, devnet) or until interrupted (the command)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn

from madara_orchestrator.devnet.mock_atlantic.routes import create_app
from madara_orchestrator.devnet.mock_atlantic.state import (
    ARTIFACTS_PREFIX,
    L2FactRegistry,
    MockAtlanticConfig,
    MockAtlanticState,
)
from madara_orchestrator.interfaces import FactRegistry


class MockAtlanticServer:
    """The app under uvicorn on a socket of its own (port 0 → a free port), started and stopped in-process."""

    def __init__(
        self,
        config: MockAtlanticConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fact_registry: FactRegistry | None = None,
        l2_fact_registry: L2FactRegistry | None = None,
    ) -> None:
        """``fact_registry``: where aggregator facts are registered (an L1 fact registry in e2e tests);
        ``l2_fact_registry``: where L2 verification queries register their facts (the L3 devnet's L2)."""
        self.state = MockAtlanticState(
            config=config or MockAtlanticConfig(), fact_registry=fact_registry, l2_fact_registry=l2_fact_registry
        )
        self.app = create_app(state=self.state)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the mock Atlantic server is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def artifacts_url(self) -> str:
        return self.url + ARTIFACTS_PREFIX

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets NODELAY
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False, log_config=None)
        self._server = uvicorn.Server(config)
        # _serve skips uvicorn's signal capture: a Ctrl-C or SIGTERM is the embedding process's to handle (the
        # mock must keep answering while the orchestrator beside it shuts down gracefully).
        self._task = asyncio.create_task(self._server._serve(sockets=[sock]))
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if not self._server.started:
            await self.stop()
            raise RuntimeError("the mock Atlantic server did not start")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._task = None

    async def __aenter__(self) -> MockAtlanticServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def serve(config: MockAtlanticConfig, *, host: str = "127.0.0.1", port: int = 4001) -> None:
    """Run until interrupted (the ``orchestrator mock-atlantic`` command)."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
