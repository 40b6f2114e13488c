"""The cost ledger read from the stores (domain/cost.py has its arithmetic): for the API, the dashboard and
``orchestrator cost``. Nothing is written.

Per batch it reads the batch row (blocks, felts, when it was opened), its StateTransition job (settled or
not, when the transaction was final, the attempts and the mined one's fee and split) and, when the object
store tells sizes (``ObjectSizes``), the bytes of the batch's artifacts: an aggregator batch's own files
(squashed state update, blobs, aggregator outputs) and those of its SNOS batches (PIE, outputs, proofs). The
sizes are of what is stored now: artifacts the storage expiry removed no longer count. The sizes of a settled
batch's files are kept in memory once read (they no longer change), so the dashboard's polling does not
ask the store again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

from madara_orchestrator.domain.artifacts import SnosFile, aggregator_artifact_keys, snos_key
from madara_orchestrator.domain.batches import AggregatorBatch, SnosBatch
from madara_orchestrator.domain.chain import blobs_for
from madara_orchestrator.domain.cost import BatchCost, batch_cost, summarize
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, StateUpdateMetadata
from madara_orchestrator.engine.telemetry import ObjectStored, Telemetry
from madara_orchestrator.interfaces import Database, ObjectSizes, ObjectStore

MAX_LEDGER_BATCHES = 500
"""The most batches one ledger read covers (the latest ones)."""
SIZE_CACHE_LIMIT = 50_000
"""Object sizes kept in memory at most (then the cache starts again)."""


@dataclass(frozen=True, slots=True)
class Since:
    """Where a ledger starts: at a batch index, or at a time (batches settled then or later, and those not
    settled yet that were opened then or later)."""

    index: int | None = None
    time: float | None = None

    def keeps(self, cost: BatchCost) -> bool:
        if self.index is not None and cost.index < self.index:
            return False
        if self.time is not None:
            at = cost.settled_at if cost.settled_at is not None else cost.first_block_at
            return at is not None and at >= self.time
        return True


@dataclass(eq=False, repr=False)
class CostLedger:
    """Reads the ledger of an instance: ``settles_snos`` for an L3 (a line per SNOS batch, settled with
    calldata: no blobs, no execution/blob split), else a line per aggregator batch."""

    db: Database
    objects: ObjectStore | None
    _: KW_ONLY
    settles_snos: bool = False
    _sizes: dict[str, int] = field(default_factory=dict, init=False)

    async def aggregator_batch(self, batch: AggregatorBatch) -> BatchCost:
        """One aggregator batch's line."""
        return await self._aggregator_line(batch, await self._job(batch.index))

    async def snos_batch(self, batch: SnosBatch) -> BatchCost:
        """One SNOS batch's line on an L3 (felts and blobs do not apply: the settlement is calldata)."""
        return await self._snos_line(batch, await self._job(batch.index))

    async def _job(self, index: int) -> Job | None:
        return await self.db.get_job_by_internal_id(JobType.STATE_TRANSITION, index)

    async def _aggregator_line(self, batch: AggregatorBatch, job: Job | None) -> BatchCost:
        settled = _is_settled(job)
        felts = batch.blob_len
        children = await self.db.list_snos_batches(aggregator_index=batch.index)
        keys = aggregator_artifact_keys(batch.index, max_blob_files=blobs_for(felts) + 1)
        keys += [snos_key(child.index, file) for child in children for file in SnosFile]
        return self._line(batch, job, felts=felts, uses_blobs=True, stored=await self._bytes(keys, settled))

    async def _snos_line(self, batch: SnosBatch, job: Job | None) -> BatchCost:
        keys = [snos_key(batch.index, file) for file in SnosFile]
        stored = await self._bytes(keys, _is_settled(job))
        return self._line(batch, job, felts=None, uses_blobs=False, stored=stored)

    def _line(
        self,
        batch: AggregatorBatch | SnosBatch,
        job: Job | None,
        *,
        felts: int | None,
        uses_blobs: bool,
        stored: int | None,
    ) -> BatchCost:
        meta = job.metadata.specific if job is not None else None
        attempts: Sequence[object] = meta.tx_attempts if isinstance(meta, StateUpdateMetadata) else ()
        settled_at = job.common.process_completed_at if job is not None else None
        return batch_cost(
            index=batch.index,
            start_block=batch.start_block,
            end_block=batch.end_block,
            felts=felts,
            uses_blobs=uses_blobs,
            settled=_is_settled(job),
            tx_attempts=attempts,
            tx_hash=meta.tx_hash if isinstance(meta, StateUpdateMetadata) else None,
            first_block_at=batch.created_at,
            settled_at=float(settled_at) if settled_at is not None else None,
            bytes_stored=stored,
        )

    async def _bytes(self, keys: Sequence[str], settled: bool) -> int | None:
        """The bytes of ``keys`` in storage; None when the store tells no sizes."""
        if not isinstance(self.objects, ObjectSizes):
            return None
        total = 0
        for key in keys:
            size = self._sizes.get(key)
            if size is None:
                size = await self.objects.size(key) or 0
                if settled:
                    if len(self._sizes) >= SIZE_CACHE_LIMIT:
                        self._sizes.clear()
                    self._sizes[key] = size
            total += size
        return total

    async def lines(self, since: Since | None = None, *, limit: int = MAX_LEDGER_BATCHES) -> list[BatchCost]:
        """The latest ``limit`` batches' lines from ``since`` on, oldest first."""
        since = since or Since()
        batches: Sequence[AggregatorBatch | SnosBatch]
        if self.settles_snos:
            batches = await self.db.list_snos_batches(limit=limit, descending=True)
        else:
            batches = await self.db.list_aggregator_batches(limit=limit, descending=True)
        batches = [b for b in batches if since.index is None or b.index >= since.index]
        if not batches:
            return []
        jobs = await self.db.list_jobs(
            job_types=[JobType.STATE_TRANSITION], min_internal_id=min(b.index for b in batches), limit=limit * 2
        )
        by_index = {j.internal_id: j for j in jobs}
        out: list[BatchCost] = []
        for batch in sorted(batches, key=lambda b: b.index):
            job = by_index.get(batch.index)
            if isinstance(batch, AggregatorBatch):
                line = await self._aggregator_line(batch, job)
            else:
                line = await self._snos_line(batch, job)
            if since.keeps(line):
                out.append(line)
        return out


async def ledger_json(ledger: CostLedger, *, since: str | None, limit: int, aggregated: bool) -> dict[str, Any]:
    """The ledger as ``/cost`` answers it: unit, batch kind, sums, lines (oldest first), cumulative series."""
    summary = summarize(await ledger.lines(parse_since(since), limit=limit))
    return {
        "unit": "ETH" if aggregated else "STRK",
        "batch_kind": "aggregator" if aggregated else "snos",
        "totals": summary.to_json(),
        "batches": [line.to_json() for line in summary.lines],
        "series": summary.series,
    }


def _is_settled(job: Job | None) -> bool:
    return job is not None and job.status == JobStatus.COMPLETED


def parse_since(text: str | None) -> Since:
    """``--since`` / ``?since=``: a batch index (digits), or an ISO 8601 time (UTC unless it says)."""
    if text is None or not text.strip():
        return Since()
    text = text.strip()
    if text.isascii() and text.isdigit():
        return Since(index=int(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"since must be a batch index or an ISO 8601 time such as 2025-01-31T12:00:00Z, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise InvalidInput(f"since: {text!r} is not a usable time")
    return Since(time=seconds)


@dataclass(eq=False, repr=False)
class CountedObjects:
    """The object store, telling ``telemetry`` the bytes each write stores (the bytes-stored counter); sizes
    are asked of the store underneath when it tells them."""

    inner: ObjectStore
    telemetry: Telemetry

    async def put(self, key: str, data: bytes) -> None:
        await self.inner.put(key, data)
        self.telemetry.report(ObjectStored(len(data)))

    async def get(self, key: str) -> bytes:
        return await self.inner.get(key)

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def list(self, prefix: str) -> list[str]:
        return await self.inner.list(prefix)

    async def size(self, key: str) -> int | None:
        return await self.inner.size(key) if isinstance(self.inner, ObjectSizes) else None
