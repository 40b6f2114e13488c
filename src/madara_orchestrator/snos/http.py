"""``--snos-runner http``: a SNOS runner service over HTTP (``docs/snos-runner.md``).

``POST {url}/run`` with the request as JSON; 200 answers ``{"cairo_pie": <base64 zip>, "os_output":
[felts], "n_steps"?}``, checked like a command's output. A 4xx answer ``{"error", "kind"}`` is the
run's failure (``kind`` retryable / os_failed / unknown: classified by the SPEC §2.8 markers); 408
and 429 are retried. 5xx and connection failures are an outage of the service, waited out
(``BackendUnavailable``) without spending the job's attempts; no answer within the SNOS timeout is
retried. ``GET {url}/health`` answering 200 (and the SNOS RPC answering) is readiness.
"""

from __future__ import annotations

import asyncio

import httpx

from madara_orchestrator.interfaces import ChainIdRpc, SnosResult
from madara_orchestrator.runners.http import (
    RunnerService,
    body_text,
    decode_base64,
    display_url,
    reported_failure,
)
from madara_orchestrator.snos.contract import (
    SNOS_RUNNER,
    DamagedSnosOutput,
    SnosRequest,
    SnosRunConfig,
    check_output,
    failure_kind,
    parse_n_steps,
    parse_os_output_json,
    raise_failure,
    typed_run,
    unclassified_failure,
)

RUN_PATH = "run"
__all__ = ["HttpSnosRunner", "display_url"]


class HttpSnosRunner(RunnerService[SnosRunConfig, ChainIdRpc]):
    """Implements ``SnosRunner`` against a runner service."""

    who = "SNOS runner"
    kind = SNOS_RUNNER

    @typed_run
    async def run(self, start_block: int, end_block: int) -> SnosResult:
        request = self.config.request(start_block, end_block)
        response = await self.post(RUN_PATH, request.to_json(), subject=f"blocks {request.blocks}")
        status = response.status_code
        if status == 200:
            return await asyncio.to_thread(self._result, request, response)
        if failure := reported_failure(response):
            error, kind = failure[0], failure_kind(failure[1])
            raise_failure(kind, f"the SNOS runner failed (HTTP {status}, {kind.value}): {error}")
        raise unclassified_failure(f"the SNOS runner answered HTTP {status}: {body_text(response)}")

    def _result(self, request: SnosRequest, response: httpx.Response) -> SnosResult:
        source = f"the SNOS runner {self.shown_url}"
        body = self.answer_object(response, f"blocks {request.blocks}", DamagedSnosOutput)
        encoded = body.get("cairo_pie")
        if not isinstance(encoded, str):
            raise DamagedSnosOutput(f"{source} answered 200 for blocks {request.blocks} without a cairo_pie (base64)")
        cairo_pie_zip = decode_base64(encoded)
        if cairo_pie_zip is None:
            raise DamagedSnosOutput(f"{source}: cairo_pie is not valid base64")
        if "os_output" not in body:
            raise DamagedSnosOutput(f"{source} answered 200 for blocks {request.blocks} without an os_output")
        os_output = parse_os_output_json(body["os_output"], f"{source}: os_output")
        return check_output(
            request,
            cairo_pie_zip=cairo_pie_zip,
            os_output=os_output,
            reported_n_steps=parse_n_steps(body.get("n_steps"), f"{source}: n_steps"),
            source=source,
        )
