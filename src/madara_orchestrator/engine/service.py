"""The job service (SPEC §2.5): create, process, verify, retry, fail and heal jobs.

What a job becomes after each outcome is decided by ``domain.lifecycle.decide``; the service runs the
handlers, carries out the effects decided (writes, messages, alerts) and logs and counts them.

Deliberate improvement over the original: processing is guarded by a *lease* (owner + expiry,
renewed by a heartbeat while the handler runs), kept apart from the status. A job whose worker died
is taken up again as soon as its lease expires, instead of after a 300 s lock timeout plus a 360 s
visibility timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.domain.dead_letters import dead_letter_of
from madara_orchestrator.domain.errors import (
    FailureKind,
    InvalidTransition,
    NotFound,
    QueueFull,
    StaleVersion,
    classify,
)
from madara_orchestrator.domain.jobs import (
    DEFAULT_POLICIES,
    PROCESSABLE,
    VERIFIABLE,
    Job,
    JobPolicy,
    JobStatus,
    JobType,
    SnosMetadata,
    SpecificMetadata,
)
from madara_orchestrator.domain.lifecycle import (
    Effect,
    Fail,
    Heal,
    Lock,
    MoveToFailed,
    Nack,
    Outcome,
    ProcessAgain,
    Processed,
    ProcessFailed,
    Retry,
    Rules,
    Save,
    Send,
    Signal,
    Step,
    Verification,
    Verified,
    VerifyFailed,
    WaitOut,
    decide,
)
from madara_orchestrator.domain.queues import QueueNames, QueueType, job_message
from madara_orchestrator.domain.retry import REDELIVERY
from madara_orchestrator.domain.retry import RetryPolicy as RetryPolicy
from madara_orchestrator.engine import telemetry as ev
from madara_orchestrator.engine.blocks import BlockRange, describe_range, job_ranges
from madara_orchestrator.engine.lease import LeaseLost, LeaseTiming, hold
from madara_orchestrator.engine.telemetry import Telemetry, job_scope
from madara_orchestrator.interfaces import (
    AlertSink,
    AtomicJobWrites,
    Clock,
    Database,
    Outgoing,
    QueueClient,
    QueueMessage,
)
from madara_orchestrator.jobs.base import JobHandler

log = logging.getLogger("madara_orchestrator.jobs")

SLOW_PROCESSING_LEASES = 10
"""A processing attempt still running after this many leases is logged as a warning (then at each doubling)."""

S = JobStatus


@dataclass(frozen=True, slots=True)
class Decision:
    """What the consumer does with the message: delete it, or make it visible again after a delay."""

    ack: bool
    delay_s: float = 0.0


ACK = Decision(ack=True)


class SystemClock:
    def now(self) -> float:
        return time.time()


NOT_PROCESSABLE: dict[JobStatus, str] = {
    S.PENDING_VERIFICATION: "it was processed and waits for verification (use verify to check it now)",
    S.VERIFICATION_TIMEOUT: "it was processed and its verification timed out (use verify to verify it again)",
    S.COMPLETED: "nothing is left to do",
    S.FAILED: "use retry to process it again",
}
"""Why "process" does nothing for a job in these statuses, and what to do instead."""
WAKE_COALESCE_S = 5.0
"""Wake-ups of one job closer together than this (a prover's webhooks) are sent as one."""
WAKEABLE = frozenset({S.PENDING_VERIFICATION, S.VERIFICATION_TIMEOUT})
"""Jobs a wake-up may verify: those waiting on the prover (a VerificationFailed one is processed again)."""
NOTICE_KEEP_S = 3600.0
"""How long a prover's webhook that came before its job waited on it is kept for that job (its first poll
verifies a job processed later than this anyway)."""


def job_failed_alert(job: Job, reason: str, block_range: BlockRange | None = None) -> str:
    """The original's alert, but with the blocks the job covers: its internal id is a batch index (SnosRun,
    proofs, settlement), so the original's ``Block: <internal id>`` named the wrong block."""
    lines = [
        "Job Failed Alert",
        f"Job ID: {job.id}",
        f"Type: {job.job_type}",
        describe_range(block_range),
        f"Internal ID: {job.internal_id}",
        f"Current failure: {reason}",
    ]
    history = job.common.previous_failure_reasons
    if history:
        lines += ["", f"Previous failures ({len(history)} total):"]
        lines += [f"  {i}. {r}" for i, r in enumerate(history, start=1)]
    return "\n".join(lines)


class JobService:
    def __init__(
        self,
        *,
        db: Database,
        queue: QueueClient,
        queue_names: QueueNames,
        handlers: Mapping[JobType, JobHandler[Any]],
        alerts: AlertSink,
        metrics: Telemetry,
        clock: Clock | None = None,
        policies: Mapping[JobType, JobPolicy] | None = None,
        retry: RetryPolicy | None = None,
        owner: str | None = None,
        max_priority_queue_size: int = 20,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        atomic_writes: AtomicJobWrites | None = None,
        settles_snos: bool = False,
        prover_webhooks: bool = False,
    ) -> None:
        """``atomic_writes``: when the store holds the queue too (or an outbox relayed to it), a job's creation
        or change and the messages that follow from it are written in one transaction (else one after the
        other; the heal sweep re-sends a message lost in between).
        ``settles_snos``: a StateTransition settles a SNOS batch (an L3), not an aggregator batch (alerts
        name its blocks).
        ``prover_webhooks``: the API takes prover webhooks, so a job just stored as waiting looks for one that
        came while it was processed (``wake_verification``); without them, no store read for it."""
        self.db = db
        self.atomic_writes = atomic_writes
        self.queue = queue
        self.names = queue_names
        self.handlers = dict(handlers)
        self.alerts = alerts
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self.policies = {**DEFAULT_POLICIES, **(policies or {})}
        self.retry = retry or REDELIVERY
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.max_priority_queue_size = max_priority_queue_size
        self._on_completed: list[Callable[[Job], Awaitable[None]]] = []
        self._sleep = sleep
        """How the lease heartbeat waits (tests inject one that moves a fake clock)."""
        self._active: set[uuid.UUID] = set()
        """Jobs this process is processing now (a lease in our name on any other is from an earlier run)."""
        self.settles_snos = settles_snos
        self.prover_webhooks = prover_webhooks
        self._woken_at: dict[uuid.UUID, float] = {}
        """When this process last sent a wake-up for each job (``wake_verification`` coalesces on it)."""
        self.hold: Callable[[Job], Awaitable[str | None]] | None = None
        """Why a job must not be processed now (its stage is paused: engine/pause.py), or None. A job held is
        left as it is and its message dropped: resuming the stage sends it again."""

    def on_completed(self, callback: Callable[[Job], Awaitable[None]]) -> None:
        """Run ``callback`` after a job completes (the event-driven hand-off to its successor)."""
        self._on_completed.append(callback)

    def policy(self, job_type: JobType) -> JobPolicy:
        return self.policies[job_type]

    def handler(self, job_type: JobType) -> JobHandler[Any]:
        try:
            return self.handlers[job_type]
        except KeyError:
            raise NotFound(f"no handler for job type {job_type} in this layer") from None

    # -- create -----------------------------------------------------------------------------------

    async def create_job(self, job_type: JobType, internal_id: int, specific: SpecificMetadata) -> Job | None:
        """Create and enqueue; idempotent on (job_type, internal_id): returns None when it exists."""
        started = time.monotonic()
        job = Job.new(job_type, internal_id, specific, now=self.clock.now(), orchestrator_version=ORCHESTRATOR_VERSION)
        queue = self.names.processing(job_type)
        if self.atomic_writes is not None:
            created = await self.atomic_writes.create_job_and_send(job, queue, job_message(job.id))
        else:
            created = await self.db.create_job(job)
        if not created:
            log.debug("job %s #%d already exists, skipping", job_type, internal_id)
            return None
        if self.atomic_writes is None:
            await self.queue.send(queue, job_message(job.id))
        log.info("created %s", job.describe())
        await self._observe(job, "create_job", started)
        return job

    # -- process ----------------------------------------------------------------------------------

    async def process_job(self, job_id: uuid.UUID, *, receive_count: int = 1) -> Decision:
        job = await self.db.get_job(job_id)
        if job is None:
            log.warning("processing message for unknown job %s dropped", job_id)
            return ACK
        # The attempt about to be made (or, for a job locked now, the one under way).
        attempt = job.common.process_attempt_no + (0 if job.status == S.LOCKED_FOR_PROCESSING else 1)
        with job_scope(job, "process_job", attempt=attempt, tracer=self.metrics.tracer):
            return await self._process_loaded(job, receive_count)

    async def _process_loaded(self, job: Job, receive_count: int) -> Decision:
        now = self.clock.now()
        if job.status == S.LOCKED_FOR_PROCESSING:
            mine_from_before = job.lease_owner == self.owner and job.id not in self._active
            if job.has_live_lease(now) and not mine_from_before:
                log.debug("%s is being processed by %s; duplicate message dropped", job.describe(), job.lease_owner)
                return ACK
            healed = await self._heal(job, now, previous_life=job.has_live_lease(now))
            if healed is None:
                return ACK
            job = healed
        elif job.status in (S.PENDING_VERIFICATION, S.COMPLETED):
            return ACK
        elif job.status not in PROCESSABLE:
            log.warning("processing message for %s in status %s dropped", job.describe(), job.status)
            return ACK

        if self.hold is not None and (held := await self.hold(job)) is not None:
            log.info("%s put back: %s (resuming sends it again)", job.describe(), held)
            return ACK
        handler = self.handler(job.job_type)
        delay = await handler.check_ready(job)
        if delay is not None:
            log.info("%s not ready; trying again in %.0fs", job.describe(), delay)
            await self.queue.send(self.names.processing(job.job_type), job_message(job.id), delay_s=delay)
            return ACK

        if job.id in self._active:
            log.debug("%s is being processed here; duplicate message dropped", job.describe())
            return ACK
        self._active.add(job.id)
        try:
            return await self._process_locked(job, handler, receive_count)
        finally:
            self._active.discard(job.id)

    async def _process_locked(self, job: Job, handler: JobHandler[Any], receive_count: int) -> Decision:
        """Lock ``job`` under a lease in our name, run its handler while the lease is renewed, record the result."""
        policy = self.policy(job.job_type)
        now = self.clock.now()
        original_status = job.status
        locked, effects = self._decide(job, Lock(owner=self.owner), now)
        try:
            job, _ = await self._carry_out(locked, effects, now=now)
        except StaleVersion:
            log.debug("%s was taken by another worker", job.describe())
            return ACK
        locked_at = now
        started = time.monotonic()

        log.info("processing %s (attempt %d)", job.describe(), job.common.process_attempt_no)
        job_id = job.id

        async def renew() -> bool:
            return await self.db.renew_lease(job_id, self.owner, self.clock.now() + policy.lease_s)

        timing = LeaseTiming(duration_s=policy.lease_s, slow_after_s=policy.lease_s * SLOW_PROCESSING_LEASES)
        try:
            async with hold(renew, timing=timing, clock=self.clock, what=job.describe(), sleep=self._sleep):
                outcome = await handler.process(job)
        except LeaseLost as exc:
            # Whoever holds the lease now finishes the job; if nobody does (the renewals failed during a
            # database outage), a fresh message brings it back once the lease has expired.
            self.metrics.report(ev.OperationFailed(job.job_type, "process_job", "lease_lost"))
            log.error("%s; its result is dropped", exc)
            await self.queue.send(
                self.names.processing(job.job_type), job_message(job.id), delay_s=policy.lease_s + 1.0
            )
            return ACK
        except Exception as exc:
            return await self._processing_failed(job, original_status, exc, receive_count)
        return await self._processed(job, outcome, locked_at=locked_at, started=started)

    async def _processed(self, job: Job, outcome: Processed, *, locked_at: float, started: float) -> Decision:
        now = self.clock.now()
        done, effects = self._decide(job, outcome, now)
        try:
            job = await self._save(done, job.status, now=now, messages=self._bundled(done, effects))
        except StaleVersion:
            log.error("%s: lease lost while processing; another worker owns it now, result dropped", job.describe())
            return ACK
        first_attempt = job.common.process_attempt_no == 1 and job.common.process_retry_attempt_no == 0
        self.metrics.report(
            ev.JobProcessed(
                job.job_type,
                seconds=time.monotonic() - started,
                since_locked_s=now - locked_at,
                scheduling_delay_s=locked_at - job.created_at if first_attempt else None,
            )
        )
        await self._carry_out(job, [e for e in effects if not isinstance(e, (Save, Send))], now=now)
        log.info("processed %s -> %s", job.describe(), job.external_id or "-")
        await self._wake_if_noticed(job, now)
        await self._observe(job, "process_job", started)
        return ACK

    async def _wake_if_noticed(self, job: Job, now: float) -> None:
        """Wake at once a job just stored as waiting whose prover's webhook came while it was processed
        (``wake_verification`` kept it), instead of letting it wait for its first poll. Looked for only after
        the job is written: a webhook kept after this look finds the job waiting itself. A failure here
        costs that poll's delay, nothing else."""
        if not self.prover_webhooks or job.status != S.PENDING_VERIFICATION or not job.external_id:
            return
        try:
            noticed = await self.db.take_prover_notice(
                job.external_id, job.job_type, received_after=now - NOTICE_KEEP_S
            )
            if noticed:
                self._woken_at[job.id] = now
                await self.queue.send(self.names.verification(job.job_type), job_message(job.id, wake=True))
        except Exception as exc:
            log.info(
                "%s: could not look for an early prover webhook (%s); its first poll verifies it", job.describe(), exc
            )
            return
        if noticed:
            log.info("%s: verification woken by a prover webhook that came while it was processed", job.describe())

    async def _heal(self, job: Job, now: float, *, previous_life: bool = False) -> Job | None:
        """Take over a job whose worker died: its lease expired, or (``previous_life``) it is still held in
        the name of this very instance by a run of it that ended (a restart after a crash)."""
        healed, effects = self._decide(job, Heal(previous_life=previous_life), now)
        try:
            job, _ = await self._carry_out(healed, effects, now=now)
        except StaleVersion:
            return None
        self.metrics.report(ev.JobHealed(job.job_type))
        if previous_life:
            log.warning(
                "%s: left locked by an earlier run of this instance (%s); taking it back", job.describe(), self.owner
            )
        else:
            log.warning("%s: lease of a dead worker expired; taking it over", job.describe())
        return job

    async def _processing_failed(
        self, job: Job, original_status: JobStatus, exc: Exception, receive_count: int
    ) -> Decision:
        failure = classify(exc)
        now = self.clock.now()
        outcome = ProcessFailed(failure=failure, restore_to=original_status, receive_count=receive_count)
        decided, effects = self._decide(job, outcome, now)
        if not failure.is_outage:
            self.metrics.report(ev.OperationFailed(job.job_type, "process_job", "failure"))
            if failure.kind == FailureKind.FINAL:
                log.error("%s failed and will not be retried: %s", job.describe(), exc)
            elif not failure.expected:
                log.exception("%s: unexpected error while processing", job.describe(), exc_info=exc)
            else:
                reason = next(e.reason for e in effects if isinstance(e, Retry))
                log.warning("%s: %s (will retry)", job.describe(), reason)
        try:
            _, decision = await self._carry_out(decided, effects, now=now)
        except StaleVersion:
            if failure.is_outage:
                log.warning(
                    "%s changed while it waited for an outside service; leaving it to the newer writer", job.describe()
                )
            else:
                log.error(
                    "%s: could not reset after failure (changed meanwhile). Original error: %s", job.describe(), exc
                )
            return ACK
        return decision

    # -- verify -----------------------------------------------------------------------------------

    async def verify_job(self, job_id: uuid.UUID, *, wake: bool = False) -> Decision:
        """A scheduled poll spends one verification attempt and, while the work is not done, schedules the
        next poll. A wake-up (``wake``: a prover's webhook said "look now") spends no attempt and schedules
        nothing, since the job's poll chain already runs: it can only complete or reject the job sooner."""
        job = await self.db.get_job(job_id)
        if job is None:
            log.warning("verification message for unknown job %s dropped", job_id)
            return ACK
        with job_scope(job, "verify_job", attempt=job.common.process_attempt_no, tracer=self.metrics.tracer):
            if wake:
                return await self._verify_woken(job)
            return await self._verify_loaded(job)

    async def _verify_loaded(self, job: Job) -> Decision:
        if job.status not in VERIFIABLE:
            if job.status != S.COMPLETED:
                log.warning("verification message for %s in status %s dropped", job.describe(), job.status)
            return ACK
        if job.status == S.VERIFICATION_TIMEOUT:
            # Its attempts are spent and its alert sent: a stray poll (a duplicate, a late redelivery) would
            # time it out and alert again. Re-verifying it (POST /jobs/{id}/verify) makes it PendingVerification.
            log.info("%s is in VerificationTimeout; scheduled verification message dropped", job.describe())
            return ACK
        now = self.clock.now()
        started, effects = self._decide(job, Step.VERIFY_STARTED, now)
        try:
            job, _ = await self._carry_out(started, effects, now=now)
        except StaleVersion:
            return ACK
        handler = self.handler(job.job_type)
        call_started = time.monotonic()
        try:
            result = await handler.verify(job)
        except Exception as exc:
            self.metrics.report(ev.OperationFailed(job.job_type, "verify_job", "error"))
            failure = classify(exc)
            now = self.clock.now()
            waiting, effects = self._decide(job, VerifyFailed(failure=failure), now)
            if not failure.is_outage:
                log.warning("%s: verification errored: %s (will retry)", job.describe(), exc)
            try:
                _, decision = await self._carry_out(waiting, effects, now=now)
            except StaleVersion:
                log.warning(
                    "%s changed while it waited for an outside service; leaving it to the newer writer", job.describe()
                )
                return ACK
            return decision
        return await self._verified(job, result, call_started, wake=False)

    async def _verify_woken(self, job: Job) -> Decision:
        """A wake-up: ask once, write only when the answer moves the job on. A failing call is dropped (the
        poll chain is the fallback), so a wake-up is never retried, dead-lettered or counted as an attempt."""
        if job.status not in WAKEABLE:
            log.debug("wake-up for %s in status %s dropped", job.describe(), job.status)
            return ACK
        call_started = time.monotonic()
        try:
            result = await self.handler(job.job_type).verify(job)
        except Exception as exc:
            log.info("%s: verification on a wake-up failed (%s); the regular polls go on", job.describe(), exc)
            return ACK
        if result.status == Verification.PENDING:
            log.debug("%s: woken, but the work is not done yet", job.describe())
            return ACK
        return await self._verified(job, result, call_started, wake=True)

    async def _verified(self, job: Job, result: Verified, call_started: float, *, wake: bool) -> Decision:
        """Record a verification answer: Completed, rejected (processed again or Failed), or still pending
        (the next poll, or VerificationTimeout with one alert when the attempts are spent)."""
        verify_call_s = time.monotonic() - call_started
        now = self.clock.now()
        decided, effects = self._decide(job, dataclasses.replace(result, wake=wake), now)
        if result.status == Verification.REJECTED:
            self.metrics.report(ev.OperationFailed(job.job_type, "verify_job", "rejected"))
        status_after = decided.status
        if any(isinstance(e, MoveToFailed) for e in effects):
            status_after = S.FAILED
        try:
            done, _ = await self._carry_out(decided, effects, now=now)
        except StaleVersion:
            log.debug("%s changed during verification; leaving it to the newer writer", job.describe())
            return ACK
        if done.status == S.COMPLETED:
            self._observe_completion(done, now, verify_call_s)
            log.info("completed %s%s", done.describe(), " (woken by a prover webhook)" if wake else "")
            for callback in self._on_completed:
                try:
                    await callback(done)
                except Exception:
                    log.exception("completion hook failed for %s", done.describe())
        await self._observe(dataclasses.replace(decided, status=status_after), "verify_job", call_started)
        return ACK

    def _decide(self, job: Job, outcome: Outcome, now: float) -> tuple[Job, tuple[Effect, ...]]:
        return decide(job, outcome, now, Rules(policy=self.policy(job.job_type), retry=self.retry))

    def _queue(self, job: Job, verification: bool) -> str:
        return self.names.verification(job.job_type) if verification else self.names.processing(job.job_type)

    async def _carry_out(self, job: Job, effects: Sequence[Effect], *, now: float) -> tuple[Job, Decision]:
        """Carry out ``decide``'s effects for ``job`` (as decided), in order: the job as written and what the
        consumer does with the message. A lost write (``StaleVersion``) stops them and is raised. The messages
        of a job written go with its write (``_bundled``): in its transaction where the store can."""
        decision = ACK
        bundled = self._bundled(job, effects)
        for effect in effects:
            match effect:
                case Save(counted=False):
                    job = await self._write(job, now=now, messages=bundled)
                case Save(only_if_lease_expired=True):
                    job = await self._save(job, effect.was, now=now, only_if_lease_expired=True, messages=bundled)
                case Save():
                    job = await self._save(job, effect.was, now=now, messages=bundled)
                case Send(verification=verification, delay_s=delay_s) if not bundled:
                    await self.queue.send(self._queue(job, verification), job_message(job.id), delay_s=delay_s)
                case Nack(delay_s=delay_s):
                    decision = Decision(ack=False, delay_s=delay_s)
                case Retry():
                    self.metrics.report(ev.JobRetried(job.job_type, "process_failure"))
                case MoveToFailed(reason=reason):
                    await self.move_to_failed(job, reason)
                case WaitOut():
                    await self._waiting(job, effect)
                case ProcessAgain(reason=reason):
                    self.metrics.report(ev.JobRetried(job.job_type, "verification_rejected"))
                    log.warning("%s: verification rejected (%s); processing again", job.describe(), reason)
                case Signal.TIME_OUT:
                    await self._timed_out(job)
        return job, decision

    async def _waiting(self, job: Job, wait: WaitOut) -> None:
        stage = "verify" if wait.verification else "process"
        self.metrics.report(ev.OperationFailed(job.job_type, f"{stage}_job", "outage"))
        log.warning("%s: %s; trying again in %.0f s (no attempt spent)", job.describe(), wait.reason, wait.wait_s)
        if wait.alert:
            await self.alerts.send(
                "Outside service unavailable",
                f"{job.describe()} has been waiting {wait.lasted_s:.0f} s for an outside service: {wait.outage}. "
                "It resumes by itself when the service answers again.",
            )

    async def _timed_out(self, job: Job) -> None:
        self.metrics.report(ev.OperationFailed(job.job_type, "verify_job", "timeout"))
        await self.alerts.send(
            "Job Verification Timeout",
            f"Job Verification Timeout Alert: Job ID: {job.id}, Type: {job.job_type}, "
            f"Internal_Id: {job.internal_id}, Verification Attempts: {job.common.verification_attempt_no}, "
            f"{describe_range(await self.block_range(job))}",
        )

    def _observe_completion(self, job: Job, now: float, verify_call_s: float) -> None:
        completed_at = job.common.process_completed_at
        self.metrics.report(
            ev.JobCompleted(
                job.job_type,
                e2e_s=now - job.created_at,
                verify_call_s=verify_call_s,
                since_processed_s=None if completed_at is None else now - completed_at,
            )
        )

    def _bundled(self, job: Job, effects: Sequence[Effect]) -> list[Outgoing]:
        """The messages ``effects`` send after writing ``job``, to write with it (none when nothing is written)."""
        if not any(isinstance(e, Save) for e in effects):
            return []
        return [
            Outgoing(self._queue(job, e.verification), job_message(job.id), e.delay_s)
            for e in effects
            if isinstance(e, Send)
        ]

    async def _write(
        self, job: Job, *, now: float, only_if_lease_expired: bool = False, messages: Sequence[Outgoing] = ()
    ) -> Job:
        """``db.update_job`` and then ``messages``: in one transaction where the store can (``atomic_writes``),
        else one after the other (the heal sweep re-sends a message lost between them)."""
        if self.atomic_writes is not None and messages:
            return await self.atomic_writes.update_job_and_send(
                job, messages, now=now, only_if_lease_expired=only_if_lease_expired
            )
        saved = await self.db.update_job(job, now=now, only_if_lease_expired=only_if_lease_expired)
        for message in messages:
            await self.queue.send(message.queue, message.body, delay_s=message.delay_s)
        return saved

    async def _save(self, job: Job, was: JobStatus, **kwargs: Any) -> Job:
        """``_write``, counting the status transition (``was`` → ``job.status``) once it is written."""
        saved = await self._write(job, **kwargs)
        self.metrics.report(ev.StatusChanged(job.job_type, was, saved.status))
        return saved

    async def _observe(self, job: Job, operation: str, started: float) -> None:
        """The original's per-operation figures: count, duration and the last block the job covers (for a
        verification, only once the job is Completed: ``block_state`` says how far each stage got)."""
        block = None
        if operation != "verify_job" or job.status == S.COMPLETED:
            try:
                block = await self._last_block(job)
            except Exception:
                block = None  # a figure is not worth failing the job for
        self.metrics.report(
            ev.JobOperation(job.job_type, operation, job.status, seconds=time.monotonic() - started, block=block)
        )

    async def _last_block(self, job: Job) -> int | None:
        meta = job.metadata.specific
        if isinstance(meta, SnosMetadata):
            return meta.end_block
        if job.job_type == JobType.PROOF_CREATION:
            snos = await self.db.get_snos_batch(job.internal_id)
            return None if snos is None else snos.end_block
        if job.job_type in (JobType.AGGREGATOR, JobType.STATE_TRANSITION):
            batch = await self.db.get_aggregator_batch(job.internal_id)
            return None if batch is None else batch.end_block
        return None

    # -- failure, retry, operator actions -----------------------------------------------------------

    async def handle_job_failure(self, job_id: uuid.UUID, message: QueueMessage | None = None) -> Decision:
        """Consumer of the dead-letter queue; ``message``, the dead letter, is recorded on the failed job."""
        job = await self.db.get_job(job_id)
        if job is None:
            log.warning("dead-letter message for unknown job %s dropped", job_id)
            return ACK
        with job_scope(job, "handle_job_failure", attempt=job.common.process_attempt_no, tracer=self.metrics.tracer):
            return await self._dead_lettered(job, message)

    async def _dead_lettered(self, job: Job, message: QueueMessage | None) -> Decision:
        now = self.clock.now()
        if job.status == S.COMPLETED:
            log.error("Invalid state exists on DL queue: %s is Completed; ignored", job.describe())
            return ACK
        if job.status == S.LOCKED_FOR_PROCESSING and job.has_live_lease(now):
            log.warning("dead-letter message for %s while it is being processed; ignored", job.describe())
            return ACK
        record = None
        if message is not None:
            letter = dead_letter_of(
                message.message_id,
                message.body,
                message.receive_count,
                message.attributes,
                status=job.status,
                reason=job.common.failure_reason,
                now=now,
            )
            record = letter.to_json()
        reason = f"Job moved to DLQ after exhausting retries (last status: {job.status})"
        await self.move_to_failed(job, reason, dead_letter=record)
        self.metrics.report(ev.JobAbandoned(job.job_type, job.common.process_attempt_no))
        return ACK

    async def move_to_failed(self, job: Job, reason: str, *, dead_letter: dict[str, Any] | None = None) -> None:
        if job.status in (S.COMPLETED, S.FAILED):
            return
        now = self.clock.now()
        failed, effects = self._decide(job, Fail(reason=reason, dead_letter=dead_letter), now)
        try:
            failed, _ = await self._carry_out(failed, effects, now=now)
        except StaleVersion:
            fresh = await self.db.get_job(job.id)
            if fresh is None or fresh.status in (S.COMPLETED, S.FAILED):
                return
            await self.move_to_failed(fresh, reason, dead_letter=dead_letter)
            return
        self.metrics.report(ev.JobFailed(job.job_type))
        log.error("%s moved to Failed: %s", job.describe(), reason)
        await self.alerts.send("Job Failed", job_failed_alert(failed, reason, await self.block_range(failed)))

    async def block_range(self, job: Job) -> BlockRange | None:
        """The blocks ``job`` covers, or None when unknown (its batch is gone, or the database does not answer:
        an alert is not held back for it)."""
        try:
            return (await job_ranges(self.db, [job], settles_snos=self.settles_snos)).get(job.id)
        except Exception as exc:
            log.debug("block range of %s unknown: %s", job.describe(), exc)
            return None

    async def _load(self, job_id: uuid.UUID) -> Job:
        job = await self.db.get_job(job_id)
        if job is None:
            raise NotFound(f"Job not found: {job_id}")
        return job

    async def _priority_queue_with_room(self, *, verification: bool) -> str:
        """The priority queue's name, or ``QueueFull``. Checked before a job is changed, so that a refused
        priority request leaves the job exactly as it was."""
        name = self.names.of(QueueType.PRIORITY_VERIFICATION if verification else QueueType.PRIORITY_PROCESSING)
        depth = await self.queue.depth(name)
        if depth.visible + depth.delayed >= self.max_priority_queue_size:
            raise QueueFull(depth.visible + depth.delayed, self.max_priority_queue_size)
        return name

    async def _outgoing(self, job: Job, send: Send, *, priority: bool, checked: str | None = None) -> Outgoing:
        """``send``'s message, or one without delay on the priority queue (``checked``: already checked for
        room, by ``_priority_queue_with_room``)."""
        if priority:
            name = checked or await self._priority_queue_with_room(verification=send.verification)
            return Outgoing(name, job_message(job.id))
        return Outgoing(self._queue(job, send.verification), job_message(job.id), send.delay_s)

    async def _enqueue(self, job: Job, send: Send, *, priority: bool) -> None:
        message = await self._outgoing(job, send, priority=priority)
        await self.queue.send(message.queue, message.body, delay_s=message.delay_s)

    async def retry_job(self, job_id: uuid.UUID, *, priority: bool = False) -> Job:
        job = await self._load(job_id)
        if job.status != S.FAILED:
            raise InvalidTransition(f"Cannot retry job {job_id}: invalid status {job.status}")
        job = await self._operator_step(job, Step.OPERATOR_RETRY, verification=False, priority=priority)
        self.metrics.report(ev.JobRetried(job.job_type, "operator"))
        log.info("%s queued for retry by an operator", job.describe())
        return job

    async def queue_job_for_processing(self, job_id: uuid.UUID, *, priority: bool = False) -> Job:
        """Send a processing message, no state change (SPEC §2.5), but only when processing would run: for a
        job in any other status the message would be dropped, so the request is refused with what to do."""
        job = await self._load(job_id)
        now = self.clock.now()
        if job.status == S.LOCKED_FOR_PROCESSING and job.has_live_lease(now):
            raise InvalidTransition(
                f"Cannot process job {job_id}: it is being processed now (lease held by {job.lease_owner} for "
                f"{max(0.0, (job.lease_expires_at or now) - now):.0f} s more)"
            )
        if job.status not in PROCESSABLE and job.status != S.LOCKED_FOR_PROCESSING:
            instead = NOT_PROCESSABLE.get(job.status, "nothing to process")
            raise InvalidTransition(f"Cannot process job {job_id}: it is {job.status}; {instead}")
        await self._enqueue(job, Send(verification=False), priority=priority)
        return job

    async def queue_job_for_verification(self, job_id: uuid.UUID, *, priority: bool = False) -> Job:
        """Re-verify. Refused for jobs never processed and for Completed ones (SPEC §22 quirk 5)."""
        job = await self._load(job_id)
        if job.status not in VERIFIABLE and not (job.status == S.FAILED and job.external_id):
            raise InvalidTransition(f"Cannot verify job {job_id}: invalid status {job.status}")
        return await self._operator_step(job, Step.OPERATOR_VERIFY, verification=True, priority=priority)

    async def _operator_step(self, job: Job, step: Step, *, verification: bool, priority: bool) -> Job:
        """Apply an operator's ``step`` to ``job`` and send the message it calls for, in one write; a full
        priority queue refuses the request before the job is changed."""
        checked = await self._priority_queue_with_room(verification=verification) if priority else None
        now = self.clock.now()
        changed, effects = self._decide(job, step, now)
        message = await self._outgoing(changed, _sent(effects), priority=priority, checked=checked)
        return await self._save(changed, job.status, now=now, messages=[message])

    async def requeue(self, job: Job, *, verification: bool) -> None:
        """Send a job's processing or verification message again, without delay or state change."""
        await self.queue.send(self._queue(job, verification), job_message(job.id))

    async def wake_verification(self, external_id: str, job_types: Sequence[JobType]) -> tuple[list[Job], int]:
        """Verify now the jobs waiting on ``external_id`` (a prover's completion webhook); returns the jobs
        woken and how many wake-ups were coalesced.

        No state changes: it sends a wake-up (a verification message marked ``wake``, without delay), which
        spends no verification attempt and schedules no poll (``verify_job``); polling stays the fallback.
        Wake-ups of one job are coalesced: at most one per ``WAKE_COALESCE_S`` (by the injected clock) from
        this process, so a flood of webhooks (forged or repeated) costs one prover status request per job
        every few seconds, and nothing else.

        A webhook that finds no job waiting may have come while its job was processed (a fast prover): it
        is kept in the store for ``NOTICE_KEEP_S``, then the jobs are looked up again. The processing step
        looks for it after writing the job as waiting (``_wake_if_noticed``), so whichever of the two comes
        second sees the other's write, whatever the instance: the job is woken once or twice, never missed
        (but for a crash between the two, which costs the first poll's delay)."""
        now = self.clock.now()
        for job_id, at in list(self._woken_at.items()):
            if now - at >= WAKE_COALESCE_S:
                del self._woken_at[job_id]
        woken, coalesced = await self._wake_waiting(external_id, job_types, now)
        if woken or coalesced:
            return woken, coalesced
        await self.db.remember_prover_notice(external_id, job_types, received_at=now, forget_before=now - NOTICE_KEEP_S)
        woken, coalesced = await self._wake_waiting(external_id, job_types, now)
        if not woken and not coalesced:
            log.info("prover webhook for %s: no job waits on it yet; kept for when its job is processed", external_id)
        return woken, coalesced

    async def _wake_waiting(self, external_id: str, job_types: Sequence[JobType], now: float) -> tuple[list[Job], int]:
        woken: list[Job] = []
        coalesced = 0
        for job in await self.db.jobs_by_external_id(external_id, job_types):
            if job.status not in WAKEABLE:
                continue
            if job.id in self._woken_at:
                coalesced += 1
                continue
            self._woken_at[job.id] = now
            await self.queue.send(self.names.verification(job.job_type), job_message(job.id, wake=True))
            log.info("%s: verification woken by a prover webhook", job.describe())
            woken.append(job)
        return woken, coalesced

    async def reclaim_earlier_run(self, *, limit: int = 1000) -> int:
        """At start: jobs still locked in this instance's name were left by its earlier run (a crash); send
        their messages now, so they are taken back at once rather than after their leases and the heal sweep."""
        left = [
            job
            for job in await self.db.list_jobs(statuses=[S.LOCKED_FOR_PROCESSING], limit=limit)
            if job.lease_owner == self.owner
        ]
        for job in left:
            await self.queue.send(self.names.processing(job.job_type), job_message(job.id))
        if left:
            log.warning("taking back %d job(s) left locked by an earlier run of %s", len(left), self.owner)
        return len(left)

    async def heal(self, *, stale_after_s: float = 600.0, limit: int = 500) -> int:
        """Re-send messages for jobs that look forgotten: an expired lease, or no progress for a long time.

        Duplicates are harmless (a message for a job that moved on is dropped), so this may run anywhere."""
        now = self.clock.now()
        sent = 0
        for job in await self.db.list_jobs(statuses=[S.LOCKED_FOR_PROCESSING], limit=limit):
            if not job.has_live_lease(now):
                await self.queue.send(self.names.processing(job.job_type), job_message(job.id))
                sent += 1
        for job in await self.db.stalled_jobs(
            [S.CREATED, S.PENDING_RETRY, S.VERIFICATION_FAILED], now - stale_after_s, limit
        ):
            await self.queue.send(self.names.processing(job.job_type), job_message(job.id))
            sent += 1
        for job in await self.db.stalled_jobs([S.PENDING_VERIFICATION], now - stale_after_s, limit):
            if job.updated_at < now - stale_after_s - self.policy(job.job_type).verification_delay_s:
                await self.queue.send(self.names.verification(job.job_type), job_message(job.id))
                sent += 1
        if sent:
            log.info("heal: re-sent %d message(s) for jobs without progress", sent)
        return sent


def _sent(effects: Sequence[Effect]) -> Send:
    """The message ``decide`` has an operator's request send."""
    return next(e for e in effects if isinstance(e, Send))
