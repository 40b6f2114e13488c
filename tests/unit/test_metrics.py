"""engine/metrics.py: one table of instruments, exported on /metrics and over OTLP under each of its names."""

from __future__ import annotations

import typing

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.engine import metrics as m
from madara_orchestrator.engine import telemetry as ev


def otlp_points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float, str]]]:
    """OTLP name → (attributes, value, unit) of each data point (sums and gauges)."""
    out: dict[str, list[tuple[dict[str, object], float, str]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = float(getattr(point, "value", getattr(point, "count", 0)))
                    out.setdefault(metric.name, []).append((dict(point.attributes or {}), value, metric.unit))
    return out


def exporting() -> tuple[m.Metrics, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    return m.Metrics(meter=provider.get_meter(m.METER_NAME)), reader


def test_every_event_has_a_handler_and_every_name_is_declared_once() -> None:
    assert set(typing.get_args(ev.Event)) == set(m._HANDLERS)
    names = [i.name for i in m.INSTRUMENTS if i.name] + [i.original.name for i in m.INSTRUMENTS if i.original]
    assert len(names) == len(set(names))


def test_a_figure_goes_to_our_name_and_the_originals_on_both_exports() -> None:
    metrics, reader = exporting()
    metrics.report(ev.JobFailed(JobType.SNOS_RUN))
    text = metrics.render().decode()
    assert 'orchestrator_failed_jobs_total{job_type="SnosRun"} 1.0' in text
    assert 'failed_jobs_total{operation_job_type="SnosRun"} 1.0' in text
    points = otlp_points(reader)
    assert points["orchestrator_failed_jobs"] == [({"job_type": "SnosRun"}, 1.0, "")], "ours drops _total"
    assert points["failed_jobs"] == [({"operation_job_type": "SnosRun"}, 1.0, "jobs")]


def test_the_originals_batch_number_is_the_aggregators_only() -> None:
    metrics, reader = exporting()
    metrics.report(ev.LatestBatch("snos", 5))
    metrics.report(ev.LatestBatch("aggregator", 2))
    text = metrics.render().decode()
    assert 'orchestrator_latest_batch_index{kind="snos"} 5.0' in text
    assert "aggregator_batching_batch_number 2.0" in text
    assert otlp_points(reader)["aggregator_batching_batch_number"] == [({}, 2.0, "")]


def test_job_counts_replace_the_previous_ones_and_go_to_zero_over_otlp() -> None:
    metrics, reader = exporting()
    metrics.report(ev.JobCounts({(JobType.SNOS_RUN, JobStatus.LOCKED_FOR_PROCESSING): 2}))
    metrics.report(ev.JobCounts({(JobType.SNOS_RUN, JobStatus.COMPLETED): 3}))
    text = metrics.render().decode()
    assert 'orchestrator_jobs{job_type="SnosRun",status="Completed"} 3.0' in text
    assert "LockedForProcessing" not in text
    assert 'active_jobs_count{status="processing"} 0.0' in text
    current = {tuple(sorted(a.items())): v for a, v, _ in otlp_points(reader)["job_status_current"]}
    locked = (("operation_job_status", "LockedForProcessing"), ("operation_job_type", "SnosRun"))
    assert current[locked] == 0.0


def test_a_verification_timeout_is_counted_as_one_not_as_a_failed_call() -> None:
    metrics, reader = exporting()
    metrics.report(ev.OperationFailed(JobType.PROOF_CREATION, "verify_job", "timeout"))
    text = metrics.render().decode()
    assert 'orchestrator_job_operations_total{job_type="ProofCreation",operation="verify",outcome="timeout"}' in text
    assert 'job_timeout_count_total{operation_job_type="ProofCreation",timeout_type="verification"} 1.0' in text
    assert "failed_job_operations_total{" not in text, "a timeout is not a failed call"
    assert otlp_points(reader)["job_timeout_count"] == [
        ({"operation_job_type": "ProofCreation", "timeout_type": "verification"}, 1.0, "jobs")
    ]


def test_no_telemetry_drops_everything() -> None:
    telemetry: ev.Telemetry = ev.NoTelemetry()
    telemetry.report(ev.JobFailed(JobType.SNOS_RUN))
    assert telemetry.tracer is None
