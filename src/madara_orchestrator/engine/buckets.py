"""Prover buckets orphaned by a crash (Atlantic), found and closed.

Batching opens a bucket (``CreateBucket``) for each new aggregator batch, and stores the batch, with its
``bucket_id``, later in the run. A process killed in between leaves a bucket at the prover that no batch
names: the next run opens another one for the same batch index, and the first stays OPEN at Atlantic for
ever (Atlantic lists no buckets, so nothing finds it afterwards). The original has the same hole.

So, as soon as the prover gives a bucket id, batching marks it in the object store
(``prover_buckets/<batch index>/<bucket id>``, ``mark``), and drops the mark once the batch naming it is
stored (``settle``). A mark left behind whose batch index is stored with another bucket is an orphan: no
batch can ever name it (a batch's bucket never changes), so ``OrphanedBuckets.sweep`` closes it
(``RunAggregation``, which closes a bucket still OPEN and leaves any other as it is; Atlantic fails an empty
bucket's aggregation, which is the end of it) and drops the mark. A mark whose batch index is not stored yet
is left: a run may still be about to store it. Buckets of stored batches are closed by their Aggregator
job, durable like any job, so a crash there orphans nothing.

Not covered: a kill between the prover's answer to ``CreateBucket`` and the mark's write (one object
write's time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from madara_orchestrator.domain.errors import OrchestratorError, classify
from madara_orchestrator.domain.proving import RunAggregation
from madara_orchestrator.interfaces import BatchStore, ObjectStore, ProverClient

log = logging.getLogger(__name__)

PREFIX = "prover_buckets/"


def mark_key(batch_index: int, bucket_id: str) -> str:
    return f"{PREFIX}{batch_index}/{bucket_id}"


def _parse(key: str) -> tuple[int, str] | None:
    index, _, bucket_id = key.removeprefix(PREFIX).partition("/")
    if not key.startswith(PREFIX) or not index.isdigit() or not bucket_id or "/" in bucket_id:
        return None
    return int(index), bucket_id


async def mark(objects: ObjectStore, batch_index: int, bucket_id: str) -> None:
    """Before anything else once the prover gave ``bucket_id`` for batch ``batch_index``."""
    await objects.put(mark_key(batch_index, bucket_id), b"")


async def settle(objects: ObjectStore, batch_index: int, bucket_id: str) -> None:
    """Once the batch naming ``bucket_id`` is stored: its Aggregator job will close the bucket."""
    await objects.delete(mark_key(batch_index, bucket_id))


@dataclass(kw_only=True, eq=False, repr=False)
class OrphanedBuckets:
    db: BatchStore
    objects: ObjectStore
    prover: ProverClient
    closed: list[str] = field(default_factory=list, init=False)
    """The orphans this process closed, oldest first."""

    async def sweep(self) -> list[str]:
        """Close the orphans marked; returns their ids. A prover that cannot be reached leaves the rest to the
        next sweep; a bucket the prover refuses to close is logged for the operator and forgotten."""
        closed: list[str] = []
        for key in sorted(await self.objects.list(PREFIX)):
            parsed = _parse(key)
            if parsed is None:
                continue
            index, bucket_id = parsed
            batch = await self.db.get_aggregator_batch(index)
            if batch is None:
                continue  # not stored yet: its run may still store it
            if batch.bucket_id != bucket_id:
                try:
                    await self.prover.submit_task(RunAggregation(bucket_id=bucket_id))
                except OrchestratorError as exc:
                    if classify(exc).temporary:
                        raise  # the prover down, or not yet: the next sweep
                    log.warning(
                        "prover bucket %s, orphaned by a crash while opening aggregator batch %d, could not be "
                        "closed (%s); close it at the prover if it is still open",
                        bucket_id,
                        index,
                        exc,
                    )
                else:
                    log.warning(
                        "closed prover bucket %s, orphaned by a crash while opening aggregator batch %d "
                        "(the batch has bucket %s)",
                        bucket_id,
                        index,
                        batch.bucket_id,
                    )
                    closed.append(bucket_id)
            await self.objects.delete(key)
        self.closed += closed
        return closed
