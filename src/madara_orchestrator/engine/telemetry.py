"""What log lines and traces know about the job being handled, so that the two join up.

While the job service processes or verifies a job, a context (``contextvars``, so per asyncio task) holds
the job's id, type, internal id, block range (when its metadata has one), the operation and the attempt,
and a trace id. The JSON log formatter (cli/run.py) adds these fields to every line emitted meanwhile,
by the service, the job handler or the clients it calls.

One trace id per processing attempt: derived from the job id and the attempt number, so processing and
the verifications of that attempt's result share it, on whichever instance they run, without carrying it
in messages. With OTLP export on, each operation is a span of that trace (the trace provider takes its
trace ids from ``pending_trace_id``; cli/telemetry.py), so a trace id found in the logs finds the spans.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from madara_orchestrator.domain.jobs import Job, SnosMetadata

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    job_id: str
    job_type: str
    internal_id: int
    operation: str
    """``process_job`` or ``verify_job`` (the original's ``operation_type`` values)."""
    attempt: int
    """The processing attempt: the one running, or the one whose result is being verified."""
    trace_id: str
    """32 hex digits."""
    blocks: str | None = None
    """``start-end`` for a job whose metadata names its blocks (SnosRun)."""
    span_id: str | None = None
    """16 hex digits, while a span of this operation is recorded (OTLP export on)."""

    def fields(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "job_id": self.job_id,
            "job_type": self.job_type,
            "internal_id": self.internal_id,
            "operation": self.operation,
            "attempt": self.attempt,
            "trace_id": self.trace_id,
        }
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.span_id is not None:
            out["span_id"] = self.span_id
        return out


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("orchestrator_job", default=None)
_pending_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("orchestrator_trace", default=None)


def trace_id_for(job_id: uuid.UUID, attempt: int) -> str:
    """The trace id of a job's processing attempt (never all zeros, as W3C requires)."""
    digest = hashlib.blake2b(f"{job_id}/{attempt}".encode(), digest_size=16).hexdigest()
    return digest if int(digest, 16) else "0" * 31 + "1"


def current_job() -> JobContext | None:
    return _current.get()


def log_fields() -> dict[str, str | int]:
    """The fields a log line gets: empty outside a job operation."""
    context = _current.get()
    return {} if context is None else context.fields()


def pending_trace_id() -> int | None:
    """The trace id the next root span should get (read by the tracer's id generator), or None."""
    hint = _pending_trace.get()
    return None if hint is None else int(hint, 16)


def _blocks(job: Job) -> str | None:
    meta = job.metadata.specific
    if isinstance(meta, SnosMetadata):
        return f"{meta.start_block}-{meta.end_block}"
    return None


@contextlib.contextmanager
def job_scope(job: Job, operation: str, *, attempt: int, tracer: Tracer | None = None) -> Iterator[JobContext]:
    """Log context (and, with ``tracer``, a span) for one operation on ``job``."""
    context = JobContext(
        job_id=str(job.id),
        job_type=str(job.job_type),
        internal_id=job.internal_id,
        operation=operation,
        attempt=attempt,
        trace_id=trace_id_for(job.id, attempt),
        blocks=_blocks(job),
    )
    with contextlib.ExitStack() as stack:
        if tracer is not None:
            span = stack.enter_context(_root_span(tracer, context))
            span_context = span.get_span_context()
            if span_context.is_valid:
                context = dataclasses.replace(
                    context, trace_id=f"{span_context.trace_id:032x}", span_id=f"{span_context.span_id:016x}"
                )
        token = _current.set(context)
        try:
            yield context
        finally:
            _current.reset(token)


@contextlib.contextmanager
def _root_span(tracer: Tracer, context: JobContext) -> Iterator[Span]:
    from opentelemetry.context import Context
    from opentelemetry.trace import use_span

    attributes: dict[str, str | int] = {
        "job.id": context.job_id,
        "job.type": context.job_type,
        "job.internal_id": context.internal_id,
        "job.attempt": context.attempt,
    }
    if context.blocks is not None:
        attributes["job.blocks"] = context.blocks
    hint = _pending_trace.set(context.trace_id)
    try:
        # An empty parent context: a root span, whose trace id the id generator takes from ``_pending_trace``.
        span = tracer.start_span(context.operation, context=Context(), attributes=attributes)
    finally:
        _pending_trace.reset(hint)
    with use_span(span, end_on_exit=True):
        yield span
