"""OTLP export (SPEC §14): the runtime's ``Metrics`` with OpenTelemetry instruments and a job tracer.

With ``--otel-collector-endpoint``, metrics go to the collector over gRPC by a periodic reader (every
``--otel-export-interval-seconds``, 5 s by default), resource ``service.name`` =
``<--otel-service-name>_meter_service``, meter ``crates.orchestrator.opentelemetry``; spans of job
operations go by a batch span processor, resource ``<name>_trace_service``, with the outbound HTTP calls
made meanwhile as their child spans (cli/http_spans.py). Log records go by a batch processor too, resource
``<name>_logs_service``, redacted as the lines on stderr are (cli/redacting.py), each with the trace and span
it was emitted in. Without an endpoint nothing is exported (one log line) and ``/metrics`` still serves
everything. ``shutdown`` flushes all three.

The OpenTelemetry SDK and its exporters are in cli/otlp.py, imported only with an endpoint: slow to import.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.engine.metrics import Metrics

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

EXPORT_TIMEOUT_S = 10.0
"""Bound on one export when the collector does not answer."""
SHUTDOWN_TIMEOUT_S = 3.0
"""Bound on the last export at shutdown: a collector that is down does not hold the process."""


@dataclass(slots=True)
class Telemetry:
    metrics: Metrics
    meter_provider: MeterProvider | None = None
    tracer_provider: TracerProvider | None = None
    logger_provider: LoggerProvider | None = None
    log_handler: logging.Handler | None = None

    @property
    def exporting(self) -> bool:
        return self.meter_provider is not None

    def describe(self) -> str:
        if self.exporting:
            return "metrics, traces and logs exported over OTLP (and /metrics)"
        return "no --otel-collector-endpoint, nothing exported over OTLP (/metrics serves the metrics)"

    async def flush(self) -> None:
        """Export what was recorded so far, now."""
        await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        timeout_ms = int(EXPORT_TIMEOUT_S * 1000)
        if self.meter_provider is not None:
            self.meter_provider.force_flush(timeout_millis=timeout_ms)
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush(timeout_millis=timeout_ms)
        if self.logger_provider is not None:
            self.logger_provider.force_flush(timeout_millis=timeout_ms)

    async def shutdown(self) -> None:
        """Flush and stop the exporters (the last export happens here)."""
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler = None
        if self.logger_provider is not None:
            self.logger_provider.shutdown()
            self.logger_provider = None
        if self.tracer_provider is not None:
            from madara_orchestrator.cli.http_spans import stop_tracing_http_calls

            stop_tracing_http_calls(self.metrics.tracer)
            self.tracer_provider.shutdown()
            self.tracer_provider = None
        if self.meter_provider is not None:
            self.meter_provider.shutdown(timeout_millis=SHUTDOWN_TIMEOUT_S * 1000)
            self.meter_provider = None


def build_telemetry(settings: Settings) -> Telemetry:
    endpoint: str | None = settings.values.get("otel_collector_endpoint")
    if not endpoint:
        # Said by ``run`` once it has started (a start-up failure stays one line).
        return Telemetry(Metrics())
    # The SDK and its exporters (gRPC) here, not at the top: slow to import, and needed only with an endpoint.
    from madara_orchestrator.cli.otlp import exporting_telemetry

    return exporting_telemetry(settings, endpoint)
