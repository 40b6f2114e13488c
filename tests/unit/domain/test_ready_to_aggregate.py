"""An aggregator batch is ready for its Aggregator job once its SNOS batches are closed and tile its range."""

from __future__ import annotations

from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatch,
    SnosBatchStatus,
    ready_to_aggregate,
)

BATCH = AggregatorBatch(
    index=1, start_block=10, end_block=19, status=AggregatorBatchStatus.CLOSED, created_at=1.0, updated_at=1.0
)


def child(index: int, start: int, end: int, status: SnosBatchStatus = SnosBatchStatus.CLOSED) -> SnosBatch:
    return SnosBatch(index=index, start_block=start, end_block=end, status=status, created_at=1.0, updated_at=1.0)


def test_closed_children_tiling_the_range_are_ready() -> None:
    assert ready_to_aggregate(BATCH, [child(1, 10, 14), child(2, 15, 19, SnosBatchStatus.SNOS_JOB_CREATED)])
    assert ready_to_aggregate(BATCH, [child(1, 10, 19, SnosBatchStatus.COMPLETED)])


def test_missing_open_gapped_or_short_children_are_not() -> None:
    assert not ready_to_aggregate(BATCH, [])
    assert not ready_to_aggregate(BATCH, [child(1, 10, 14), child(2, 15, 19, SnosBatchStatus.OPEN)])
    assert not ready_to_aggregate(BATCH, [child(1, 10, 14), child(2, 16, 19)])
    assert not ready_to_aggregate(BATCH, [child(1, 10, 14), child(2, 15, 18)])
    assert not ready_to_aggregate(BATCH, [child(1, 11, 19)])
