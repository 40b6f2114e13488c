"""Triggers (SPEC §4): create batches and jobs when their inputs are ready.

Two improvements over the original:
- hand-off is event driven: a completed job kicks its successor's trigger at once; the periodic tick
  is only a backstop;
- a failed job blocks only what depends on it (settlement stays in block order), unless
  ``halt_on_failure`` asks for the original's global halt.

Each trigger is idempotent (job creation is keyed on (type, internal id); batching takes a lock), so
several instances may run them at once. Within one process a trigger never runs twice at once: a kick
during a run marks it dirty and it runs again right after.

A trigger that fails backs off (``domain/health.py``): its next run waits 2 s, doubled per failure in a
row up to 60 s, and kicks in the meantime are absorbed by that run. Each failure logs one line (what
failed, how many times since when, the next try); a traceback only for a bug (an exception that is not one
of our ``OrchestratorError``s), the first time it is seen. A success after failures logs one line.
``health()`` and ``failing()`` tell /health and the dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from madara_orchestrator.domain.artifacts import SnosFile, snos_key
from madara_orchestrator.domain.batches import AggregatorBatchStatus, SnosBatchStatus, ready_to_aggregate
from madara_orchestrator.domain.batching import BatchingStopped
from madara_orchestrator.domain.errors import InvalidTransition, OrchestratorError, classify
from madara_orchestrator.domain.health import TriggerHealth, TriggerPolicy, utc_time
from madara_orchestrator.domain.jobs import (
    AggregatorMetadata,
    DaMetadata,
    Job,
    JobStatus,
    JobType,
    ProvingMetadata,
    SettlementContext,
    SnosMetadata,
    StateUpdateMetadata,
)
from madara_orchestrator.domain.pause import Stage
from madara_orchestrator.domain.queues import Layer
from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.engine import telemetry as ev
from madara_orchestrator.engine.batching import Batcher
from madara_orchestrator.engine.cleanup import StorageCleanup
from madara_orchestrator.engine.plan import L2_PLAN, PLANS, LayerPlan, TriggerName
from madara_orchestrator.engine.posting import SettlementGate
from madara_orchestrator.engine.service import JobService
from madara_orchestrator.engine.telemetry import Telemetry
from madara_orchestrator.interfaces import Clock, Database, PauseStore, SequencerRpc
from madara_orchestrator.jobs.aggregator import aggregator_metadata
from madara_orchestrator.jobs.batch_status import move_aggregator_batch, move_snos_batch
from madara_orchestrator.jobs.snos import snos_metadata

log = logging.getLogger("madara_orchestrator.triggers")

MAX_INDEX = 2**63 - 1
UNFINISHED_STATUSES = tuple(s for s in JobStatus if s != JobStatus.COMPLETED)
"""A StateTransition in any of these counts against ``max_settlements_in_flight`` (a failed one too: the
batches after it wait for it)."""


PAUSED_BY: dict[TriggerName, Stage] = {
    TriggerName.AGGREGATOR_BATCHING: Stage.BATCHING,
    TriggerName.SNOS_BATCHING: Stage.BATCHING,
    TriggerName.PROVING: Stage.PROVING,
    TriggerName.AGGREGATOR: Stage.PROVING,
    TriggerName.UPDATE_STATE: Stage.SETTLEMENT,
}
"""The triggers a paused stage stops (``domain/pause.py``): batching; the creation of proof jobs (SNOS
proofs and aggregation: what goes to the prover); the creation of StateTransition jobs."""


LAYER_TRIGGERS: dict[Layer, tuple[TriggerName, ...]] = {layer: plan.triggers for layer, plan in PLANS.items()}
"""Each standard plan's triggers (``engine/plan.py``), by layer: what ``setup`` schedules."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerConfig:
    snos_job_buffer_size: int = 50
    aggregator_job_buffer_size: int = 5
    store_audit_artifacts: bool = False
    snos_full_output: bool = False
    halt_on_failure: bool = False
    max_settlements_in_flight: int = 1
    """StateTransition jobs unfinished at once (``--max-settlements-in-flight``; the CLI's default is 4)."""
    health: TriggerPolicy = field(default_factory=TriggerPolicy)
    """When a trigger counts as failing, and how its re-runs back off."""


MAX_SEEN_ERRORS = 100
"""Errors whose traceback was logged already (per process); beyond this many the oldest are forgotten."""


class Triggers:
    def __init__(
        self,
        *,
        config: TriggerConfig,
        plan: LayerPlan = L2_PLAN,
        service: JobService,
        db: Database,
        sequencer: SequencerRpc,
        clock: Clock,
        metrics: Telemetry,
        batcher: Batcher,
        owner: str | None = None,
        cleanup: StorageCleanup | None = None,
        settlement_gate: SettlementGate | None = None,
        pauses: PauseStore | None = None,
    ) -> None:
        """``cleanup``: StorageCleanup, when the object store has an expiry rule (not for a bare files store).
        ``settlement_gate``: holds settlements back for lower L1 fees (``--settlement-deadline-seconds``).
        ``pauses``: the paused stages (``PAUSED_BY``); None: nothing is ever paused."""
        self.pauses = pauses
        self.config = config
        self.plan = plan
        self.batcher = batcher
        self._expiry_handle: asyncio.TimerHandle | None = None
        self.service = service
        self.db = db
        self.sequencer = sequencer
        self.clock = clock
        self.metrics = metrics
        self.owner = owner or f"triggers-{uuid.uuid4().hex[:12]}"
        self._impl: dict[TriggerName, Callable[[], Awaitable[bool]]] = {
            TriggerName.AGGREGATOR_BATCHING: self.batching,
            TriggerName.SNOS_BATCHING: self.batching,
            TriggerName.SNOS: self.snos,
            TriggerName.PROVING: self.proving,
            TriggerName.AGGREGATOR: self.aggregator,
            TriggerName.UPDATE_STATE: self.update_state,
            TriggerName.PROOF_REGISTRATION: self.proof_registration,
            TriggerName.DATA_SUBMISSION: self.data_submission,
        }
        self._cleanup = cleanup
        self.settlement_gate = settlement_gate
        if cleanup is not None:
            self._impl[TriggerName.STORAGE_CLEANUP] = self._storage_cleanup
        # What a trigger that made progress kicks next.
        self._next: dict[TriggerName, tuple[TriggerName, ...]] = {
            TriggerName.AGGREGATOR_BATCHING: plan.after_batching,
            TriggerName.SNOS_BATCHING: plan.after_batching,
        }
        self._running: set[TriggerName] = set()
        self._dirty: set[TriggerName] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._health: dict[TriggerName, TriggerHealth] = {}
        self._retries: dict[TriggerName, asyncio.TimerHandle] = {}
        self._seen_errors: dict[tuple[str, str, str], None] = {}
        service.on_completed(self._job_completed)

    @property
    def enabled(self) -> tuple[TriggerName, ...]:
        return tuple(t for t in self.plan.triggers if t in self._impl)

    # -- running ----------------------------------------------------------------------------------

    def kick(self, name: TriggerName) -> None:
        """Run the trigger soon, in the background; coalesced with a run in progress. While the trigger
        backs off after a failure, the kick is absorbed by the run already scheduled."""
        if name not in self._impl or self._stopped or name in self._retries:
            return
        self._start(name)

    def _start(self, name: TriggerName) -> None:
        if name in self._running:
            self._dirty.add(name)
            return
        self._running.add(name)
        task = asyncio.create_task(self._run_loop(name), name=f"trigger-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_loop(self, name: TriggerName) -> None:
        try:
            while True:
                self._dirty.discard(name)
                await self.run_once(name)
                failed = self._health.get(name)
                if failed is not None and failed.retry_in_s is not None:
                    self._dirty.discard(name)
                    self._schedule_retry(name, failed.retry_in_s)
                    return
                if name not in self._dirty:
                    return
        finally:
            self._running.discard(name)

    def _schedule_retry(self, name: TriggerName, delay_s: float) -> None:
        if self._stopped:
            return
        previous = self._retries.pop(name, None)
        if previous is not None:
            previous.cancel()
        self._retries[name] = asyncio.get_running_loop().call_later(delay_s, self._retry, name)

    def _retry(self, name: TriggerName) -> None:
        self._retries.pop(name, None)
        if not self._stopped:
            self._start(name)

    async def run_once(self, name: TriggerName) -> bool:
        try:
            if self.config.halt_on_failure and name != TriggerName.STORAGE_CLEANUP and await self._halted():
                self.metrics.report(ev.TriggerRun(name, "halted"))
                return False
            if await self._paused(name):
                self.metrics.report(ev.TriggerRun(name, "paused"))
                return False
            progressed = await self._impl[name]()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.metrics.report(ev.TriggerRun(name, "error"))
            self._failed(name, exc)
            return False
        self.metrics.report(ev.TriggerRun(name, "progress" if progressed else "idle"))
        self._succeeded(name)
        if progressed:
            for follower in self._next.get(name, ()):
                self.kick(follower)
        return progressed

    # -- health ------------------------------------------------------------------------------------

    def health(self) -> dict[TriggerName, TriggerHealth]:
        """Each enabled trigger's current run of failures (empty ones for those that succeed)."""
        return {name: self._health.get(name, TriggerHealth()) for name in self.enabled}

    def failing(self) -> dict[TriggerName, TriggerHealth]:
        """The triggers that keep failing (``TriggerPolicy``): what makes /health DEGRADED."""
        now = self.clock.now()
        return {n: h for n, h in self.health().items() if h.is_failing(now, self.config.health)}

    def _failed(self, name: TriggerName, exc: Exception) -> None:
        outage = classify(exc).outage
        cause: BaseException = outage if outage is not None else exc
        text = cut_urls(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)
        health = self._health.get(name, TriggerHealth()).failed(
            text, now=self.clock.now(), outage=outage is not None, policy=self.config.health
        )
        self._health[name] = health
        self.metrics.report(ev.TriggerFailures(name, health.failures))
        # A traceback is for a bug, and once: not for an error we raise on purpose (an outside service down or
        # answering errors, bad data: its message says it), nor for a bug seen before.
        key = (str(name), type(exc).__name__, str(exc))
        traceback = not isinstance(exc, OrchestratorError) and key not in self._seen_errors
        if traceback:
            self._seen_errors[key] = None
            while len(self._seen_errors) > MAX_SEEN_ERRORS:
                del self._seen_errors[next(iter(self._seen_errors))]
        log.log(
            logging.WARNING if outage is not None else logging.ERROR,
            "%s; next try in %g s",
            health.describe(name),
            health.retry_in_s,
            exc_info=exc if traceback else None,
        )

    def _succeeded(self, name: TriggerName) -> None:
        health = self._health.pop(name, None)
        if health is None:
            return
        self.metrics.report(ev.TriggerFailures(name, 0))
        now = self.clock.now()
        since = now if health.failing_since is None else health.failing_since
        log.info(
            "trigger %s recovered after %d failure%s (failing since %s, %.0f s)",
            name,
            health.failures,
            "" if health.failures == 1 else "s",
            utc_time(since),
            max(0.0, now - since),
        )

    async def _storage_cleanup(self) -> bool:
        """StorageCleanup's run, with the original's ``cleanup_*`` figures."""
        cleanup = self._cleanup
        assert cleanup is not None
        jobs, tagged = cleanup.jobs_done, cleanup.tagged_objects
        failed = False
        try:
            return await cleanup.run()
        except Exception:
            failed = True
            raise
        finally:
            self.metrics.report(ev.CleanupRun(cleanup.jobs_done - jobs, cleanup.tagged_objects - tagged, failed))

    async def _paused(self, name: TriggerName) -> bool:
        stage = PAUSED_BY.get(name)
        if stage is None or self.pauses is None:
            return False
        pause = (await self.pauses.pauses()).get(stage)
        if pause is not None:
            log.debug("trigger %s does nothing: %s", name, pause.describe())
        return pause is not None

    async def _halted(self) -> bool:
        failed = await self.db.list_jobs(statuses=[JobStatus.FAILED, JobStatus.VERIFICATION_TIMEOUT], limit=1)
        if failed:
            log.warning("triggers halted: %s is %s (--halt-on-failure)", failed[0].describe(), failed[0].status)
        return bool(failed)

    async def _job_completed(self, job: Job) -> None:
        for name in self.plan.successors.get(job.job_type, ()):
            self.kick(name)

    async def stop(self) -> None:
        """No more runs; cancel those in progress (each is idempotent, the next start redoes it)."""
        self._stopped = True
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _handoff(self, parent: Job | None) -> None:
        if parent is not None:
            self.metrics.report(ev.Handoff(parent.job_type, self.clock.now() - parent.updated_at))

    async def _create(
        self, job_type: JobType, internal_id: int, specific: object, parent: Job | None = None
    ) -> Job | None:
        job = await self.service.create_job(job_type, internal_id, specific)  # type: ignore[arg-type]
        if job is not None:
            self._handoff(parent)
        return job

    # -- batching (engine/batching.py) ------------------------------------------------------------

    async def batching(self) -> bool:
        """On L2 one pass builds aggregator batches and the SNOS batches inside them, so both trigger
        names run it; on L3 it builds SNOS batches. A run stopped before a block (a gate) fails the trigger,
        but what it batched before that goes on at once."""
        try:
            return await self.batcher.run()
        except BatchingStopped as stopped:
            if stopped.progressed:
                for name in self.plan.after_batching:
                    self.kick(name)
            raise
        finally:
            self._schedule_expiry()

    async def close_open_batches(self) -> tuple[int, int]:
        """Close the open batches now (admin, the devnet's tail) and start their jobs; returns
        (aggregator, SNOS) batches closed. ``Conflict`` while a batching run holds the lease."""
        closed = await self.batcher.close_open_batches()
        self._schedule_expiry()
        for name in self.plan.after_batching:
            self.kick(name)
        return closed

    def _schedule_expiry(self) -> None:
        """Run batching again when the open batch reaches its maximum age, even if no block comes."""
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
            self._expiry_handle = None
        deadline = self.batcher.next_expiry
        if deadline is None or self._stopped:
            return
        delay = max(0.0, deadline - self.clock.now()) + 0.05
        name = self.enabled[0] if self.enabled else TriggerName.SNOS_BATCHING
        self._expiry_handle = asyncio.get_running_loop().call_later(delay, self.kick, name)

    # -- job creation ------------------------------------------------------------------------------

    async def _buffer_slots(self, job_type: JobType, buffer: int) -> int:
        latest = await self.db.latest_job(job_type)
        oldest = await self.db.oldest_job(job_type, excluding_statuses=[JobStatus.COMPLETED])
        if latest is None or oldest is None:
            return buffer
        return max(0, buffer - (latest.internal_id - oldest.internal_id + 1))

    async def first_unsettled_snos_batch_index(self) -> int:
        """Lower bound for the Snos and Proving triggers, so they need not scan history (SPEC §4.10)."""
        settled = await self.db.latest_job(JobType.STATE_TRANSITION, statuses=[JobStatus.COMPLETED])
        if settled is None or not isinstance(settled.metadata.specific, StateUpdateMetadata):
            return 0
        to_settle = settled.metadata.specific.context.to_settle
        if not self.plan.aggregator_batches:
            return to_settle + 1
        children = await self.db.list_snos_batches(aggregator_index=to_settle + 1, limit=1)
        return children[0].index if children else MAX_INDEX

    async def snos(self) -> bool:
        slots = await self._buffer_slots(JobType.SNOS_RUN, self.config.snos_job_buffer_size)
        if slots == 0:
            return False
        min_index = await self.first_unsettled_snos_batch_index()
        created = 0
        for batch in await self.db.snos_batches_without_jobs(SnosBatchStatus.CLOSED, min_index=min_index, limit=slots):
            meta = snos_metadata(
                batch.index, batch.start_block, batch.end_block, full_output=self.config.snos_full_output
            )
            if await self._create(JobType.SNOS_RUN, batch.index, meta):
                created += 1
            # The original never records this (SPEC §4.5 quirk); the job exists, so the batch moves on.
            await move_snos_batch(self.db, batch.index, SnosBatchStatus.SNOS_JOB_CREATED, now=self.clock.now())
        return created > 0

    async def _create_successors(
        self, parent_type: JobType, child_type: JobType, metadata: Callable[[Job], Awaitable[object | None]]
    ) -> bool:
        """A ``child_type`` job for every completed ``parent_type`` job without one, from the first unsettled
        SNOS batch on; ``metadata`` gives the child's metadata, or None to leave that parent for now."""
        min_index = await self.first_unsettled_snos_batch_index()
        created = 0
        for parent in await self.db.jobs_without_successor(
            parent_type, JobStatus.COMPLETED, child_type, min_internal_id=min_index
        ):
            meta = await metadata(parent)
            if meta is not None and await self._create(child_type, parent.internal_id, meta, parent):
                created += 1
        return created > 0

    async def proving(self) -> bool:
        return await self._create_successors(JobType.SNOS_RUN, JobType.PROOF_CREATION, self._proving_metadata)

    async def _proving_metadata(self, snos_job: Job) -> ProvingMetadata | None:
        snos = snos_job.metadata.specific
        assert isinstance(snos, SnosMetadata)
        bucket_id: str | None = None
        bucket_job_index: int | None = None
        if self.plan.aggregator_batches:
            # Atlantic: the proof goes into its aggregator batch's bucket, at its place among the children.
            aggregator = await self.db.aggregator_batch_for_block(snos.start_block)
            if aggregator is not None and aggregator.bucket_id:
                first = await self.db.list_snos_batches(aggregator_index=aggregator.index, limit=1)
                if not first:
                    return None
                bucket_id = aggregator.bucket_id
                bucket_job_index = snos.snos_batch_index - first[0].index + 1
        download: str | None = None
        ensure: str | None = None
        if self.plan.registers_snos_proofs:
            if not snos.snos_fact:
                log.error("SnosRun %d completed without a fact; cannot create its proof job", snos_job.internal_id)
                return None
            download = snos_key(snos_job.internal_id, SnosFile.PROOF)
            ensure = snos.snos_fact
        elif self.config.store_audit_artifacts:
            download = snos_key(snos_job.internal_id, SnosFile.PROOF)
        return ProvingMetadata(
            block_number=snos.start_block,
            input_path={"CairoPie": snos.cairo_pie_path or snos_key(snos_job.internal_id, SnosFile.CAIRO_PIE)},
            ensure_on_chain_registration=ensure,
            download_proof=download,
            n_steps=snos.snos_n_steps,
            bucket_id=bucket_id,
            bucket_job_index=bucket_job_index,
        )

    async def proof_registration(self) -> bool:
        """L3: every proven SNOS batch has its proof verified on the L2 (SPEC §4.7)."""
        return await self._create_successors(
            JobType.PROOF_CREATION, JobType.PROOF_REGISTRATION, self._registration_metadata
        )

    async def _registration_metadata(self, proof_job: Job) -> ProvingMetadata | None:
        proving = proof_job.metadata.specific
        if not isinstance(proving, ProvingMetadata):
            log.error("%s has no proving metadata; cannot register its proof", proof_job.describe())
            return None
        index = proof_job.internal_id
        return dataclasses.replace(
            proving,
            input_path={"Proof": snos_key(index, SnosFile.PROOF)},
            download_proof=snos_key(index, SnosFile.BRIDGE_PROOF),
        )

    async def data_submission(self) -> bool:
        """L3: every SNOS batch whose proof is registered has its state diff encoded for DA (SPEC §4.8)."""
        return await self._create_successors(JobType.PROOF_REGISTRATION, JobType.DATA_SUBMISSION, self._da_metadata)

    async def _da_metadata(self, parent: Job) -> DaMetadata:
        proving = parent.metadata.specific
        block = proving.block_number if isinstance(proving, ProvingMetadata) else 0
        return DaMetadata(block_number=block, blob_data_path=snos_key(parent.internal_id, SnosFile.BLOB_DATA))

    async def aggregator(self) -> bool:
        slots = await self._buffer_slots(JobType.AGGREGATOR, self.config.aggregator_job_buffer_size)
        if slots == 0:
            return False
        created = 0
        for batch in await self.db.list_aggregator_batches(statuses=[AggregatorBatchStatus.CLOSED], limit=slots):
            children = await self.db.list_snos_batches(aggregator_index=batch.index)
            if not ready_to_aggregate(batch, children):
                continue
            proofs = [await self.db.get_job_by_internal_id(JobType.PROOF_CREATION, c.index) for c in children]
            if not all(p is not None and p.status == JobStatus.COMPLETED for p in proofs):
                continue
            latest_proof = max((p for p in proofs if p is not None), key=lambda p: p.updated_at)
            meta = aggregator_metadata(
                batch.index, bucket_id=batch.bucket_id, store_proof=self.config.store_audit_artifacts
            )
            if await self._create(JobType.AGGREGATOR, batch.index, meta, latest_proof):
                created += 1
            # The job may already have moved the batch on (a fast consumer); then there is nothing to do.
            with contextlib.suppress(InvalidTransition):
                await move_aggregator_batch(
                    self.db, batch.index, AggregatorBatchStatus.PENDING_AGGREGATOR_RUN, now=self.clock.now()
                )
        return created > 0

    async def update_state(self) -> bool:
        """StateTransition jobs for the next batches, strictly in order, while fewer than
        ``max_settlements_in_flight`` are unfinished (1: one at a time, the next once the latest completed,
        SPEC §4.11). Each settles after the one before it (jobs/state_update.py: consecutive nonces)."""
        limit = max(1, self.config.max_settlements_in_flight)
        latest = await self.db.latest_job(JobType.STATE_TRANSITION)
        if limit == 1:
            unfinished = 0 if latest is None or latest.status == JobStatus.COMPLETED else 1
        else:
            unfinished = len(
                await self.db.list_jobs(job_types=(JobType.STATE_TRANSITION,), statuses=UNFINISHED_STATUSES)
            )
        last: int | None = None
        if latest is not None and isinstance(latest.metadata.specific, StateUpdateMetadata):
            last = latest.metadata.specific.context.to_settle
        next_id = 1 if last is None else last + 1
        created = False
        while unfinished < limit:
            ready = await self._state_transition_metadata(next_id)
            if ready is None:
                break
            meta, parent = ready
            if await self._create(JobType.STATE_TRANSITION, next_id, meta, parent) is None:
                break
            created = True
            unfinished += 1
            next_id += 1
        return created

    async def _state_transition_metadata(self, next_id: int) -> tuple[StateUpdateMetadata, Job] | None:
        """The metadata of batch ``next_id``'s StateTransition, and its parent job; None while not ready."""
        parent = await self.db.get_job_by_internal_id(self.plan.settlement_parent, next_id)
        if parent is None or parent.status != JobStatus.COMPLETED:
            return None
        # Blob-fee-aware posting (engine/posting.py): a proven batch may wait for lower L1 fees.
        if self.settlement_gate is not None and not await self.settlement_gate.may_send(next_id):
            return None
        specific = parent.metadata.specific
        # The outputs to settle: the aggregator's (L2), or the batch's SnosRun's (L3, parent DataSubmission).
        outputs: AggregatorMetadata | SnosMetadata
        da_segment_path = None
        if isinstance(specific, AggregatorMetadata):
            outputs, da_segment_path = specific, specific.da_segment_path
        elif isinstance(specific, DaMetadata):
            snos_job = await self.db.get_job_by_internal_id(JobType.SNOS_RUN, next_id)
            snos = snos_job.metadata.specific if snos_job else None
            if not isinstance(snos, SnosMetadata):
                log.error("StateTransition %d: its SnosRun job is missing; cannot settle yet", next_id)
                return None
            outputs = snos
        else:
            log.error("%s has no settlement paths in its metadata", parent.describe())
            return None
        meta = StateUpdateMetadata(
            context=SettlementContext(type="Batch", to_settle=next_id),
            snos_output_path=outputs.snos_output_path,
            program_output_path=outputs.program_output_path,
            blob_data_path=specific.blob_data_path,
            da_segment_path=da_segment_path,
        )
        return meta, parent
