"""The one retry helper: a ``RetryPolicy`` value and ``with_retries``, which every client calls.

A small helper of our own rather than tenacity or stamina: the clients need exactly attempts, a time
budget, a per-attempt timeout, an injected clock and sleep and one log line per retry, and each keeps its
own wording. The engine's redelivery back-off and outage waits read the same ``RetryPolicy``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from madara_orchestrator.domain.errors import OrchestratorError, RetriesExhausted

log = logging.getLogger("madara_orchestrator.provers.http")

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how long to try again.

    For a client: pause ``base_delay_s`` growing by ``factor`` per retry (or by ``base_delay_s`` per retry
    when ``linear``), at most ``max_delay_s``; no retry after ``max_attempts`` or once ``budget_s`` has passed.
    For the engine (``REDELIVERY``): the back-off between redeliveries of a failed message, and an outage
    waited out after half the time it has lasted (at least ``base_delay_s``, at most ``max_outage_wait_s``),
    with an alert once it has lasted ``outage_alert_after_s``."""

    base_delay_s: float = 2.0
    factor: float = 2.0
    linear: bool = False
    max_delay_s: float = 30.0
    budget_s: float = 120.0
    """No retry starts once this much time has passed since the first attempt."""
    max_attempts: int = 10
    max_outage_wait_s: float = 60.0
    outage_alert_after_s: float = 300.0

    def delay(self, retry_no: int) -> float:
        """Pause before retry ``retry_no`` (1-based; for the engine, the message's receive count)."""
        if self.linear:
            return min(self.max_delay_s, self.base_delay_s * max(1, retry_no))
        return min(self.max_delay_s, self.base_delay_s * self.factor ** max(0, retry_no - 1))

    def outage_wait(self, lasted_s: float) -> float:
        return min(self.max_outage_wait_s, max(self.base_delay_s, lasted_s / 2))


REDELIVERY = RetryPolicy(base_delay_s=5.0, max_delay_s=300.0)
"""The engine's: a failed message comes back after 5 s, doubling up to 5 minutes."""
NO_RETRY = RetryPolicy(max_attempts=1)


def linear(*, attempts: int, pause_s: float) -> RetryPolicy:
    """``attempts`` tries, pausing ``pause_s`` times the attempt number in between, without a time budget."""
    return RetryPolicy(
        base_delay_s=pause_s, linear=True, max_delay_s=math.inf, budget_s=math.inf, max_attempts=max(1, attempts)
    )


def describe(exc: BaseException) -> str:
    """An error in one line: our own errors by their message, others with their type's name too."""
    if isinstance(exc, OrchestratorError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _exhausted(service: str, operation: str, attempt: int, elapsed: float, exc: BaseException) -> BaseException:
    message = f"{service} {operation} failed after {attempt} attempt(s) in {elapsed:.1f} s: " + describe(exc)
    return RetriesExhausted(message, exc, attempt)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    is_retryable: Callable[[BaseException], bool],
    service: str,
    operation: str,
    attempt_timeout_s: float | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    give_up: Callable[[int, float, BaseException], BaseException] | None = None,
) -> T:
    """Run ``call`` until it succeeds, fails for good, or the attempts or time budget run out.

    Each attempt is bounded by ``attempt_timeout_s`` (a ``TimeoutError``, retried like a network timeout).
    A non-retryable error is raised as it is; when attempts or budget run out, ``give_up(attempts, elapsed,
    last error)`` is raised (by default ``RetriesExhausted``, a ``BackendUnavailable``). ``on_retry(attempt,
    error, pause)`` logs each retry (by default one line naming ``service`` and ``operation``)."""
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
                final = (give_up or (lambda n, s, e: _exhausted(service, operation, n, s, e)))(attempt, elapsed, exc)
                raise final from exc
            if on_retry is not None:
                on_retry(attempt, exc, pause)
            else:
                log.warning(
                    "%s %s attempt %d/%d failed (%s); retrying in %.1f s",
                    *(service, operation, attempt, policy.max_attempts, describe(exc), pause),
                )
            await (sleep or asyncio.sleep)(pause)
