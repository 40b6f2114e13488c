"""Which blocks a job covers, for the API, the dashboard and alerts (a job's internal id is a batch index,
not a block number, for every type but the legacy per-block ones)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from madara_orchestrator.domain.batches import AggregatorBatch, SnosBatch
from madara_orchestrator.domain.jobs import Job, JobType, SnosMetadata
from madara_orchestrator.interfaces import Database

BlockRange = tuple[int, int]
BY_SNOS_BATCH = frozenset({JobType.PROOF_CREATION, JobType.PROOF_REGISTRATION, JobType.DATA_SUBMISSION})
BY_AGGREGATOR_BATCH = frozenset({JobType.AGGREGATOR, JobType.STATE_TRANSITION})
BATCH_QUERY_CHUNK = 500
"""Batch indexes asked for in one query (a long job list becomes a few queries)."""


async def job_ranges(db: Database, jobs: Iterable[Job], *, settles_snos: bool = False) -> dict[uuid.UUID, BlockRange]:
    """The blocks each job covers: a SnosRun's own range, proofs and DA that of their SNOS batch, Aggregator
    and StateTransition that of their aggregator batch (``settles_snos``, an L3: StateTransition that of its
    SNOS batch). Two batch queries (per 500 batches) whatever the number of jobs."""
    jobs = list(jobs)
    by_snos = BY_SNOS_BATCH | {JobType.STATE_TRANSITION} if settles_snos else BY_SNOS_BATCH
    by_aggregator = BY_AGGREGATOR_BATCH - by_snos
    snos_wanted = sorted({j.internal_id for j in jobs if j.job_type in by_snos})
    aggregator_wanted = sorted({j.internal_id for j in jobs if j.job_type in by_aggregator})
    snos = {b.index: (b.start_block, b.end_block) for b in await _snos_batches(db, snos_wanted)}
    aggregators = {b.index: (b.start_block, b.end_block) for b in await aggregator_batches(db, aggregator_wanted)}
    ranges: dict[uuid.UUID, BlockRange] = {}
    for job in jobs:
        specific = job.metadata.specific
        if isinstance(specific, SnosMetadata):
            ranges[job.id] = (specific.start_block, specific.end_block)
        elif job.job_type in by_snos and job.internal_id in snos:
            ranges[job.id] = snos[job.internal_id]
        elif job.job_type in by_aggregator and job.internal_id in aggregators:
            ranges[job.id] = aggregators[job.internal_id]
    return ranges


def describe_range(block_range: BlockRange | None) -> str:
    """``Blocks: 0-7``, ``Block: 7``, or ``Blocks: unknown``."""
    if block_range is None:
        return "Blocks: unknown"
    start, end = block_range
    return f"Block: {start}" if start == end else f"Blocks: {start}-{end}"


def _chunks(values: Sequence[int]) -> list[Sequence[int]]:
    return [values[i : i + BATCH_QUERY_CHUNK] for i in range(0, len(values), BATCH_QUERY_CHUNK)]


async def _snos_batches(db: Database, indexes: Sequence[int]) -> list[SnosBatch]:
    return [b for chunk in _chunks(indexes) for b in await db.list_snos_batches(indexes=chunk)]


async def aggregator_batches(db: Database, indexes: Sequence[int]) -> list[AggregatorBatch]:
    return [b for chunk in _chunks(indexes) for b in await db.list_aggregator_batches(indexes=chunk)]
