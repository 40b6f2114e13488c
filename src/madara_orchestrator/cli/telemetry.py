"""OTLP export (SPEC §14): the runtime's ``Metrics`` with OpenTelemetry instruments and a job tracer.

With ``--otel-collector-endpoint``, metrics go to the collector over gRPC by a periodic reader (every
``--otel-export-interval-seconds``, 5 s by default), resource ``service.name`` =
``<--otel-service-name>_meter_service``, meter ``crates.orchestrator.opentelemetry``; spans of job
operations go by a batch span processor, resource ``<name>_trace_service``. Without an endpoint nothing is
exported (one log line) and ``/metrics`` still serves everything. ``shutdown`` flushes both.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.engine.metrics import METER_NAME, Metrics
from madara_orchestrator.engine.telemetry import pending_trace_id

log = logging.getLogger(__name__)

EXPORT_TIMEOUT_S = 10.0
"""Bound on one export when the collector does not answer."""
SHUTDOWN_TIMEOUT_S = 3.0
"""Bound on the last export at shutdown: a collector that is down does not hold the process."""


class JobTraceIds(RandomIdGenerator):
    """Root spans of a job operation get the attempt's trace id (engine/telemetry.py), so the trace id in
    a log line is the trace's; other spans get random ids."""

    def generate_trace_id(self) -> int:
        hint = pending_trace_id()
        return hint if hint is not None else super().generate_trace_id()


@dataclass(slots=True)
class Telemetry:
    metrics: Metrics
    meter_provider: MeterProvider | None = None
    tracer_provider: TracerProvider | None = None

    @property
    def exporting(self) -> bool:
        return self.meter_provider is not None

    def describe(self) -> str:
        if self.exporting:
            return "metrics and traces exported over OTLP (and /metrics)"
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

    async def shutdown(self) -> None:
        """Flush and stop the exporters (the last export happens here)."""
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        if self.tracer_provider is not None:
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
    service = str(settings.values.get("otel_service_name") or "orchestrator")
    interval_s = float(settings.values.get("otel_export_interval_seconds") or 5.0)
    insecure = endpoint.lower().startswith("http://")
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=insecure, timeout=EXPORT_TIMEOUT_S),
        export_interval_millis=interval_s * 1000,
        export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
    )
    meter_provider = MeterProvider(
        resource=Resource.create({SERVICE_NAME: f"{service}_meter_service"}), metric_readers=[reader]
    )
    tracer_provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: f"{service}_trace_service"}), id_generator=JobTraceIds()
    )
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=insecure, timeout=SHUTDOWN_TIMEOUT_S),
            schedule_delay_millis=interval_s * 1000,
            export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
        )
    )
    metrics = Metrics(
        meter=meter_provider.get_meter(METER_NAME),
        tracer=tracer_provider.get_tracer(METER_NAME),
        refresh_interval_s=interval_s,
    )
    log.info(
        "telemetry: metrics and job traces exported to %s every %g s as %s_meter_service / %s_trace_service",
        endpoint,
        interval_s,
        service,
        service,
    )
    return Telemetry(metrics, meter_provider, tracer_provider)
