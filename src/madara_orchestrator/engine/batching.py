"""Batching (SPEC §4.3, §4.4, §5): blocks into SNOS batches and aggregator batches.

One pass, block by block, under one named lease:

- per block it reads the Starknet version, the state update and the bouncer weights (feeder gateway),
  asks the policy (``domain/batching.py``) and adds the block to the open batch or closes it and
  starts a new one;
- before a block is included, two gates may stop the run in front of it (``Hold``): a Starknet version
  neither known nor allowed (the open batches are then closed), and with a reference node
  (``--replay-bounds-rpc-url``) a block hash that differs there. The run saves what it did and raises
  ``BatchingStopped`` (an alert, once per block) or, while the reference cannot tell, ``BatchingWaits``
  (an outage); each later run checks the block again;
- on L2 the aggregator batch is decided first and the SNOS batch follows it in the same pass, so a SNOS
  batch never straddles two aggregator batches and ``max_snos_batches_per_aggregator_batch`` is exact;
- the open aggregator batch's state update is squashed incrementally (SPEC §5.5) and its compressed
  length (§5.6–5.10) kept up to date, both at the cost of the block alone, not of the batch
  (``SquashedDiff``, ``BatchLength``): the sorted update and the compressed felts are only built when
  the batch's files are written; reads at the pre-range block are cached (``CachingBatchRpc``), and
  forgotten once a batch opens after it (no read goes below the open batch's pre-range block).

Durability: a batch's files (``state_update/batch/<i>.json``, ``blob/batch/<i>/<n>.txt``, n from 1) are
written before its record, and every record write is version-guarded. The squashed state of the open
batch is kept in memory only while the stored record is the one this process wrote (same index and
version); otherwise — after a restart, a crash between the file and record writes, or another
instance's write — it is rebuilt from the chain and its files are written again. So a crash at any
point leaves at worst an open batch whose files are ahead of its record, and the next run repairs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.domain.artifacts import aggregator_batch_paths, blob_file
from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    BouncerWeights,
    SnosBatch,
    SnosBatchStatus,
    transition_aggregator_batch,
    transition_snos_batch,
)
from madara_orchestrator.domain.batching import (
    Action,
    AggregatorBlock,
    BatchingStopped,
    BatchLimits,
    Decision,
    Hold,
    HoldKind,
    Reason,
    SnosBlock,
    StarknetVersions,
    StateDiffSize,
    aggregator_batch_full,
    blob_len_fits_alone,
    block_weights,
    check_block_hash,
    decide_aggregator,
    decide_snos,
    expired,
    reference_unavailable,
    snos_batch_full,
)
from madara_orchestrator.domain.chain import blobs_to_hold
from madara_orchestrator.domain.errors import Conflict, InvalidInput, OrchestratorError
from madara_orchestrator.domain.proving import CreateBucket
from madara_orchestrator.engine import buckets
from madara_orchestrator.engine import telemetry as ev
from madara_orchestrator.engine.lease import LeaseTiming, named_lease
from madara_orchestrator.engine.telemetry import Telemetry
from madara_orchestrator.interfaces import (
    AlertSink,
    BatchRpc,
    Clock,
    Database,
    FeederGateway,
    LockService,
    ObjectStore,
    ProverClient,
    ReferenceNode,
    SequencerRpc,
)
from madara_orchestrator.starknet.aliases import BatchLength
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.compression import LengthChange
from madara_orchestrator.starknet.da import parse_starknet_version
from madara_orchestrator.starknet.rpc_cache import CachingBatchRpc
from madara_orchestrator.starknet.squash import DiffChange, SquashedDiff, squash_state_updates
from madara_orchestrator.starknet.state_update import StateUpdate, parse_state_update

log = logging.getLogger("madara_orchestrator.batching")

AGGREGATOR_LOCK = "AggregatorBatchingWorker"
SNOS_LOCK = "SnosBatchingWorker"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchingConfig:
    limits: BatchLimits
    aggregator_batches: bool = True
    """L2: build aggregator batches and SNOS batches inside them; L3: SNOS batches only."""
    min_block_to_process: int = 0
    max_block_to_process: int | None = None
    max_batch_processing_size: int = 10
    """Blocks looked at per run."""
    lock_duration_s: float = 60.0
    """The batching lease; renewed every third of it while a run lasts."""
    create_buckets: bool = False
    """Atlantic: every new aggregator batch opens a prover bucket (``CreateBucket``)."""
    orchestrator_version: str = ORCHESTRATOR_VERSION
    fetch_concurrency: int = 8
    open_batch_files_interval_s: float = 0.0
    """How often the files of a batch that stays open are rewritten (0: at every save). A closing batch
    always writes them; an open batch's files are rebuilt after a restart anyway."""
    starknet_versions: StarknetVersions = field(default_factory=StarknetVersions)
    """The versions batched: the known ones and ``--allow-starknet-versions``."""


def state_diff_size(update: StateUpdate) -> StateDiffSize:
    diff = update.state_diff
    contracts = {s.address for s in diff.storage_diffs}
    contracts.update(n.contract_address for n in diff.nonces)
    contracts.update(d.address for d in diff.deployed_contracts)
    contracts.update(r.contract_address for r in diff.replaced_classes)
    return StateDiffSize(
        modified_contracts=len(contracts),
        storage_updates=sum(len(s.storage_entries) for s in diff.storage_diffs),
        declared_classes=len(diff.declared_classes)
        + len(diff.deprecated_declared_classes)
        + len(diff.migrated_compiled_classes or ()),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockFacts:
    number: int
    starknet_version: str
    weights: BouncerWeights
    """As the feeder gateway reported them."""
    update: StateUpdate | None
    """L2 only (aggregator batches need the state diff)."""
    hold: Hold | None = None
    """A gate stops batching before this block (then nothing else of it is read)."""


OB = TypeVar("OB", AggregatorBatch, SnosBatch)


@dataclass(slots=True)
class _Open(Generic[OB]):
    """A batch held in memory while blocks are added to it."""

    batch: OB
    stored: bool
    """Whether a record with ``batch.version`` exists (else the batch is inserted when saved)."""
    dirty: bool

    def saved(self, batch: OB) -> None:
        """``batch`` as the store wrote it: stored, nothing left to write."""
        self.batch, self.stored, self.dirty = batch, True, False


@dataclass(slots=True)
class _OpenAggregator(_Open[AggregatorBatch]):
    diff: SquashedDiff
    """The squashed state update of the batch's blocks."""
    length: BatchLength
    """Its compressed length (``batch.blob_len`` as the last block was added)."""
    files_at: float | None = None
    """When the batch's files were last written (None: not for its current range)."""


_OpenSnos = _Open[SnosBatch]


@dataclass(slots=True)
class _State:
    agg: _OpenAggregator | None
    next_agg_index: int
    first_agg_block: int
    snos: _OpenSnos | None
    next_snos_index: int
    first_snos_block: int
    snos_children: int
    """SNOS batches in the open aggregator batch so far."""
    progressed: bool = False


@dataclass(slots=True)
class _Cached:
    """The open batch as this process last stored it (record ``index`` at ``version``). ``diff`` and
    ``length`` are the open batch's own objects, which grow in place as blocks join: a run saves what it
    added before it ends, and a run that fails drops this cache, so they never hold blocks beyond a
    record this process wrote when they are used again."""

    index: int
    version: int
    diff: SquashedDiff
    length: BatchLength
    files_at: float | None


@dataclass(slots=True)
class BatchingStats:
    """What batching did in this process (for logs, the devnet display and tests)."""

    runs: int = 0
    blocks: int = 0
    rebuilds: int = 0
    closed: dict[str, int] = field(default_factory=dict)


class Batcher:
    def __init__(
        self,
        *,
        config: BatchingConfig,
        db: Database,
        objects: ObjectStore,
        sequencer: SequencerRpc,
        feeder: FeederGateway,
        rpc: BatchRpc,
        locks: LockService,
        clock: Clock,
        alerts: AlertSink,
        metrics: Telemetry,
        prover: ProverClient | None = None,
        owner: str | None = None,
        reference: ReferenceNode | None = None,
    ) -> None:
        """``reference``: the replay-bounds reference node (SPEC §5.9), if any."""
        problems = config.limits.problems() + config.starknet_versions.problems()
        if problems:
            raise InvalidInput("batching limits: " + "; ".join(problems))
        if config.create_buckets and prover is None:
            raise InvalidInput("batching with prover buckets needs a prover client")
        self.config = config
        self.limits = config.limits
        self.db = db
        self.objects = objects
        self.sequencer = sequencer
        self.feeder = feeder
        self.rpc = rpc
        self.locks = locks
        self.clock = clock
        self.alerts = alerts
        self.metrics = metrics
        self.prover = prover
        self.reference = reference
        self.owner = owner or f"batching-{uuid.uuid4().hex[:12]}"
        self.lock_key = AGGREGATOR_LOCK if config.aggregator_batches else SNOS_LOCK
        self.stats = BatchingStats()
        self.next_expiry: float | None = None
        """When the open batch will have reached its maximum age (a run then closes it)."""
        self._cached: _Cached | None = None
        self._alerted: set[tuple[HoldKind, int]] = set()
        """The holds alerted (kind, block): each once, until its block is batched."""
        self._files_written_at: float | None = None
        self._running = asyncio.Lock()
        self.orphaned_buckets = (
            buckets.OrphanedBuckets(db=db, objects=objects, prover=prover)
            if config.create_buckets and prover is not None
            else None
        )
        self._sweep_due = True
        """Sweep the orphaned buckets after the run: the first run, and every run that stored a new batch."""

    # -- the lease ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lease(self) -> AsyncIterator[bool]:
        """Hold the batching lease for the run (engine/lease.py: renewed, and the run is cancelled with
        ``LeaseLost`` if it is lost). One run at a time in this process too: the lease's owner is the
        instance, which may take back at once what an earlier run of it held. Work under it that fails (the
        lease lost included) forgets the cached open batch, which may be ahead of what was stored."""
        if self._running.locked():
            yield False
            return
        async with self._running:
            timing = LeaseTiming(duration_s=self.config.lock_duration_s)
            try:
                async with named_lease(self.locks, self.lock_key, self.owner, timing=timing, clock=self.clock) as held:
                    yield held
            except BatchingStopped:
                raise  # raised after the run's work was saved: what is cached is what is stored
            except BaseException:
                self._cached = None
                raise

    # -- entry points ------------------------------------------------------------------------------

    async def run(self) -> bool:
        """One batching run; True when a batch was created, grown or closed."""
        async with self._lease() as held:
            if not held:
                return False
            started = self.clock.now()
            try:
                return await self._run()
            finally:
                self.stats.runs += 1
                self.metrics.report(ev.BatchingRun(self.clock.now() - started))

    async def close_open_batches(self) -> tuple[int, int]:
        """Close every open batch now (admin, the devnet at its end); returns (aggregator, SNOS) closed."""
        async with self._lease() as held:
            if held:
                state = await self._load()
                closed = (int(state.agg is not None), int(state.snos is not None))
                if state.agg is not None:
                    await self._close_aggregator(state, Reason.BATCH_CLOSED, "closed on request")
                if state.snos is not None:
                    await self._close_snos(state, Reason.BATCH_CLOSED)
                self.next_expiry = None
                return closed
        raise Conflict(f"a batching run holds {self.lock_key}; try again in a moment")

    # -- a run -------------------------------------------------------------------------------------

    async def _run(self) -> bool:
        state = await self._load()
        await self._close_orphaned_snos(state)
        first = min(state.first_agg_block, state.first_snos_block) if self.config.aggregator_batches else None
        first = state.first_snos_block if first is None else first
        head = await self.sequencer.block_number()
        last = head if self.config.max_block_to_process is None else min(head, self.config.max_block_to_process)
        last = min(last, first + self.config.max_batch_processing_size - 1)
        hold: Hold | None = None
        try:
            async with contextlib.aclosing(self._fetch(range(first, last + 1), gated=True)) as blocks:
                async for facts in blocks:
                    if facts.hold is not None:
                        hold = facts.hold
                        break
                    await self._include(state, facts)
                    self._passed(facts.number)
                    self.stats.blocks += 1
            if hold is not None and hold.closes_open_batches:
                await self._close_before_hold(state, hold)
            await self._close_expired(state)
        finally:
            await self._save(state)
        await self._sweep_orphaned_buckets()
        self._set_next_expiry(state)
        if hold is not None:
            await self._report(hold)
            raise hold.error(progressed=state.progressed)
        return state.progressed

    # -- gates (SPEC §5.3 versions, §5.9 replay bounds) --------------------------------------------

    async def _close_before_hold(self, state: _State, hold: Hold) -> None:
        """Close the open batches, so their blocks go on to be proven while the operator decides."""
        if state.agg is not None:
            await self._close_aggregator(state, Reason.UNKNOWN_VERSION, f"block {hold.block}: {hold.version!r}")
        if state.snos is not None:
            await self._close_snos(state, Reason.UNKNOWN_VERSION)

    async def _report(self, hold: Hold) -> None:
        """A hold that needs the operator is alerted once per block (not every run); a wait is an
        outage, which the trigger's health reports."""
        key = (hold.kind, hold.block)
        if hold.waits or key in self._alerted:
            return
        self._alerted.add(key)
        log.error("%s", hold.describe())
        subject, message = hold.alert()
        await self.alerts.send(subject, message)

    def _passed(self, block: int) -> None:
        if not self._alerted:
            return
        cleared = {key for key in self._alerted if key[1] <= block}
        if cleared:
            self._alerted -= cleared
            log.info("block %d passes the batching gates now; batching goes on", block)

    async def _reference_header(self, number: int) -> object:
        """The reference node's header of block ``number``, or the hold when it cannot give it."""
        assert self.reference is not None
        try:
            return await self.reference.get_block_with_tx_hashes(number)
        except Exception as exc:  # any failure of the reference: waited out (SPEC §5.9 fails closed)
            first_line = next(iter(str(exc).splitlines()), "")
            return reference_unavailable(
                number, f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
            )

    async def _sweep_orphaned_buckets(self) -> None:
        """Close the prover buckets a crash left open (engine/buckets.py); a failure waits for the next run."""
        if self.orphaned_buckets is None or not self._sweep_due:
            return
        try:
            await self.orphaned_buckets.sweep()
        except OrchestratorError as exc:
            log.warning("orphaned prover buckets not swept this run (%s); the next run tries again", exc)
            return
        self._sweep_due = False

    async def _close_orphaned_snos(self, state: _State) -> None:
        """An open SNOS batch that already reaches the end of its closed aggregator batch (a crash came
        between the two closes) is closed now, so the Aggregator job need not wait for a next block."""
        open_snos = state.snos
        if not self.config.aggregator_batches or open_snos is None:
            return
        index = open_snos.batch.aggregator_batch_index
        if index is None or (state.agg is not None and state.agg.batch.index == index):
            return
        parent = await self.db.get_aggregator_batch(index)
        if parent is not None and parent.is_closed and open_snos.batch.end_block >= parent.end_block:
            await self._close_snos(state, Reason.AGGREGATOR_BATCH)

    def _set_next_expiry(self, state: _State) -> None:
        created = [s.batch.created_at for s in (state.agg, state.snos) if s is not None]
        self.next_expiry = min(created) + self.limits.max_batch_time_s if created else None

    async def _close_expired(self, state: _State) -> None:
        """An open batch past its age closes now, not only when a next block comes (SPEC §5.3 is lazy)."""
        now = self.clock.now()
        if state.agg is not None and expired(state.agg.batch.created_at, now, self.limits):
            await self._close_aggregator(state, Reason.MAX_AGE, "no new block before the maximum age")
        if state.snos is not None and expired(state.snos.batch.created_at, now, self.limits):
            await self._close_snos(state, Reason.MAX_AGE)

    # -- loading -----------------------------------------------------------------------------------

    async def _load(self) -> _State:
        min_block = self.config.min_block_to_process
        latest_snos = await self.db.latest_snos_batch()
        snos: _OpenSnos | None = None
        if latest_snos is not None and latest_snos.status == SnosBatchStatus.OPEN:
            snos = _OpenSnos(batch=latest_snos, stored=True, dirty=False)
        state = _State(
            agg=None,
            next_agg_index=1,
            first_agg_block=min_block,
            snos=snos,
            next_snos_index=latest_snos.index + 1 if latest_snos else 1,
            first_snos_block=max(min_block, latest_snos.end_block + 1) if latest_snos else min_block,
            snos_children=0,
        )
        if not self.config.aggregator_batches:
            return state
        latest = await self.db.latest_aggregator_batch()
        if latest is not None:
            state.next_agg_index = latest.index + 1
            state.first_agg_block = max(min_block, latest.end_block + 1)
            if latest.status == AggregatorBatchStatus.OPEN:
                state.agg = await self._open_aggregator(latest)
                state.snos_children = await self.db.count_snos_batches(aggregator_index=latest.index)
        return state

    async def _open_aggregator(self, batch: AggregatorBatch) -> _OpenAggregator:
        cached = self._cached
        if cached is not None and cached.index == batch.index and cached.version == batch.version:
            return _OpenAggregator(
                batch=batch,
                diff=cached.diff,
                length=cached.length,
                stored=True,
                dirty=False,
                files_at=cached.files_at,
            )
        # Not what this process last wrote: rebuild from the chain and write the files again.
        blocks = range(batch.start_block, batch.end_block + 1)
        updates = [f.update async for f in self._fetch(blocks, need_weights=False, gated=False) if f.update is not None]
        if len(updates) != len(blocks):
            raise InvalidInput(
                f"open aggregator batch {batch.index} covers blocks {batch.start_block}-{batch.end_block}, "
                f"but the sequencer serves only {len(updates)} of them"
            )
        pre_range = _pre_range(batch.start_block)
        self._reads_from(pre_range)
        squashed = await squash_state_updates(updates, pre_range_block=pre_range, rpc=self.rpc)
        diff = SquashedDiff(pre_range_block=pre_range)
        length = BatchLength(starknet_version=batch.starknet_version, rpc=self.rpc)
        blob_len = await self._grow(diff, length, diff.load(squashed), reference_block=batch.end_block)
        self.stats.rebuilds += 1
        log.info(
            "rebuilt open aggregator batch %d (blocks %d-%d) from the chain: %d felts",
            batch.index,
            batch.start_block,
            batch.end_block,
            blob_len,
        )
        rebuilt = dataclasses.replace(batch, blob_len=blob_len)
        return _OpenAggregator(batch=rebuilt, diff=diff, length=length, stored=True, dirty=True)

    def _reads_from(self, pre_range: int | None) -> None:
        """An aggregator batch opens with ``pre_range`` its pre-range block: its reads are at that block or
        later, and no earlier batch is read again, so the cache forgets the reads below it."""
        if pre_range is not None and isinstance(self.rpc, CachingBatchRpc):
            self.rpc.forget_before(pre_range)

    @staticmethod
    async def _grow(diff: SquashedDiff, length: BatchLength, change: DiffChange, *, reference_block: int) -> int:
        """Apply ``change`` to a batch's squashed diff and its length; returns the new length."""
        proposal = await length.propose(diff, change, reference_block=reference_block)
        diff.apply(change)
        length.apply(proposal)
        return proposal.length

    # -- fetching ----------------------------------------------------------------------------------

    async def _fetch(
        self, blocks: range, *, need_weights: bool = True, gated: bool = False
    ) -> AsyncGenerator[BlockFacts, None]:
        """The facts of each block in order, fetched a few blocks ahead; stops at a block not final yet.
        ``gated``: blocks to be batched, which pass the version gate and the replay-bounds check first."""
        step = max(1, self.config.fetch_concurrency)
        for offset in range(0, len(blocks), step):
            chunk = blocks[offset : offset + step]
            results = await asyncio.gather(*(self._facts(b, need_weights, gated) for b in chunk))
            for facts in results:
                if facts is None:
                    return
                yield facts

    async def _facts(self, number: int, need_weights: bool, gated: bool) -> BlockFacts | None:
        reference: object = None
        if gated and self.reference is not None:
            header, reference = await asyncio.gather(
                self.sequencer.get_block_with_tx_hashes(number), self._reference_header(number)
            )
        else:
            header = await self.sequencer.get_block_with_tx_hashes(number)
        if not isinstance(header, dict):
            raise InvalidInput(f"block {number}: the sequencer answered {type(header).__name__}, not a block")
        if not header.get("block_hash") or str(header.get("status", "")).upper() in ("PENDING", "PRE_CONFIRMED"):
            return None
        version = str(header.get("starknet_version", ""))
        if gated:
            hold = self.config.starknet_versions.check(number, version)
            if hold is None and self.reference is not None:
                hold = reference if isinstance(reference, Hold) else check_block_hash(number, header, reference)
            if hold is not None:
                return BlockFacts(
                    number=number, starknet_version=version, weights=BouncerWeights(), update=None, hold=hold
                )
        else:
            parse_starknet_version(version)
        update: StateUpdate | None = None
        if self.config.aggregator_batches:
            update = parse_state_update(
                await self.sequencer.get_state_update(number), f"state update of block {number}"
            )
        weights = await self.feeder.get_block_bouncer_weights(number) if need_weights else BouncerWeights()
        return BlockFacts(number=number, starknet_version=version, weights=weights, update=update)

    # -- including a block -------------------------------------------------------------------------

    async def _include(self, state: _State, facts: BlockFacts) -> None:
        weights = block_weights(facts.weights, self.limits)
        close_after: Decision | None = None
        if self.config.aggregator_batches and facts.number >= state.first_agg_block:
            close_after = await self._include_aggregator(state, facts, weights)
        if facts.number >= state.first_snos_block:
            await self._include_snos(state, facts, weights)
        if close_after is not None:
            await self._close_aggregator(state, close_after.reason, close_after.detail)
        # A batch with its maximum number of blocks can take no more: close it now, not at the next block.
        if state.agg is not None and aggregator_batch_full(state.agg.batch, self.limits):
            await self._close_aggregator(state, Reason.MAX_BLOCKS, "full")
        if state.snos is not None and snos_batch_full(state.snos.batch, self.limits):
            await self._close_snos(
                state, Reason.FIXED_SIZE_REACHED if self.limits.fixed_blocks_per_snos_batch else Reason.MAX_BLOCKS
            )

    async def _include_aggregator(self, state: _State, facts: BlockFacts, weights: BouncerWeights) -> Decision | None:
        """Returns the decision when the block's new batch must close right after it (oversized)."""
        update = facts.update
        assert update is not None
        now = self.clock.now()
        block = AggregatorBlock(
            number=facts.number,
            starknet_version=facts.starknet_version,
            weights=weights,
            size=state_diff_size(update),
        )
        open_agg = state.agg
        trial = decide_snos(
            state.snos.batch if state.snos else None,
            SnosBlock(
                number=facts.number,
                starknet_version=facts.starknet_version,
                weights=weights,
                aggregator_batch_index=open_agg.batch.index if open_agg else None,
            ),
            self.limits,
            now=now,
            orchestrator_version=self.config.orchestrator_version,
        )
        ask = functools.partial(
            decide_aggregator,
            open_agg.batch if open_agg else None,
            block,
            self.limits,
            now=now,
            orchestrator_version=self.config.orchestrator_version,
            snos_batches=state.snos_children,
            starts_snos_batch=trial.action != Action.ADD,
        )
        decision = ask()
        # The candidate (the batch with the block) is computed without changing the batch: a block that
        # does not join leaves it as it was.
        change: DiffChange | None = None
        proposal: LengthChange | None = None
        blob_len = 0
        if decision.action == Action.NEEDS_BLOB_LEN:
            assert open_agg is not None
            change = await open_agg.diff.change_for(update, self.rpc)
            proposal = await open_agg.length.propose(open_agg.diff, change, reference_block=max(facts.number - 1, 0))
            blob_len = proposal.length
            decision = ask(blob_len_with_block=blob_len)
        if decision.action == Action.ADD:
            assert open_agg is not None and change is not None and proposal is not None
            open_agg.diff.apply(change)
            open_agg.length.apply(proposal)
            open_agg.batch = dataclasses.replace(
                open_agg.batch,
                end_block=facts.number,
                blob_len=blob_len,
                aggregator_input_size_upper_bound=decision.input_size_bound,
                builtin_weights=decision.weights,
            )
            open_agg.dirty, open_agg.files_at = True, None
            state.progressed = True
            return None
        if decision.action == Action.CLOSE_AND_START and open_agg is not None:
            await self._close_aggregator(state, decision.reason, decision.detail)
        return await self._start_aggregator(state, facts, decision, now)

    async def _start_aggregator(
        self, state: _State, facts: BlockFacts, decision: Decision, now: float
    ) -> Decision | None:
        assert facts.update is not None
        self._reads_from(_pre_range(facts.number))
        diff = SquashedDiff(pre_range_block=_pre_range(facts.number))
        length = BatchLength(starknet_version=facts.starknet_version, rpc=self.rpc)
        change = await diff.change_for(facts.update, self.rpc)
        blob_len = await self._grow(diff, length, change, reference_block=max(facts.number - 1, 0))
        oversized = decision.oversized
        detail = decision.detail
        if not blob_len_fits_alone(blob_len, self.limits):
            oversized = True
            detail = (detail + "; " if detail else "") + (
                f"block {facts.number} alone compresses to {blob_len} felts > {self.limits.max_blob_size}"
            )
        bucket_id: str | None = None
        if self.config.create_buckets:
            assert self.prover is not None
            bucket_id = await self.prover.submit_task(CreateBucket())
            await buckets.mark(self.objects, state.next_agg_index, bucket_id)
        index = state.next_agg_index
        state.next_agg_index += 1
        state_update_path, blob_path = aggregator_batch_paths(index)
        batch = AggregatorBatch.opened(
            index=index,
            block=facts.number,
            now=now,
            starknet_version=facts.starknet_version,
            orchestrator_version=self.config.orchestrator_version,
            bucket_id=bucket_id,
            squashed_state_updates_path=state_update_path,
            blob_path=blob_path,
            blob_len=blob_len,
            aggregator_input_size_upper_bound=decision.input_size_bound,
            builtin_weights=decision.weights,
        )
        state.agg = _OpenAggregator(batch=batch, diff=diff, length=length, stored=False, dirty=True)
        state.snos_children = 0
        state.progressed = True
        self.metrics.report(ev.BatchCreated("aggregator"))
        log.info(
            "aggregator batch %d opened at block %d%s",
            index,
            facts.number,
            f" with prover bucket {bucket_id}" if bucket_id else "",
        )
        if oversized:
            await self.alerts.send(
                f"Block {facts.number} is too big for a batch",
                f"Block {facts.number} is over a batching limit on its own ({detail}). It is given aggregator "
                f"batch {index} alone, closed at once, so later blocks are not held up; its proof or "
                "settlement may fail and need an operator.",
            )
            return dataclasses.replace(decision, detail=detail, oversized=True)
        return None

    async def _include_snos(self, state: _State, facts: BlockFacts, weights: BouncerWeights) -> None:
        now = self.clock.now()
        aggregator_index: int | None = None
        if self.config.aggregator_batches:
            if state.agg is not None and state.agg.batch.start_block <= facts.number <= state.agg.batch.end_block:
                aggregator_index = state.agg.batch.index
            else:
                found = await self.db.aggregator_batch_for_block(facts.number)
                if found is None:
                    raise InvalidInput(f"block {facts.number} has no aggregator batch; SNOS batching cannot place it")
                aggregator_index = found.index
        block = SnosBlock(
            number=facts.number,
            starknet_version=facts.starknet_version,
            weights=weights,
            aggregator_batch_index=aggregator_index,
        )
        open_snos = state.snos
        decision = decide_snos(
            open_snos.batch if open_snos else None,
            block,
            self.limits,
            now=now,
            orchestrator_version=self.config.orchestrator_version,
        )
        state.progressed = True
        if decision.action == Action.ADD:
            assert open_snos is not None
            open_snos.batch = dataclasses.replace(
                open_snos.batch, end_block=facts.number, builtin_weights=decision.weights
            )
            open_snos.dirty = True
            return
        if decision.action == Action.CLOSE_AND_START and open_snos is not None:
            await self._close_snos(state, decision.reason)
        batch = SnosBatch.opened(
            index=state.next_snos_index,
            block=facts.number,
            now=now,
            starknet_version=facts.starknet_version,
            orchestrator_version=self.config.orchestrator_version,
            aggregator_batch_index=aggregator_index,
            builtin_weights=decision.weights,
        )
        state.next_snos_index += 1
        state.snos = _OpenSnos(batch=batch, stored=False, dirty=True)
        if state.agg is not None and aggregator_index == state.agg.batch.index:
            state.snos_children += 1
        self.metrics.report(ev.BatchCreated("snos"))

    # -- closing and saving ------------------------------------------------------------------------

    async def _close_aggregator(self, state: _State, reason: Reason, detail: str) -> None:
        """Close the open aggregator batch (and its open SNOS batch, which cannot outlive it)."""
        open_agg = state.agg
        assert open_agg is not None
        now = self.clock.now()
        open_agg.batch = transition_aggregator_batch(open_agg.batch, AggregatorBatchStatus.CLOSED, now=now)
        open_agg.dirty = True
        await self._save_aggregator(open_agg)
        state.agg = None
        state.progressed = True
        batch = open_agg.batch
        self._record_close("aggregator", reason, batch.num_blocks, batch.blob_len, index=batch.index, detail=detail)
        log.info(
            "aggregator batch %d closed: blocks %d-%d (%d), %d felts in %d blob(s); %s%s",
            batch.index,
            batch.start_block,
            batch.end_block,
            batch.num_blocks,
            batch.blob_len,
            blobs_to_hold(batch.blob_len),
            reason,
            f" ({detail})" if detail else "",
        )
        if state.snos is not None and state.snos.batch.aggregator_batch_index == batch.index:
            await self._close_snos(state, Reason.AGGREGATOR_BATCH)

    async def _close_snos(self, state: _State, reason: Reason) -> None:
        open_snos = state.snos
        assert open_snos is not None
        open_snos.batch = transition_snos_batch(open_snos.batch, SnosBatchStatus.CLOSED, now=self.clock.now())
        open_snos.dirty = True
        # The aggregator batch holding it is stored first, so no SNOS record ever points past it.
        if state.agg is not None and (state.agg.dirty or not state.agg.stored):
            await self._save_aggregator(state.agg)
        await self._save_snos(open_snos)
        state.snos = None
        state.progressed = True
        batch = open_snos.batch
        self._record_close("snos", reason, batch.num_blocks, index=batch.index)
        log.info(
            "SNOS batch %d closed: blocks %d-%d (%d) of aggregator batch %s; %s",
            batch.index,
            batch.start_block,
            batch.end_block,
            batch.num_blocks,
            batch.aggregator_batch_index,
            reason,
        )

    def _record_close(
        self, kind: str, reason: Reason, blocks: int, felts: int | None = None, *, index: int, detail: str = ""
    ) -> None:
        key = f"{kind}:{reason.name.lower()}"
        self.stats.closed[key] = self.stats.closed.get(key, 0) + 1
        self.metrics.report(ev.BatchClosed(kind, reason.name.lower(), blocks, felts, index=index, detail=detail))

    async def _save(self, state: _State) -> None:
        """Persist what is open (aggregator first: a SNOS batch never points at a batch not stored)."""
        if state.agg is not None and state.agg.dirty:
            await self._save_aggregator(state.agg)
        if state.snos is not None and state.snos.dirty:
            await self._save_snos(state.snos)

    async def _save_aggregator(self, open_agg: _OpenAggregator) -> None:
        """Files first, then the record (version-guarded). The files of a batch that stays open are
        refreshed at most every ``open_batch_files_interval_s``; a closing batch always writes them."""
        batch = open_agg.batch
        now = self.clock.now()
        if open_agg.dirty:
            closing = batch.status != AggregatorBatchStatus.OPEN
            due = open_agg.files_at is None and (
                closing
                or not open_agg.stored
                or self._files_written_at is None
                or now - self._files_written_at >= self.config.open_batch_files_interval_s
            )
            if due:
                # compress_state_update of the squashed update, and its JSON, from what is kept in memory.
                compressed = await open_agg.length.compressed(open_agg.diff, reference_block=batch.end_block)
                batch = dataclasses.replace(batch, blob_len=len(compressed))
                await self._write_files(batch, open_agg.diff.to_json(), compressed)
                open_agg.files_at = self._files_written_at = now
            if open_agg.stored:
                batch = await self.db.update_aggregator_batch(batch, now=now)
            else:
                batch = await self.db.insert_aggregator_batch(batch)
                if batch.bucket_id:
                    await buckets.settle(self.objects, batch.index, batch.bucket_id)
                self._sweep_due = True
            open_agg.saved(batch)
            self.metrics.report(ev.LatestBatch("aggregator", batch.index))
        if batch.status == AggregatorBatchStatus.OPEN:
            self._cached = _Cached(
                index=batch.index,
                version=batch.version,
                diff=open_agg.diff,
                length=open_agg.length,
                files_at=open_agg.files_at,
            )
        elif self._cached is not None and self._cached.index == batch.index:
            self._cached = None

    async def _save_snos(self, open_snos: _OpenSnos) -> None:
        if not open_snos.dirty:
            return
        if open_snos.stored:
            batch = await self.db.update_snos_batch(open_snos.batch, now=self.clock.now())
        else:
            batch = await self.db.insert_snos_batch(open_snos.batch)
        open_snos.saved(batch)
        self.metrics.report(ev.LatestBatch("snos", batch.index))

    async def _write_files(self, batch: AggregatorBatch, squashed_json: str, compressed: Sequence[int]) -> None:
        """The squashed state update (its JSON text) and the blobs of the compressed diff (SPEC §5.4 "saving")."""
        blobs = await asyncio.to_thread(felts_to_blobs, compressed)
        await self.objects.put(batch.squashed_state_updates_path, squashed_json.encode())
        for i, blob in enumerate(blobs, start=1):
            await self.objects.put(blob_file(batch.blob_path, i), blob)
        wanted = {blob_file(batch.blob_path, i) for i in range(1, len(blobs) + 1)}
        for key in await self.objects.list(batch.blob_path + "/"):
            if key not in wanted:
                await self.objects.delete(key)


def _pre_range(start_block: int) -> int | None:
    """The block before a range, whose state squashing compares against (none for a range from 0)."""
    return start_block - 1 if start_block > 0 else None
