"""The DA backlog: what the sequencer produced and is not settled yet, for a sequencer (or its operator) to
throttle on, as OP's batcher makes its sequencer do (``miner_setMaxDASize``). Madara has no such RPC yet,
so the orchestrator exposes the signal (``GET /backlog``, the ``orchestrator_backlog_*`` gauges) and, past
``--backlog-alert-blocks``, alerts once, and once more when it clears.

- ``blocks``: from the settled block (exclusive) to the sequencer's head (inclusive).
- ``felts``: the state-diff felts those blocks put in blobs. Known for each batch not settled yet (its
  ``blob_len``, the squashed and compressed state diff, the open batch's so far); estimated for the blocks
  not batched yet, at the felts per block of the latest batches (squashing makes a longer batch cheaper per
  block, so this errs high).
- ``blobs``: each batch is one settlement with its own blobs, ``ceil(blob_len / 4096)`` of them (at least
  one); the unbatched blocks' estimated felts / 4096, rounded up.

An L3 settles with calldata: its backlog has blocks, no felts nor blobs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import InitVar, asdict, dataclass, field, replace
from typing import Any

from madara_orchestrator.domain.batches import AggregatorBatch, SnosBatch
from madara_orchestrator.domain.chain import blobs_for, blobs_to_hold
from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.engine import telemetry as ev
from madara_orchestrator.engine.telemetry import Telemetry
from madara_orchestrator.engine.threshold import Notice, ThresholdAlert
from madara_orchestrator.interfaces import AlertSink, Database, LockService, SequencerRpc, SettlementClient

log = logging.getLogger("madara_orchestrator.backlog")

RATE_BATCHES = 20
"""How many of the latest batches with a known state diff give the felts per block of unbatched blocks."""
MAX_BATCHES = 5000
"""Batches looked at past the settled block at most (a backlog larger than that is counted as blocks)."""
PAGE = 500
ALERT_LOCK = "backlog-alert"
"""The named lease of the instance that watches the threshold: one alert per deployment, not per instance."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Backlog:
    head: int | None
    settled: int | None
    blocks: int | None
    """Produced and not settled; None when the head or the settled block cannot be read."""
    batched_blocks: int = 0
    unbatched_blocks: int = 0
    batches: int = 0
    """Batches not settled yet (the open one included)."""
    felts: int | None = None
    felts_estimated: int | None = None
    """The part of ``felts`` that is an estimate (the unbatched blocks')."""
    felts_per_block: float | None = None
    blobs: int | None = None
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Every field, in the order declared (``GET /backlog``)."""
        return asdict(self)


async def _unsettled(
    db: Database, first_block: int, *, aggregator: bool
) -> tuple[list[AggregatorBatch] | list[SnosBatch], int | None]:
    """The batches from the one holding ``first_block`` to the latest, and the last batched block."""
    kind = _AGGREGATOR if aggregator else _SNOS
    latest = await kind.latest(db)
    first = await kind.for_block(db, first_block)
    if latest is None:
        return [], None
    if first is None:
        return [], latest.end_block
    found: list[Any] = []
    for start in range(first.index, min(latest.index, first.index + MAX_BATCHES - 1) + 1, PAGE):
        stop = min(latest.index, start + PAGE - 1)
        found += await kind.by_indexes(db, list(range(start, stop + 1)))
    return found, latest.end_block


@dataclass(frozen=True, slots=True)
class _BatchReads:
    """How one kind of batch (aggregator or SNOS) is read: its latest, the one holding a block, by indexes."""

    latest: Callable[[Database], Awaitable[AggregatorBatch | SnosBatch | None]]
    for_block: Callable[[Database, int], Awaitable[AggregatorBatch | SnosBatch | None]]
    by_indexes: Callable[[Database, list[int]], Awaitable[Sequence[AggregatorBatch | SnosBatch]]]


_AGGREGATOR = _BatchReads(
    latest=lambda db: db.latest_aggregator_batch(),
    for_block=lambda db, block: db.aggregator_batch_for_block(block),
    by_indexes=lambda db, indexes: db.list_aggregator_batches(indexes=indexes),
)
_SNOS = _BatchReads(
    latest=lambda db: db.latest_snos_batch(),
    for_block=lambda db, block: db.snos_batch_for_block(block),
    by_indexes=lambda db, indexes: db.list_snos_batches(indexes=indexes),
)


async def felts_per_block(db: Database) -> float | None:
    """The state-diff felts per block of the latest batches that have one (None before the first)."""
    recent = [b for b in await db.list_aggregator_batches(limit=RATE_BATCHES, descending=True) if b.blob_len > 0]
    blocks = sum(b.num_blocks for b in recent)
    return sum(b.blob_len for b in recent) / blocks if blocks else None


async def measure(db: Database, head: int | None, settled: int | None, *, aggregator: bool) -> Backlog:
    """The backlog between ``settled`` (None: nothing settled yet) and ``head``, from the stored batches."""
    if head is None:
        return Backlog(head=None, settled=settled, blocks=None)
    first = 0 if settled is None else settled + 1
    blocks = max(0, head - first + 1)
    found, batched_through = await _unsettled(db, first, aggregator=aggregator)
    batches: list[AggregatorBatch | SnosBatch] = [b for b in found if b.end_block >= first]
    batched = sum(min(b.end_block, head) - max(b.start_block, first) + 1 for b in batches if b.start_block <= head)
    batched = min(batched, blocks)
    last_batched = max(first - 1, batched_through if batched_through is not None else first - 1)
    unbatched = max(0, head - last_batched)
    base = Backlog(
        head=head,
        settled=settled,
        blocks=blocks,
        batched_blocks=batched,
        unbatched_blocks=unbatched,
        batches=len(batches),
    )
    if not aggregator:
        return base
    known = sum(b.blob_len for b in batches if isinstance(b, AggregatorBatch))
    known_blobs = sum(blobs_for(b.blob_len) for b in batches if isinstance(b, AggregatorBatch))
    rate = await felts_per_block(db)
    estimated = round(rate * unbatched) if rate is not None else 0
    return replace(
        base,
        felts=known + estimated,
        felts_estimated=estimated,
        felts_per_block=None if rate is None else round(rate, 3),
        blobs=known_blobs + blobs_to_hold(estimated),
    )


@dataclass(kw_only=True, eq=False, repr=False)
class BacklogWatch:
    """Measures the backlog (``look``): reports the gauges and, with a threshold, alerts when the backlog
    crosses it and when it falls back under it. Only the instance holding ``ALERT_LOCK`` alerts."""

    db: Database
    locks: InitVar[LockService]
    sequencer: SequencerRpc
    settlement: SettlementClient
    metrics: Telemetry
    alerts: InitVar[AlertSink]
    aggregator: bool
    owner: InitVar[str]
    alert_blocks: int | None = None
    interval_s: float = 30.0
    threshold: ThresholdAlert = field(init=False)

    def __post_init__(self, locks: LockService, alerts: AlertSink, owner: str) -> None:
        self.threshold = ThresholdAlert(
            lock=ALERT_LOCK, locks=locks, alerts=alerts, owner=owner, lease_s=self.interval_s * 3, log=log
        )

    async def measure(self) -> Backlog:
        errors: list[str] = []
        head = settled = None
        try:
            head = await self.sequencer.block_number()
        except Exception as exc:
            errors.append(f"sequencer head unavailable: {cut_urls(str(exc) or type(exc).__name__)}")
        try:
            settled = await self.settlement.last_settled_block()
        except Exception as exc:
            errors.append(f"settled block unavailable: {cut_urls(str(exc) or type(exc).__name__)}")
        if errors:
            return Backlog(head=head, settled=settled, blocks=None, errors=errors)
        backlog = await measure(self.db, head, settled, aggregator=self.aggregator)
        self.metrics.report(ev.DaBacklog(backlog.blocks or 0, backlog.felts, backlog.blobs))
        return backlog

    async def watch_once(self) -> Backlog:
        """One look of the watch loop: measure, and alert on a crossing while this instance holds the watch."""
        backlog = await self.measure()
        if self.alert_blocks is None or backlog.blocks is None:
            return backlog
        blocks, threshold = backlog.blocks, self.alert_blocks

        def raised() -> Notice:
            return Notice(
                "Settlement backlog above threshold",
                f"{blocks} blocks produced and not settled (--backlog-alert-blocks {threshold}): "
                f"{_shape(backlog)}. The sequencer may throttle on GET /backlog; see the README's backlog section.",
                f"backlog of {blocks} blocks is at or above {threshold}",
            )

        def cleared() -> Notice:
            return Notice(
                "Settlement backlog cleared",
                f"{blocks} blocks produced and not settled, under --backlog-alert-blocks {threshold}",
                f"backlog of {blocks} blocks is under {threshold} again",
            )

        await self.threshold.observe(blocks >= threshold, raised, cleared)
        return backlog


def _shape(backlog: Backlog) -> str:
    if backlog.felts is None:
        return f"head {backlog.head}, settled {backlog.settled}"
    return (
        f"head {backlog.head}, settled {backlog.settled}, about {backlog.felts} felts "
        f"({backlog.felts_estimated} of them estimated) in {backlog.blobs} blob(s)"
    )
