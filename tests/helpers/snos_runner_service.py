"""The tests' SNOS runner service: the runner program's logic behind the HTTP API of ``docs/snos-runner.md``.

``python -m tests.helpers.snos_runner_service --port P`` serves on 127.0.0.1:

- ``GET /health``: 200 ``{"status": "ok"}`` (503 in mode ``unhealthy``);
- ``POST /run``: the request JSON; 200 ``{"cairo_pie": base64, "os_output": [hex], "n_steps"}``, or 4xx
  ``{"error", "kind"}`` for a failure the run reports;
- ``POST /test/mode`` ``{"mode": M}``: the misbehaviour of the next runs (the runner program's
  ``SNOS_TEST_MODE`` values, plus ``outage``: 503 to every run, ``unhealthy``, ``too-many``: 429, and ``hang``:
  answer after ``hang_s`` seconds). ``GET /test/runs`` lists the requests received.

``running_service()`` starts it as a subprocess on a free port and waits until it answers
(``tests.helpers.runner_service`` holds what it shares with the aggregator runner service).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.snos.contract import SnosRequest
from tests.helpers import runner_service
from tests.helpers.runner_service import RunningService, ServiceState, misbehaviour
from tests.helpers.snos_runner_program import MODE_VARIABLE, RunnerFailure, produce

__all__ = ["RunningService", "ServiceState", "create_app", "running_service"]


def create_app(state: ServiceState) -> Starlette:
    async def run(request: Request) -> Response:
        try:
            body = await request.json()
            snos_request = SnosRequest.from_json(body)
        except (ValueError, InvalidInput) as exc:
            return JSONResponse({"error": f"bad request: {exc}", "kind": "os_failed"}, status_code=400)
        state.runs.append(body)
        answer = await misbehaviour(state)
        if answer is not None:
            return answer
        try:
            produced = await produce(snos_request, state.mode)
        except RunnerFailure as failure:
            return JSONResponse({"error": failure.message, "kind": failure.kind.value}, status_code=422)
        if state.mode == "no-output":
            return JSONResponse({"n_steps": produced.n_steps})
        return JSONResponse(
            {
                "cairo_pie": base64.b64encode(produced.cairo_pie).decode(),
                "os_output": [hex(f) for f in produced.os_output],
                "n_steps": produced.n_steps,
            }
        )

    return runner_service.create_app(state, "run", run)


@contextmanager
def running_service(*, mode: str = "", port: int | None = None, startup_s: float = 20.0) -> Iterator[RunningService]:
    """The service as a subprocess on 127.0.0.1 (a free port), answering ``/health`` before this yields."""
    with runner_service.running_service(
        "tests.helpers.snos_runner_service",
        "the SNOS runner service",
        mode_variable=MODE_VARIABLE,
        mode=mode,
        port=port,
        startup_s=startup_s,
    ) as service:
        yield service


def main() -> None:
    runner_service.serve("snos_runner_service", MODE_VARIABLE, create_app)


if __name__ == "__main__":
    main()
