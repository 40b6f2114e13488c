"""Prometheus metrics of one orchestrator process (a registry per runtime, so tests stay isolated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Gauge("orchestrator_jobs", "Jobs by type and status", ["job_type", "status"], registry=r)
        self.queue_depth = Gauge(
            "orchestrator_queue_depth", "Messages per queue and state", ["queue", "state"], registry=r
        )
        self.stage_latency = Histogram(
            "orchestrator_job_stage_seconds",
            "Time a job spends per stage: process (lock to processed), verify (processed to completed), "
            "e2e (created to completed)",
            ["job_type", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.handoff_latency = Histogram(
            "orchestrator_handoff_seconds",
            "From a job's completion to the creation of its successor",
            ["job_type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.operations = Counter(
            "orchestrator_job_operations_total",
            "Process and verify calls by outcome",
            ["job_type", "operation", "outcome"],
            registry=r,
        )
        self.failed_jobs = Counter("orchestrator_failed_jobs_total", "Jobs moved to Failed", ["job_type"], registry=r)
        self.healed_jobs = Counter(
            "orchestrator_healed_jobs_total",
            "Jobs taken over after their lease expired",
            ["job_type"],
            registry=r,
        )
        self.trigger_runs = Counter(
            "orchestrator_trigger_runs_total", "Trigger runs by outcome", ["trigger", "outcome"], registry=r
        )
        self.last_settled_block = Gauge(
            "orchestrator_last_settled_block", "Last block the settlement layer reports", registry=r
        )

        self.batches_created = Counter("orchestrator_batches_created_total", "Batches opened", ["kind"], registry=r)
        self.batches_closed = Counter(
            "orchestrator_batches_closed_total",
            "Batches closed, by the rule that closed them",
            ["kind", "reason"],
            registry=r,
        )
        self.batch_blocks = Histogram(
            "orchestrator_batch_blocks",
            "Blocks per closed batch",
            ["kind"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.batch_blob_len = Histogram(
            "orchestrator_batch_blob_felts",
            "Compressed state-diff felts per closed aggregator batch",
            buckets=(256, 1024, 4096, 8192, 12288, 16384, 20480, 24576, 49152),
            registry=r,
        )
        self.latest_batch = Gauge("orchestrator_latest_batch_index", "Latest batch stored", ["kind"], registry=r)
        self.batching_duration = Histogram(
            "orchestrator_batching_duration_seconds", "Time of one batching run", buckets=LATENCY_BUCKETS, registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
