"""What the prover clients share: retry with a limit and backoff, and reading an HTTP answer.

SPEC §7.1's retry helper: exponential backoff from 2 s, doubling, within a total time budget
(120 s); only errors classified as retryable are retried, and every retry is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from madara_orchestrator.domain.errors import OrchestratorError
from madara_orchestrator.provers.errors import MalformedResponse, ProverApiError, RetriesExhausted

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    base_delay_s: float = 2.0
    factor: float = 2.0
    max_delay_s: float = 30.0
    budget_s: float = 120.0
    """No retry starts once this much time has passed since the first attempt."""
    max_attempts: int = 10

    def delay(self, retry_no: int) -> float:
        """Pause before retry ``retry_no`` (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * self.factor ** (retry_no - 1))


NO_RETRY = RetryPolicy(max_attempts=1)


def is_transport_error(exc: BaseException) -> bool:
    """Timeouts, refused or dropped connections, incomplete answers: the request may not have arrived."""
    return isinstance(exc, httpx.TransportError | TimeoutError)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    is_retryable: Callable[[BaseException], bool],
    service: str,
    operation: str,
    attempt_timeout_s: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``call`` until it succeeds, fails for good, or the attempts or time budget run out.

    Each attempt is bounded by ``attempt_timeout_s`` (a ``TimeoutError``, retried like a network
    timeout). A non-retryable error is raised as it is; when attempts or budget run out, ``RetriesExhausted``
    (a ``BackendUnavailable``) carries the last error.
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(attempt_timeout_s):
                return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_retryable(exc):
                raise
            pause = policy.delay(attempt)
            elapsed = clock() - started
            if attempt >= policy.max_attempts or elapsed + pause > policy.budget_s:
                message = f"{service} {operation} failed after {attempt} attempt(s) in {elapsed:.1f} s: " + describe(
                    exc
                )
                raise RetriesExhausted(message, exc, attempt) from exc
            log.warning(
                "%s %s attempt %d/%d failed (%s); retrying in %.1f s",
                service,
                operation,
                attempt,
                policy.max_attempts,
                describe(exc),
                pause,
            )
            await sleep(pause)


def describe(exc: BaseException) -> str:
    if isinstance(exc, OrchestratorError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
