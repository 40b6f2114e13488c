"""The OpenTelemetry SDK's half of cli/telemetry.py: providers, exporters and the log handler, made when
``--otel-collector-endpoint`` is given (and imported only then: the SDK and gRPC are slow to import)."""

from __future__ import annotations

import copy
import logging

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from madara_orchestrator.cli.http_spans import trace_http_calls
from madara_orchestrator.cli.redacting import RedactingFilter
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.cli.telemetry import EXPORT_TIMEOUT_S, SHUTDOWN_TIMEOUT_S, Telemetry
from madara_orchestrator.domain.redaction import SecretMask
from madara_orchestrator.engine.metrics import METER_NAME, Metrics
from madara_orchestrator.engine.telemetry import log_fields, pending_trace_id

log = logging.getLogger("madara_orchestrator.cli.telemetry")
"""The start-up line is the telemetry's, as it was when this lived in cli/telemetry.py."""


class JobTraceIds(RandomIdGenerator):
    """Root spans of a job operation get the attempt's trace id (engine/telemetry.py), so the trace id in
    a log line is the trace's; other spans get random ids."""

    def generate_trace_id(self) -> int:
        hint = pending_trace_id()
        return hint if hint is not None else super().generate_trace_id()


def exporting_telemetry(settings: Settings, endpoint: str) -> Telemetry:
    """Metrics, job traces and logs exported to the collector at ``endpoint``."""
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
