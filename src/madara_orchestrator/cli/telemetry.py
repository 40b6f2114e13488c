"""OTLP export (SPEC §14): the runtime's ``Metrics`` with OpenTelemetry instruments and a job tracer.

With ``--otel-collector-endpoint``, metrics go to the collector over gRPC by a periodic reader (every
``--otel-export-interval-seconds``, 5 s by default), resource ``service.name`` =
``<--otel-service-name>_meter_service``, meter ``crates.orchestrator.opentelemetry``; spans of job
operations go by a batch span processor, resource ``<name>_trace_service``, with the outbound HTTP calls
made meanwhile as their child spans (cli/http_spans.py). Log records go by a batch processor too, resource
``<name>_logs_service``, redacted as the lines on stderr are (cli/redacting.py), each with the trace and span
it was emitted in. Without an endpoint nothing is exported (one log line) and ``/metrics`` still serves
everything. ``shutdown`` flushes all three.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from madara_orchestrator.cli.http_spans import stop_tracing_http_calls, trace_http_calls
from madara_orchestrator.cli.redacting import RedactingFilter
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.domain.redaction import SecretMask
from madara_orchestrator.engine.metrics import METER_NAME, Metrics
from madara_orchestrator.engine.telemetry import log_fields, pending_trace_id

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
    # The exporters (gRPC) here, not at the top: slow to import, and needed only with an endpoint.
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

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
    logger_provider = LoggerProvider(resource=Resource.create({SERVICE_NAME: f"{service}_logs_service"}))
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=endpoint, insecure=insecure, timeout=SHUTDOWN_TIMEOUT_S),
            schedule_delay_millis=interval_s * 1000,
            export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
        )
    )
    handler = _log_handler(logger_provider, settings.secret_mask())
    logging.getLogger().addHandler(handler)
    metrics = Metrics(
        meter=meter_provider.get_meter(METER_NAME),
        tracer=tracer_provider.get_tracer(METER_NAME),
        refresh_interval_s=interval_s,
    )
    assert metrics.tracer is not None
    trace_http_calls(metrics.tracer)
    log.info(
        "telemetry: metrics, job traces and logs exported to %s every %g s as %s_meter_service, "
        "%s_trace_service, %s_logs_service",
        endpoint,
        interval_s,
        service,
        service,
        service,
    )
    return Telemetry(metrics, meter_provider, tracer_provider, logger_provider, handler)


class _RedactedLoggingHandler(LoggingHandler):
    """The SDK's handler reads the exception from ``exc_info`` (unredacted): it gets a copy of the record whose
    message carries the redacted exception text instead, and the job's fields (engine/telemetry.py)."""

    def emit(self, record: logging.LogRecord) -> None:
        clean = copy.copy(record)
        if clean.exc_text:
            clean.msg = f"{clean.getMessage()}\n{clean.exc_text}"
            clean.args = None
        clean.exc_info, clean.exc_text, clean.stack_info = None, None, None
        for key, value in log_fields().items():
            setattr(clean, key, value)
        super().emit(clean)


class _NotOwnExport(logging.Filter):
    """Leaves out the exporters' own records (an export that fails would log its failure, and export it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("opentelemetry", "grpc"))


def _log_handler(provider: LoggerProvider, mask: SecretMask) -> logging.Handler:
    """What reaches the root logger, redacted (message, exception and stack: the filter rewrites them into the
    record before the OTLP handler reads it)."""
    handler = _RedactedLoggingHandler(logger_provider=provider)
    handler.addFilter(_NotOwnExport())
    handler.addFilter(RedactingFilter(mask))
    return handler
