"""Batch and block routes (SPEC §15): the SNOS and aggregator batches, and where a block stands."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.errors import InvalidInput, NotFound
from madara_orchestrator.domain.jobs import Job, JobType
from madara_orchestrator.server import models
from madara_orchestrator.server.http import INTEGER, MAX_NUMBER, Endpoint, Param, api, block_number, envelope, number
from madara_orchestrator.server.routes.jobs import BLOCK, job_snapshot, seconds

StatusT = TypeVar("StatusT", SnosBatchStatus, AggregatorBatchStatus)
MAX_LIMIT = 500


def snos_batch_details(batch: SnosBatch) -> dict[str, Any]:
    weights = batch.builtin_weights
    return {
        "index": batch.index,
        "aggregator_batch_index": batch.aggregator_batch_index,
        "start_block": batch.start_block,
        "end_block": batch.end_block,
        "status": batch.status.value,
        "created_at": seconds(batch.created_at),
        "updated_at": seconds(batch.updated_at),
        "metrics": {
            "state_diff_size": weights.state_diff_size,
            "sierra_gas": weights.sierra_gas,
            "proving_gas": weights.proving_gas,
        },
        "builtin_weights": weights.to_json(),
    }


def aggregator_batch_details(batch: AggregatorBatch) -> dict[str, Any]:
    return {
        "index": batch.index,
        "start_block": batch.start_block,
        "end_block": batch.end_block,
        "aggregator_input_size_upper_bound": batch.aggregator_input_size_upper_bound,
        "status": batch.status.value,
        "created_at": seconds(batch.created_at),
        "updated_at": seconds(batch.updated_at),
        "blob_len": batch.blob_len,
        "builtin_weights": batch.builtin_weights.to_json(),
    }


async def batch_for_block(request: Request) -> Response:
    n = block_number(request)
    batch = await api(request).runtime.storage.db.aggregator_batch_for_block(n)
    if batch is None:
        raise NotFound(f"Block not found: no aggregator batch contains block {n}")
    return envelope(data={"batch_number": batch.index})


async def settlement_status(request: Request) -> Response:
    n = block_number(request)
    db = api(request).runtime.storage.db
    snos = await db.snos_batch_for_block(n)
    aggregator = await db.aggregator_batch_for_block(n)
    if snos is None and aggregator is None:
        raise NotFound(f"Block not found: {n} is not in any batch yet")
    block_jobs = await db.jobs_for_block(n)
    proof_jobs: list[Job] = []
    if aggregator is not None:
        for child in await db.list_snos_batches(aggregator_index=aggregator.index):
            job = await db.get_job_by_internal_id(JobType.PROOF_CREATION, child.index)
            if job is not None:
                proof_jobs.append(job)
    return envelope(
        data={
            "block_number": n,
            "snos_batch": snos_batch_details(snos) if snos else None,
            "aggregator_batch": aggregator_batch_details(aggregator) if aggregator else None,
            "block_jobs": [job_snapshot(j) for j in block_jobs],
            "aggregator_proof_jobs": [job_snapshot(j) for j in proof_jobs],
        }
    )


def batch_query(request: Request, enum_cls: type[StatusT], kind: str) -> dict[str, Any]:
    """The batch listing's query (``index``, ``status``, ``limit``, ``sort``) as the store's arguments."""
    params = request.query_params
    indexes: list[int] = []
    if params.get("index"):
        index = number(params["index"])
        if index is None:
            raise InvalidInput(
                f"Invalid query: index must be an integer from 0 to {MAX_NUMBER}, got {params['index']!r}"
            )
        indexes = [index]
    raw_limit = params.get("limit", "50")
    try:
        limit = int(raw_limit) if INTEGER.match(raw_limit) else 0
    except ValueError:  # more digits than Python converts
        limit = 0
    if limit <= 0:
        raise InvalidInput("limit must be a positive integer")
    if limit > MAX_LIMIT:
        raise InvalidInput(f"limit must be less than or equal to {MAX_LIMIT}")
    sort = params.get("sort", "asc").lower()
    if sort not in ("asc", "desc"):
        raise InvalidInput(f"Invalid query: sort must be asc or desc, got {sort!r}")
    statuses = status_filter(enum_cls, params.get("status") or None, kind)
    return {"indexes": indexes, "statuses": statuses, "limit": limit, "descending": sort == "desc"}


def status_filter(enum_cls: type[StatusT], status: str | None, kind: str) -> list[StatusT]:
    """``closed`` means every status but Open; otherwise one status, case-insensitive."""
    if not status:
        return []
    if status.lower() == "closed":
        return [s for s in enum_cls if s.value != "Open"]
    match = [s for s in enum_cls if s.value.lower() == status.lower()]
    if not match:
        raise InvalidInput(f"Invalid query: unsupported {kind} batch status '{status}'")
    return match


async def snos_batches(request: Request) -> Response:
    batches = await api(request).runtime.storage.db.list_snos_batches(**batch_query(request, SnosBatchStatus, "snos"))
    data = {"batches": [snos_batch_details(b) for b in batches]}
    return envelope(data=data, message="Successfully fetched SNOS batches")


async def aggregator_batches(request: Request) -> Response:
    query = batch_query(request, AggregatorBatchStatus, "aggregator")
    batches = await api(request).runtime.storage.db.list_aggregator_batches(**query)
    data = {"batches": [aggregator_batch_details(b) for b in batches]}
    return envelope(data=data, message="Successfully fetched aggregator batches")


def batch_params(status_names: Iterable[str]) -> tuple[Param, ...]:
    statuses = cast(Any, Literal)[(*status_names, "closed")]
    return (
        Param("index", "query", models.BlockNumber, description="Only the batch with this index"),
        Param(
            "status",
            "query",
            statuses,
            description="A batch status (case-insensitive), or `closed` for every status but Open",
        ),
        Param("limit", "query", Annotated[int, Field(ge=1, le=MAX_LIMIT)], default=50),
        Param("sort", "query", Literal["asc", "desc"], description="By index (case-insensitive)", default="asc"),
    )


BLOCK_ROUTES = (
    ("/blocks/batch-for-block/{n}", batch_for_block, "batchForBlock", "The aggregator batch that contains a block"),
    ("/blocks/settlement-status/{n}", settlement_status, "settlementStatus", "A block's batches and jobs"),
)
BLOCK_DATA = (models.BatchNumber, models.BlockSettlementStatus)
BATCH_ROUTES = (
    ("/batches/snos", snos_batches, "snosBatches", "SNOS batches", SnosBatchStatus),
    ("/batches/aggregator", aggregator_batches, "aggregatorBatches", "Aggregator batches", AggregatorBatchStatus),
)
BATCH_DATA = (models.SnosBatchList, models.AggregatorBatchList)


def endpoints() -> list[Endpoint]:
    found = [
        Endpoint(path, handler, op, text, "blocks", data=data, message=False, errors=(400, 404, 503), params=(BLOCK,))
        for (path, handler, op, text), data in zip(BLOCK_ROUTES, BLOCK_DATA, strict=True)
    ]
    for (path, handler, op, text, statuses), data in zip(BATCH_ROUTES, BATCH_DATA, strict=True):
        found.append(
            Endpoint(path, handler, op, text, "batches", data=data, errors=(400, 503), params=batch_params(statuses))
        )
    return found
