"""Move a stored batch to another status: read it, check the move against the transition table, write it
guarded on its version; when another writer got there first, read it again and retry (a few times)."""

from __future__ import annotations

from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatch,
    SnosBatchStatus,
    transition_aggregator_batch,
    transition_snos_batch,
)
from madara_orchestrator.domain.errors import NotFound, StaleVersion
from madara_orchestrator.interfaces import BatchStore

MAX_ATTEMPTS = 5
"""Writes lost to other writers before giving up; each retry re-reads the batch and re-checks the move."""


async def move_aggregator_batch(
    db: BatchStore, index: int, target: AggregatorBatchStatus, *, now: float
) -> AggregatorBatch:
    """The stored aggregator batch, moved to ``target`` (unwritten when it is there already).

    ``NotFound`` without such a batch; ``InvalidTransition`` when the table forbids the move from its current
    status; ``StaleVersion`` when other writers won ``MAX_ATTEMPTS`` times in a row."""
    for _ in range(MAX_ATTEMPTS):
        batch = await db.get_aggregator_batch(index)
        if batch is None:
            raise NotFound(f"aggregator batch {index} not found")
        if batch.status == target:
            return batch
        try:
            return await db.update_aggregator_batch(transition_aggregator_batch(batch, target, now=now), now=now)
        except StaleVersion:
            continue
    raise StaleVersion(_gave_up("aggregator", index, target))


async def move_snos_batch(db: BatchStore, index: int, target: SnosBatchStatus, *, now: float) -> SnosBatch:
    """The stored SNOS batch, moved to ``target``; as ``move_aggregator_batch``."""
    for _ in range(MAX_ATTEMPTS):
        batch = await db.get_snos_batch(index)
        if batch is None:
            raise NotFound(f"SNOS batch {index} not found")
        if batch.status == target:
            return batch
        try:
            return await db.update_snos_batch(transition_snos_batch(batch, target, now=now), now=now)
        except StaleVersion:
            continue
    raise StaleVersion(_gave_up("SNOS", index, target))


def _gave_up(kind: str, index: int, target: str) -> str:
    return (
        f"{kind} batch {index} could not be moved to {target}: other writers changed it {MAX_ATTEMPTS} times"
        " in a row; try again"
    )
