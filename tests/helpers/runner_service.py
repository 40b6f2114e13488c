"""What the tests' runner services (SNOS: ``snos_runner_service``, the aggregator: ``aggregator_runner_service``)
share: the test controls, the misbehaviours of a run, and starting one as a subprocess.

- ``GET /health``: 200 ``{"status": "ok"}`` (503 in mode ``unhealthy``);
- ``POST /test/mode`` ``{"mode": M}``: the misbehaviour of the next runs (the runner program's test modes, plus
  ``outage``: 503 to every run, ``unhealthy``, ``too-many``: 429, and ``hang``: answer after ``hang_s``
  seconds). ``GET /test/runs`` lists the requests received.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from madara_orchestrator.server.background import free_port
from madara_orchestrator.tls import default_tls
from tests.conftest import REPO_ROOT


@dataclass
class ServiceState:
    mode: str = ""
    hang_s: float = 600.0
    runs: list[dict[str, Any]] = field(default_factory=list)


async def misbehaviour(state: ServiceState) -> Response | None:
    """The answer of a run in modes ``outage`` and ``too-many``; in mode ``hang``, the wait first."""
    if state.mode == "outage":
        return Response("runner overloaded", status_code=503)
    if state.mode == "too-many":
        return Response("slow down", status_code=429)
    if state.mode == "hang":
        await asyncio.sleep(state.hang_s)
    return None


def create_app(state: ServiceState, run_path: str, run: Callable[[Request], Awaitable[Response]]) -> Starlette:
    """The service: ``POST /{run_path}`` answered by ``run``, the health and test routes."""

    async def health(request: Request) -> Response:
        if state.mode == "unhealthy":
            return JSONResponse({"status": "unhealthy"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def set_mode(request: Request) -> Response:
        body = await request.json()
        state.mode = str(body.get("mode", ""))
        state.hang_s = float(body.get("hang_s", state.hang_s))
        return JSONResponse({"mode": state.mode})

    async def runs(request: Request) -> Response:
        return JSONResponse(state.runs)

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route(f"/{run_path}", run, methods=["POST"]),
            Route("/test/mode", set_mode, methods=["POST"]),
            Route("/test/runs", runs, methods=["GET"]),
        ]
    )


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen[bytes]

    def set_mode(self, mode: str, *, hang_s: float | None = None) -> None:
        body: dict[str, Any] = {"mode": mode}
        if hang_s is not None:
            body["hang_s"] = hang_s
        httpx.post(f"{self.url}/test/mode", json=body, timeout=5, verify=default_tls()).raise_for_status()

    def runs(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = httpx.get(f"{self.url}/test/runs", timeout=5, verify=default_tls()).json()
        return answer


@contextmanager
def running_service(
    module: str, name: str, *, mode_variable: str, mode: str, port: int | None, startup_s: float
) -> Iterator[RunningService]:
    """``python -m {module}`` as a subprocess on 127.0.0.1 (a free port), answering ``/health`` before this
    yields; ``name`` ("the SNOS runner service") names it in failures."""
    port = port or free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'src'}", mode_variable: mode}
    log = tempfile.TemporaryFile()  # not a pipe: an unread pipe that fills up blocks the service
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
    )
    service = RunningService(url=f"http://127.0.0.1:{port}", process=process)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise AssertionError(f"{name} exited with {process.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{service.url}/health", timeout=1, verify=default_tls()).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not answer within {startup_s} s")
            time.sleep(0.05)
        yield service
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def serve(prog: str, mode_variable: str, app: Callable[[ServiceState], Starlette]) -> None:
    """The service's ``main``: ``--port P``, the mode from ``mode_variable``."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    state = ServiceState(mode=os.environ.get(mode_variable, ""))
    uvicorn.run(app(state), host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=1)
