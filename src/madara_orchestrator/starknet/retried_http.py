"""What the sequencer's HTTP clients (``rpc.StarknetRpcClient``, ``feeder.FeederGatewayClient``) share: an httpx
client closed with theirs, ``attempts`` tries with a linear pause between them, one warning a failed attempt,
and ``BackendUnavailable`` once they are spent. Messages never carry a URL's credentials or query."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable
from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.domain.retry import linear, with_retries
from madara_orchestrator.tls import default_tls

T = TypeVar("T")


class RetriedHttpClient:
    def __init__(
        self, *, timeout_s: float, attempts: int, retry_pause_s: float, client: httpx.AsyncClient | None
    ) -> None:
        self._attempts = max(1, attempts)
        self._retry = linear(attempts=self._attempts, pause_s=retry_pause_s)
        self._client = client or httpx.AsyncClient(timeout=timeout_s, verify=default_tls())

    async def aclose(self) -> None:
        await self._client.aclose()

    def cause(self, exc: BaseException) -> str:
        """A failed attempt's error in one line: its kind (httpx transport errors often have no text of their
        own), then its text without URLs (httpx names the whole URL in some errors)."""
        text = cut_urls(str(exc))
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    async def retried(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        is_retryable: Callable[[BaseException], bool],
        service: str,
        subject: str,
        log: logging.Logger,
        warning: str,
        unavailable: Callable[[BaseException], BackendUnavailable],
    ) -> T:
        """``attempt`` until it succeeds or fails for good; each failed attempt logged by ``log`` as ``warning``
        (with ``subject``, the attempt, the number of attempts and the ``cause``), ``unavailable(last error)``
        raised when the attempts are spent."""

        def retried(attempt_no: int, exc: BaseException, pause: float) -> None:
            log.warning(warning, subject, attempt_no, self._attempts, self.cause(exc))

        return await with_retries(
            attempt,
            policy=self._retry,
            is_retryable=is_retryable,
            service=service,
            operation=subject,
            on_retry=retried,
            give_up=lambda _n, _s, exc: unavailable(exc),
        )
