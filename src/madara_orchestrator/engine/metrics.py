"""Metrics of one orchestrator process: one recording API, two sinks.

Every instrument records into a Prometheus registry of its own (one per runtime, so tests stay isolated;
rendered on ``/metrics``) and, when OTLP export is on (``--otel-collector-endpoint``, wired in
cli/telemetry.py), into an OpenTelemetry instrument of the same name made by the meter
``crates.orchestrator.opentelemetry``. Call sites use the prometheus_client style
(``metrics.operations.labels(job_type, "process", "success").inc()``, ``.observe()``, ``.set()``).

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
settlements put off because fees were above the hard cap; and ``orchestrator_chain_head_block`` (the
sequencer's head, for the settlement lag); ``orchestrator_trigger_consecutive_failures`` (a trigger's failed
runs in a row: what makes /health DEGRADED).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter as OtelCounter
    from opentelemetry.metrics import Histogram as OtelHistogram
    from opentelemetry.metrics import Meter
    from opentelemetry.metrics import _Gauge as OtelGauge
    from opentelemetry.trace import Tracer

METER_NAME = "crates.orchestrator.opentelemetry"
"""The original's meter name (SPEC §14)."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)
GAS_BUCKETS = (50_000, 100_000, 131_072, 200_000, 262_144, 400_000, 524_288, 786_432, 1_000_000, 1_500_000)
RATIO_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)

Attributes = dict[str, str]
Mirror = Callable[[tuple[str, ...], float], None]
"""Also record a value elsewhere: called with the label values and the value."""


def _attributes(names: Sequence[str], values: tuple[str, ...]) -> Attributes:
    """OTLP attributes: labels that do not apply (empty) are left out, as the original never sets them."""
    return {name: value for name, value in zip(names, values, strict=True) if value != ""}


class _Family:
    """What the three kinds share: label names, the children by label values, mirrors, ``collect``."""

    def __init__(self, name: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.labelnames = tuple(labelnames)
        self._mirrors: list[Mirror] = []

    def mirror(self, fn: Mirror) -> None:
        self._mirrors.append(fn)

    def _key(self, values: tuple[object, ...]) -> tuple[str, ...]:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {len(values)} value(s)")
        return tuple(str(v) for v in values)

    def _mirrored(self, key: tuple[str, ...], value: float) -> None:
        for fn in self._mirrors:
            fn(key, value)


class CounterChild:
    def __init__(self, family: Counter, key: tuple[str, ...]) -> None:
        self._family = family
        self._key = key
        self._prom = family._prom.labels(*key) if key else family._prom
        self._attrs = _attributes(family.labelnames, key)

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"{self._family.name}: a counter only goes up")
        self._prom.inc(amount)
        if self._family._otel is not None:
            self._family._otel.add(amount, self._attrs)
        self._family._mirrored(self._key, amount)


class Counter(_Family):
    def __init__(
        self,
        registry: CollectorRegistry,
        meter: Meter | None,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        unit: str = "",
        otel_name: str | None = None,
    ) -> None:
        super().__init__(name, labelnames)
        self._prom = PromCounter(name, documentation, self.labelnames, registry=registry)
        otel = otel_name or name.removesuffix("_total")
        self._otel: OtelCounter | None = (
            meter.create_counter(otel, unit=unit, description=documentation) if meter is not None else None
        )
        self._children: dict[tuple[str, ...], CounterChild] = {}

    def labels(self, *values: object) -> CounterChild:
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = CounterChild(self, key)
        return child

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def collect(self) -> Iterable[Metric]:
        return self._prom.collect()


class HistogramChild:
    def __init__(self, family: Histogram, key: tuple[str, ...]) -> None:
        self._family = family
        self._key = key
        self._prom = family._prom.labels(*key) if key else family._prom
        self._attrs = _attributes(family.labelnames, key)

    def observe(self, value: float) -> None:
        self._prom.observe(value)
        if self._family._otel is not None:
            self._family._otel.record(value, self._attrs)
        self._family._mirrored(self._key, value)


class Histogram(_Family):
    def __init__(
        self,
        registry: CollectorRegistry,
        meter: Meter | None,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        unit: str = "",
        otel_name: str | None = None,
    ) -> None:
        super().__init__(name, labelnames)
        self._prom = PromHistogram(name, documentation, self.labelnames, buckets=tuple(buckets), registry=registry)
        self._otel: OtelHistogram | None = (
            meter.create_histogram(
                otel_name or name,
                unit=unit,
                description=documentation,
                explicit_bucket_boundaries_advisory=[float(b) for b in buckets],
            )
            if meter is not None
            else None
        )
        self._children: dict[tuple[str, ...], HistogramChild] = {}

    def labels(self, *values: object) -> HistogramChild:
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = HistogramChild(self, key)
        return child

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def collect(self) -> Iterable[Metric]:
        return self._prom.collect()


class GaugeChild:
    def __init__(self, family: Gauge, key: tuple[str, ...]) -> None:
        self._family = family
        self._key = key
        self._attrs = _attributes(family.labelnames, key)

    def set(self, value: float) -> None:
        prom = self._family._prom.labels(*self._key) if self._key else self._family._prom
        prom.set(value)
        if self._family._otel is not None:
            self._family._otel.set(value, self._attrs)
        self._family._mirrored(self._key, value)


class Gauge(_Family):
    def __init__(
        self,
        registry: CollectorRegistry,
        meter: Meter | None,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        unit: str = "",
        otel_name: str | None = None,
    ) -> None:
        super().__init__(name, labelnames)
        self._prom = PromGauge(name, documentation, self.labelnames, registry=registry)
        self._otel: OtelGauge | None = (
            meter.create_gauge(otel_name or name, unit=unit, description=documentation) if meter is not None else None
        )
        self._children: dict[tuple[str, ...], GaugeChild] = {}

    def labels(self, *values: object) -> GaugeChild:
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = GaugeChild(self, key)
        return child

    def set(self, value: float) -> None:
        self.labels().set(value)

    def clear(self) -> None:
        """Forget every label set. On ``/metrics`` they disappear; an OTLP gauge cannot drop a series, so
        each is set to 0 there (a count that is no longer there is zero)."""
        if self._otel is not None:
            for child in self._children.values():
                self._otel.set(0, child._attrs)
        self._prom.clear()
        self._children.clear()

    def collect(self) -> Iterable[Metric]:
        return self._prom.collect()


class Metrics:
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
        r, m = self.registry, meter

        def counter(name: str, doc: str, labels: Sequence[str] = (), **kw: str) -> Counter:
            return Counter(r, m, name, doc, labels, **kw)

        def gauge(name: str, doc: str, labels: Sequence[str] = (), **kw: str) -> Gauge:
            return Gauge(r, m, name, doc, labels, **kw)

        def histogram(
            name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS, **kw: str
        ) -> Histogram:
            return Histogram(r, m, name, doc, labels, buckets=buckets, **kw)

        # -- this orchestrator's own figures ----------------------------------------------------------
        self.jobs = gauge("orchestrator_jobs", "Jobs by type and status", ["job_type", "status"])
        self.queue_depth = gauge("orchestrator_queue_depth", "Messages per queue and state", ["queue", "state"])
        self.stage_latency = histogram(
            "orchestrator_job_stage_seconds",
            "Time a job spends per stage: process (lock to processed), verify (processed to completed), "
            "e2e (created to completed)",
            ["job_type", "stage"],
            unit="s",
        )
        self.handoff_latency = histogram(
            "orchestrator_handoff_seconds",
            "From a job's completion to the creation of its successor",
            ["job_type"],
            unit="s",
        )
        self.operations = counter(
            "orchestrator_job_operations_total",
            "Process and verify calls by outcome",
            ["job_type", "operation", "outcome"],
        )
        self.failed_jobs = counter("orchestrator_failed_jobs_total", "Jobs moved to Failed", ["job_type"])
        self.healed_jobs = counter(
            "orchestrator_healed_jobs_total", "Jobs taken over after their lease expired", ["job_type"]
        )
        self.trigger_runs = counter(
            "orchestrator_trigger_runs_total", "Trigger runs by outcome", ["trigger", "outcome"]
        )
        self.trigger_failures = gauge(
            "orchestrator_trigger_consecutive_failures",
            "Failed runs in a row of each trigger (0 once it succeeds again)",
            ["trigger"],
        )
        self.last_settled_block = gauge(
            "orchestrator_last_settled_block", "Last block the settlement layer reports", unit="block"
        )
        self.chain_head = gauge("orchestrator_chain_head_block", "Latest block of the sequencer", unit="block")

        self.batches_created = counter("orchestrator_batches_created_total", "Batches opened", ["kind"])
        self.batches_closed = counter(
            "orchestrator_batches_closed_total", "Batches closed, by the rule that closed them", ["kind", "reason"]
        )
        self.batch_blocks = histogram(
            "orchestrator_batch_blocks",
            "Blocks per closed batch",
            ["kind"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
        )
        self.batch_blob_len = histogram(
            "orchestrator_batch_blob_felts",
            "Compressed state-diff felts per closed aggregator batch",
            buckets=(256, 1024, 4096, 8192, 12288, 16384, 20480, 24576, 49152),
        )
        self.latest_batch = gauge("orchestrator_latest_batch_index", "Latest batch stored", ["kind"])
        self.batching_duration = histogram(
            "orchestrator_batching_duration_seconds", "Time of one batching run", unit="s"
        )

        # -- settlement costs (not in the original) ---------------------------------------------------
        self.settlement_fee = counter(
            "orchestrator_settlement_fee_wei_total", "Fees paid by settlement transactions (execution + blob)"
        )
        self.settlement_last_fee = gauge(
            "orchestrator_settlement_last_fee_wei", "Fee paid by the latest settlement transaction"
        )
        self.settlement_fee_per_block = gauge(
            "orchestrator_settlement_fee_per_block_wei", "Fee of the latest settlement divided by the blocks it settled"
        )
        self.settled_blocks = counter("orchestrator_settled_blocks_total", "Blocks settled (by this process)")
        self.settlements = counter("orchestrator_settlements_total", "Settlement calls that succeeded")
        self.settlement_gas = histogram(
            "orchestrator_settlement_gas_used",
            "L1 gas used per settlement transaction: execution gas and blob gas",
            ["gas"],
            buckets=GAS_BUCKETS,
        )
        self.settlement_gas_price = gauge(
            "orchestrator_settlement_gas_price_wei",
            "Price paid per unit of gas by the latest settlement transaction: execution and blob gas",
            ["gas"],
        )
        self.settlement_blob_fill = histogram(
            "orchestrator_settlement_blob_fill_ratio",
            "Felts a settlement's blobs carry, divided by their capacity (4096 felts a blob)",
            buckets=RATIO_BUCKETS,
        )
        self.settlement_blobs = counter("orchestrator_settlement_blobs_total", "Blobs carried by settlements")
        self.settlement_fee_cap_exceeded = counter(
            "orchestrator_settlement_fee_cap_exceeded_total",
            "Settlement attempts put off because fees were above the hard cap",
        )

        # -- the original's instruments (SPEC §14) ----------------------------------------------------
        self.block_state = gauge(
            "block_state",
            "A gauge to show block state at given time",
            ["operation_job_type", "operation_type"],
            unit="block",
        )
        self.successful_job_operations = counter(
            "successful_job_operations",
            "A counter to show count of successful job operations over time",
            ["operation_job_type", "operation_type", "operation_job_status"],
            unit="jobs",
        )
        self.failed_job_operations = counter(
            "failed_job_operations",
            "A counter to show count of failed job operations over time",
            ["operation_job_type", "operation_type"],
            unit="jobs",
        )
        self.failed_jobs_original = counter(
            "failed_jobs", "A counter to show count of failed jobs over time", ["operation_job_type"], unit="jobs"
        )
        self.verification_time = gauge(
            "verification_time",
            "A gauge to show the time taken for verification of tasks",
            ["operation_job_type"],
            unit="ms",
        )
        self.jobs_response_time = gauge(
            "jobs_response_time",
            "A gauge to show response time of jobs over time",
            ["operation_job_type", "operation_type"],
            unit="s",
        )
        self.job_queue_depth = gauge(
            "job_queue_depth", "Number of jobs waiting in queue", ["queue_type", "state"], unit="jobs"
        )
        self.job_scheduling_delay = gauge(
            "job_scheduling_delay", "Delay between job creation and pickup", ["operation_job_type"], unit="s"
        )
        self.job_retry_count = counter(
            "job_retry_count", "Number of job retries", ["operation_job_type", "retry_reason"], unit="jobs"
        )
        self.job_state_transitions = counter(
            "job_state_transitions",
            "Count of job state transitions",
            ["from_state", "to_state", "operation_job_type"],
            unit="jobs",
        )
        self.job_timeout_count = counter(
            "job_timeout_count", "Number of jobs that timed out", ["operation_job_type", "timeout_type"], unit="jobs"
        )
        self.job_abandoned_count = counter(
            "job_abandoned_count",
            "Jobs abandoned after max retries",
            ["operation_job_type", "final_retry_count"],
            unit="jobs",
        )
        self.job_e2e_latency = gauge(
            "job_e2e_latency",
            "End-to-end job processing time",
            ["operation_job_type", "operation_job_status"],
            unit="s",
        )
        self.proof_generation_time = gauge("proof_generation_time", "Time to generate proofs", ["proof_type"], unit="s")
        self.snos_job_processing_time = histogram(
            "snos_job_processing_time", "Time to process SNOS jobs", ["operation_job_type"], unit="s"
        )
        self.settlement_time = gauge(
            "settlement_time", "Time to settle on L1/L2", ["operation_job_type", "settlement_layer"], unit="s"
        )
        self.active_jobs_count = gauge("active_jobs_count", "Currently active jobs", ["status"], unit="jobs")
        self.job_status_current = gauge(
            "job_status_current",
            "Current status of jobs by type and status (number of jobs)",
            ["operation_job_type", "operation_job_status"],
            unit="status",
        )
        self.batch_creation = counter("batch_creation", "Total number of batches created", ["kind"], unit="1")
        self.aggregator_batching_batch_number = gauge(
            "aggregator_batching_batch_number", "Latest aggregator batch number"
        )
        self.aggregator_batching_duration = histogram(
            "aggregator_batching_duration_seconds", "Duration of one batching run", unit="s"
        )
        self.cleanup_runs = counter(
            "cleanup_runs_total", "Storage cleanup runs", unit="runs", otel_name="cleanup_runs_total"
        )
        self.cleanup_jobs_processed = counter(
            "cleanup_jobs_processed", "Settled jobs whose artifacts were marked to expire", unit="jobs"
        )
        self.cleanup_artifacts_tagged = counter(
            "cleanup_artifacts_tagged", "Artifacts marked to expire", unit="artifacts"
        )
        self.cleanup_failures = counter(
            "cleanup_failures_total", "Storage cleanup runs that failed", ["reason"], otel_name="cleanup_failures_total"
        )
        workload = ["work_kind", "work_phase", "source_job_type"]
        self.workload_active_slots = gauge("workload_active_slots", "Busy consumer slots", workload, unit="slots")
        self.workload_capacity_slots = gauge(
            "workload_capacity_slots", "Consumer slots (the queue's concurrency)", workload, unit="slots"
        )
        self.workload_busy_seconds = counter(
            "workload_busy_seconds_total",
            "Time consumer slots spent handling messages",
            workload,
            unit="s",
            otel_name="workload_busy_seconds_total",
        )
        self.healed_jobs_total = counter(
            "healed_jobs_total",
            "Jobs taken over after their worker died",
            ["source_job_type"],
            unit="jobs",
            otel_name="healed_jobs_total",
        )

        # The batching run records its own figures; the original's names follow them.
        self.batches_created.mirror(lambda key, value: self.batch_creation.labels(*key).inc(value))
        self.batching_duration.mirror(lambda _key, value: self.aggregator_batching_duration.observe(value))

        def latest(key: tuple[str, ...], value: float) -> None:
            if key == ("aggregator",):
                self.aggregator_batching_batch_number.set(value)

        self.latest_batch.mirror(latest)
        self.healed_jobs.mirror(lambda key, value: self.healed_jobs_total.labels(*key).inc(value))
        self.failed_jobs.mirror(lambda key, value: self.failed_jobs_original.labels(*key).inc(value))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- the job lifecycle (the original's names; engine/service.py) ---------------------------------

    def job_operation(
        self, job_type: str, operation: str, *, status_after: str, seconds: float, block: int | None
    ) -> None:
        """A create_job, process_job or verify_job call that went through; ``status_after`` the job's status
        after it, ``block`` the last block the job covers (None when unknown)."""
        self.successful_job_operations.labels(job_type, operation, status_after).inc()
        self.jobs_response_time.labels(job_type, operation).set(max(0.0, seconds))
        if block is not None:
            self.block_state.labels(job_type, operation).set(block)

    def job_operation_failed(self, job_type: str, operation: str) -> None:
        self.failed_job_operations.labels(job_type, operation).inc()

    def job_processed(self, job_type: str, *, seconds: float, scheduling_delay_s: float | None) -> None:
        """Processing succeeded after ``seconds``; ``scheduling_delay_s``: creation to lock, first attempt only."""
        if scheduling_delay_s is not None:
            self.job_scheduling_delay.labels(job_type).set(max(0.0, scheduling_delay_s))
        if job_type == "SnosRun":
            self.snos_job_processing_time.labels(job_type).observe(max(0.0, seconds))
        elif job_type == "ProofCreation":
            self.proof_generation_time.labels("proof_submission").set(max(0.0, seconds))

    def job_completed(
        self, job_type: str, *, e2e_s: float, verify_call_s: float, since_processed_s: float | None
    ) -> None:
        """Verification said Verified: the job is Completed."""
        self.job_e2e_latency.labels(job_type, "Completed").set(max(0.0, e2e_s))
        self.verification_time.labels(job_type).set(max(0.0, verify_call_s) * 1000.0)
        if job_type == "ProofCreation" and since_processed_s is not None:
            self.proof_generation_time.labels("proof_generation").set(max(0.0, since_processed_s))

    def job_transition(self, job_type: str, from_status: str, to_status: str) -> None:
        if from_status != to_status:
            self.job_state_transitions.labels(from_status, to_status, job_type).inc()

    # -- settlement costs ---------------------------------------------------------------------------

    def settlement_done(
        self, *, blocks: int, felts: int, blobs: int, seconds: float, fee_wei: int | None, layer: str = "L1"
    ) -> None:
        """A StateTransition's settlement call succeeded: ``blocks`` settled by ``blobs`` carrying ``felts``."""
        self.settlements.inc()
        self.settled_blocks.inc(max(0, blocks))
        self.settlement_time.labels("StateTransition", layer).set(seconds)
        if blobs > 0:
            self.settlement_blobs.inc(blobs)
            self.settlement_blob_fill.observe(felts / (blobs * 4096))
        if fee_wei is not None:
            self.settlement_fee.inc(fee_wei)
            self.settlement_last_fee.set(fee_wei)
            if blocks > 0:
                self.settlement_fee_per_block.set(fee_wei / blocks)

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
            self.settlement_gas.labels("execution").observe(gas_used)
        if blob_gas_used:
            self.settlement_gas.labels("blob").observe(blob_gas_used)
        if gas_price_wei is not None:
            self.settlement_gas_price.labels("execution").set(gas_price_wei)
        if blob_gas_price_wei is not None:
            self.settlement_gas_price.labels("blob").set(blob_gas_price_wei)

    def settlement_fee_capped(self) -> None:
        self.settlement_fee_cap_exceeded.inc()
