"""Outbound HTTP calls as spans of the trace they are made in (OTLP export on).

Every client of the orchestrator (sequencer RPC and feeder, provers, L1 and Starknet settlement, SNOS and
remote signer) speaks through ``httpx``; its transport is wrapped once here, as OpenTelemetry's httpx
instrumentation does, so no adapter changes. A call made while a span is current (a job operation,
engine/telemetry.py, or an API request, server/http.py) becomes its child span ``HTTP <METHOD>`` with the
method, the host and port, the status code and the outcome; the duration is the span's. The URL's path,
query and credentials are never recorded: RPC providers put API keys there. Calls outside any trace
(trigger polling) record nothing.

OpenTelemetry's ``opentelemetry-instrumentation-httpx`` is not used for that reason: it records
``url.full`` (path and query included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

_original: Any = None
_tracer: Tracer | None = None


def _attributes(request: httpx.Request) -> dict[str, str | int]:
    url = request.url
    out: dict[str, str | int] = {"http.request.method": request.method, "server.address": url.host}
    if url.port is not None:
        out["server.port"] = url.port
    return out


async def _traced(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
    tracer = _tracer
    if tracer is None or not trace.get_current_span().get_span_context().is_valid:
        response: httpx.Response = await _original(self, request)
        return response
    with tracer.start_as_current_span(
        f"HTTP {request.method}",
        kind=SpanKind.CLIENT,
        attributes=_attributes(request),
        record_exception=False,  # an exception's text may hold the URL
        set_status_on_exception=False,
    ) as span:
        try:
            response = await _original(self, request)
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 400:
            span.set_attribute("error.type", str(response.status_code))
            span.set_status(Status(StatusCode.ERROR))
        return response


def trace_http_calls(tracer: Tracer) -> None:
    """Record outbound calls with ``tracer`` from now on (the last tracer given wins)."""
    global _original, _tracer
    _tracer = tracer
    if _original is None:
        _original = httpx.AsyncHTTPTransport.handle_async_request
        httpx.AsyncHTTPTransport.handle_async_request = _traced  # type: ignore[method-assign]


def stop_tracing_http_calls(tracer: Tracer | None = None) -> None:
    """Stop recording (only if ``tracer`` is still the one recording, when given) and unwrap the transport."""
    global _original, _tracer
    if tracer is not None and tracer is not _tracer:
        return
    _tracer = None
    if _original is not None:
        httpx.AsyncHTTPTransport.handle_async_request = _original  # type: ignore[method-assign]
        _original = None
