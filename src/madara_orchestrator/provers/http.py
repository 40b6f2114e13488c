"""What the prover clients share: which errors to retry, reading an HTTP answer, and the plumbing of a
client over HTTP (``HttpProver``).

SPEC §7.1's retry is the shared helper (``domain/retry.py``): exponential backoff from 2 s, doubling,
within a total time budget (120 s); only errors classified here as retryable are retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from madara_orchestrator.domain.retry import NO_RETRY as NO_RETRY
from madara_orchestrator.domain.retry import RetryPolicy as RetryPolicy
from madara_orchestrator.domain.retry import describe as describe
from madara_orchestrator.domain.retry import with_retries as with_retries
from madara_orchestrator.provers.errors import MalformedResponse, ProverApiError
from madara_orchestrator.provers.tasks import TaskDispatch


def is_transport_error(exc: BaseException) -> bool:
    """Timeouts, refused or dropped connections, incomplete answers: the request may not have arrived."""
    return isinstance(exc, httpx.TransportError | TimeoutError)


def json_body(response: httpx.Response, service: str, operation: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            f"{service} {operation}: the answer is not JSON (HTTP {response.status_code}): {response.text[:200]!r}"
        ) from exc


def json_object(response: httpx.Response, service: str, operation: str) -> dict[str, Any]:
    value = json_body(response, service, operation)
    if not isinstance(value, dict):
        raise MalformedResponse(f"{service} {operation}: expected a JSON object, got {str(value)[:200]!r}")
    return value


def raise_for_status(
    response: httpx.Response, service: str, operation: str, is_retryable_status: Callable[[int, str], bool]
) -> None:
    if response.is_success:
        return
    body = response.text
    raise ProverApiError(
        service,
        operation,
        response.status_code,
        body,
        retryable=is_retryable_status(response.status_code, body),
    )


def is_retryable_error(exc: BaseException) -> bool:
    """Transport failures and ``ProverApiError``s classified as retryable."""
    if is_transport_error(exc):
        return True
    return isinstance(exc, ProverApiError) and exc.retryable


class HttpProverConfig(Protocol):
    @property
    def retry(self) -> RetryPolicy: ...

    @property
    def attempt_timeout_s(self) -> float:
        """Bound on one whole attempt (a big PIE upload included), on top of httpx's per-phase timeouts."""
        ...


class HttpProver(TaskDispatch):
    """The base of the prover clients over HTTP: their ``httpx`` client, closed by ``aclose`` when the
    prover made it, and the retry of one operation by ``config.retry``."""

    service: str
    """The service's name in errors and logs."""
    config: HttpProverConfig

    def __init__(self, client: httpx.AsyncClient, *, owns_client: bool) -> None:
        self._client = client
        self._owns_client = owns_client

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _retry(self, operation: str, call: Callable[[], Any]) -> Any:
        return await with_retries(
            call,
            policy=self.config.retry,
            is_retryable=is_retryable_error,
            service=self.service,
            operation=operation,
            attempt_timeout_s=self.config.attempt_timeout_s,
        )
