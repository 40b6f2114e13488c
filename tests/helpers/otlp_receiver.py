"""A small OTLP/gRPC collector for tests: receives metrics, traces and logs on 127.0.0.1 and keeps them.

Metrics are kept as the latest data point per (metric name, attributes): with cumulative temporality
(the exporter's default) that is the running total of a counter, the last value of a gauge and the
whole distribution of a histogram.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Attrs = tuple[tuple[str, str], ...]


def _value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def _attrs(attributes: list[KeyValue]) -> Attrs:
    return tuple(sorted((a.key, _value(a.value)) for a in attributes))


@dataclass(frozen=True, slots=True)
class Point:
    """One data point: ``value`` for sums and gauges; ``count`` and ``total`` for histograms."""

    kind: str
    attributes: dict[str, str]
    value: float = 0.0
    count: int = 0
    total: float = 0.0


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]
    service: str


@dataclass(frozen=True, slots=True)
class ReceivedLog:
    body: str
    severity: str
    trace_id: str
    span_id: str
    attributes: dict[str, str]
    service: str


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    points: dict[tuple[str, Attrs], Point] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    metric_services: set[str] = field(default_factory=set)
    scopes: set[str] = field(default_factory=set)
    spans: list[ReceivedSpan] = field(default_factory=list)
    logs: list[ReceivedLog] = field(default_factory=list)
    exports: int = 0


def _service(resource_attributes: list[KeyValue]) -> str:
    return dict(_attrs(resource_attributes)).get("service.name", "")


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: _Store) -> None:
        self.store = store

    def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        with self.store.lock:
            self.store.exports += 1
            for resource_metrics in request.resource_metrics:
                self.store.metric_services.add(_service(list(resource_metrics.resource.attributes)))
                for scope_metrics in resource_metrics.scope_metrics:
                    self.store.scopes.add(scope_metrics.scope.name)
                    for metric in scope_metrics.metrics:
                        self.store.units[metric.name] = metric.unit
                        self._keep(metric)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def _keep(self, metric: object) -> None:
        name: str = metric.name  # type: ignore[attr-defined]
        kind: str = metric.WhichOneof("data")  # type: ignore[attr-defined]
        data = getattr(metric, kind)
        for dp in data.data_points:
            attrs = _attrs(list(dp.attributes))
            if kind == "histogram":
                point = Point(kind, dict(attrs), count=int(dp.count), total=float(dp.sum))
            else:
                number = dp.as_double if dp.WhichOneof("value") == "as_double" else dp.as_int
                point = Point(kind, dict(attrs), value=float(number))
            self.store.points[(name, attrs)] = point


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: _Store) -> None:
        self.store = store

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self.store.lock:
            for resource_spans in request.resource_spans:
                service = _service(list(resource_spans.resource.attributes))
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.store.spans.append(
                            ReceivedSpan(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                attributes=dict(_attrs(list(span.attributes))),
                                service=service,
                            )
                        )
        return trace_service_pb2.ExportTraceServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, store: _Store) -> None:
        self.store = store

    def Export(
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        with self.store.lock:
            for resource_logs in request.resource_logs:
                service = _service(list(resource_logs.resource.attributes))
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        self.store.logs.append(
                            ReceivedLog(
                                body=_value(record.body),
                                severity=record.severity_text,
                                trace_id=record.trace_id.hex(),
                                span_id=record.span_id.hex(),
                                attributes=dict(_attrs(list(record.attributes))),
                                service=service,
                            )
                        )
        return logs_service_pb2.ExportLogsServiceResponse()


class OtlpReceiver:
    def __init__(self) -> None:
        self._store = _Store()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self._store), self._server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self._store), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(self._store), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)

    # -- what arrived ---------------------------------------------------------------------------------

    @property
    def exports(self) -> int:
        with self._store.lock:
            return self._store.exports

    @property
    def metric_services(self) -> set[str]:
        with self._store.lock:
            return set(self._store.metric_services)

    @property
    def scopes(self) -> set[str]:
        with self._store.lock:
            return set(self._store.scopes)

    def names(self) -> set[str]:
        with self._store.lock:
            return {name for name, _ in self._store.points}

    def unit(self, name: str) -> str | None:
        with self._store.lock:
            return self._store.units.get(name)

    def points(self, name: str, **match: str) -> list[Point]:
        """The latest points of ``name`` whose attributes include ``match``."""
        with self._store.lock:
            found = [p for (n, _), p in self._store.points.items() if n == name]
        return [p for p in found if all(p.attributes.get(k) == v for k, v in match.items())]

    def total(self, name: str, **match: str) -> float:
        return sum(p.value for p in self.points(name, **match))

    def spans(self, name: str | None = None) -> list[ReceivedSpan]:
        with self._store.lock:
            return [s for s in self._store.spans if name is None or s.name == name]

    def logs(self) -> list[ReceivedLog]:
        with self._store.lock:
            return list(self._store.logs)
