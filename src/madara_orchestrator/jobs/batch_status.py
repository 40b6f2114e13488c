"""Move a stored batch to another status: read it, check the move against the transition table, write it
guarded on its version; when another writer got there first, read it again and retry (a few times)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatch,
    SnosBatchStatus,
    next_batch,
)
from madara_orchestrator.domain.errors import NotFound, StaleVersion
from madara_orchestrator.interfaces import BatchStore

MAX_ATTEMPTS = 5
"""Writes lost to other writers before giving up; each retry re-reads the batch and re-checks the move."""

B = TypeVar("B", SnosBatch, AggregatorBatch)


async def move_aggregator_batch(
    db: BatchStore, index: int, target: AggregatorBatchStatus, *, now: float
) -> AggregatorBatch:
    """The stored aggregator batch, moved to ``target`` (unwritten when it is there already).

    ``NotFound`` without such a batch; ``InvalidTransition`` when the table forbids the move from its current
    status; ``StaleVersion`` when other writers won ``MAX_ATTEMPTS`` times in a row."""
    return await _move(
        "aggregator", db.get_aggregator_batch, lambda b: db.update_aggregator_batch(b, now=now), index, target, now
    )


async def move_snos_batch(db: BatchStore, index: int, target: SnosBatchStatus, *, now: float) -> SnosBatch:
    """The stored SNOS batch, moved to ``target``; as ``move_aggregator_batch``."""
    return await _move("SNOS", db.get_snos_batch, lambda b: db.update_snos_batch(b, now=now), index, target, now)


async def _move(
    kind: str,
    read: Callable[[int], Awaitable[B | None]],
    write: Callable[[B], Awaitable[B]],
    index: int,
    target: SnosBatchStatus | AggregatorBatchStatus,
    now: float,
) -> B:
    for _ in range(MAX_ATTEMPTS):
        batch = await read(index)
        if batch is None:
            raise NotFound(f"{kind} batch {index} not found")
        moved = next_batch(batch, target, now=now)
        if moved is None:
            return batch
        try:
            return await write(moved)
        except StaleVersion:
            continue
    raise StaleVersion(
        f"{kind} batch {index} could not be moved to {target}: other writers changed it {MAX_ATTEMPTS} times"
        " in a row; try again"
    )
