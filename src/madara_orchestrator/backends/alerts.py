"""Alert sinks: to the log, to a webhook (JSON POST), or to several at once. Never fatal.

``FanoutAlerts`` is the one way alerts leave the engine: it cuts URLs in them to ``scheme://host[:port]``
and masks configured secrets before any sink sees them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from madara_orchestrator.domain.redaction import SecretMask, redact, url_origin
from madara_orchestrator.interfaces import AlertSink
from madara_orchestrator.tls import default_tls

log = logging.getLogger("madara_orchestrator.alerts")


class LogAlerts:
    async def send(self, subject: str, message: str) -> None:
        log.error("ALERT %s: %s", subject, message)


class WebhookAlerts:
    """POSTs ``{"subject", "text"}`` (``text`` is what Slack-style webhooks show)."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self._client = client or httpx.AsyncClient(timeout=timeout_s, verify=default_tls())

    async def send(self, subject: str, message: str) -> None:
        try:
            response = await self._client.post(self.url, json={"subject": subject, "text": message})
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            log.warning(
                "alert webhook %s answered HTTP %d; alert was: %s",
                url_origin(self.url),
                exc.response.status_code,
                subject,
            )
        except httpx.HTTPError as exc:
            log.warning(
                "alert webhook %s failed (%s); alert was: %s", url_origin(self.url), type(exc).__name__, subject
            )


class FanoutAlerts:
    def __init__(self, sinks: Sequence[AlertSink], *, mask: SecretMask | None = None) -> None:
        self.sinks = list(sinks)
        self.mask = mask

    async def send(self, subject: str, message: str) -> None:
        subject, message = redact(subject, self.mask), redact(message, self.mask)
        for sink in self.sinks:
            try:
                await sink.send(subject, message)
            except Exception:  # an alert sink must never break the engine
                log.exception("alert sink %s failed", type(sink).__name__)


class RecordingAlerts:
    """Keeps alerts in memory (tests, and the devnet summary)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, subject: str, message: str) -> None:
        self.sent.append((subject, message))
