"""``--aggregator-runner http``: an aggregator runner service over HTTP (``docs/aggregator-runner.md``).

``POST {url}/aggregate`` with the request as JSON (the SNOS PIEs inline, base64); 200 answers
``{"cairo_pie": <base64 zip>, "program_output": [felts], "da_segment": [felts]}``, checked like a
command's output. A 4xx answer ``{"error", "kind"}`` is the run's failure (``kind`` retryable: retried;
anything else: failed); 408 and 429 are retried. 5xx and connection failures are an outage of the service,
waited out without spending the job's attempts; no answer within the timeout is retried.
``GET {url}/health`` answering 200 (and the sequencer answering) is readiness.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from madara_orchestrator.aggregator.contract import (
    AGGREGATOR_RUNNER,
    AggregatorRequest,
    AggregatorRunConfig,
    ChainRpc,
    ChainStart,
    DamagedAggregatorOutput,
    check_output,
    checked_request,
    failure_kind,
    parse_felts_json,
    raise_failure,
)
from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.interfaces import AggregationInput, AggregationResult
from madara_orchestrator.runners.http import (
    RunnerService,
    body_text,
    decode_base64,
    reported_failure,
)

RUN_PATH = "aggregate"


class HttpAggregatorRunner(RunnerService[AggregatorRunConfig, ChainRpc]):
    """Implements ``AggregatorRunner`` against a runner service; ``rpc`` is the sequencer."""

    who = "aggregator runner"
    kind = AGGREGATOR_RUNNER

    async def run(self, batch: AggregationInput) -> AggregationResult:
        request, start = await checked_request(batch, self.config, self.rpc)
        # The PIEs make a large body: encoded off the event loop.
        body = await asyncio.to_thread(lambda: json.dumps(request.to_json()).encode())
        response = await self.post(RUN_PATH, body, subject=request.subject)
        status = response.status_code
        if status == 200:
            return await asyncio.to_thread(self._result, request, start, response)
        if failure := reported_failure(response):
            error, kind = failure[0], failure_kind(failure[1])
            raise_failure(kind, f"the aggregator failed on {request.subject} (HTTP {status}, {kind.value}): {error}")
        raise JobError(
            f"the aggregator runner answered HTTP {status} for {request.subject}: {body_text(response)}",
            retryable=False,
        )

    def _result(self, request: AggregatorRequest, start: ChainStart, response: httpx.Response) -> AggregationResult:
        source = f"the aggregator runner {self.shown_url}"
        body = self.answer_object(response, request.subject, DamagedAggregatorOutput)
        cairo_pie_zip = decode_base64(body.get("cairo_pie"))
        if cairo_pie_zip is None:
            raise DamagedAggregatorOutput(f"{source} answered 200 for {request.subject} without a cairo_pie in base64")
        for name in ("program_output", "da_segment"):
            if name not in body:
                raise DamagedAggregatorOutput(f"{source} answered 200 for {request.subject} without a {name}")
        return check_output(
            request,
            start,
            cairo_pie_zip=cairo_pie_zip,
            program_output=parse_felts_json(body["program_output"], f"{source}: program_output"),
            da_segment=parse_felts_json(body["da_segment"], f"{source}: da_segment"),
            source=source,
        )
