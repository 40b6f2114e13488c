"""The tests' aggregator runner service: the runner program's logic behind the HTTP API of
``docs/aggregator-runner.md``.

``python -m tests.helpers.aggregator_runner_service --port P`` serves on 127.0.0.1:

- ``GET /health``: 200 ``{"status": "ok"}`` (503 in mode ``unhealthy``);
- ``POST /aggregate``: the request JSON; 200 ``{"cairo_pie": base64, "program_output": [hex], "da_segment":
  [hex]}``, or 422 ``{"error", "kind"}`` for a failure the run reports;
- ``POST /test/mode`` ``{"mode": M}``: the misbehaviour of the next runs (the runner program's
  ``AGGREGATOR_TEST_MODE`` values, plus ``outage``: 503 to every run, ``unhealthy``, ``too-many``: 429, and
  ``hang``: answer after ``hang_s`` seconds). ``GET /test/runs`` lists the requests received (without
  their PIEs).

``running_service()`` starts it as a subprocess on a free port and waits until it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from madara_orchestrator.aggregator.contract import AggregatorRequest
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.server.background import free_port
from tests.conftest import REPO_ROOT
from tests.helpers.aggregator_runner_program import MODE_VARIABLE, RunnerFailure, produce


@dataclass
class ServiceState:
    mode: str = ""
    hang_s: float = 600.0
    runs: list[dict[str, Any]] = field(default_factory=list)


def create_app(state: ServiceState) -> Starlette:
    async def health(request: Request) -> Response:
        if state.mode == "unhealthy":
            return JSONResponse({"status": "unhealthy"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def aggregate(request: Request) -> Response:
        try:
            body = await request.json()
            aggregator_request = AggregatorRequest.from_json(body)
        except (ValueError, InvalidInput) as exc:
            return JSONResponse({"error": f"bad request: {exc}", "kind": "failed"}, status_code=400)
        state.runs.append(
            {**body, "children": [{k: v for k, v in c.items() if k != "cairo_pie"} for c in body["children"]]}
        )
        if state.mode == "outage":
            return Response("runner overloaded", status_code=503)
        if state.mode == "too-many":
            return Response("slow down", status_code=429)
        if state.mode == "hang":
            await asyncio.sleep(state.hang_s)
        try:
            # The Cairo VM is CPU-bound: off the loop, so /health still answers during a run.
            produced = await asyncio.to_thread(produce, aggregator_request, state.mode)
        except RunnerFailure as failure:
            return JSONResponse({"error": failure.message, "kind": failure.kind.value}, status_code=422)
        if state.mode == "no-output":
            return JSONResponse({"cairo_pie": base64.b64encode(produced.cairo_pie).decode()})
        return JSONResponse(
            {
                "cairo_pie": base64.b64encode(produced.cairo_pie).decode(),
                "program_output": [hex(f) for f in produced.program_output],
                "da_segment": [hex(f) for f in produced.da_segment],
            }
        )

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
            Route("/aggregate", aggregate, methods=["POST"]),
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
        httpx.post(f"{self.url}/test/mode", json=body, timeout=5).raise_for_status()

    def runs(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = httpx.get(f"{self.url}/test/runs", timeout=5).json()
        return answer


@contextmanager
def running_service(*, mode: str = "", port: int | None = None, startup_s: float = 30.0) -> Iterator[RunningService]:
    """The service as a subprocess on 127.0.0.1 (a free port), answering ``/health`` before this yields."""
    port = port or free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'src'}", MODE_VARIABLE: mode}
    log = tempfile.TemporaryFile()  # not a pipe: an unread pipe that fills up blocks the service
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.aggregator_runner_service", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    service = RunningService(url=f"http://127.0.0.1:{port}", process=process)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise AssertionError(f"the aggregator runner service exited with {process.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{service.url}/health", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the aggregator runner service did not answer within {startup_s} s")
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="aggregator_runner_service")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    state = ServiceState(mode=os.environ.get(MODE_VARIABLE, ""))
    uvicorn.run(create_app(state), host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
