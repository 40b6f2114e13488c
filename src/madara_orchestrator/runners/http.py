"""Posting a run to a runner service, and reading its answer (SNOS: ``snos/http.py``, the aggregator:
``aggregator/http.py``).

``post_run`` sorts what cannot be the run's own answer: no connection, a reset or 5xx is an outage
(``BackendUnavailable``: waited out without spending the job's attempts); no answer within the run's
timeout, 408 and 429 are retried (``JobError``). What it returns (200 or another 4xx) is the caller's
to read. ``healthy`` is readiness: ``GET /health`` answering 200.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, ClassVar, Generic
from urllib.parse import urlsplit, urlunsplit

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable, JobError
from madara_orchestrator.runners.contract import ConfigT, DamagedOutput, RpcT, RunnerKind
from madara_orchestrator.tls import default_tls

log = logging.getLogger(__name__)

HEALTH_PATH = "health"
MESSAGE_BODY_CHARS = 500


def display_url(url: str) -> str:
    """The URL without credentials or query (either may carry a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def body_text(response: httpx.Response) -> str:
    """The answer's body on one line, cut to a length a message can carry."""
    text = " ".join(response.text.split())
    return text if len(text) <= MESSAGE_BODY_CHARS else text[:MESSAGE_BODY_CHARS] + "…"


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def reported_failure(response: httpx.Response) -> tuple[str, Any] | None:
    """A runner's own failure, ``{"error": <text>, "kind": ...}`` (a 4xx answer): the error and the kind as
    given (each contract reads its kinds); None when the answer is not one."""
    body = json_or_none(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], body.get("kind")
    return None


def decode_base64(value: Any) -> bytes | None:
    """Standard base64 text as bytes; None when it is not a string of valid base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


async def healthy(
    client: httpx.AsyncClient, url: str, *, shown_url: str, who: str, waiting: str, timeout_s: float
) -> bool:
    """``GET {url}/health`` answers 200; otherwise a warning that ``waiting`` ("SnosRun jobs") wait."""
    try:
        response = await client.get(f"{url}/{HEALTH_PATH}", timeout=timeout_s)
    except httpx.HTTPError as exc:
        log.warning("%s %s is not reachable (%s); %s wait", who, shown_url, type(exc).__name__, waiting)
        return False
    if response.status_code != 200:
        log.warning("%s %s is not healthy (HTTP %d); %s wait", who, shown_url, response.status_code, waiting)
        return False
    return True


class RunnerService(Generic[ConfigT, RpcT]):
    """What an HTTP runner of either kind (SNOS, aggregator) holds: the service's URL (``shown_url`` cut for
    logs), its client (closed with the runner when the runner made it) and the service's readiness."""

    who = "runner"
    """How logs name the service ("SNOS runner")."""
    kind: ClassVar[RunnerKind]
    """What waits while it is not ready, the timeout's option, the RPC's readiness."""

    def __init__(
        self,
        url: str,
        config: ConfigT,
        *,
        rpc: RpcT,
        connect_timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """``config``: what every run shares (its ``timeout_s`` bounds a run); ``rpc``: what readiness and the
        checks read from the chain."""
        self.config = config
        self.rpc = rpc
        self.url = url.rstrip("/")
        self.shown_url = display_url(self.url)
        self.connect_timeout_s = connect_timeout_s
        self._client = client or httpx.AsyncClient(verify=default_tls())
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def is_ready(self) -> bool:
        """The service answers ``GET /health`` with 200 and the RPC answers (SPEC §9 readiness)."""
        return await self.service_is_healthy() and await self.kind.rpc_answers(self.rpc)

    async def service_is_healthy(self) -> bool:
        """The service answers ``GET /health`` with 200 (else one warning saying what waits)."""
        return await healthy(
            self._client,
            self.url,
            shown_url=self.shown_url,
            who=self.who,
            waiting=self.kind.waiting,
            timeout_s=self.connect_timeout_s,
        )

    async def post(self, path: str, body: Any, *, subject: str) -> httpx.Response:
        """``post_run`` to ``{url}/{path}`` with this runner's names and timeouts."""
        return await post_run(
            self._client,
            f"{self.url}/{path}",
            body,
            shown_url=self.shown_url,
            who=self.who,
            subject=subject,
            timeout_s=self.config.timeout_s,
            timeout_flag=self.kind.timeout_flag,
            connect_timeout_s=self.connect_timeout_s,
        )

    def answer_object(self, response: httpx.Response, subject: str, damaged: type[DamagedOutput]) -> dict[str, Any]:
        """A 200 answer's JSON object; ``damaged`` (the kind's damaged-output error) when it is not one."""
        body = json_or_none(response)
        if not isinstance(body, dict):
            raise damaged(
                f"the {self.who} {self.shown_url} answered 200 for {subject} with something other than a JSON "
                f"object: {body_text(response)[:200]}"
            )
        return body


async def post_run(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    *,
    shown_url: str,
    who: str,
    subject: str,
    timeout_s: float,
    timeout_flag: str,
    connect_timeout_s: float,
) -> httpx.Response:
    """POST ``body`` as JSON (a value, or its encoding as bytes) to ``url`` and wait up to ``timeout_s`` for
    the answer; the answer when it is 200 or a 4xx other than 408/429. ``who`` ("SNOS runner") and
    ``subject`` ("blocks 3..4") name the run in messages; ``timeout_flag`` the option that sets
    ``timeout_s``."""
    timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
    try:
        if isinstance(body, bytes):
            response = await client.post(
                url, content=body, headers={"content-type": "application/json"}, timeout=timeout
            )
        else:
            response = await client.post(url, json=body, timeout=timeout)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise BackendUnavailable(f"{who} {shown_url} is not reachable: {type(exc).__name__}") from exc
    except httpx.TimeoutException as exc:
        raise JobError(
            f"the {who} {shown_url} did not answer within {timeout_s:g} s ({timeout_flag}) for {subject}; "
            "it will be retried",
            retryable=True,
        ) from exc
    except httpx.TransportError as exc:
        raise BackendUnavailable(
            f"{who} {shown_url}: the connection failed during the run ({type(exc).__name__}: {exc})"
        ) from exc
    status = response.status_code
    if status >= 500:
        raise BackendUnavailable(f"{who} {shown_url} answered HTTP {status}: {body_text(response)}")
    if status in (408, 429):
        raise JobError(
            f"the {who} {shown_url} answered HTTP {status} for {subject}; it will be retried", retryable=True
        )
    if status == 200 or 400 <= status < 500:
        return response
    raise BackendUnavailable(f"{who} {shown_url} answered an unexpected HTTP {status} (expected 200, 4xx or 5xx)")
