"""The shapes of the API's answers, as pydantic models: the routes declare them (``Endpoint.data``) and
``openapi.py`` describes them from these. The routes build their JSON themselves (the byte-for-byte
answers of the original); ``tests/e2e/test_openapi.py`` checks every answer against these shapes.

pydantic (already installed with starknet-py and web3) rather than FastAPI: FastAPI would rewrite how
requests are parsed and errors answered, and every answer must stay byte-for-byte the same.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, create_model

from madara_orchestrator.domain.batches import WEIGHT_FIELDS, AggregatorBatchStatus, SnosBatchStatus
from madara_orchestrator.domain.health import HealthStatus
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.domain.lag import LagLevel
from madara_orchestrator.domain.pause import Stage

MAX_NUMBER = 2**63 - 1
NonNegative = Annotated[int, Field(ge=0)]
Seconds = int | None
"""Unix seconds, or null."""
Fraction = Annotated[float, Field(ge=0)]
BlockNumber = Annotated[int, Field(ge=0, le=MAX_NUMBER, json_schema_extra={"format": "int64"})]


class Error(BaseModel):
    """The error envelope."""

    model_config = ConfigDict(extra="forbid")
    success: Literal[False]
    message: str


class JobTimestamps(BaseModel):
    process_started_at: Seconds
    process_completed_at: Seconds
    verification_started_at: Seconds
    verification_completed_at: Seconds


class JobSummary(BaseModel):
    job_type: JobType
    id: uuid.UUID
    status: JobStatus
    start_block: NonNegative | None
    end_block: NonNegative | None


class JobList(BaseModel):
    jobs: list[JobSummary]


class JobSnapshot(BaseModel):
    job_type: JobType
    id: uuid.UUID
    status: JobStatus
    internal_id: NonNegative
    created_at: Seconds
    updated_at: Seconds
    timestamps: JobTimestamps


class SpecificMetadata(BaseModel):
    type: str


class JobMetadata(BaseModel):
    common: dict[str, Any]
    specific: SpecificMetadata


class Lease(BaseModel):
    owner: str
    expires_at: float | None


class JobDocument(BaseModel):
    id: uuid.UUID
    internal_id: NonNegative
    job_type: JobType
    status: JobStatus
    external_id: str
    metadata: JobMetadata
    version: NonNegative
    created_at: Seconds
    updated_at: Seconds
    lease: Lease | None


BouncerWeights: type[BaseModel] = create_model(
    "BouncerWeights",
    **{name: (NonNegative, ...) for name in WEIGHT_FIELDS},  # type: ignore[call-overload]
)


class SnosBatchMetrics(BaseModel):
    state_diff_size: NonNegative
    sierra_gas: NonNegative
    proving_gas: NonNegative


class SnosBatchDetails(BaseModel):
    index: NonNegative
    aggregator_batch_index: NonNegative | None
    start_block: NonNegative
    end_block: NonNegative
    status: SnosBatchStatus
    created_at: Seconds
    updated_at: Seconds
    metrics: SnosBatchMetrics
    builtin_weights: BouncerWeights  # type: ignore[valid-type]


class AggregatorBatchDetails(BaseModel):
    index: NonNegative
    start_block: NonNegative
    end_block: NonNegative
    aggregator_input_size_upper_bound: NonNegative
    status: AggregatorBatchStatus
    created_at: Seconds
    updated_at: Seconds
    blob_len: NonNegative
    builtin_weights: BouncerWeights  # type: ignore[valid-type]


Wei = NonNegative | None
"""An amount in the settlement layer's smallest unit (wei, or fri on an L3), or null when not recorded."""


class CostFigures(BaseModel):
    """What a batch's line and the ledger's totals both give; null: does not apply, or not recorded."""

    blocks: NonNegative
    felts: NonNegative | None
    blobs: NonNegative | None
    fill: Fraction | None
    gas_used: Wei
    execution_fee_wei: Wei
    blob_gas_used: Wei
    blob_fee_wei: Wei
    fee_wei: Wei
    fee_per_block_wei: Wei
    attempts: NonNegative
    replacements: NonNegative
    bytes_stored: NonNegative | None


class BatchCost(CostFigures):
    """One batch's line of the cost ledger (domain/cost.py)."""

    index: NonNegative
    start_block: NonNegative
    end_block: NonNegative
    settled: bool
    first_block_at: float | None
    settled_at: float | None
    seconds_to_settle: Fraction | None
    tx_hash: str | None


class AggregatorBatchCost(AggregatorBatchDetails):
    cost: BatchCost


class CostTotals(CostFigures):
    batches: NonNegative
    settled: NonNegative
    with_fee: NonNegative
    mean_seconds_to_settle: Fraction | None


class CostPoint(BaseModel):
    index: NonNegative
    end_block: NonNegative
    settled_at: float | None
    fee_wei: NonNegative
    fee_per_block_wei: NonNegative
    cumulative_fee_wei: NonNegative
    cumulative_blocks: NonNegative
    cumulative_fee_per_block_wei: NonNegative


class CostLedger(BaseModel):
    unit: Literal["ETH", "STRK"]
    batch_kind: Literal["aggregator", "snos"]
    totals: CostTotals
    batches: list[BatchCost]
    series: list[CostPoint]


class SnosBatchList(BaseModel):
    batches: list[SnosBatchDetails]


class AggregatorBatchList(BaseModel):
    batches: list[AggregatorBatchDetails]


class BatchNumber(BaseModel):
    batch_number: NonNegative


class BlockSettlementStatus(BaseModel):
    block_number: NonNegative
    snos_batch: SnosBatchDetails | None
    aggregator_batch: AggregatorBatchDetails | None
    block_jobs: list[JobSnapshot]
    aggregator_proof_jobs: list[JobSnapshot]


class BulkResult(BaseModel):
    success_count: NonNegative
    successful_job_ids: list[uuid.UUID]
    failed_count: NonNegative
    failed_job_ids: list[uuid.UUID]


class ClosedBatches(BaseModel):
    snos_batches_closed: NonNegative
    aggregator_batches_closed: NonNegative


class StagePause(BaseModel):
    stage: Stage
    reason: str
    by: str
    since: float


class Pauses(BaseModel):
    paused: dict[Stage, StagePause]


class PauseResult(BaseModel):
    stage: Stage
    paused: bool
    pause: StagePause | None


class Backlog(BaseModel):
    head: NonNegative | None
    settled: NonNegative | None
    blocks: NonNegative | None
    batched_blocks: NonNegative
    unbatched_blocks: NonNegative
    batches: NonNegative
    felts: NonNegative | None
    felts_estimated: NonNegative | None
    felts_per_block: Fraction | None
    blobs: NonNegative | None
    errors: list[str]
    alert_blocks: NonNegative | None


class WokenJobs(BaseModel):
    woken_job_ids: list[uuid.UUID]


class BackendHealth(BaseModel):
    up: bool
    error: str | None


class TriggerHealth(BaseModel):
    failing: bool
    consecutive_failures: NonNegative
    failing_since: float | None
    last_failure_at: float | None
    last_error: str | None
    outage: bool
    next_try_in_s: Fraction | None


class Health(BaseModel):
    status: HealthStatus
    backends: dict[str, BackendHealth]
    triggers: dict[str, TriggerHealth]
    problems: list[str]
    head: NonNegative | None
    settled: NonNegative | None
    paused: dict[Stage, StagePause]


# --------------------------------------------------------------------------------------------------
# The dashboard's JSON


class WeightFill(BaseModel):
    name: str
    used: NonNegative
    limit: NonNegative


class DashboardBatch(BaseModel):
    index: NonNegative
    start_block: NonNegative
    end_block: NonNegative
    blocks: NonNegative
    age_s: Fraction
    max_age_s: float
    weights: list[WeightFill]
    created_at: float
    updated_at: float
    max_blocks: NonNegative


class DashboardSnosBatch(DashboardBatch):
    status: SnosBatchStatus
    aggregator_batch_index: NonNegative | None


class DashboardAggregatorBatch(DashboardBatch):
    status: AggregatorBatchStatus
    blob_felts: NonNegative
    max_blob_felts: int
    input_size: NonNegative
    max_input_size: NonNegative


class JobAttempts(BaseModel):
    process: NonNegative
    process_retry: NonNegative
    verification: NonNegative
    verification_retry: NonNegative


class DashboardJob(BaseModel):
    id: uuid.UUID
    job_type: JobType
    internal_id: NonNegative
    status: JobStatus
    external_id: str | None
    start_block: NonNegative | None
    end_block: NonNegative | None
    attempts: JobAttempts
    created_at: float
    updated_at: float
    timestamps: JobTimestamps
    failure_reason: str | None
    previous_failure_reasons: list[str]
    waiting_since: Seconds


class DashboardJobList(BaseModel):
    jobs: list[DashboardJob]


class SettlementTx(BaseModel):
    job_id: uuid.UUID
    batch: int
    status: JobStatus
    start_block: NonNegative | None
    end_block: NonNegative | None
    tx_hash: str | None
    tx_nonce: int | None
    fee_wei: NonNegative | None
    attempts: list[dict[str, Any]]
    settled_at: Seconds


class FirstOpenJob(BaseModel):
    job_type: JobType
    internal_id: NonNegative
    status: JobStatus
    start_block: NonNegative | None


class StageProgress(BaseModel):
    through: int | None
    highest: int | None
    first_open: FirstOpenJob | None


class Stages(BaseModel):
    snos: StageProgress
    proof: StageProgress
    aggregation: StageProgress
    settlement: StageProgress


class FailingTrigger(BaseModel):
    trigger: str
    failures: NonNegative
    failing_since: float | None
    last_error: str | None
    outage: bool


class Lag(BaseModel):
    blocks: NonNegative | None
    seconds: Fraction | None
    level: LagLevel
    normal_blocks: NonNegative
    normal_seconds: Fraction


class Attention(BaseModel):
    total: NonNegative
    by_status: dict[JobStatus, NonNegative]
    waiting: NonNegative


class BatchRows(BaseModel):
    aggregator: list[DashboardAggregatorBatch]
    snos: list[DashboardSnosBatch]


class SettlementPoint(BaseModel):
    batch: int
    start_block: NonNegative | None
    end_block: NonNegative
    at: float
    fee_wei: NonNegative | None
    tx_hash: str | None


class Fees(BaseModel):
    window: NonNegative
    with_fee: NonNegative
    total_wei: NonNegative | None
    unit: Literal["ETH", "STRK"]
    blocks: NonNegative
    per_block_wei: NonNegative | None
    blob_fill: Annotated[float, Field(ge=0, le=1)] | None
    blob_batches: NonNegative


class Posting(BaseModel):
    """The posting gate's last look (``--settlement-deadline-seconds``); absent without a deadline."""

    batch: int
    at: float
    waiting: bool
    code: str
    reason: str
    deadline_s: Fraction
    seconds_to_deadline: float | None
    base_fee_wei: NonNegative | None
    blob_base_fee_wei: NonNegative | None
    target_base_fee_wei: NonNegative | None
    target_blob_base_fee_wei: NonNegative | None
    relaxed: Annotated[float, Field(ge=0, le=1)]
    target_percentile: Annotated[float, Field(ge=0, le=100)] | None
    waiting_batches: NonNegative


class InFlight(BaseModel):
    count: NonNegative
    """StateTransition jobs created and not yet completed or failed."""
    limit: Annotated[int, Field(ge=1)]
    """--max-settlements-in-flight"""


class DashboardOverview(BaseModel):
    now: float
    admin_enabled: bool
    head: NonNegative | None
    settled: NonNegative | None
    errors: list[str]
    failing_triggers: list[FailingTrigger]
    batching_failing: bool
    batched_through: NonNegative | None
    stages: Stages
    lag: Lag
    attention: Attention
    open_batches: BatchRows
    recent_batches: BatchRows
    job_counts: dict[JobType, dict[JobStatus, NonNegative]]
    settlements_in_flight: InFlight
    settlements: list[SettlementPoint]
    fees: Fees
    posting: Posting | None
    paused: dict[Stage, StagePause]


class DashboardBlock(BaseModel):
    block_number: NonNegative
    head: NonNegative | None
    settled: NonNegative | None
    is_settled: bool
    errors: list[str]
    snos_batch: DashboardSnosBatch | None
    aggregator_batch: DashboardAggregatorBatch | None
    jobs: list[DashboardJob]
    settlement_txs: list[SettlementTx]


def webhook_body(statuses: tuple[str, ...] | None) -> type[BaseModel]:
    """A prover's completion webhook body; ``statuses``: those the configured webhook reads (any string
    when webhooks are off)."""
    fields: dict[str, Any] = {
        "atlanticQueryId": (Annotated[str, Field(min_length=1, pattern=r"\S")], ...),
        "status": (cast(Any, Literal)[statuses] if statuses else str, ...),
        "bucketId": (str | None, None),
        "step": (str | None, None),
        "errorReason": (str | None, None),
    }
    model: type[BaseModel] = create_model("ProverWebhookBody", **fields)
    return model
