"""What the prover clients share: which errors to retry, and reading an HTTP answer.

SPEC §7.1's retry is the shared helper (``domain/retry.py``): exponential backoff from 2 s, doubling,
within a total time budget (120 s); only errors classified here as retryable are retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from madara_orchestrator.domain.retry import NO_RETRY as NO_RETRY
from madara_orchestrator.domain.retry import RetryPolicy as RetryPolicy
from madara_orchestrator.domain.retry import describe as describe
from madara_orchestrator.domain.retry import with_retries as with_retries
from madara_orchestrator.provers.errors import MalformedResponse, ProverApiError


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
