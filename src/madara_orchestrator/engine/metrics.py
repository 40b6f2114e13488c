"""Metrics of one orchestrator process: one table of instruments, two exports.

The engine reports events (engine/telemetry.py); ``Metrics.report`` turns each into records of the
instruments declared once in the table below (``INSTRUMENTS``: kind, our name, the original's name, labels,
unit, help). Each instrument is exported under each of its names to a Prometheus registry of its own (one
per runtime, so tests stay isolated; rendered on ``/metrics``) and, when OTLP export is on
(``--otel-collector-endpoint``, wired in cli/telemetry.py), as an OpenTelemetry instrument made by the
meter ``crates.orchestrator.opentelemetry``. The table is ours rather than the OpenTelemetry SDK's
Prometheus exporter, which would rename the series on ``/metrics`` (unit suffixes, ``target_info``, scope
labels) and cannot drop a gauge's series.

Two families of names:

- ``orchestrator_*``: this orchestrator's own figures (stage latency histograms, hand-offs, queue depths,
  batching, settlement costs). Over OTLP a counter's name drops ``_total`` (the collector adds it back).
- The original's instrument names (SPEC §14), with its label names (``operation_job_type``,
  ``operation_type``, ``operation_job_status``, ...), kinds and units, so a collector in front of this
  orchestrator yields the series the original's dashboards and alerts query. On ``/metrics`` they follow
  Prometheus conventions: a counter gets ``_total`` (``successful_job_operations_total``), a gauge keeps
  its bare name (``job_e2e_latency``, seconds). Labels the original sets on only some of the data points
  are always present on ``/metrics`` (empty when not applicable); over OTLP empty labels are left out.

The original's instruments implemented (who feeds them):

- ``block_state`` (gauge, last block a job type reached per operation: create_job, process_job, and
  verify_job once the job is Completed), ``successful_job_operations`` / ``failed_job_operations``
  (counters per operation; a completed job is ``operation_type="verify_job",
  operation_job_status="Completed"``), ``failed_jobs``,
  ``jobs_response_time`` (gauge, s, one operation's duration), ``verification_time`` (gauge, ms, the
  last verification call of a job that verified), ``job_e2e_latency`` (gauge, s, creation to completion),
  ``job_state_transitions`` (``from_state``, ``to_state``), ``job_scheduling_delay`` (creation to the
  first lock), ``job_retry_count`` (``retry_reason``), ``job_timeout_count``, ``job_abandoned_count``
  (dead-lettered jobs), ``healed_jobs_total`` (``source_job_type``), ``snos_job_processing_time``
  (histogram), ``proof_generation_time`` (``proof_type``: ``proof_submission`` = the ProofCreation process
  call, ``proof_generation`` = processed to verified), ``settlement_time`` (the settlement call of a
  StateTransition): engine/service.py and jobs/state_update.py.
- ``job_queue_depth`` (``queue_type``, ``state``), ``job_status_current`` (jobs per type and status: the
  original keeps one series per job id, value 1; the sum per type and status is the same number),
  ``active_jobs_count`` (jobs LockedForProcessing), ``workload_active_slots`` / ``workload_capacity_slots``
  / ``workload_busy_seconds_total`` (queue consumers' busy and total slots, busy time; ``work_kind``,
  ``work_phase``, ``source_job_type``): engine/runtime.py ``refresh_gauges`` (at each scrape, and every
  export interval while OTLP is on).
- ``batch_creation``, ``aggregator_batching_batch_number``, ``aggregator_batching_duration_seconds``: the
  batching run's own calls (``batches_created``, ``latest_batch``, ``batching_duration``) feed them too.
- ``cleanup_runs_total``, ``cleanup_jobs_processed``, ``cleanup_artifacts_tagged``,
  ``cleanup_failures_total``: the StorageCleanup trigger (engine/triggers.py).

Left out, and why:

- ``db_calls_response_time``: needs every database adapter call timed (the backends are not instrumented).
- ``job_queue_wait_time``: the queue clients do not tell when a message was sent.
- ``dependency_wait_time``: ``orchestrator_handoff_seconds`` measures the hand-off between stages instead.
- ``jobs_per_minute``, ``blocks_per_hour``, ``job_age_p99``, ``sla_breach_count``, ``job_parallelism_factor``:
  derived figures; PromQL computes them from the counters and histograms here (the original's SLA is a
  hard-coded 300 s).
- ``orphaned_jobs``: no such detection exists; the heal sweep re-sends messages instead.
- ``job_status_transitions``, ``job_details``: one series per job id (unbounded cardinality);
  ``job_state_transitions`` and ``orchestrator_jobs`` carry the same information in bounded form.
- ``snos_batch_blocks``, ``snos_rpc_fallback_total``, ``cleanup_jobs_attempted``: recorded inside
  batching, the SNOS runner and the cleanup loop, which do not report them (``orchestrator_batch_blocks``
  has the blocks per SNOS batch).
- ``atlantic_api_*``, ``sharp_api_*``, ``mock_fact_*``: the prover clients do not report their calls yet.
- ``aggregator_local_run_*``, ``aggregator_child_count``, ``aggregator_*_bytes``,
  ``aggregator_input_size_upper_bound``: the local aggregator runner does not report them.

Added, which the original lacks: settlement costs (``orchestrator_settlement_*``): fee paid per settled
block and in total, L1 gas used and its price per settlement (from the final receipt:
settlement/txmgr.py ``on_finalized``), blob fill (felts used / blob capacity), blobs, settled blocks,
settlements put off because fees were above the hard cap; the posting gate's wait for lower fees (why, which
batch, seconds to its deadline, deadlines missed: engine/posting.py); the execution and blob fees and the
blob gas apart (the cost ledger's counters), and the bytes written to the object store (engine/cost.py
``CountedObjects``); and ``orchestrator_chain_head_block`` (the
sequencer's head, for the settlement lag); ``orchestrator_trigger_consecutive_failures`` (a trigger's failed
runs in a row: what makes /health DEGRADED); ``orchestrator_outbox_messages`` and
``orchestrator_outbox_oldest_seconds`` (per queue: messages written to the outbox with their job's change and
not sent to SQS yet, and the oldest one's wait; only with an outbox, i.e. ``--aws-sqs``: engine/outbox.py, read
in ``refresh_gauges``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_type_hints

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

from madara_orchestrator.domain.chain import FELTS_PER_BLOB
from madara_orchestrator.domain.jobs import JobStatus, JobType, settlements_in_flight
from madara_orchestrator.engine import telemetry as ev

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.trace import Tracer

METER_NAME = "crates.orchestrator.opentelemetry"
"""The original's meter name (SPEC §14)."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)
GAS_BUCKETS = (50_000, 100_000, 131_072, 200_000, 262_144, 400_000, 524_288, 786_432, 1_000_000, 1_500_000)
RATIO_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
BATCH_BLOCK_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
BLOB_FELT_BUCKETS = (256, 1024, 4096, 8192, 12288, 16384, 20480, 24576, 49152)


class Kind(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


COUNTER, GAUGE, HISTOGRAM = Kind.COUNTER, Kind.GAUGE, Kind.HISTOGRAM


@dataclass(frozen=True, slots=True)
class Original:
    """The original's instrument (SPEC §14) for the same figure, under its own name, help and unit."""

    name: str
    help: str
    unit: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Its label names, each with the label of ours it takes its value from."""
    only: Mapping[str, str] = field(default_factory=dict)
    """Recorded only when these labels of ours have these values."""


@dataclass(frozen=True, slots=True, eq=False)
class Instrument:
    """One figure. ``name``: ours (``orchestrator_*``), None when only the original's name exists."""

    kind: Kind
    name: str | None
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    original: Original | None = None


INSTRUMENTS: list[Instrument] = []
"""The table: every instrument, in the order declared."""


def ours(
    kind: Kind,
    name: str,
    help: str,
    labels: Sequence[str] = (),
    *,
    unit: str = "",
    buckets: Sequence[float] = LATENCY_BUCKETS,
    original: Original | None = None,
) -> Instrument:
    """Declare one of our instruments (``original``: the original's instrument fed by the same records)."""
    instrument = Instrument(kind, name, help, tuple(labels), unit, tuple(buckets), original)
    INSTRUMENTS.append(instrument)
    return instrument


def theirs(kind: Kind, name: str, help: str, labels: Sequence[str] = (), *, unit: str = "") -> Instrument:
    """Declare an instrument only the original has (its name, labels, unit and help)."""
    instrument = Instrument(
        kind, None, help, tuple(labels), unit, original=Original(name, help, unit, {n: n for n in labels})
    )
    INSTRUMENTS.append(instrument)
    return instrument


# -- this orchestrator's own figures (and the original's twin, when it has one) -----------------------

JOBS = ours(
    GAUGE,
    "orchestrator_jobs",
    "Jobs by type and status",
    ["job_type", "status"],
    original=Original(
        "job_status_current",
        "Current status of jobs by type and status (number of jobs)",
        unit="status",
        labels={"operation_job_type": "job_type", "operation_job_status": "status"},
    ),
)
QUEUE_DEPTH = ours(
    GAUGE,
    "orchestrator_queue_depth",
    "Messages per queue and state",
    ["queue", "state"],
    original=Original(
        "job_queue_depth",
        "Number of jobs waiting in queue",
        unit="jobs",
        labels={"queue_type": "queue_type", "state": "state"},
    ),
)
STAGE_LATENCY = ours(
    HISTOGRAM,
    "orchestrator_job_stage_seconds",
    "Time a job spends per stage: process (lock to processed), verify (processed to completed), "
    "e2e (created to completed)",
    ["job_type", "stage"],
    unit="s",
)
HANDOFF = ours(
    HISTOGRAM,
    "orchestrator_handoff_seconds",
    "From a job's completion to the creation of its successor",
    ["job_type"],
    unit="s",
)
OPERATIONS = ours(
    COUNTER,
    "orchestrator_job_operations_total",
    "Process and verify calls by outcome",
    ["job_type", "operation", "outcome"],
)
FAILED_JOBS = ours(
    COUNTER,
    "orchestrator_failed_jobs_total",
    "Jobs moved to Failed",
    ["job_type"],
    original=Original(
        "failed_jobs",
        "A counter to show count of failed jobs over time",
        unit="jobs",
        labels={"operation_job_type": "job_type"},
    ),
)
HEALED_JOBS = ours(
    COUNTER,
    "orchestrator_healed_jobs_total",
    "Jobs taken over after their lease expired",
    ["job_type"],
    original=Original(
        "healed_jobs_total",
        "Jobs taken over after their worker died",
        unit="jobs",
        labels={"source_job_type": "job_type"},
    ),
)
TRIGGER_RUNS = ours(COUNTER, "orchestrator_trigger_runs_total", "Trigger runs by outcome", ["trigger", "outcome"])
TRIGGER_FAILURES = ours(
    GAUGE,
    "orchestrator_trigger_consecutive_failures",
    "Failed runs in a row of each trigger (0 once it succeeds again)",
    ["trigger"],
)
LAST_SETTLED_BLOCK = ours(
    GAUGE, "orchestrator_last_settled_block", "Last block the settlement layer reports", unit="block"
)
BACKLOG_BLOCKS = ours(
    GAUGE, "orchestrator_backlog_blocks", "Blocks produced by the sequencer and not settled yet", unit="block"
)
BACKLOG_FELTS = ours(
    GAUGE,
    "orchestrator_backlog_felts",
    "State-diff felts of the blocks not settled yet (known per batch, estimated for unbatched blocks; L2 only)",
)
BACKLOG_BLOBS = ours(
    GAUGE, "orchestrator_backlog_blobs", "Blobs the blocks not settled yet will take (estimated; L2 only)"
)
OUTBOX_MESSAGES = ours(
    GAUGE,
    "orchestrator_outbox_messages",
    "Messages written to the outbox with their job's change and not yet sent to the queue (SQS) by a relay, per "
    "queue (no series without an outbox)",
    ["queue"],
)
OUTBOX_OLDEST = ours(
    GAUGE,
    "orchestrator_outbox_oldest_seconds",
    "How long the oldest message waiting in the outbox has waited, per queue (0 when none waits)",
    ["queue"],
    unit="s",
)
STAGE_PAUSED = ours(GAUGE, "orchestrator_stage_paused", "1 while the stage is paused by an operator, else 0", ["stage"])
CHAIN_HEAD = ours(GAUGE, "orchestrator_chain_head_block", "Latest block of the sequencer", unit="block")
SETTLEMENTS_IN_FLIGHT = ours(
    GAUGE,
    "orchestrator_settlements_in_flight",
    "StateTransition jobs created and not yet completed or failed (at most --max-settlements-in-flight)",
)
BATCHES_CREATED = ours(
    COUNTER,
    "orchestrator_batches_created_total",
    "Batches opened",
    ["kind"],
    original=Original("batch_creation", "Total number of batches created", unit="1", labels={"kind": "kind"}),
)
BATCHES_CLOSED = ours(
    COUNTER, "orchestrator_batches_closed_total", "Batches closed, by the rule that closed them", ["kind", "reason"]
)
BATCH_BLOCKS = ours(
    HISTOGRAM, "orchestrator_batch_blocks", "Blocks per closed batch", ["kind"], buckets=BATCH_BLOCK_BUCKETS
)
BATCH_BLOB_FELTS = ours(
    HISTOGRAM,
    "orchestrator_batch_blob_felts",
    "Compressed state-diff felts per closed aggregator batch",
    buckets=BLOB_FELT_BUCKETS,
)
LATEST_BATCH = ours(
    GAUGE,
    "orchestrator_latest_batch_index",
    "Latest batch stored",
    ["kind"],
    original=Original(
        "aggregator_batching_batch_number", "Latest aggregator batch number", only={"kind": "aggregator"}
    ),
)
BATCHING_DURATION = ours(
    HISTOGRAM,
    "orchestrator_batching_duration_seconds",
    "Time of one batching run",
    unit="s",
    original=Original("aggregator_batching_duration_seconds", "Duration of one batching run", unit="s"),
)

# -- settlement costs (not in the original) -------------------------------------------------------------

SETTLEMENT_FEE = ours(
    COUNTER, "orchestrator_settlement_fee_wei_total", "Fees paid by settlement transactions (execution + blob)"
)
SETTLEMENT_LAST_FEE = ours(
    GAUGE, "orchestrator_settlement_last_fee_wei", "Fee paid by the latest settlement transaction"
)
SETTLEMENT_FEE_PER_BLOCK = ours(
    GAUGE,
    "orchestrator_settlement_fee_per_block_wei",
    "Fee of the latest settlement divided by the blocks it settled",
)
SETTLED_BLOCKS = ours(COUNTER, "orchestrator_settled_blocks_total", "Blocks settled (by this process)")
SETTLEMENTS = ours(COUNTER, "orchestrator_settlements_total", "Settlement calls that succeeded")
SETTLEMENT_GAS = ours(
    HISTOGRAM,
    "orchestrator_settlement_gas_used",
    "L1 gas used per settlement transaction: execution gas and blob gas",
    ["gas"],
    buckets=GAS_BUCKETS,
)
SETTLEMENT_GAS_PRICE = ours(
    GAUGE,
    "orchestrator_settlement_gas_price_wei",
    "Price paid per unit of gas by the latest settlement transaction: execution and blob gas",
    ["gas"],
)
SETTLEMENT_BLOB_FILL = ours(
    HISTOGRAM,
    "orchestrator_settlement_blob_fill_ratio",
    "Felts a settlement's blobs carry, divided by their capacity (4096 felts a blob)",
    buckets=RATIO_BUCKETS,
)
SETTLEMENT_BLOBS = ours(COUNTER, "orchestrator_settlement_blobs_total", "Blobs carried by settlements")
SETTLEMENT_EXECUTION_FEE = ours(
    COUNTER,
    "orchestrator_settlement_execution_fee_wei_total",
    "Execution fees paid by settlement transactions (gasUsed × effectiveGasPrice of the final receipts)",
)
SETTLEMENT_BLOB_FEE = ours(
    COUNTER,
    "orchestrator_settlement_blob_fee_wei_total",
    "Blob fees paid by settlement transactions (blobGasUsed × blobGasPrice of the final receipts)",
)
SETTLEMENT_BLOB_GAS = ours(
    COUNTER, "orchestrator_settlement_blob_gas_total", "Blob gas used by settlement transactions (final receipts)"
)
STORAGE_BYTES = ours(
    COUNTER,
    "orchestrator_storage_bytes_written_total",
    "Bytes written to the object store (artifacts: PIEs, outputs, proofs, state updates, blobs)",
    unit="By",
)
SETTLEMENT_FEE_CAP_EXCEEDED = ours(
    COUNTER,
    "orchestrator_settlement_fee_cap_exceeded_total",
    "Settlement attempts put off because fees were above the hard cap",
)
SETTLEMENT_POSTING_WAITING = ours(
    GAUGE,
    "orchestrator_settlement_posting_waiting",
    "1 while the oldest proven batch waits for lower L1 fees (--settlement-deadline-seconds), by why it waits; "
    "no series while nothing waits",
    ["reason"],
)
SETTLEMENT_POSTING_BATCH = ours(
    GAUGE,
    "orchestrator_settlement_posting_batch",
    "The batch the posting gate holds, by why (no series while none waits)",
    ["reason"],
)
SETTLEMENT_DEADLINE_SECONDS = ours(
    GAUGE,
    "orchestrator_settlement_deadline_seconds",
    "Seconds until the waiting batch's settlement deadline, by why it waits (negative once missed; no series "
    "while none waits)",
    ["reason"],
    unit="s",
)
SETTLEMENT_DEADLINE_MISSED = ours(
    COUNTER,
    "orchestrator_settlement_deadline_missed_total",
    "Batches not sent by their settlement deadline (--settlement-deadline-seconds)",
)

# -- the original's instruments (SPEC §14) ----------------------------------------------------------------

JOB = "operation_job_type"
WORKLOAD = ("work_kind", "work_phase", "source_job_type")
BLOCK_STATE = theirs(
    GAUGE, "block_state", "A gauge to show block state at given time", [JOB, "operation_type"], unit="block"
)
SUCCESSFUL_JOB_OPERATIONS = theirs(
    COUNTER,
    "successful_job_operations",
    "A counter to show count of successful job operations over time",
    [JOB, "operation_type", "operation_job_status"],
    unit="jobs",
)
FAILED_JOB_OPERATIONS = theirs(
    COUNTER,
    "failed_job_operations",
    "A counter to show count of failed job operations over time",
    [JOB, "operation_type"],
    unit="jobs",
)
VERIFICATION_TIME = theirs(
    GAUGE, "verification_time", "A gauge to show the time taken for verification of tasks", [JOB], unit="ms"
)
JOBS_RESPONSE_TIME = theirs(
    GAUGE, "jobs_response_time", "A gauge to show response time of jobs over time", [JOB, "operation_type"], unit="s"
)
JOB_SCHEDULING_DELAY = theirs(GAUGE, "job_scheduling_delay", "Delay between job creation and pickup", [JOB], unit="s")
JOB_RETRY_COUNT = theirs(COUNTER, "job_retry_count", "Number of job retries", [JOB, "retry_reason"], unit="jobs")
JOB_STATE_TRANSITIONS = theirs(
    COUNTER, "job_state_transitions", "Count of job state transitions", ["from_state", "to_state", JOB], unit="jobs"
)
JOB_TIMEOUT_COUNT = theirs(
    COUNTER, "job_timeout_count", "Number of jobs that timed out", [JOB, "timeout_type"], unit="jobs"
)
JOB_ABANDONED_COUNT = theirs(
    COUNTER, "job_abandoned_count", "Jobs abandoned after max retries", [JOB, "final_retry_count"], unit="jobs"
)
JOB_E2E_LATENCY = theirs(
    GAUGE, "job_e2e_latency", "End-to-end job processing time", [JOB, "operation_job_status"], unit="s"
)
PROOF_GENERATION_TIME = theirs(GAUGE, "proof_generation_time", "Time to generate proofs", ["proof_type"], unit="s")
SNOS_JOB_PROCESSING_TIME = theirs(HISTOGRAM, "snos_job_processing_time", "Time to process SNOS jobs", [JOB], unit="s")
SETTLEMENT_TIME = theirs(GAUGE, "settlement_time", "Time to settle on L1/L2", [JOB, "settlement_layer"], unit="s")
ACTIVE_JOBS_COUNT = theirs(GAUGE, "active_jobs_count", "Currently active jobs", ["status"], unit="jobs")
CLEANUP_RUNS = theirs(COUNTER, "cleanup_runs_total", "Storage cleanup runs", unit="runs")
CLEANUP_JOBS_PROCESSED = theirs(
    COUNTER, "cleanup_jobs_processed", "Settled jobs whose artifacts were marked to expire", unit="jobs"
)
CLEANUP_ARTIFACTS_TAGGED = theirs(COUNTER, "cleanup_artifacts_tagged", "Artifacts marked to expire", unit="artifacts")
CLEANUP_FAILURES = theirs(COUNTER, "cleanup_failures_total", "Storage cleanup runs that failed", ["reason"])
WORKLOAD_ACTIVE_SLOTS = theirs(GAUGE, "workload_active_slots", "Busy consumer slots", WORKLOAD, unit="slots")
WORKLOAD_CAPACITY_SLOTS = theirs(
    GAUGE, "workload_capacity_slots", "Consumer slots (the queue's concurrency)", WORKLOAD, unit="slots"
)
WORKLOAD_BUSY_SECONDS = theirs(
    COUNTER, "workload_busy_seconds_total", "Time consumer slots spent handling messages", WORKLOAD, unit="s"
)


# -- the two exports, generated from the table --------------------------------------------------------------


class _Export:
    """One name of an instrument: a Prometheus metric in the registry and, with a meter, an OpenTelemetry
    instrument. Over OTLP our counters drop ``_total`` (the collector adds it back); the original's names
    are its own everywhere (on ``/metrics`` a counter gets ``_total`` when it lacks it)."""

    def __init__(
        self,
        instrument: Instrument,
        registry: CollectorRegistry,
        meter: Meter | None,
        *,
        original: Original | None,
    ) -> None:
        kind = self.kind = instrument.kind
        if original is None:
            assert instrument.name is not None
            name, otel_name, help, unit = instrument.name, instrument.name, instrument.help, instrument.unit
            labels: Mapping[str, str] = {n: n for n in instrument.labels}
            self.only: Mapping[str, str] = {}
            if kind is COUNTER:
                otel_name = name.removesuffix("_total")
        else:
            name = otel_name = original.name
            help, unit, labels, self.only = original.help, original.unit, original.labels, original.only
        self.labels, self.sources = tuple(labels), tuple(labels.values())
        self.seen: dict[tuple[str, ...], dict[str, str]] = {}
        self.prom: Any
        self.otel: Any = None
        if kind is COUNTER:
            self.prom = PromCounter(name, help, self.labels, registry=registry)
            if meter is not None:
                self.otel = meter.create_counter(otel_name, unit=unit, description=help)
        elif kind is GAUGE:
            self.prom = PromGauge(name, help, self.labels, registry=registry)
            if meter is not None:
                self.otel = meter.create_gauge(otel_name, unit=unit, description=help)
        else:
            buckets = instrument.buckets
            self.prom = PromHistogram(name, help, self.labels, buckets=buckets, registry=registry)
            if meter is not None:
                self.otel = meter.create_histogram(
                    otel_name,
                    unit=unit,
                    description=help,
                    explicit_bucket_boundaries_advisory=[float(b) for b in buckets],
                )

    def record(self, value: float, labels: Mapping[str, object]) -> None:
        if any(str(labels[k]) != v for k, v in self.only.items()):
            return
        values = tuple(str(labels[source]) for source in self.sources)
        prom = self.prom.labels(*values) if values else self.prom
        # OTLP attributes: labels that do not apply (empty) are left out, as the original never sets them.
        attributes = {n: v for n, v in zip(self.labels, values, strict=True) if v != ""}
        if self.kind is COUNTER:
            prom.inc(value)
            if self.otel is not None:
                self.otel.add(value, attributes)
        elif self.kind is GAUGE:
            prom.set(value)
            self.seen[values] = attributes
            if self.otel is not None:
                self.otel.set(value, attributes)
        else:
            prom.observe(value)
            if self.otel is not None:
                self.otel.record(value, attributes)

    def clear(self) -> None:
        """Forget every label set of a gauge. On ``/metrics`` they disappear; an OTLP gauge cannot drop a
        series, so each is set to 0 there (a count that is no longer there is zero)."""
        if self.otel is not None:
            for attributes in self.seen.values():
                self.otel.set(0, attributes)
        self.seen.clear()
        self.prom.clear()


class Metrics:
    """The engine's ``Telemetry`` (engine/telemetry.py) recording into the table's instruments; also the
    settlement job's ``SettlementFigures`` (jobs/state_update.py)."""

    def __init__(
        self,
        *,
        meter: Meter | None = None,
        tracer: Tracer | None = None,
        refresh_interval_s: float | None = None,
    ) -> None:
        """``meter``: also record over OpenTelemetry (OTLP export on). ``tracer``: spans around job
        operations. ``refresh_interval_s``: refresh the gauges read from the stores this often, for an
        export nobody scrapes (None: only when ``/metrics`` is scraped)."""
        self.registry = CollectorRegistry()
        self.meter = meter
        self.tracer = tracer
        self.refresh_interval_s = refresh_interval_s
        self._exports: dict[Instrument, list[_Export]] = {}
        for instrument in INSTRUMENTS:
            names: list[Original | None] = [None] if instrument.name is not None else []
            if instrument.original is not None:
                names.append(instrument.original)
            self._exports[instrument] = [_Export(instrument, self.registry, meter, original=o) for o in names]

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self, name: str) -> Iterable[Any]:
        """The Prometheus samples of the family ``name`` (as rendered on ``/metrics``)."""
        for family in self.registry.collect():
            if family.name == name:
                yield from family.samples

    def record(self, instrument: Instrument, value: float = 1.0, **labels: object) -> None:
        if instrument.kind is COUNTER and value < 0:
            name = instrument.name or (instrument.original.name if instrument.original else "?")
            raise ValueError(f"{name}: a counter only goes up")
        for export in self._exports[instrument]:
            export.record(value, labels)

    def clear(self, instrument: Instrument) -> None:
        for export in self._exports[instrument]:
            export.clear()

    def report(self, event: ev.Event) -> None:
        _HANDLERS[type(event)](self, event)

    # -- the job lifecycle (engine/service.py) ---------------------------------------------------------

    def _job_operation(self, event: ev.JobOperation) -> None:
        jt, op = event.job_type, event.operation
        self.record(
            SUCCESSFUL_JOB_OPERATIONS, operation_job_type=jt, operation_type=op, operation_job_status=event.status_after
        )
        self.record(JOBS_RESPONSE_TIME, max(0.0, event.seconds), operation_job_type=jt, operation_type=op)
        if event.block is not None:
            self.record(BLOCK_STATE, event.block, operation_job_type=jt, operation_type=op)

    def _operation_failed(self, event: ev.OperationFailed) -> None:
        jt, op = event.job_type, event.operation
        self.record(OPERATIONS, job_type=jt, operation=op.removesuffix("_job"), outcome=event.outcome)
        if event.outcome == "timeout":
            self.record(JOB_TIMEOUT_COUNT, operation_job_type=jt, timeout_type="verification")
        elif event.outcome != "rejected":  # the original counts the calls that failed
            self.record(FAILED_JOB_OPERATIONS, operation_job_type=jt, operation_type=op)

    def _job_processed(self, event: ev.JobProcessed) -> None:
        jt = event.job_type
        self.record(OPERATIONS, job_type=jt, operation="process", outcome="success")
        self.record(STAGE_LATENCY, max(0.0, event.since_locked_s), job_type=jt, stage="process")
        if event.scheduling_delay_s is not None:
            self.record(JOB_SCHEDULING_DELAY, max(0.0, event.scheduling_delay_s), operation_job_type=jt)
        if jt == JobType.SNOS_RUN:
            self.record(SNOS_JOB_PROCESSING_TIME, max(0.0, event.seconds), operation_job_type=jt)
        elif jt == JobType.PROOF_CREATION:
            self.record(PROOF_GENERATION_TIME, max(0.0, event.seconds), proof_type="proof_submission")

    def _job_completed(self, event: ev.JobCompleted) -> None:
        jt, since_processed = event.job_type, event.since_processed_s
        self.record(OPERATIONS, job_type=jt, operation="verify", outcome="success")
        if since_processed is not None:
            self.record(STAGE_LATENCY, max(0.0, since_processed), job_type=jt, stage="verify")
        self.record(STAGE_LATENCY, max(0.0, event.e2e_s), job_type=jt, stage="e2e")
        self.record(JOB_E2E_LATENCY, max(0.0, event.e2e_s), operation_job_type=jt, operation_job_status="Completed")
        self.record(VERIFICATION_TIME, max(0.0, event.verify_call_s) * 1000.0, operation_job_type=jt)
        if jt == JobType.PROOF_CREATION and since_processed is not None:
            self.record(PROOF_GENERATION_TIME, max(0.0, since_processed), proof_type="proof_generation")

    def _job_retried(self, event: ev.JobRetried) -> None:
        self.record(JOB_RETRY_COUNT, operation_job_type=event.job_type, retry_reason=event.reason)

    def _status_changed(self, event: ev.StatusChanged) -> None:
        if event.was != event.now:
            self.record(
                JOB_STATE_TRANSITIONS, from_state=event.was, to_state=event.now, operation_job_type=event.job_type
            )

    def _job_healed(self, event: ev.JobHealed) -> None:
        self.record(HEALED_JOBS, job_type=event.job_type)

    def _job_abandoned(self, event: ev.JobAbandoned) -> None:
        self.record(JOB_ABANDONED_COUNT, operation_job_type=event.job_type, final_retry_count=event.attempts)

    def _job_failed(self, event: ev.JobFailed) -> None:
        self.record(FAILED_JOBS, job_type=event.job_type)

    # -- triggers and batching (engine/triggers.py, engine/batching.py) -----------------------------------

    def _handoff(self, event: ev.Handoff) -> None:
        self.record(HANDOFF, max(0.0, event.seconds), job_type=event.job_type)

    def _trigger_run(self, event: ev.TriggerRun) -> None:
        self.record(TRIGGER_RUNS, trigger=event.trigger, outcome=event.outcome)

    def _trigger_failures(self, event: ev.TriggerFailures) -> None:
        self.record(TRIGGER_FAILURES, event.failures, trigger=event.trigger)

    def _cleanup_run(self, event: ev.CleanupRun) -> None:
        self.record(CLEANUP_RUNS)
        if event.failed:
            self.record(CLEANUP_FAILURES, reason="run_failed")
        self.record(CLEANUP_JOBS_PROCESSED, max(0, event.jobs))
        self.record(CLEANUP_ARTIFACTS_TAGGED, max(0, event.artifacts))

    def _batching_run(self, event: ev.BatchingRun) -> None:
        self.record(BATCHING_DURATION, max(0.0, event.seconds))

    def _batch_created(self, event: ev.BatchCreated) -> None:
        self.record(BATCHES_CREATED, kind=event.kind)

    def _batch_closed(self, event: ev.BatchClosed) -> None:
        self.record(BATCHES_CLOSED, kind=event.kind, reason=event.reason)
        self.record(BATCH_BLOCKS, event.blocks, kind=event.kind)
        if event.felts is not None:
            self.record(BATCH_BLOB_FELTS, event.felts)

    def _latest_batch(self, event: ev.LatestBatch) -> None:
        self.record(LATEST_BATCH, event.index, kind=event.kind)

    def _object_stored(self, event: ev.ObjectStored) -> None:
        self.record(STORAGE_BYTES, max(0, event.bytes))

    # -- read from the stores (engine/runtime.py ``refresh_gauges``) ------------------------------------

    def _chain_head(self, event: ev.ChainHead) -> None:
        self.record(CHAIN_HEAD, event.block)

    def _settled_block(self, event: ev.SettledBlock) -> None:
        self.record(LAST_SETTLED_BLOCK, event.block)

    def _da_backlog(self, event: ev.DaBacklog) -> None:
        self.record(BACKLOG_BLOCKS, max(0, event.blocks))
        for gauge, value in ((BACKLOG_FELTS, event.felts), (BACKLOG_BLOBS, event.blobs)):
            if value is None:
                self.clear(gauge)
            else:
                self.record(gauge, max(0, value))

    def _stages_paused(self, event: ev.StagesPaused) -> None:
        for stage in event.stages:
            self.record(STAGE_PAUSED, 1 if stage in event.paused else 0, stage=stage)

    def _job_counts(self, event: ev.JobCounts) -> None:
        self.clear(JOBS)
        for (job_type, status), count in event.counts.items():
            self.record(JOBS, count, job_type=job_type, status=status)
        locked = sum(n for (_, status), n in event.counts.items() if status == JobStatus.LOCKED_FOR_PROCESSING)
        self.record(ACTIVE_JOBS_COUNT, locked, status="processing")
        self.record(SETTLEMENTS_IN_FLIGHT, settlements_in_flight(event.counts))

    def _queue_depth(self, event: ev.QueueDepth) -> None:
        for state, value in (("visible", event.visible), ("in_flight", event.in_flight), ("delayed", event.delayed)):
            self.record(QUEUE_DEPTH, value, queue=event.queue, queue_type=event.queue_type, state=state)

    def _outbox_depth(self, event: ev.OutboxDepth) -> None:
        for gauge in (OUTBOX_MESSAGES, OUTBOX_OLDEST):
            self.clear(gauge)
        for waiting in event.waiting:
            self.record(OUTBOX_MESSAGES, waiting.messages, queue=waiting.queue)
            self.record(OUTBOX_OLDEST, max(0.0, waiting.oldest_s), queue=waiting.queue)

    def _workload(self, event: ev.Workload) -> None:
        labels = {"work_kind": event.job_type, "work_phase": event.phase, "source_job_type": "none"}
        self.record(WORKLOAD_ACTIVE_SLOTS, event.busy, **labels)
        self.record(WORKLOAD_CAPACITY_SLOTS, event.capacity, **labels)
        if event.busy_s > 0:
            self.record(WORKLOAD_BUSY_SECONDS, event.busy_s, **labels)

    # -- posting under a deadline (engine/posting.py) ------------------------------------------------------

    def _settlement_posting(self, event: ev.SettlementPosting) -> None:
        for gauge in (SETTLEMENT_POSTING_WAITING, SETTLEMENT_POSTING_BATCH, SETTLEMENT_DEADLINE_SECONDS):
            self.clear(gauge)
        if not event.waiting:
            return
        self.record(SETTLEMENT_POSTING_WAITING, 1, reason=event.reason)
        self.record(SETTLEMENT_POSTING_BATCH, event.batch, reason=event.reason)
        if event.seconds_to_deadline is not None:
            self.record(SETTLEMENT_DEADLINE_SECONDS, event.seconds_to_deadline, reason=event.reason)

    def _settlement_deadline_missed(self, event: ev.SettlementDeadlineMissed) -> None:
        self.record(SETTLEMENT_DEADLINE_MISSED)

    # -- settlement costs (jobs/state_update.py ``SettlementFigures``, settlement/txmgr.py) ---------------

    def settlement_done(
        self, *, blocks: int, felts: int, blobs: int, seconds: float, fee_wei: int | None, layer: str = "L1"
    ) -> None:
        """A StateTransition's settlement call succeeded: ``blocks`` settled by ``blobs`` carrying ``felts``."""
        self.record(SETTLEMENTS)
        self.record(SETTLED_BLOCKS, max(0, blocks))
        self.record(SETTLEMENT_TIME, seconds, operation_job_type=JobType.STATE_TRANSITION, settlement_layer=layer)
        if blobs > 0:
            self.record(SETTLEMENT_BLOBS, blobs)
            self.record(SETTLEMENT_BLOB_FILL, felts / (blobs * FELTS_PER_BLOB))
        if fee_wei is not None:
            self.record(SETTLEMENT_FEE, fee_wei)
            self.record(SETTLEMENT_LAST_FEE, fee_wei)
            if blocks > 0:
                self.record(SETTLEMENT_FEE_PER_BLOCK, fee_wei / blocks)

    def settlement_tx_finalized(
        self,
        *,
        gas_used: int | None,
        gas_price_wei: int | None,
        blob_gas_used: int | None,
        blob_gas_price_wei: int | None,
    ) -> None:
        """A settlement transaction's receipt, once final: the L1 gas it used and the price paid."""
        if gas_used is not None:
            self.record(SETTLEMENT_GAS, gas_used, gas="execution")
            if gas_price_wei is not None:
                self.record(SETTLEMENT_EXECUTION_FEE, gas_used * gas_price_wei)
        if blob_gas_used:
            self.record(SETTLEMENT_GAS, blob_gas_used, gas="blob")
            self.record(SETTLEMENT_BLOB_GAS, blob_gas_used)
            if blob_gas_price_wei is not None:
                self.record(SETTLEMENT_BLOB_FEE, blob_gas_used * blob_gas_price_wei)
        if gas_price_wei is not None:
            self.record(SETTLEMENT_GAS_PRICE, gas_price_wei, gas="execution")
        if blob_gas_price_wei is not None:
            self.record(SETTLEMENT_GAS_PRICE, blob_gas_price_wei, gas="blob")

    def settlement_fee_capped(self) -> None:
        self.record(SETTLEMENT_FEE_CAP_EXCEEDED)


_HANDLERS: dict[type[Any], Callable[[Metrics, Any], None]] = {
    get_type_hints(handler)["event"]: handler
    for handler in (
        Metrics._job_operation,
        Metrics._operation_failed,
        Metrics._job_processed,
        Metrics._job_completed,
        Metrics._job_retried,
        Metrics._status_changed,
        Metrics._job_healed,
        Metrics._job_abandoned,
        Metrics._job_failed,
        Metrics._handoff,
        Metrics._trigger_run,
        Metrics._trigger_failures,
        Metrics._cleanup_run,
        Metrics._batching_run,
        Metrics._batch_created,
        Metrics._batch_closed,
        Metrics._latest_batch,
        Metrics._object_stored,
        Metrics._chain_head,
        Metrics._settled_block,
        Metrics._job_counts,
        Metrics._queue_depth,
        Metrics._outbox_depth,
        Metrics._workload,
        Metrics._settlement_posting,
        Metrics._settlement_deadline_missed,
        Metrics._da_backlog,
        Metrics._stages_paused,
    )
}
"""Each event's handler (by the type its ``event`` parameter has)."""
