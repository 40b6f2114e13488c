"""What every route module shares: the envelope, the error answers keyed by exception type, the
middleware, the request parsers, the admin check and the ``Endpoint`` declaration.

Responses use the original's envelope ``{"success", "data"?, "message"?}``. Routes raise domain errors;
``ERROR_ANSWERS`` maps each kind to its status code, and the app registers one handler per kind, so the
most specific class of an error picks its answer (its MRO, not an order of checks). The framework's own
errors (405, 413, 500) use the envelope too, except the unknown-route fallback, which SPEC §15.1 pins as
the original's plain-text 404.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from madara_orchestrator.domain.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    OrchestratorError,
    QueueFull,
)
from madara_orchestrator.engine.runtime import Runtime
from madara_orchestrator.engine.telemetry import request_scope
from madara_orchestrator.interfaces import ProverWebhook

log = logging.getLogger("madara_orchestrator.http")

Handler = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
NOT_FOUND_TEXT = "The requested resource was not found"
INTERNAL_ERROR_TEXT = "Internal error; see the orchestrator log"
TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
INTEGER = re.compile(r"^-?[0-9]+\Z")  # \Z: "$" would take a trailing newline
MAX_NUMBER = 2**63 - 1
"""The largest block number or batch index the API takes: the largest integer SQLite stores."""
MAX_BODY_BYTES = 1024 * 1024
"""Requests with a larger body are refused (413) before any route runs; the largest legitimate body, an
Atlantic webhook, is a few hundred bytes."""
WEBHOOK_PATH = "/webhooks/atlantic"


class Unauthorized(OrchestratorError):
    pass


class WebhooksOff(OrchestratorError):
    pass


class PayloadTooLarge(InvalidInput):
    pass


class ProcessingError(InvalidInput):
    """A job route's ``NotFound`` or ``Conflict``: the original answers them 400 "Processing error: ..."."""


ERROR_ANSWERS: dict[type[Exception], tuple[int, str]] = {
    PayloadTooLarge: (413, ""),
    QueueFull: (429, ""),
    Unauthorized: (401, ""),
    WebhooksOff: (404, ""),
    InvalidInput: (400, ""),
    ProcessingError: (400, "Processing error: "),
    NotFound: (404, ""),
    Conflict: (409, ""),
    BackendUnavailable: (503, "Database error: "),
}
"""Each error kind's status code and message prefix; any other exception is a logged 500."""


def envelope(data: Any = None, message: str | None = None, *, success: bool = True, status: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"success": success}
    if data is not None:
        body["data"] = data
    if message is not None:
        body["message"] = message
    return JSONResponse(body, status_code=status)


def failure(message: str, status: int) -> JSONResponse:
    return envelope(message=message, success=False, status=status)


def error_handler(status: int, prefix: str) -> ErrorHandler:
    async def handle(request: Request, exc: Exception) -> Response:
        return failure(prefix + str(exc), status)

    return handle


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in HTTP handler", exc_info=exc)
    return failure(INTERNAL_ERROR_TEXT, 500)


async def not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(NOT_FOUND_TEXT, status_code=404)


def shown_path(path: str) -> str:
    """``path`` for an answer: the webhook secret a path may carry is never echoed."""
    return WEBHOOK_PATH + "/<secret>" if path.startswith(WEBHOOK_PATH + "/") else path


async def http_error(request: Request, exc: Exception) -> Response:
    """The framework's own refusals (405 above all) in the envelope, with their headers (``Allow``)."""
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"Method {request.method} is not allowed on {shown_path(request.url.path)}; use {allowed}"
    response = failure(message, exc.status_code)
    response.headers.update(exc.headers or {})
    return response


async def internal_error(request: Request, exc: Exception) -> Response:
    return failure(INTERNAL_ERROR_TEXT, 500)


def exception_handlers() -> dict[Any, ErrorHandler]:
    """The app's handlers: the framework's (unknown route, 405, errors outside the routes) and one per
    error kind of ``ERROR_ANSWERS``."""
    handlers: dict[Any, ErrorHandler] = {404: not_found, HTTPException: http_error, Exception: internal_error}
    handlers.update({kind: error_handler(*answer) for kind, answer in ERROR_ANSWERS.items()})
    return handlers


# --------------------------------------------------------------------------------------------------
# The app's state


@dataclass(frozen=True)
class Api:
    """What the routes read from ``request.app.state.api``."""

    runtime: Runtime
    admin_enabled: bool = False
    admin_token: str | None = None
    webhook: ProverWebhook | None = None

    def check_admin(self, request: Request, what: str) -> None:
        """Admin routes (and job control) exist only with ``admin_enabled`` and require
        ``Authorization: Bearer <admin token>`` (compared in constant time)."""
        if not self.admin_enabled:
            raise InvalidInput(f"{what} are disabled. Enable with --admin-enabled flag.")
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        token = self.admin_token
        if not token or not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized(f"{what} need 'Authorization: Bearer <admin token>'")


def api(request: Request) -> Api:
    return cast(Api, request.app.state.api)


# --------------------------------------------------------------------------------------------------
# Middleware


class TraceIdMiddleware(BaseHTTPMiddleware):
    """Echo ``x-trace-id`` when it is 32 hex characters, else make one (SPEC §14). The request
    is answered in that trace: its log lines carry it and, OTLP export on, it is the trace of the request's
    span, parent of the outbound calls made to answer it (engine/telemetry.py ``request_scope``)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        trace_id = request.headers.get("x-trace-id", "")
        if not TRACE_ID.match(trace_id):
            trace_id = uuid.uuid4().hex
        # All zeros is no trace id for OpenTelemetry: such a request gets no span.
        tracer = api(request).runtime.metrics.tracer if int(trace_id, 16) else None
        with request_scope(trace_id, f"{request.method} {request.url.path}", tracer):
            response = await call_next(request)
        response.headers["x-trace-id"] = trace_id
        return response


class UnexpectedErrorMiddleware:
    """Answer an exception no handler of ``ERROR_ANSWERS`` takes with a logged 500 in the envelope, inside
    the other middleware (so the answer still carries ``x-trace-id``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if scope["type"] != "http" or started:
                raise
            await (await unexpected_error(Request(scope), exc))(scope, receive, send)


class BodyLimitMiddleware:
    """Read the request body before the route runs and answer 413 when it is larger than ``max_bytes``,
    whether it declares a Content-Length or comes chunked; the route then reads the buffered body."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = f"{self.max_bytes // 1024 // 1024} MiB" if self.max_bytes % (1024 * 1024) == 0 else "the limit"
        message = f"Request body larger than {limit} ({self.max_bytes} bytes); no route of this API takes one"
        response = failure(message, ERROR_ANSWERS[PayloadTooLarge][0])
        response.headers["connection"] = "close"
        await response(scope, receive, send)


# --------------------------------------------------------------------------------------------------
# Request parsers


def job_id(request: Request) -> uuid.UUID:
    raw = request.path_params["id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(f"Invalid job ID: {raw}") from None


def priority(request: Request) -> bool:
    value = request.query_params.get("priority", "false").lower()
    if value not in ("true", "false"):
        raise InvalidInput(f"Invalid query: priority must be true or false, got {value!r}")
    return value == "true"


def number(raw: str) -> int | None:
    """A decimal integer from 0 to ``MAX_NUMBER``, or None."""
    if not INTEGER.match(raw) or len(raw) > 20:
        return None
    value = int(raw)
    return value if 0 <= value <= MAX_NUMBER else None


def block_number(request: Request) -> int:
    raw = request.path_params["n"]
    value = number(raw)
    if value is None:
        raise InvalidInput(f"Invalid block number: {raw} (a block number is an integer from 0 to {MAX_NUMBER})")
    return value


# --------------------------------------------------------------------------------------------------
# Declarations


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter, for the OpenAPI document; ``schema``: a type pydantic describes."""

    name: str
    where: str
    schema: Any
    required: bool = False
    description: str | None = None
    repeated: bool = False
    """A query key that may be repeated (``style: form, explode: true``)."""
    default: Any = None


@dataclass(frozen=True)
class Endpoint:
    """One route and what the OpenAPI document says of it. ``data``: the pydantic model of the success
    envelope's ``data`` (none when None), ``message``: whether it carries a message; ``answers``: the
    responses of a route that does not answer in the envelope (text, pages)."""

    path: str
    handler: Handler
    operation: str
    summary: str
    tag: str
    method: str = "GET"
    data: Any = None
    message: bool = True
    errors: tuple[int, ...] = ()
    params: tuple[Param, ...] = ()
    body: Any = None
    description: str | None = None
    admin: bool = False
    answers: Mapping[str, Any] | None = None

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method])
