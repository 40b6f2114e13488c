"""What the engine tells about itself: events for the metrics, and the job context of log lines and traces.

Events: the engine reports what happened (a job processed, a batch closed, a queue's depth...) to a
``Telemetry``, one small protocol; engine/metrics.py turns each event into the figures of ``/metrics`` and
OTLP, ``NoTelemetry`` drops them (tests that do not look at figures).

While the job service processes or verifies a job, a context (``contextvars``, so per asyncio task) holds
the job's id, type, internal id, block range (when its metadata has one), the operation and the attempt,
and a trace id. The JSON log formatter (cli/run.py) adds these fields to every line emitted meanwhile,
by the service, the job handler or the clients it calls.

One trace id per processing attempt: derived from the job id and the attempt number, so processing and
the verifications of that attempt's result share it, on whichever instance they run, without carrying it
in messages. With OTLP export on, each operation is a span of that trace (the trace provider takes its
trace ids from ``pending_trace_id``; cli/telemetry.py), so a trace id found in the logs finds the spans.

An API request runs in ``request_scope``: its ``x-trace-id`` (given or made) is the trace id of a root span
``<METHOD> <path>`` (OTLP export on), whose children are the spans of what the request causes while it is
answered (the outbound HTTP calls, cli/http_spans.py), and of the ``trace_id`` field of its log lines.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from madara_orchestrator.domain.health import OutboxWaiting
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, SnosMetadata

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
_request_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("orchestrator_request", default=None)
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
    if context is not None:
        return context.fields()
    request_trace = _request_trace.get()
    return {} if request_trace is None else {"trace_id": request_trace}


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
def request_scope(trace_id: str, name: str, tracer: Tracer | None = None) -> Iterator[None]:
    """Log context (and, with ``tracer``, a root span ``name`` in trace ``trace_id``, 32 hex digits) for an
    API request."""
    token = _request_trace.set(trace_id.lower())
    try:
        if tracer is None:
            yield
        else:
            with _trace_root(tracer, name, trace_id.lower(), {"http.trace_header": "x-trace-id"}):
                yield
    finally:
        _request_trace.reset(token)


@contextlib.contextmanager
def _root_span(tracer: Tracer, context: JobContext) -> Iterator[Span]:
    attributes: dict[str, str | int] = {
        "job.id": context.job_id,
        "job.type": context.job_type,
        "job.internal_id": context.internal_id,
        "job.attempt": context.attempt,
    }
    if context.blocks is not None:
        attributes["job.blocks"] = context.blocks
    with _trace_root(tracer, context.operation, context.trace_id, attributes) as span:
        yield span


@contextlib.contextmanager
def _trace_root(tracer: Tracer, name: str, trace_id: str, attributes: Mapping[str, str | int]) -> Iterator[Span]:
    from opentelemetry.context import Context
    from opentelemetry.trace import use_span

    hint = _pending_trace.set(trace_id)
    try:
        # An empty parent context: a root span, whose trace id the id generator takes from ``_pending_trace``.
        span = tracer.start_span(name, context=Context(), attributes=attributes)
    finally:
        _pending_trace.reset(hint)
    with use_span(span, end_on_exit=True):
        yield span


# -- events: what the engine reports ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobOperation:
    """A create_job, process_job or verify_job call that went through; ``status_after`` the job's status
    after it, ``block`` the last block the job covers (None when unknown)."""

    job_type: JobType
    operation: str
    status_after: JobStatus
    seconds: float
    block: int | None


@dataclass(frozen=True, slots=True)
class OperationFailed:
    """A process_job or verify_job call that did not take its job on: ``outcome`` lease_lost, failure,
    outage or error (the call itself failed), or, of a verification, rejected or timeout (its last attempt)."""

    job_type: JobType
    operation: str
    outcome: str


@dataclass(frozen=True, slots=True)
class JobProcessed:
    """Processing succeeded: the call took ``seconds``, the job was locked ``since_locked_s`` ago;
    ``scheduling_delay_s``: creation to lock, first attempt only."""

    job_type: JobType
    seconds: float
    since_locked_s: float
    scheduling_delay_s: float | None


@dataclass(frozen=True, slots=True)
class JobCompleted:
    """Verification said Verified: the job is Completed."""

    job_type: JobType
    e2e_s: float
    verify_call_s: float
    since_processed_s: float | None


@dataclass(frozen=True, slots=True)
class JobRetried:
    """Processing is tried again: ``reason`` process_failure, verification_rejected or operator."""

    job_type: JobType
    reason: str


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A status write (``was`` → ``now``; the same status is no transition)."""

    job_type: JobType
    was: JobStatus
    now: JobStatus


@dataclass(frozen=True, slots=True)
class JobHealed:
    """A job whose worker died (its lease expired) taken over by the heal sweep."""

    job_type: JobType


@dataclass(frozen=True, slots=True)
class JobAbandoned:
    """Dead-lettered after ``attempts`` processing attempts."""

    job_type: JobType
    attempts: int


@dataclass(frozen=True, slots=True)
class JobFailed:
    """A job moved to Failed."""

    job_type: JobType


@dataclass(frozen=True, slots=True)
class Handoff:
    """A job's successor was created ``seconds`` after the job completed."""

    job_type: JobType
    seconds: float


@dataclass(frozen=True, slots=True)
class TriggerRun:
    """One run of a trigger: ``outcome`` progress, idle, error or halted (``--halt-on-failure``)."""

    trigger: str
    outcome: str


@dataclass(frozen=True, slots=True)
class TriggerFailures:
    """A trigger's failed runs in a row (0 once it succeeds again)."""

    trigger: str
    failures: int


@dataclass(frozen=True, slots=True)
class CleanupRun:
    """A StorageCleanup run: settled jobs whose artifacts it marked to expire, artifacts marked."""

    jobs: int
    artifacts: int
    failed: bool


@dataclass(frozen=True, slots=True)
class BatchingRun:
    """One batching run took ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class BatchCreated:
    """A batch was opened: ``kind`` aggregator or snos."""

    kind: str


@dataclass(frozen=True, slots=True)
class BatchClosed:
    """A batch closed by the rule ``reason``, with ``blocks`` blocks and, an aggregator batch, its
    compressed state diff of ``felts`` felts; ``index`` and ``detail`` (the rule's figures) say which
    batch and why (the backtest's report)."""

    kind: str
    reason: str
    blocks: int
    felts: int | None = None
    index: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LatestBatch:
    """The batch of ``kind`` with the highest ``index`` was stored."""

    kind: str
    index: int


@dataclass(frozen=True, slots=True)
class ObjectStored:
    """An artifact of ``bytes`` bytes was written to the object store."""

    bytes: int


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The sequencer's latest block."""

    block: int


@dataclass(frozen=True, slots=True)
class SettledBlock:
    """The last block the settlement layer reports."""

    block: int


@dataclass(frozen=True, slots=True)
class JobCounts:
    """Jobs by type and status, as the store counts them now."""

    counts: Mapping[tuple[JobType, JobStatus], int]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Messages of one queue (``queue`` its name, ``queue_type`` what it carries) by state."""

    queue_type: str
    queue: str
    visible: int
    in_flight: int
    delayed: int


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """Messages waiting in the outbox (written with their job's change, not sent to the queue yet), for every
    queue: the known queues with none have ``messages`` 0."""

    waiting: tuple[OutboxWaiting, ...]


@dataclass(frozen=True, slots=True)
class Workload:
    """A job queue consumer's busy and total slots, and the time it spent busy since the last report."""

    job_type: JobType
    phase: str
    busy: int
    capacity: int
    busy_s: float


@dataclass(frozen=True, slots=True)
class SettlementPosting:
    """The posting gate looked at the fees for the oldest batch waiting to be settled (``batch``): it waits
    (``reason``: a ``domain.posting.Wait`` value) or goes; ``seconds_to_deadline``: negative once missed."""

    batch: int
    waiting: bool
    reason: str
    seconds_to_deadline: float | None


@dataclass(frozen=True, slots=True)
class SettlementDeadlineMissed:
    """A batch was not sent by its ``--settlement-deadline-seconds`` (counted once per batch)."""

    batch: int


@dataclass(frozen=True, slots=True)
class DaBacklog:
    """Blocks produced and not settled, their state-diff felts and blobs (None on an L3: calldata)."""

    blocks: int
    felts: int | None
    blobs: int | None


@dataclass(frozen=True, slots=True)
class StagesPaused:
    """Which stages are paused now (``domain/pause.py``), out of ``stages``."""

    paused: frozenset[str]
    stages: tuple[str, ...]


Event = (
    JobOperation
    | OperationFailed
    | JobProcessed
    | JobCompleted
    | JobRetried
    | StatusChanged
    | JobHealed
    | JobAbandoned
    | JobFailed
    | Handoff
    | TriggerRun
    | TriggerFailures
    | CleanupRun
    | BatchingRun
    | BatchCreated
    | BatchClosed
    | LatestBatch
    | ObjectStored
    | ChainHead
    | SettledBlock
    | JobCounts
    | QueueDepth
    | OutboxDepth
    | Workload
    | SettlementPosting
    | SettlementDeadlineMissed
    | DaBacklog
    | StagesPaused
)


class Telemetry(Protocol):
    """Where the engine reports events; ``tracer``: spans around job operations (None: no traces)."""

    @property
    def tracer(self) -> Tracer | None: ...

    def report(self, event: Event) -> None: ...


class NoTelemetry:
    """Drops every event, records no span."""

    tracer: Tracer | None = None

    def report(self, event: Event) -> None:
        pass
