"""OTLP export end to end: a devnet pipeline in-process exports to a gRPC collector started here.

The collector must get the original's instrument names (SPEC §14) with plausible values, under the
resource ``orchestrator_meter_service`` and the meter ``crates.orchestrator.opentelemetry``; the spans of
job operations under ``orchestrator_trace_service``, with the outbound HTTP calls as their children (method
and host, never the path); an API request's ``x-trace-id`` as the trace of the request and its calls; the
log records under ``orchestrator_logs_service``, in their job's trace, with no secret; and the JSON log lines
emitted while a job is handled carry the job and the trace id of those spans.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from madara_orchestrator.cli.run import JsonFormatter
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.cli.telemetry import build_telemetry
from madara_orchestrator.devnet.anvil import find_anvil_binary
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.engine.telemetry import trace_id_for
from madara_orchestrator.server.background import BackgroundServer
from tests.conftest import require
from tests.helpers.otlp_receiver import OtlpReceiver
from tests.helpers.pipeline import eventually, start_pipeline

BLOCKS = 3
REQUEST_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HTTP_SPAN_KEYS = {"http.request.method", "server.address", "server.port", "http.response.status_code"}
JOB_TYPES = (JobType.SNOS_RUN, JobType.PROOF_CREATION, JobType.AGGREGATOR, JobType.STATE_TRANSITION)


def anvil_available() -> bool:
    try:
        find_anvil_binary()
    except ConfigError:
        return False
    return True


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextmanager
def json_logs() -> Iterator[_Lines]:
    logger = logging.getLogger("madara_orchestrator")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_a_collector_gets_the_original_instruments_spans_and_joined_logs(tmp_path: Path) -> None:
    receiver = OtlpReceiver()
    receiver.start()
    overrides = {"otel_collector_endpoint": receiver.endpoint, "otel_export_interval_seconds": 0.2}
    completed: dict[JobType, int] = {}
    created: dict[JobType, int] = {}
    try:
        with json_logs() as logs:
            p = await start_pipeline(tmp_path, blocks=BLOCKS, overrides=overrides)
            try:

                async def settled() -> bool:
                    last = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, BLOCKS)
                    return last is not None and last.status == JobStatus.COMPLETED

                await eventually(settled, 40, f"blocks 0..{BLOCKS - 1} to settle")

                async def exported_while_running() -> bool:
                    return receiver.total("successful_job_operations", operation_job_type="StateTransition") > 0

                await eventually(exported_while_running, 10, "a periodic export with a settlement in it")
                async with httpx.AsyncClient() as client:
                    answer = await client.get(f"{p.api.url}/backlog", headers={"x-trace-id": REQUEST_TRACE})
                assert answer.headers["x-trace-id"] == REQUEST_TRACE
                await p.stack.runtime.stop()
                for job_type in JOB_TYPES:
                    jobs = await p.stack.store.list_jobs(job_types=[job_type], limit=1000)
                    created[job_type] = len(jobs)
                    completed[job_type] = sum(1 for j in jobs if j.status == JobStatus.COMPLETED)
            finally:
                await p.close()  # flushes: the last export has the final totals
    finally:
        receiver.stop()

    assert receiver.metric_services == {"orchestrator_meter_service"}
    assert "crates.orchestrator.opentelemetry" in receiver.scopes
    for name in (
        "successful_job_operations",
        "job_e2e_latency",
        "jobs_response_time",
        "verification_time",
        "block_state",
        "job_state_transitions",
        "job_status_current",
        "job_queue_depth",
        "workload_capacity_slots",
        "snos_job_processing_time",
        "settlement_time",
        "orchestrator_job_stage_seconds",
        "orchestrator_settlement_blob_fill_ratio",
    ):
        assert name in receiver.names(), f"{name} not exported; got {sorted(receiver.names())}"
    assert receiver.unit("successful_job_operations") == "jobs"
    assert receiver.unit("job_e2e_latency") == "s"
    assert receiver.unit("verification_time") == "ms"

    # Counts equal the jobs: every job created here was counted once, every completed one once.
    assert completed[JobType.STATE_TRANSITION] >= BLOCKS
    for job_type in JOB_TYPES:
        jt = str(job_type)
        assert (
            receiver.total("successful_job_operations", operation_job_type=jt, operation_type="create_job")
            == (created[job_type])
        ), jt
        verified = {"operation_type": "verify_job", "operation_job_status": "Completed"}
        assert receiver.total("successful_job_operations", operation_job_type=jt, **verified) == completed[job_type]
        transitions = receiver.total("job_state_transitions", operation_job_type=jt, to_state="Completed")
        assert transitions == completed[job_type], jt
        (e2e,) = receiver.points("job_e2e_latency", operation_job_type=jt)
        assert e2e.attributes["operation_job_status"] == "Completed"
        assert 0 < e2e.value < 60, (jt, e2e.value)
        response = receiver.points("jobs_response_time", operation_job_type=jt, operation_type="process_job")
        assert response and all(0 < r.value < 60 for r in response), jt
        (verification,) = receiver.points("verification_time", operation_job_type=jt)
        assert 0 <= verification.value < 60_000, "milliseconds"
        assert "operation_type" not in e2e.attributes, "labels that do not apply are left out over OTLP"
    # The last block settled is the block StateTransition's verification reached.
    (settled_block,) = receiver.points("block_state", operation_job_type="StateTransition", operation_type="verify_job")
    assert settled_block.value == BLOCKS - 1
    (snos_time,) = receiver.points("snos_job_processing_time", operation_job_type="SnosRun")
    assert snos_time.kind == "histogram" and snos_time.count >= completed[JobType.SNOS_RUN] and snos_time.total > 0
    (fill,) = receiver.points("orchestrator_settlement_blob_fill_ratio")
    assert fill.count == completed[JobType.STATE_TRANSITION] and 0 < fill.total <= fill.count
    current = {"operation_job_type": "StateTransition", "operation_job_status": "Completed"}
    assert receiver.total("job_status_current", **current) == completed[JobType.STATE_TRANSITION]

    # Spans: one per process and verify call, under the trace of the processing attempt.
    assert {s.service for s in receiver.spans()} == {"orchestrator_trace_service"}
    process_spans = receiver.spans("process_job")
    verify_spans = receiver.spans("verify_job")
    assert process_spans and verify_spans
    processed = {s.attributes["job.id"]: s for s in process_spans}
    for span in verify_spans:
        job_id = span.attributes["job.id"]
        assert span.trace_id == processed[job_id].trace_id, "verification joins its processing attempt's trace"
        assert span.trace_id == trace_id_for(uuid.UUID(job_id), int(span.attributes["job.attempt"]))

    # Outbound calls: the sequencer's RPC called by SnosRun processing, a child span of it, method and host only.
    by_id = {s.span_id: s for s in receiver.spans()}
    calls = receiver.spans("HTTP POST")
    in_jobs = [c for c in calls if by_id.get(c.parent_span_id) and by_id[c.parent_span_id].name == "process_job"]
    snos_calls = [c for c in in_jobs if by_id[c.parent_span_id].attributes["job.type"] == "SnosRun"]
    assert snos_calls, f"no HTTP call under a SnosRun process_job span; calls: {len(calls)}"
    rpc_port = str(httpx.URL(p.rpc.url).port)
    for call in snos_calls:
        assert call.trace_id == by_id[call.parent_span_id].trace_id
        assert set(call.attributes) == HTTP_SPAN_KEYS, call.attributes
        assert call.attributes["server.address"] == "127.0.0.1" and call.attributes["server.port"] == rpc_port
        assert call.attributes["http.response.status_code"] == "200"
    assert all(c.parent_span_id for c in calls), "a call outside any trace records no span"

    # The API request: its x-trace-id is the trace of its span and of the sequencer call it made.
    (request_span,) = [s for s in receiver.spans() if s.trace_id == REQUEST_TRACE and not s.parent_span_id]
    assert request_span.name == "GET /backlog"
    request_calls = [c for c in calls if c.parent_span_id == request_span.span_id]
    assert request_calls and all(c.trace_id == REQUEST_TRACE for c in request_calls)

    # Log records over OTLP: in their job's trace and span.
    records = receiver.logs()
    assert {r.service for r in records} == {"orchestrator_logs_service"}
    exported = [r for r in records if r.body.startswith("processing ")]
    assert exported and all(r.trace_id in span_traces_of(receiver) and r.attributes.get("job_id") for r in exported)
    assert all(by_id[r.span_id].name == "process_job" for r in exported)

    # Logs: lines emitted while a job is handled carry it and the trace id of its spans.
    span_traces = {s.trace_id for s in receiver.spans()}
    job_lines = [line for line in logs.lines if "job_id" in line]
    assert job_lines, "no log line with a job context"
    processing = [line for line in job_lines if str(line["message"]).startswith("processing ")]
    assert processing
    for line in processing:
        assert line["operation"] == "process_job" and line["trace_id"] in span_traces, line
        assert line["job_type"] in {str(t) for t in JOB_TYPES} and isinstance(line["internal_id"], int)
        if line["job_type"] == "SnosRun":
            assert str(line["blocks"]).count("-") == 1
    by_operation = Counter(str(line["operation"]) for line in job_lines)
    assert by_operation["verify_job"] > 0
    assert not [line for line in logs.lines if "job_id" not in line and str(line["message"]).startswith("processing ")]


def span_traces_of(receiver: OtlpReceiver) -> set[str]:
    return {s.trace_id for s in receiver.spans()}


SECRET = "k3y-0f-the-pr0ver-6f1e2d"
PATH_KEY = "alchemyKeyInThePath0123456789"


async def test_log_records_and_calls_reach_the_collector_without_secrets() -> None:
    """A line naming a secret setting's value, a URL with credentials and an exception: exported redacted.
    A call to a URL with a key in its path and query: its span has the host, not the key."""
    receiver = OtlpReceiver()
    receiver.start()
    called = Starlette(routes=[Route("/v2/{key}", lambda request: PlainTextResponse("ok"), methods=["GET"])])
    server = BackgroundServer(called)
    await server.start()
    settings = Settings(
        {"otel_collector_endpoint": receiver.endpoint, "otel_export_interval_seconds": 0.2, "atlantic_api_key": SECRET},
        secrets={"atlantic_api_key"},
    )
    telemetry = build_telemetry(settings)
    handler = telemetry.log_handler
    assert handler in logging.getLogger().handlers
    logger = logging.getLogger("madara_orchestrator.test_otlp")
    try:
        tracer = telemetry.metrics.tracer
        assert tracer is not None
        with tracer.start_as_current_span("work") as span:
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{server.url}/v2/{PATH_KEY}?apikey={SECRET}")).status_code == 200
            try:
                raise RuntimeError(f"prover said no to {SECRET} at https://user:{SECRET}@prover.example/v1")
            except RuntimeError:
                logger.error("call with key %s to https://bob:pw1234@node.example/x failed", SECRET, exc_info=True)
            trace_id = f"{span.get_span_context().trace_id:032x}"
        await telemetry.flush()
    finally:
        await telemetry.shutdown()
        await server.stop()
        receiver.stop()
    (record,) = [r for r in receiver.logs() if r.body.startswith("call with key")]
    assert record.severity == "ERROR" and record.trace_id == trace_id
    assert "RuntimeError" in record.body and "https://node.example" in record.body and "prover.example" in record.body
    everything = repr(receiver.logs()) + repr(receiver.spans())
    for secret in (SECRET, "pw1234", "user:", PATH_KEY):
        assert secret not in everything, secret
    (call,) = receiver.spans("HTTP GET")
    assert call.trace_id == trace_id and set(call.attributes) == HTTP_SPAN_KEYS
    assert handler not in logging.getLogger().handlers, "shutdown took the handler off"


async def test_settlement_costs_on_a_local_l1_reach_the_collector(tmp_path: Path) -> None:
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    receiver = OtlpReceiver()
    receiver.start()
    overrides = {"otel_collector_endpoint": receiver.endpoint, "otel_export_interval_seconds": 0.2}
    try:
        p = await start_pipeline(tmp_path, blocks=2, l1_hardfork="prague", overrides=overrides)
        try:

            async def settled() -> bool:
                last = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, 2)
                return last is not None and last.status == JobStatus.COMPLETED

            await eventually(settled, 60, "two blocks to settle on anvil")
            fee_paid = await p.stack.settlement_fee_wei()
            await p.stack.runtime.stop()
        finally:
            await p.close()
    finally:
        receiver.stop()

    assert fee_paid is not None and fee_paid > 0
    assert receiver.total("orchestrator_settlement_fee_wei") == fee_paid, "every fee paid is counted once"
    assert receiver.total("orchestrator_settled_blocks") == 2
    (per_block,) = receiver.points("orchestrator_settlement_fee_per_block_wei")
    assert 0 < per_block.value <= fee_paid
    (execution,) = receiver.points("orchestrator_settlement_gas_used", gas="execution")
    (blob,) = receiver.points("orchestrator_settlement_gas_used", gas="blob")
    assert execution.count == blob.count == 2
    assert 21_000 < execution.total / 2 < 1_500_000 and blob.total == 2 * 131_072, "one blob a settlement"
    (price,) = receiver.points("orchestrator_settlement_gas_price_wei", gas="execution")
    assert price.value > 0
    (fill,) = receiver.points("orchestrator_settlement_blob_fill_ratio")
    assert fill.count == 2 and 0 < fill.total / 2 <= 1
