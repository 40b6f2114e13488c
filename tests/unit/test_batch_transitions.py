"""Batch status transitions: every edge of the tables works, every other move is refused, and a
same-status write (an Open batch growing) is always allowed."""

from __future__ import annotations

import itertools

import pytest

from madara_orchestrator.domain.batches import (
    AGGREGATOR_BATCH_TRANSITIONS,
    SNOS_BATCH_TRANSITIONS,
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatch,
    SnosBatchStatus,
    next_batch,
    transition_aggregator_batch,
    transition_snos_batch,
)
from madara_orchestrator.domain.errors import InvalidTransition

S = SnosBatchStatus
A = AggregatorBatchStatus

SNOS_EDGES = sorted((src, dst) for src, targets in SNOS_BATCH_TRANSITIONS.items() for dst in targets)
AGGREGATOR_EDGES = sorted((src, dst) for src, targets in AGGREGATOR_BATCH_TRANSITIONS.items() for dst in targets)


def snos(status: SnosBatchStatus) -> SnosBatch:
    return SnosBatch(index=4, start_block=10, end_block=12, status=status, created_at=1.0, updated_at=1.0, version=3)


def aggregator(status: AggregatorBatchStatus) -> AggregatorBatch:
    return AggregatorBatch(
        index=2, start_block=10, end_block=20, status=status, created_at=1.0, updated_at=1.0, version=3
    )


def test_every_status_has_a_row_in_its_table() -> None:
    assert set(SNOS_BATCH_TRANSITIONS) == set(SnosBatchStatus)
    assert set(AGGREGATOR_BATCH_TRANSITIONS) == set(AggregatorBatchStatus)


def test_the_tables_hold_the_lifecycle_of_spec_5_1_and_5_2() -> None:
    for edge in [(S.OPEN, S.CLOSED), (S.CLOSED, S.SNOS_JOB_CREATED), (S.CLOSED, S.COMPLETED)]:
        assert edge in SNOS_EDGES
    for aggregator_edge in [
        (A.OPEN, A.CLOSED),
        (A.CLOSED, A.PENDING_AGGREGATOR_RUN),
        (A.PENDING_AGGREGATOR_RUN, A.PENDING_AGGREGATOR_VERIFICATION),
        (A.PENDING_AGGREGATOR_VERIFICATION, A.READY_FOR_STATE_UPDATE),
        (A.PENDING_AGGREGATOR_VERIFICATION, A.VERIFICATION_FAILED),
        (A.READY_FOR_STATE_UPDATE, A.COMPLETED),
    ]:
        assert aggregator_edge in AGGREGATOR_EDGES


@pytest.mark.parametrize(("source", "target"), SNOS_EDGES)
def test_every_allowed_snos_batch_move_works(source: SnosBatchStatus, target: SnosBatchStatus) -> None:
    moved = transition_snos_batch(snos(source), target, now=50.0)
    assert moved.status == target and moved.updated_at == 50.0
    assert moved.version == 3, "the store bumps the version, not the transition"


@pytest.mark.parametrize(("source", "target"), AGGREGATOR_EDGES)
def test_every_allowed_aggregator_batch_move_works(
    source: AggregatorBatchStatus, target: AggregatorBatchStatus
) -> None:
    moved = transition_aggregator_batch(aggregator(source), target, now=50.0)
    assert moved.status == target and moved.updated_at == 50.0 and moved.version == 3


def test_every_other_move_is_refused() -> None:
    for source, target in itertools.permutations(SnosBatchStatus, 2):
        if (source, target) not in SNOS_EDGES:
            with pytest.raises(InvalidTransition):
                transition_snos_batch(snos(source), target, now=50.0)
    for a_source, a_target in itertools.permutations(AggregatorBatchStatus, 2):
        if (a_source, a_target) not in AGGREGATOR_EDGES:
            with pytest.raises(InvalidTransition):
                transition_aggregator_batch(aggregator(a_source), a_target, now=50.0)


@pytest.mark.parametrize(
    ("source", "target"),
    [(S.CLOSED, S.OPEN), (S.OPEN, S.COMPLETED), (S.COMPLETED, S.OPEN), (S.SNOS_JOB_CREATED, S.CLOSED)],
)
def test_forbidden_snos_batch_moves_name_the_batch(source: SnosBatchStatus, target: SnosBatchStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"SNOS batch 4 cannot move from {source} to {target}"):
        transition_snos_batch(snos(source), target, now=50.0)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (A.CLOSED, A.OPEN),
        (A.OPEN, A.PENDING_AGGREGATOR_RUN),
        (A.CLOSED, A.READY_FOR_STATE_UPDATE),
        (A.COMPLETED, A.READY_FOR_STATE_UPDATE),
        (A.PENDING_AGGREGATOR_RUN, A.COMPLETED),
    ],
)
def test_forbidden_aggregator_batch_moves_name_the_batch(
    source: AggregatorBatchStatus, target: AggregatorBatchStatus
) -> None:
    with pytest.raises(InvalidTransition, match=f"aggregator batch 2 cannot move from {source} to {target}"):
        transition_aggregator_batch(aggregator(source), target, now=50.0)


@pytest.mark.parametrize("status", list(SnosBatchStatus))
def test_same_status_snos_batch_write_is_allowed(status: SnosBatchStatus) -> None:
    grown = transition_snos_batch(snos(status), status, now=60.0, end_block=15)
    assert grown.status == status and grown.end_block == 15 and grown.updated_at == 60.0


@pytest.mark.parametrize("status", list(AggregatorBatchStatus))
def test_same_status_aggregator_batch_write_is_allowed(status: AggregatorBatchStatus) -> None:
    grown = transition_aggregator_batch(aggregator(status), status, now=60.0, blob_len=8)
    assert grown.status == status and grown.blob_len == 8 and grown.updated_at == 60.0


def test_a_transition_carries_other_changes_and_leaves_the_input_alone() -> None:
    batch = aggregator(A.CLOSED)
    moved = transition_aggregator_batch(batch, A.PENDING_AGGREGATOR_RUN, now=70.0, bucket_id="b-1")
    assert moved.bucket_id == "b-1" and moved.id == batch.id
    assert batch.status == A.CLOSED and batch.bucket_id is None


def test_next_batch_is_the_move_or_none_when_already_there() -> None:
    assert next_batch(snos(S.CLOSED), S.CLOSED, now=9.0) is None
    assert next_batch(aggregator(A.CLOSED), A.CLOSED, now=9.0) is None
    moved = next_batch(aggregator(A.CLOSED), A.PENDING_AGGREGATOR_RUN, now=9.0)
    assert moved is not None and moved.status == A.PENDING_AGGREGATOR_RUN and moved.updated_at == 9.0
    with pytest.raises(InvalidTransition, match="SNOS batch 4 cannot move from Completed to Open"):
        next_batch(snos(S.COMPLETED), S.OPEN, now=9.0)
