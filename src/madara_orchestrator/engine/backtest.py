"""The batching backtest: a chain's blocks ``first..last`` through the batching ``run`` does, with nothing kept.

It is not a second implementation of batching: the ``Batcher`` of engine/batching.py runs over the blocks, so
the policy (domain/batching.py), the squashing, the compression and the blob encoding are the very code of
``run``. What differs is around it:

- its stores are scratch space the caller gives (cli/backtest.py: in this process's memory, dropped at the end);
  a closed batch's blob files are counted and deleted at once, so memory stays flat over a long range;
- one block per batching run, with the clock at the block's own timestamp: the time-based close
  (``--max-batch-time-seconds``) reckons with the chain's time, not with when the backtest runs. ``run``
  reckons with its wall clock, so on a chain it keeps pace with the two agree to the batching delay;
- the node's blocks, state updates and bouncer weights are read a few blocks ahead (``Lookahead``);
- the batch still open after ``last`` is closed, as "open at the end of the range".

``settlement_fees`` prices the batches as Ethereum blob transactions: one settlement a batch, each at the L1
prices given, or else at those recorded in the header of its last block (``l1_gas_price.price_in_wei`` as the
base fee, ``l1_data_gas_price.price_in_wei`` as the blob base fee: what the sequencer saw on L1 when it made the
block, JSON-RPC v0.7 on). A header without them leaves its batch unpriced, never guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from madara_orchestrator.domain.batches import AggregatorBatchStatus, BouncerWeights
from madara_orchestrator.domain.batching import BatchingStopped, BatchLimits, Reason, StarknetVersions
from madara_orchestrator.domain.chain import FELTS_PER_BLOB, GAS_PER_BLOB
from madara_orchestrator.engine import telemetry as ev
from madara_orchestrator.engine.batching import Batcher, BatchingConfig
from madara_orchestrator.interfaces import (
    BatchRpc,
    Database,
    FeederGateway,
    LockService,
    ObjectStore,
    SequencerRpc,
)
from madara_orchestrator.starknet.rpc_cache import CachingBatchRpc

T = TypeVar("T")

RANGE_END = "range_end"
"""``BacktestBatch.closed_by`` of the batch still open after the range's last block."""


@dataclass(frozen=True, slots=True, kw_only=True)
class L1Prices:
    """A block header's record of the L1 prices, in wei per gas."""

    base_fee_wei: int
    """``l1_gas_price.price_in_wei``."""
    blob_base_fee_wei: int
    """``l1_data_gas_price.price_in_wei``."""

    def to_json(self) -> dict[str, int]:
        return {"base_fee_wei": self.base_fee_wei, "blob_base_fee_wei": self.blob_base_fee_wei}


def _wei(header: dict[str, Any], name: str) -> int | None:
    price = header.get(name)
    value = price.get("price_in_wei") if isinstance(price, dict) else None
    if not isinstance(value, str) or not value.lower().startswith("0x"):
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def recorded_l1_prices(header: dict[str, Any]) -> L1Prices | None:
    """The L1 prices a block header records (felts, hex strings), or None when it lacks either."""
    base, blob = _wei(header, "l1_gas_price"), _wei(header, "l1_data_gas_price")
    return None if base is None or blob is None else L1Prices(base_fee_wei=base, blob_base_fee_wei=blob)


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestBatch:
    """One aggregator batch (one settlement) as ``run`` would make it."""

    index: int
    start_block: int
    end_block: int
    felts: int
    """Felts of the batch's compressed state diff (what its blobs carry)."""
    blobs: int
    """Blob files written for it, as ``run`` writes them."""
    closed_by: str
    """The policy's rule (``Reason`` name, lower case), or ``range_end``."""
    reason: str
    """The rule in words."""
    detail: str
    first_timestamp: int
    last_timestamp: int
    l1_prices: L1Prices | None = None
    """The L1 prices recorded in the header of its last block (None: the header has none)."""

    @property
    def num_blocks(self) -> int:
        return self.end_block - self.start_block + 1

    @property
    def fill(self) -> float:
        """Felts used over the felts of the blobs paid for."""
        return self.felts / (self.blobs * FELTS_PER_BLOB) if self.blobs else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_block": self.start_block,
            "end_block": self.end_block,
            "num_blocks": self.num_blocks,
            "blobs": self.blobs,
            "felts": self.felts,
            "fill": round(self.fill, 4),
            "closed_by": self.closed_by,
            "reason": self.reason,
            "detail": self.detail,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "recorded_l1_prices": self.l1_prices.to_json() if self.l1_prices else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    first_block: int
    last_block: int
    """The last block batched (``first_block - 1`` when none was)."""
    batches: tuple[BacktestBatch, ...]
    stopped: str | None = None
    """Why batching stopped before the range's end (a gate, or a block not final), if it did."""
    alerts: tuple[str, ...] = ()
    """What ``run`` would have alerted about (a block too big for any batch), one line each."""

    @property
    def blocks(self) -> int:
        return sum(b.num_blocks for b in self.batches)

    @property
    def blobs(self) -> int:
        return sum(b.blobs for b in self.batches)

    @property
    def felts(self) -> int:
        return sum(b.felts for b in self.batches)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fees:
    """What a settlement is priced at, in wei per gas. A price left None is each batch's recorded one."""

    base_fee_wei: int | None = None
    """None: the base fee recorded in the header of the batch's last block."""
    blob_base_fee_wei: int | None = None
    """None: the blob base fee recorded in the header of the batch's last block."""
    priority_fee_wei: int = 0
    settlement_gas: int
    """Execution gas of one ``updateStateKzgDA`` (blobs aside)."""

    def prices(self, batch: BacktestBatch) -> L1Prices | None:
        """The prices ``batch`` is settled at: the given ones, else its recorded ones (None: not recorded)."""
        base, blob = self.base_fee_wei, self.blob_base_fee_wei
        if recorded := batch.l1_prices:
            base = recorded.base_fee_wei if base is None else base
            blob = recorded.blob_base_fee_wei if blob is None else blob
        return None if base is None or blob is None else L1Prices(base_fee_wei=base, blob_base_fee_wei=blob)

    def settlement(self, batch: BacktestBatch) -> FeeTotals | None:
        """What settling ``batch`` costs (None: a price it needs is neither given nor recorded)."""
        prices = self.prices(batch)
        if prices is None:
            return None
        return FeeTotals(
            execution_wei=self.settlement_gas * (prices.base_fee_wei + self.priority_fee_wei),
            blob_wei=batch.blobs * GAS_PER_BLOB * prices.blob_base_fee_wei,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeTotals:
    execution_wei: int
    blob_wei: int

    @property
    def total_wei(self) -> int:
        return self.execution_wei + self.blob_wei


def unpriced(batches: Sequence[BacktestBatch], fees: Fees) -> list[BacktestBatch]:
    """The batches ``fees`` cannot price: a price not given and not recorded in the last block's header."""
    return [b for b in batches if fees.prices(b) is None]


def settlement_fees(batches: Sequence[BacktestBatch], fees: Fees) -> FeeTotals | None:
    """What settling ``batches`` costs: one blob transaction per batch, each at its prices (``Fees.prices``),
    summed; None when any batch cannot be priced (see ``unpriced``)."""
    each = [fees.settlement(b) for b in batches]
    if any(f is None for f in each):
        return None
    return FeeTotals(execution_wei=sum(f.execution_wei for f in each if f), blob_wei=sum(f.blob_wei for f in each if f))


# --------------------------------------------------------------------------------------------------
# What the Batcher is given


class BlockClock:
    """Implements ``Clock``: the timestamp of the block being batched."""

    def __init__(self) -> None:
        self.at = 0.0

    def now(self) -> float:
        return self.at


class _Closes:
    """Implements ``Telemetry``: keeps the aggregator batches' closes (rule and figures), drops the rest."""

    tracer = None

    def __init__(self) -> None:
        self.closed: dict[int, ev.BatchClosed] = {}

    def report(self, event: ev.Event) -> None:
        if isinstance(event, ev.BatchClosed) and event.kind == "aggregator" and event.index is not None:
            self.closed[event.index] = event


class _Alerts:
    """Implements ``AlertSink``: the subjects, for the report."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def send(self, subject: str, message: str) -> None:
        self.subjects.append(subject)


@dataclass(slots=True)
class Lookahead:
    """Implements ``SequencerRpc`` and ``FeederGateway`` for the Batcher: the node's answers, asked for a few
    blocks ahead of the one being batched; ``head`` is the block the current batching run may go to."""

    node: SequencerRpc
    feeder: FeederGateway
    ahead: int = 8
    head: int = -1
    _pending: dict[tuple[str, int], asyncio.Task[Any]] = field(default_factory=dict)

    def _ask(self, kind: str, number: int) -> asyncio.Task[Any]:
        key = (kind, number)
        task = self._pending.get(key)
        if task is None:
            call: Callable[[int], Awaitable[Any]] = {
                "header": self.node.get_block_with_tx_hashes,
                "update": self.node.get_state_update,
                "weights": self.feeder.get_block_bouncer_weights,
            }[kind]
            task = self._pending[key] = asyncio.ensure_future(call(number))
        return task

    def read_ahead(self, first: int, last: int) -> None:
        for number in range(first, last + 1):
            for kind in ("header", "update", "weights"):
                self._ask(kind, number)

    def forget_before(self, number: int) -> None:
        for key in [k for k in self._pending if k[1] < number]:
            self._drop(self._pending.pop(key))

    async def close(self) -> None:
        tasks = list(self._pending.values())
        self._pending.clear()
        for task in tasks:
            self._drop(task)
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    @staticmethod
    def _drop(task: asyncio.Task[Any]) -> None:
        if task.done():
            if not task.cancelled():
                task.exception()  # retrieved: a failure read ahead and never needed is no error
        else:
            task.cancel()

    async def block_number(self) -> int:
        return self.head

    async def chain_id(self) -> str:
        return await self.node.chain_id()

    async def get_block_with_tx_hashes(self, block_number: int) -> dict[str, Any]:
        return await asyncio.shield(self._ask("header", block_number))

    async def get_state_update(self, block_number: int) -> dict[str, Any]:
        return await asyncio.shield(self._ask("update", block_number))

    async def get_nonce(self, block_number: int, address: int) -> int:
        return await self.node.get_nonce(block_number, address)

    async def get_block_bouncer_weights(self, block_number: int) -> BouncerWeights:
        return await asyncio.shield(self._ask("weights", block_number))


@dataclass(frozen=True, slots=True, kw_only=True)
class Scratch:
    """Where the Batcher keeps its batches while the backtest runs: nothing the caller keeps."""

    db: Database
    objects: ObjectStore
    locks: LockService


def _not_final(header: object) -> bool:
    return (
        not isinstance(header, dict)
        or not header.get("block_hash")
        or str(header.get("status", "")).upper() in ("PENDING", "PRE_CONFIRMED")
    )


# --------------------------------------------------------------------------------------------------
# The backtest


@dataclass(slots=True)
class _Run:
    batcher: Batcher
    scratch: Scratch
    closes: _Closes
    timestamps: dict[int, int] = field(default_factory=dict)
    prices: dict[int, L1Prices | None] = field(default_factory=dict)
    batches: dict[int, BacktestBatch] = field(default_factory=dict)

    async def collect_closed(self, *, range_end: int | None = None) -> None:
        """Record each batch closed since the last call, then drop its files (counted first)."""
        for index in sorted(set(self.closes.closed) - set(self.batches)):
            event = self.closes.closed[index]
            batch = await self.scratch.db.get_aggregator_batch(index)
            assert batch is not None
            files = await self.scratch.objects.list(batch.blob_path + "/")
            for key in [*files, batch.squashed_state_updates_path]:
                await self.scratch.objects.delete(key)
            at_end = index == range_end
            self.batches[index] = BacktestBatch(
                index=index,
                start_block=batch.start_block,
                end_block=batch.end_block,
                felts=batch.blob_len,
                blobs=len(files),
                closed_by=RANGE_END if at_end else event.reason,
                reason="open at the end of the range" if at_end else Reason[event.reason.upper()].value,
                detail="" if at_end else event.detail,
                first_timestamp=self.timestamps.get(batch.start_block, 0),
                last_timestamp=self.timestamps.get(batch.end_block, 0),
                l1_prices=self.prices.get(batch.end_block),
            )


async def backtest(
    *,
    node: SequencerRpc,
    feeder: FeederGateway,
    rpc: BatchRpc,
    scratch: Scratch,
    limits: BatchLimits,
    first: int,
    last: int,
    versions: StarknetVersions | None = None,
    ahead: int = 8,
    on_block: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Blocks ``first..last`` of ``node`` batched by ``run``'s Batcher with ``limits`` (see the module's doc).
    ``on_block(n)``: called once block ``n`` is batched (progress)."""
    clock = BlockClock()
    closes = _Closes()
    alerts = _Alerts()
    reads = Lookahead(node=node, feeder=feeder, ahead=ahead)
    config = BatchingConfig(
        limits=limits,
        min_block_to_process=first,
        max_block_to_process=last,
        max_batch_processing_size=1,
        fetch_concurrency=1,
        lock_duration_s=3600.0,
        open_batch_files_interval_s=math.inf,
        starknet_versions=versions or StarknetVersions(),
    )
    batcher = Batcher(
        config=config,
        db=scratch.db,
        objects=scratch.objects,
        sequencer=reads,
        feeder=reads,
        rpc=CachingBatchRpc(rpc),
        locks=scratch.locks,
        clock=clock,
        alerts=alerts,
        metrics=closes,
        owner="backtest",
    )
    run = _Run(batcher=batcher, scratch=scratch, closes=closes)
    stopped: str | None = None
    done = first - 1
    try:
        for number in range(first, last + 1):
            reads.read_ahead(number, min(last, number + reads.ahead))
            header = await reads.get_block_with_tx_hashes(number)
            if _not_final(header):
                stopped = f"block {number} is not final at the node yet"
                break
            run.timestamps[number] = int(header.get("timestamp", 0))
            run.prices[number] = recorded_l1_prices(header)
            clock.at = float(run.timestamps[number])
            reads.head = number
            try:
                await batcher.run()
            except BatchingStopped as exc:
                stopped = exc.hold.describe()
                break
            reads.forget_before(number + 1)
            await run.collect_closed()
            done = number
            if on_block is not None:
                on_block(number)
        latest = await scratch.db.latest_aggregator_batch()
        still_open = latest.index if latest is not None and latest.status == AggregatorBatchStatus.OPEN else None
        await batcher.close_open_batches()
        await run.collect_closed(range_end=still_open)
    finally:
        await reads.close()
    return BacktestResult(
        first_block=first,
        last_block=done,
        batches=tuple(run.batches[i] for i in sorted(run.batches)),
        stopped=stopped,
        alerts=tuple(alerts.subjects),
    )
