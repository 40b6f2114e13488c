"""Wires one orchestrator process: the job service, its consumers, the triggers and the timers.

Start order: consumers, then the scheduler tick (backstop), the chain-head watcher (new blocks start
the pipeline at once) and the heal loop. Shutdown: stop taking messages, let in-flight handlers finish
within the grace period, then cancel; a cancelled job keeps its lease, which expires, and is taken up
again by the next worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from madara_orchestrator.domain.batching import BatchLimits
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.health import (
    HealthStatus,
    TriggerHealth,
    chain_problem,
    health_status,
    outbox_problem,
)
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, JobPolicy, JobType
from madara_orchestrator.domain.pause import Pause, Stage
from madara_orchestrator.domain.posting import FeeCap, PostingPolicy
from madara_orchestrator.domain.queues import (
    PROCESSING_QUEUE,
    VERIFICATION_QUEUE,
    WORKER_TRIGGER_RETENTION_S,
    Layer,
    QueueConfig,
    QueueNames,
    QueueType,
    parse_job_message,
    read_job_message,
)
from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.domain.retry import REDELIVERY, RetryPolicy
from madara_orchestrator.engine import telemetry as ev
from madara_orchestrator.engine.backlog import BacklogWatch
from madara_orchestrator.engine.batching import Batcher, BatchingConfig
from madara_orchestrator.engine.cleanup import StorageCleanup
from madara_orchestrator.engine.consumers import QueueConsumer
from madara_orchestrator.engine.metrics import Metrics
from madara_orchestrator.engine.outbox import OutboxWatch
from madara_orchestrator.engine.pause import PauseControl, SettlementStarted
from madara_orchestrator.engine.plan import L2_PLAN, PLANS, HandlerContext, LayerPlan, TriggerName
from madara_orchestrator.engine.posting import SettlementGate
from madara_orchestrator.engine.service import ACK, Decision, JobService, SystemClock
from madara_orchestrator.engine.triggers import TriggerConfig, Triggers
from madara_orchestrator.interfaces import (
    AggregatorRunner,
    AlertSink,
    AtomicJobWrites,
    BatchRpc,
    Clock,
    Database,
    ExpiringStore,
    FeederGateway,
    FeeHistorySource,
    LockService,
    ObjectStore,
    OutboxRelay,
    PauseStore,
    ProverClient,
    QueueClient,
    QueueMessage,
    ReferenceNode,
    SequencerRpc,
    SettlementClient,
    SnosRunner,
)
from madara_orchestrator.jobs.base import JobHandler
from madara_orchestrator.starknet.rpc_cache import CachingBatchRpc

log = logging.getLogger("madara_orchestrator.runtime")

SHORT_VISIBILITY_S = 15.0
"""Visibility of the messages of short handlers (verification, triggers, dead letters)."""

HEAD_UNAVAILABLE_LOG_S = 60.0
"""While the sequencer's head cannot be read, the chain watcher says so at most this often (same error)."""

DEFAULT_MAX_BATCH_TIME_S = 600.0
"""Used only when a RuntimeConfig is built without batching settings (tests, benches)."""

DEFAULT_PROCESSING_CONCURRENCY: dict[JobType, int] = {
    JobType.SNOS_RUN: 5,
    JobType.PROOF_CREATION: 10,
    JobType.AGGREGATOR: 10,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeConfig:
    """``plan``: the layer's pipeline (``engine/plan.py``); ``layer`` picks a standard plan instead."""

    layer: InitVar[Layer | None] = None
    plan: LayerPlan = L2_PLAN
    queue_names: QueueNames = field(default_factory=QueueNames)
    policies: Mapping[JobType, JobPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    processing_concurrency: Mapping[JobType, int] = field(default_factory=dict)
    verification_concurrency: int = 10
    triggers: TriggerConfig = field(default_factory=TriggerConfig)
    batching: BatchingConfig = field(
        default_factory=lambda: BatchingConfig(limits=BatchLimits(max_batch_time_s=DEFAULT_MAX_BATCH_TIME_S))
    )
    retry: RetryPolicy = REDELIVERY
    trigger_interval_s: float = 60.0
    chain_poll_interval_s: float = 2.0
    heal_interval_s: float = 60.0
    instance_lease_s: float = 5.0
    """The instance's registration lease: how long a restart waits for its killed earlier run to be gone."""
    heal_stale_after_s: float = 120.0
    graceful_shutdown_s: float = 120.0
    max_priority_queue_size: int = 20
    receive_wait_s: float = 1.0
    settlement_fee_wait_s: float = 60.0
    """While settlement fees are above the hard cap, how often to try again."""
    dedup_proofs_by_job_id: bool = False
    """Atlantic deduplicates proof submissions on the job UUID; SHARP and the mock on the SNOS fact."""
    posting: PostingPolicy = field(default_factory=PostingPolicy)
    """When a proven batch's settlement is posted (``--settlement-deadline-seconds``; 0: at once)."""
    fee_cap: FeeCap | None = None
    """The settlement's hard fee cap, for the posting policy (Ethereum settlement only)."""
    backlog_alert_blocks: int | None = None
    """Alert once when this many blocks are produced and not settled, and once when it clears (None: never)."""
    backlog_interval_s: float = 30.0
    """How often the backlog threshold is looked at (with ``backlog_alert_blocks``)."""
    outbox_alert_s: float | None = None
    """Alert once when the outbox's oldest message has waited this long, and once when it drains (None: never;
    only with an outbox, i.e. SQS)."""
    outbox_interval_s: float = 30.0
    """How often the outbox threshold is looked at (with ``outbox_alert_s``)."""
    prover_webhooks: bool = False
    """The API takes prover webhooks (``--atlantic-webhook-secret``, or the in-process mock's): a job just
    stored as waiting looks for one that came while it was processed. Without them there is none to find."""

    def __post_init__(self, layer: Layer | None) -> None:
        if layer is not None and layer != self.plan.layer:
            object.__setattr__(self, "plan", PLANS[layer])

    def job_types(self) -> tuple[JobType, ...]:
        return self.plan.job_types

    def concurrency(self, job_type: JobType) -> int:
        configured = self.processing_concurrency.get(job_type, DEFAULT_PROCESSING_CONCURRENCY.get(job_type, 10))
        if job_type == JobType.STATE_TRANSITION:  # each settlement in flight is a job being processed
            return max(configured, self.triggers.max_settlements_in_flight)
        return configured

    def lease_visibility_s(self, job_type: JobType) -> float:
        """A processing message stays hidden a little longer than the lease: when a worker dies its
        message comes back just after the lease has expired, so the next worker can take over."""
        lease = self.policies[job_type].lease_s
        return lease + max(1.0, lease / 4)

    def queue_configs(self) -> dict[QueueType, QueueConfig]:
        """Visibility timeouts are short (the original: 360 s everywhere): a consumer extends a message's
        visibility while its handler runs, so the timeout only says how soon a message held by a process that
        died comes back. Processing queues: a little longer than the job's lease (see ``lease_visibility_s``)."""
        configs: dict[QueueType, QueueConfig] = {
            QueueType.JOB_HANDLE_FAILURE: QueueConfig(
                queue_type=QueueType.JOB_HANDLE_FAILURE,
                visibility_timeout_s=SHORT_VISIBILITY_S,
                concurrency=10,
                dead_letter=None,
            ),
            QueueType.WORKER_TRIGGER: QueueConfig(
                queue_type=QueueType.WORKER_TRIGGER,
                visibility_timeout_s=SHORT_VISIBILITY_S,
                concurrency=10,
                dead_letter=None,
                retention_s=WORKER_TRIGGER_RETENTION_S,
            ),
            QueueType.PRIORITY_PROCESSING: QueueConfig(
                queue_type=QueueType.PRIORITY_PROCESSING,
                visibility_timeout_s=max(self.lease_visibility_s(t) for t in self.job_types()),
                concurrency=1,
            ),
            QueueType.PRIORITY_VERIFICATION: QueueConfig(
                queue_type=QueueType.PRIORITY_VERIFICATION, visibility_timeout_s=SHORT_VISIBILITY_S, concurrency=1
            ),
        }
        for job_type in self.job_types():
            configs[PROCESSING_QUEUE[job_type]] = QueueConfig(
                queue_type=PROCESSING_QUEUE[job_type],
                visibility_timeout_s=self.lease_visibility_s(job_type),
                concurrency=self.concurrency(job_type),
            )
            configs[VERIFICATION_QUEUE[job_type]] = QueueConfig(
                queue_type=VERIFICATION_QUEUE[job_type],
                visibility_timeout_s=SHORT_VISIBILITY_S,
                concurrency=self.verification_concurrency,
            )
        return configs

    def physical_queue_configs(self) -> tuple[dict[str, QueueConfig], dict[str, str]]:
        """Configs by physical queue name, and each queue's dead-letter queue by physical name."""
        configs = self.queue_configs()
        by_name = {self.queue_names.of(t): c for t, c in configs.items()}
        dead_letters = {
            self.queue_names.of(t): self.queue_names.of(c.dead_letter)
            for t, c in configs.items()
            if c.dead_letter is not None
        }
        return by_name, dead_letters


@dataclass(slots=True, kw_only=True)
class Storage:
    """Where a deployment keeps its state (jobs, batches, leases, the queues, the artifacts): chosen by the
    composition root (``cli/backends.py``), shared by every instance of the deployment."""

    db: Database
    queue: QueueClient
    objects: ObjectStore
    locks: LockService
    expiring: ExpiringStore | None = None
    """The object store again, when it has an expiry rule: StorageCleanup marks settled artifacts in it."""
    atomic_writes: AtomicJobWrites | None = None
    """The store again, when it holds the queue too (or an outbox): a job's writes and its messages in one
    transaction."""
    outbox_relay: OutboxRelay | None = None
    """Sends the outbox's messages on to the queue (SQS), when ``atomic_writes`` writes them to an outbox."""
    pauses: PauseStore | None = None
    """The store again: the paused stages every instance honours (None: nothing can be paused)."""


@dataclass(slots=True, kw_only=True)
class Adapters:
    """The outside world, already constructed by the composition root (cli/)."""

    storage: Storage
    alerts: AlertSink
    sequencer: SequencerRpc
    feeder: FeederGateway
    """Madara's feeder gateway (bouncer weights for batching)."""
    batch_rpc: BatchRpc
    """Batched JSON-RPC reads at past blocks (squashing, stateful compression)."""
    snos: SnosRunner
    prover: ProverClient
    settlement: SettlementClient
    aggregator_runner: AggregatorRunner | None = None
    reference: ReferenceNode | None = None
    """The replay-bounds reference node (``--replay-bounds-rpc-url``, SPEC §5.9)."""
    fee_history: FeeHistorySource | None = None
    """The settlement L1's fee history (Ethereum settlement): what the posting policy decides on."""
    settlement_started: SettlementStarted | None = None
    """Whether a settlement key has a transaction stored (the durable sender's store): a paused settlement
    still follows it to its receipt. None: settlements are never in flight (the devnet ledger)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """A backend's answer to a health probe, or why there is none."""

    value: object
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    status: HealthStatus
    backends: Mapping[str, str | None]
    """Each backend: None when it answers, else why not (cut)."""
    triggers: Mapping[TriggerName, TriggerHealth]
    failing: tuple[TriggerName, ...]
    problems: tuple[str, ...]
    """One line per trigger that keeps failing, one for a settled block above the chain head, and one for an
    outbox no relay drains."""
    head: int | None
    settled: int | None
    paused: Mapping[Stage, Pause] = field(default_factory=dict)
    """The stages an operator paused (deliberate: not a problem, the state stays UP)."""


class Runtime:
    def __init__(
        self,
        config: RuntimeConfig,
        adapters: Adapters,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        owner: str | None = None,
    ) -> None:
        self.config = config
        self.adapters = adapters
        self.storage = storage = adapters.storage
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.service = JobService(
            db=storage.db,
            queue=storage.queue,
            queue_names=config.queue_names,
            handlers=self._handlers(),
            alerts=adapters.alerts,
            metrics=self.metrics,
            clock=self.clock,
            policies=config.policies,
            retry=config.retry,
            owner=owner,
            max_priority_queue_size=config.max_priority_queue_size,
            atomic_writes=storage.atomic_writes,
            settles_snos=not config.plan.aggregator_batches,
            prover_webhooks=config.prover_webhooks,
        )
        self.batcher = Batcher(
            # Whether batches are built in two levels is the plan's to say, not the batching settings'.
            config=dataclasses.replace(config.batching, aggregator_batches=config.plan.aggregator_batches),
            db=storage.db,
            objects=storage.objects,
            sequencer=adapters.sequencer,
            feeder=adapters.feeder,
            rpc=CachingBatchRpc(adapters.batch_rpc),
            locks=storage.locks,
            clock=self.clock,
            alerts=adapters.alerts,
            metrics=self.metrics,
            prover=adapters.prover if config.batching.create_buckets else None,
            owner=self.service.owner,
            reference=adapters.reference,
        )
        self.settlement_gate = self._settlement_gate()
        self.triggers = Triggers(
            config=config.triggers,
            plan=config.plan,
            service=self.service,
            db=storage.db,
            sequencer=adapters.sequencer,
            clock=self.clock,
            metrics=self.metrics,
            batcher=self.batcher,
            owner=self.service.owner,
            cleanup=None
            if storage.expiring is None
            else StorageCleanup(
                db=storage.db,
                store=storage.expiring,
                locks=storage.locks,
                owner=self.service.owner,
                clock=self.clock,
                settles_snos_batches=not config.plan.aggregator_batches,
            ),
            settlement_gate=self.settlement_gate,
            pauses=storage.pauses,
        )
        self.pauses = PauseControl(
            store=storage.pauses,
            service=self.service,
            triggers=self.triggers,
            clock=self.clock,
            alerts=adapters.alerts,
            started=adapters.settlement_started,
        )
        self.service.hold = self.pauses.hold_job
        self.backlog = BacklogWatch(
            db=storage.db,
            locks=storage.locks,
            sequencer=adapters.sequencer,
            settlement=adapters.settlement,
            metrics=self.metrics,
            alerts=adapters.alerts,
            aggregator=config.plan.aggregator_batches,
            owner=self.service.owner,
            alert_blocks=config.backlog_alert_blocks,
            interval_s=config.backlog_interval_s,
        )
        self.outbox = self._outbox_watch()
        if self.settlement_gate is not None:
            self.settlement_gate.rekick = lambda: self.triggers.kick(TriggerName.UPDATE_STATE)
        self.consumers = self._consumers()
        self._busy_seen: dict[str, float] = {}
        """Each consumer's busy seconds already counted in ``workload_busy_seconds_total``."""
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _settlement_gate(self) -> SettlementGate | None:
        """The posting gate, with a settlement deadline on an L1 whose fee history is known; else None: sent at once."""
        config, adapters = self.config, self.adapters
        if not config.posting.waits or adapters.fee_history is None or config.fee_cap is None:
            return None
        return SettlementGate(
            policy=config.posting,
            cap=config.fee_cap,
            fees=adapters.fee_history,
            db=self.storage.db,
            clock=self.clock,
            alerts=adapters.alerts,
            metrics=self.metrics,
        )

    def _outbox_watch(self) -> OutboxWatch | None:
        """The outbox's gauges, health line and alert, when the job writes go through an outbox (SQS)."""
        relay = self.storage.outbox_relay
        if relay is None:
            return None
        names = self.config.queue_names
        return OutboxWatch(
            relay=relay,
            locks=self.storage.locks,
            metrics=self.metrics,
            alerts=self.adapters.alerts,
            owner=self.service.owner,
            queues=[names.of(queue_type) for queue_type in self.config.queue_configs()],
            alert_s=self.config.outbox_alert_s,
            interval_s=self.config.outbox_interval_s,
        )

    def _handlers(self) -> dict[JobType, JobHandler[Any]]:
        a = self.adapters
        return self.config.plan.build_handlers(
            HandlerContext(
                db=self.storage.db,
                objects=self.storage.objects,
                sequencer=a.sequencer,
                batch_rpc=a.batch_rpc,
                snos=a.snos,
                prover=a.prover,
                settlement=a.settlement,
                alerts=a.alerts,
                clock=self.clock,
                metrics=self.metrics,
                aggregator_runner=a.aggregator_runner,
                dedup_proofs_by_job_id=self.config.dedup_proofs_by_job_id,
                settlement_fee_wait_s=self.config.settlement_fee_wait_s,
                max_settlements_in_flight=self.config.triggers.max_settlements_in_flight,
            )
        )

    def _consumers(self) -> list[QueueConsumer]:
        names = self.config.queue_names
        configs = self.config.queue_configs()
        consumers: list[QueueConsumer] = []

        def add(queue_type: QueueType, handler: Callable[[QueueMessage], Awaitable[Decision]]) -> None:
            cfg = configs[queue_type]
            consumers.append(
                QueueConsumer(
                    self.storage.queue,
                    names.of(queue_type),
                    handler,
                    concurrency=cfg.concurrency,
                    visibility_s=cfg.visibility_timeout_s,
                    receive_wait_s=self.config.receive_wait_s,
                )
            )

        for job_type in self.config.job_types():
            add(PROCESSING_QUEUE[job_type], self._on_process)
            add(VERIFICATION_QUEUE[job_type], self._on_verify)
        add(QueueType.PRIORITY_PROCESSING, self._on_process)
        add(QueueType.PRIORITY_VERIFICATION, self._on_verify)
        add(QueueType.JOB_HANDLE_FAILURE, self._on_dead_letter)
        add(QueueType.WORKER_TRIGGER, self._on_trigger)
        return consumers

    async def _on_process(self, message: QueueMessage) -> Decision:
        try:
            job_id = parse_job_message(message.body)
        except InvalidInput as exc:
            log.warning("dropping malformed message on %s: %s", message.queue, exc)
            return ACK
        return await self.service.process_job(job_id, receive_count=message.receive_count)

    async def _on_verify(self, message: QueueMessage) -> Decision:
        try:
            job = read_job_message(message.body)
        except InvalidInput as exc:
            log.warning("dropping malformed message on %s: %s", message.queue, exc)
            return ACK
        return await self.service.verify_job(job.id, wake=job.wake)

    async def _on_dead_letter(self, message: QueueMessage) -> Decision:
        try:
            job_id = parse_job_message(message.body)
        except InvalidInput as exc:
            log.warning("dropping malformed dead letter: %s", exc)
            return ACK
        return await self.service.handle_job_failure(job_id, message)

    async def _on_trigger(self, message: QueueMessage) -> Decision:
        try:
            name = TriggerName.parse(message.body)
        except ValueError:
            log.warning("dropping unknown trigger %r", message.body[:100])
            return ACK
        self.triggers.kick(name)
        return ACK

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._register_instance()
        await self.service.reclaim_earlier_run()
        log.info(
            "orchestrator %s starting: layer %s, %d queues, triggers %s",
            self.service.owner,
            self.config.plan.layer,
            len(self.consumers),
            ", ".join(self.triggers.enabled),
        )
        for consumer in self.consumers:
            self._spawn(consumer.run(self._stop), f"consumer-{consumer.name}")
        self._spawn(self._tick_loop(), "scheduler")
        self._spawn(self._chain_watch_loop(), "chain-watch")
        self._spawn(self._heal_loop(), "heal")
        if self.storage.outbox_relay is not None:
            self._spawn(self.storage.outbox_relay.run(self._stop), "outbox-relay")
        if self.metrics.refresh_interval_s is not None:
            self._spawn(self._gauge_loop(self.metrics.refresh_interval_s), "gauges")
        if self.config.backlog_alert_blocks is not None:
            self._spawn(self._backlog_loop(), "backlog")
        if self.outbox is not None and self.outbox.alert_s is not None:
            self._spawn(self._outbox_loop(self.outbox), "outbox-watch")
        for name in self.triggers.enabled:
            self.triggers.kick(name)

    async def _register_instance(self) -> None:
        """Claim the instance id for this run (a named lease renewed for the process's life).

        Leases in the instance's name (jobs, batching) are taken back at once by a restart, so two live
        processes must never share an id: a second one waits for the first's registration to expire
        (which a killed earlier run's does within ``instance_lease_s``) and refuses to start otherwise."""
        locks = self.storage.locks
        key = f"instance:{self.service.owner}"
        run_owner = f"{self.service.owner}#{uuid.uuid4().hex[:8]}"
        ttl = self.config.instance_lease_s
        deadline = self.clock.now() + 2 * ttl
        waited = False
        while not await locks.acquire(key, run_owner, ttl):
            if self.clock.now() >= deadline:
                raise InvalidInput(
                    f"another orchestrator is running as instance {self.service.owner!r}; give each instance its "
                    "own --instance-id (MADARA_ORCHESTRATOR_INSTANCE_ID)"
                )
            if not waited:
                log.info("instance %s: waiting for an earlier run's registration to expire", self.service.owner)
                waited = True
            if await self._sleep(min(1.0, ttl / 4)):
                return

        async def keep() -> None:
            while not await self._sleep(ttl / 3):
                try:
                    if not await locks.acquire(key, run_owner, ttl):
                        log.error(
                            "instance %s: registration taken by another process with the same id; stopping",
                            self.service.owner,
                        )
                        self._stop.set()
                        return
                except Exception as exc:
                    log.warning("instance %s: registration not renewed (%s); retrying", self.service.owner, exc)
            with contextlib.suppress(Exception):
                await locks.release(key, run_owner)

        self._spawn(keep(), "instance-registration")

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(coro))
        self._tasks[-1].set_name(name)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True when it is time to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        return self._stop.is_set()

    async def _tick_loop(self) -> None:
        """The backstop: send every trigger through the worker-trigger queue, which all instances read."""
        name = self.config.queue_names.of(QueueType.WORKER_TRIGGER)
        while not await self._sleep(self.config.trigger_interval_s):
            for trigger in self.triggers.enabled:
                try:
                    await self.storage.queue.send(name, trigger.value)
                except Exception as exc:
                    log.warning("scheduler could not send trigger %s: %s", trigger, exc)

    async def _chain_watch_loop(self) -> None:
        first = self.triggers.enabled[0]
        seen: int | None = None
        unavailable: tuple[str, float] | None = None
        """The last error logged while the head is unavailable, and when: logged again when it changes,
        or once a minute, not at every poll."""
        while not await self._sleep(self.config.chain_poll_interval_s):
            try:
                head = await self.adapters.sequencer.block_number()
            except Exception as exc:
                text = cut_urls(str(exc) or type(exc).__name__)
                now = self.clock.now()
                if unavailable is None or unavailable[0] != text or now - unavailable[1] >= HEAD_UNAVAILABLE_LOG_S:
                    log.warning("sequencer head unavailable: %s", text)
                    unavailable = (text, now)
                continue
            if unavailable is not None:
                log.info("sequencer head available again: block %d", head)
                unavailable = None
            self.metrics.report(ev.ChainHead(head))
            if seen is None or head > seen:
                seen = head
                self.triggers.kick(first)

    async def _heal_loop(self) -> None:
        while not await self._sleep(self.config.heal_interval_s):
            try:
                await self.service.heal(stale_after_s=self.config.heal_stale_after_s)
            except Exception as exc:
                log.warning("heal sweep failed: %s", exc)

    async def _backlog_loop(self) -> None:
        """The backlog threshold (``--backlog-alert-blocks``): looked at every ``backlog_interval_s``."""
        while not await self._sleep(self.config.backlog_interval_s):
            try:
                await self.backlog.watch_once()
            except Exception as exc:
                log.warning("backlog not measured: %s", cut_urls(str(exc) or type(exc).__name__))

    async def _outbox_loop(self, watch: OutboxWatch) -> None:
        """The outbox threshold (``--outbox-alert-seconds``): looked at every ``outbox_interval_s``."""
        while not await self._sleep(self.config.outbox_interval_s):
            try:
                await watch.watch_once()
            except Exception as exc:
                log.warning("outbox not measured: %s", cut_urls(str(exc) or type(exc).__name__))

    async def _gauge_loop(self, interval_s: float) -> None:
        """While metrics are pushed (OTLP), the gauges read from the stores are refreshed on a timer."""
        while not await self._sleep(interval_s):
            try:
                await self.refresh_gauges()
            except Exception as exc:
                log.debug("gauges not refreshed: %s", exc)

    async def stop(self) -> bool:
        """Graceful stop; True when every in-flight message finished within the grace period."""
        self._stop.set()
        deadline = self.config.graceful_shutdown_s
        results = await asyncio.gather(*(c.drain(deadline) for c in self.consumers))
        await self.triggers.stop()
        if self.settlement_gate is not None:
            self.settlement_gate.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.metrics.refresh_interval_s is not None:
            # Pushed metrics: the last export (at shutdown) shows the state as it is left.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.refresh_gauges(), timeout=2.0)
        clean = all(results)
        log.info("orchestrator %s stopped%s", self.service.owner, "" if clean else " (some work was cancelled)")
        return clean

    async def backend_health(self, *, timeout_s: float = 3.0) -> dict[str, str | None]:
        """Each outside service this instance needs, probed at once: ``None`` when it answers, else why not."""
        return {name: probe.error for name, probe in (await self._probe_backends(timeout_s)).items()}

    async def health_report(self, *, timeout_s: float = 3.0) -> HealthReport:
        """What /health says: the backends, the triggers that keep failing, a settled block above the
        sequencer's head (another chain's state), and an outbox no relay drains. Errors are cut (no URL path,
        query or credentials)."""
        probes = await self._probe_backends(timeout_s)
        backends = {name: None if p.error is None else cut_urls(p.error) for name, p in probes.items()}
        failing = self.triggers.failing()
        problems = [health.describe(name) for name, health in failing.items()]
        head, settled = probes["sequencer_rpc"].value, probes["settlement_rpc"].value
        chain = chain_problem(head if isinstance(head, int) else None, settled if isinstance(settled, int) else None)
        if chain is not None:
            problems.append(chain)
        outbox = await self.outbox_problem(timeout_s=timeout_s)
        if outbox is not None:
            problems.append(outbox)
        try:
            paused = await asyncio.wait_for(self.pauses.current(), timeout=timeout_s)
        except Exception:  # the database probe says why
            paused = {}
        return HealthReport(
            status=health_status(backends, problems),
            backends=backends,
            triggers=self.triggers.health(),
            failing=tuple(failing),
            problems=tuple(problems),
            head=head if isinstance(head, int) else None,
            settled=settled if isinstance(settled, int) else None,
            paused=paused,
        )

    async def outbox_problem(self, *, timeout_s: float = 3.0) -> str | None:
        """One line when the outbox's oldest message has waited too long (``domain/health.py``), else None
        (and without an outbox, or when it cannot be read: the database probe says why)."""
        if self.outbox is None:
            return None
        try:
            waiting = await asyncio.wait_for(self.outbox.measure(), timeout=timeout_s)
        except Exception:
            return None
        return outbox_problem(waiting)

    async def _probe_backends(self, timeout_s: float) -> dict[str, Probe]:
        a, storage = self.adapters, self.storage
        trigger_queue = self.config.queue_names.of(QueueType.WORKER_TRIGGER)
        probes: dict[str, Callable[[], Awaitable[object]]] = {
            "database": storage.db.ping,
            "queue": lambda: storage.queue.depth(trigger_queue),
            "storage": lambda: storage.objects.exists("health/probe"),
            "sequencer_rpc": a.sequencer.block_number,
            "settlement_rpc": a.settlement.last_settled_block,
        }

        async def probe(call: Callable[[], Awaitable[object]]) -> Probe:
            try:
                value = await asyncio.wait_for(call(), timeout=timeout_s)
            except TimeoutError:
                return Probe(None, f"no answer within {timeout_s:g} s")
            except Exception as exc:
                return Probe(None, str(exc) or type(exc).__name__)
            return Probe(value, None)

        results = await asyncio.gather(*(probe(call) for call in probes.values()))
        return dict(zip(probes, results, strict=True))

    async def refresh_gauges(self) -> None:
        """Jobs by type and status, queue depths and the outbox's, read at scrape time."""
        self.metrics.report(ev.JobCounts(await self.storage.db.count_jobs()))
        for queue_type in self.config.queue_configs():
            name = self.config.queue_names.of(queue_type)
            depth = await self.storage.queue.depth(name)
            self.metrics.report(ev.QueueDepth(queue_type, name, depth.visible, depth.in_flight, depth.delayed))
        if self.outbox is not None:
            with contextlib.suppress(Exception):
                await self.outbox.measure()
        self._refresh_workload()
        with contextlib.suppress(Exception):
            last = await self.adapters.settlement.last_settled_block()
            if last is not None:
                self.metrics.report(ev.SettledBlock(last))
        paused = await self.pauses.current()
        self.metrics.report(ev.StagesPaused(frozenset(paused), tuple(Stage)))
        with contextlib.suppress(Exception):
            await self.backlog.measure()

    def _refresh_workload(self) -> None:
        """Busy and total slots of the job queues' consumers, and the time they spent busy."""
        names = self.config.queue_names
        kinds: dict[str, tuple[JobType, str]] = {}
        for job_type in self.config.job_types():
            kinds[names.of(PROCESSING_QUEUE[job_type])] = (job_type, "process")
            kinds[names.of(VERIFICATION_QUEUE[job_type])] = (job_type, "verify")
        for consumer in self.consumers:
            kind = kinds.get(consumer.name)
            if kind is None:
                continue
            busy = consumer.busy_seconds - self._busy_seen.get(consumer.name, 0.0)
            if busy > 0:
                self._busy_seen[consumer.name] = consumer.busy_seconds
            self.metrics.report(ev.Workload(*kind, consumer.busy, consumer.concurrency, max(0.0, busy)))
