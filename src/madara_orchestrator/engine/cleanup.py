"""StorageCleanup (SPEC §4.12): mark the artifacts of settled batches for expiry.

For each Completed StateTransition job not yet done, the keys of its aggregator batch (the aggregator's
artifacts, its blob files, its squashed state update) and of its SNOS batches are marked
``expire-after-settlement=true``; the store's expiry rule deletes them later (S3: the lifecycle rule
that ``setup`` creates; files: the same rule applied by the store). Then the job records
``storage_artifacts_tagged_at``. It runs under the ``StorageCleanupWorker`` lease, so one instance at a
time does it; a failure leaves the job for the next run. Unlike the original, which re-reads up to 200
jobs from the start every run, a cursor skips the jobs already done since this process started.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence

from madara_orchestrator.domain.artifacts import (
    SETTLED_SNOS_BATCH_FILES,
    SNOS_RUN_FILES,
    aggregator_artifact_keys,
    snos_key,
)
from madara_orchestrator.domain.chain import MAX_BLOBS_PER_TXN
from madara_orchestrator.domain.errors import StaleVersion
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, StateUpdateMetadata
from madara_orchestrator.engine.lease import LeaseTiming, named_lease
from madara_orchestrator.interfaces import Clock, Database, ExpiringStore, LockService

log = logging.getLogger(__name__)

CLEANUP_LOCK = "StorageCleanupWorker"
JOBS_PER_RUN = 200
MAX_BLOB_FILES = MAX_BLOBS_PER_TXN + 1
"""Blob files ``0..6`` are candidates (SPEC §4.12: six blobs at most, numbered from 1; 0 is harmless)."""


@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class StorageCleanup:
    """``settles_snos_batches``: a StateTransition settles one SNOS batch (L3), not an aggregator batch."""

    db: Database
    store: ExpiringStore
    locks: LockService
    owner: str
    clock: Clock
    lease_s: dataclasses.InitVar[float] = 60.0
    settles_snos_batches: bool = False
    timing: LeaseTiming = dataclasses.field(init=False)
    _cursor: int = dataclasses.field(default=0, init=False)
    """Internal ids below it are done (or not Completed yet when they were looked at: see ``run``)."""
    tagged_objects: int = dataclasses.field(default=0, init=False)
    jobs_done: int = dataclasses.field(default=0, init=False)

    def __post_init__(self, lease_s: float) -> None:
        self.timing = LeaseTiming(duration_s=lease_s)

    async def run(self) -> bool:
        """One run; True when a job's artifacts were marked."""
        async with named_lease(self.locks, CLEANUP_LOCK, self.owner, timing=self.timing, clock=self.clock) as held:
            if not held:
                return False
            jobs = await self.db.list_jobs(
                statuses=[JobStatus.COMPLETED],
                job_types=[JobType.STATE_TRANSITION],
                min_internal_id=self._cursor,
                limit=JOBS_PER_RUN,
            )
            progressed = False
            contiguous = True
            for job in jobs:
                meta = job.metadata.specific
                if not isinstance(meta, StateUpdateMetadata):
                    continue
                if meta.storage_artifacts_tagged_at is None:
                    done = await self._clean(job, meta)
                    progressed |= done
                    contiguous &= done
                if contiguous:
                    self._cursor = job.internal_id + 1
            return progressed

    async def _clean(self, job: Job, meta: StateUpdateMetadata) -> bool:
        try:
            keys = await self._keys(job, meta)
            tagged = await self.store.tag_for_expiry(keys)
        except Exception as exc:
            log.warning(
                "storage cleanup: artifacts of %s not marked yet (%s); next run tries again", job.describe(), exc
            )
            return False
        stamp = datetime.datetime.fromtimestamp(self.clock.now(), tz=datetime.UTC).isoformat()
        try:
            # A Completed job's updated_at stays the time it completed: reports and the API read it as such.
            await self.db.update_job(
                job.with_specific(dataclasses.replace(meta, storage_artifacts_tagged_at=stamp)), now=job.updated_at
            )
        except StaleVersion:
            return False
        self.tagged_objects += tagged
        self.jobs_done += 1
        log.info("storage cleanup: %d artifact(s) of %s marked to expire", tagged, job.describe())
        return True

    async def _keys(self, job: Job, meta: StateUpdateMetadata) -> Sequence[str]:
        index = job.internal_id
        if meta.context.type != "Batch" or self.settles_snos_batches:
            # L3: the original never collects these for Batch contexts (SPEC §4.12 quirk); this does.
            return [snos_key(index, file) for file in SETTLED_SNOS_BATCH_FILES]
        keys = aggregator_artifact_keys(index, max_blob_files=MAX_BLOB_FILES)
        for batch in await self.db.list_snos_batches(aggregator_index=index):
            keys += [snos_key(batch.index, file) for file in SNOS_RUN_FILES]
        return keys
