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
import base64
import binascii
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable, JobError
from madara_orchestrator.interfaces import SnosResult
from madara_orchestrator.snos.contract import (
    ChainIdRpc,
    DamagedSnosOutput,
    SnosRequest,
    SnosRunConfig,
    SnosRunFailed,
    check_output,
    failure_kind,
    parse_n_steps,
    parse_os_output_json,
    raise_failure,
    snos_rpc_answers,
)

log = logging.getLogger(__name__)

RUN_PATH = "run"
HEALTH_PATH = "health"
MESSAGE_BODY_CHARS = 500


def display_url(url: str) -> str:
    """The URL without credentials or query (either may carry a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _body_text(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text if len(text) <= MESSAGE_BODY_CHARS else text[:MESSAGE_BODY_CHARS] + "…"


class HttpSnosRunner:
    """Implements ``SnosRunner`` against a runner service."""

    def __init__(
        self,
        url: str,
        config: SnosRunConfig,
        *,
        rpc: ChainIdRpc,
        connect_timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown_url = display_url(self.url)
        self.config = config
        self.rpc = rpc
        self.connect_timeout_s = connect_timeout_s
        self._client = client or httpx.AsyncClient()
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def is_ready(self) -> bool:
        """The service answers ``GET /health`` with 200 and the SNOS RPC answers (SPEC §9 readiness)."""
        try:
            response = await self._client.get(f"{self.url}/{HEALTH_PATH}", timeout=self.connect_timeout_s)
        except httpx.HTTPError as exc:
            log.warning("SNOS runner %s is not reachable (%s); SnosRun jobs wait", self.shown_url, type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning(
                "SNOS runner %s is not healthy (HTTP %d); SnosRun jobs wait", self.shown_url, response.status_code
            )
            return False
        return await snos_rpc_answers(self.rpc)

    async def run(self, start_block: int, end_block: int) -> SnosResult:
        request = self.config.request(start_block, end_block)
        timeout = httpx.Timeout(self.config.timeout_s, connect=self.connect_timeout_s)
        try:
            response = await self._client.post(f"{self.url}/{RUN_PATH}", json=request.to_json(), timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise BackendUnavailable(f"SNOS runner {self.shown_url} is not reachable: {type(exc).__name__}") from exc
        except httpx.TimeoutException as exc:
            raise JobError(
                f"the SNOS runner {self.shown_url} did not answer within {self.config.timeout_s:g} s "
                f"(--snos-timeout-seconds) for blocks {request.blocks}; it will be retried",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"SNOS runner {self.shown_url}: the connection failed during the run ({type(exc).__name__}: {exc})"
            ) from exc
        status = response.status_code
        if status == 200:
            return await asyncio.to_thread(self._result, request, response)
        if status >= 500:
            raise BackendUnavailable(f"SNOS runner {self.shown_url} answered HTTP {status}: {_body_text(response)}")
        if status in (408, 429):
            raise JobError(
                f"the SNOS runner {self.shown_url} answered HTTP {status} for blocks {request.blocks}; "
                "it will be retried",
                retryable=True,
            )
        if 400 <= status < 500:
            body = _json_or_none(response)
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                kind = failure_kind(body.get("kind"))
                raise_failure(kind, f"the SNOS runner failed (HTTP {status}, {kind.value}): {body['error']}")
            raise SnosRunFailed(f"the SNOS runner answered HTTP {status}: {_body_text(response)}")
        raise BackendUnavailable(
            f"SNOS runner {self.shown_url} answered an unexpected HTTP {status} (expected 200, 4xx or 5xx)"
        )

    def _result(self, request: SnosRequest, response: httpx.Response) -> SnosResult:
        source = f"the SNOS runner {self.shown_url}"
        body = _json_or_none(response)
        if not isinstance(body, dict):
            raise DamagedSnosOutput(
                f"{source} answered 200 for blocks {request.blocks} with something other than a JSON object: "
                f"{_body_text(response)[:200]}"
            )
        encoded = body.get("cairo_pie")
        if not isinstance(encoded, str):
            raise DamagedSnosOutput(f"{source} answered 200 for blocks {request.blocks} without a cairo_pie (base64)")
        try:
            cairo_pie_zip = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DamagedSnosOutput(f"{source}: cairo_pie is not valid base64 ({exc})") from exc
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


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
