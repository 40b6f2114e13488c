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

``running_service()`` starts it as a subprocess on a free port and waits until it answers
(``tests.helpers.runner_service`` holds what it shares with the SNOS runner service).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from madara_orchestrator.aggregator.contract import AggregatorRequest
from madara_orchestrator.domain.errors import InvalidInput
from tests.helpers import runner_service
from tests.helpers.aggregator_runner_program import MODE_VARIABLE, RunnerFailure, produce
from tests.helpers.runner_service import RunningService, ServiceState, misbehaviour

__all__ = ["RunningService", "ServiceState", "create_app", "running_service"]


def create_app(state: ServiceState) -> Starlette:
    async def aggregate(request: Request) -> Response:
        try:
            body = await request.json()
            aggregator_request = AggregatorRequest.from_json(body)
        except (ValueError, InvalidInput) as exc:
            return JSONResponse({"error": f"bad request: {exc}", "kind": "failed"}, status_code=400)
        state.runs.append(
            {**body, "children": [{k: v for k, v in c.items() if k != "cairo_pie"} for c in body["children"]]}
        )
        answer = await misbehaviour(state)
        if answer is not None:
            return answer
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

    return runner_service.create_app(state, "aggregate", aggregate)


@contextmanager
def running_service(*, mode: str = "", port: int | None = None, startup_s: float = 30.0) -> Iterator[RunningService]:
    """The service as a subprocess on 127.0.0.1 (a free port), answering ``/health`` before this yields."""
    with runner_service.running_service(
        "tests.helpers.aggregator_runner_service",
        "the aggregator runner service",
        mode_variable=MODE_VARIABLE,
        mode=mode,
        port=port,
        startup_s=startup_s,
    ) as service:
        yield service


def main() -> None:
    runner_service.serve("aggregator_runner_service", MODE_VARIABLE, create_app)


if __name__ == "__main__":
    main()
