"""The posting gate: a proven batch's StateTransition job is created only when the posting policy
(``domain/posting.py``) says send. Ethereum settlement only, and only with ``--settlement-deadline-seconds``
> 0; without it no gate exists and settlements go at once, as in the original.

The batch's age is counted from its aggregator batch's ``created_at``: when batching opened it with its first
block. That is what the database has (blocks' own timestamps are not stored; reading the first block's
header from the sequencer on every look would cost a call a tick). An orchestrator that keeps up with its
chain opens a batch within a poll of the block (``--chain-poll-interval-seconds``), so the two are close;
one catching up on old blocks counts from when it batched them, not from when they were made.

Each batch is judged by its own age: the oldest, nearest its deadline, has the most relaxed target, so a
younger batch never goes before an older one (their targets only loosen with age), and when fees fall to
the targets every waiting batch goes at once, in consecutive nonces (``--max-settlements-in-flight``). A
batch that went is not judged again. Opening the gate for every proven batch whenever the oldest goes
(a first version) made young batches pay the relaxed price of an old one: replaying fee series
(bench/fee_policy.py) it cost 0.90 of send-at-once at a one-hour deadline, against 0.75 judged one by one.
The fee history is read once per look (``HISTORY_REUSE_S``), not once per batch. While it waits it looks
again every ``recheck_s`` (an L1 slot), besides the triggers' own runs. The reason is logged when it
changes (the batch or why it waits), not on every look; the figures go to the metrics and to ``state``
(the dashboard). A batch not sent by its deadline raises one alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from madara_orchestrator.domain.batches import AggregatorBatchStatus
from madara_orchestrator.domain.chain import blobs_for
from madara_orchestrator.domain.posting import (
    FeeCap,
    FeeHistory,
    PostingDecision,
    PostingPolicy,
    Wait,
    duration,
)
from madara_orchestrator.engine import telemetry as ev
from madara_orchestrator.engine.telemetry import Telemetry
from madara_orchestrator.interfaces import AlertSink, Clock, Database, FeeHistorySource

log = logging.getLogger("madara_orchestrator.posting")

PAGE_BLOCKS = 1024
"""Blocks asked per ``eth_feeHistory`` call (geth's and most providers' limit)."""
WAITING = frozenset({Wait.BLOB_FEE, Wait.BASE_FEE, Wait.BOTH, Wait.HARD_CAP})
HISTORY_REUSE_S = 1.0
"""Fee history read within this many seconds (one trigger run judging several batches) is read once."""
MAX_ALERTED = 1000
"""Batches whose missed deadline was alerted (remembered per process, the oldest forgotten beyond this)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PostingState:
    """The gate's last look, for the dashboard."""

    batch: int
    at: float
    decision: PostingDecision
    deadline_s: float
    waiting_batches: int

    def to_json(self) -> dict[str, object]:
        d = self.decision
        return {
            "batch": self.batch,
            "at": self.at,
            "waiting": not d.send,
            "code": d.code,
            "reason": d.reason,
            "deadline_s": self.deadline_s,
            "seconds_to_deadline": d.seconds_to_deadline,
            "base_fee_wei": d.base_fee,
            "blob_base_fee_wei": d.blob_base_fee,
            "target_base_fee_wei": d.target_base_fee,
            "target_blob_base_fee_wei": d.target_blob_base_fee,
            "relaxed": d.relaxed,
            "target_percentile": d.target_percentile,
            "waiting_batches": self.waiting_batches,
        }


@dataclass(kw_only=True, eq=False, repr=False)
class SettlementGate:
    """Asked by the UpdateState trigger before it creates a StateTransition job (``may_send``)."""

    policy: PostingPolicy
    cap: FeeCap
    fees: FeeHistorySource
    db: Database
    clock: Clock
    alerts: AlertSink
    metrics: Telemetry
    recheck_s: float = 12.0
    rekick: Callable[[], None] | None = field(default=None, init=False)
    """Runs the UpdateState trigger again (the runtime sets it): the gate's next look while it waits."""
    state: PostingState | None = field(default=None, init=False)
    _sent_through: int = field(default=0, init=False)
    _history: tuple[float, FeeHistory] | None = field(default=None, init=False)
    _logged: tuple[int, str] | None = field(default=None, init=False)
    _alerted: dict[int, None] = field(default_factory=dict, init=False)
    _recheck: asyncio.TimerHandle | None = field(default=None, init=False)

    async def may_send(self, index: int) -> bool:
        """Whether batch ``index``'s settlement may be created now. Fee history errors propagate (the
        trigger backs off and says why)."""
        if index <= self._sent_through:
            return True  # it went already (its job creation is being retried): not judged again
        created_at, felts = await self._batch(index)
        if created_at is None:
            return True  # nothing to judge the age by: as without a gate
        now = self.clock.now()
        history = await self._recent_history(now)
        decision = self.policy.decide(history, self.cap, age_s=now - created_at, n_blobs=blobs_for(felts))
        ready = await self.db.list_aggregator_batches(statuses=[AggregatorBatchStatus.READY_FOR_STATE_UPDATE])
        waiting = [b.index for b in ready if b.index >= index]
        self.state = PostingState(
            batch=index, at=now, decision=decision, deadline_s=self.policy.deadline_s, waiting_batches=len(waiting)
        )
        self.metrics.report(ev.SettlementPosting(index, not decision.send, decision.code, decision.seconds_to_deadline))
        await self._tell(index, decision, len(waiting))
        if decision.send:
            self._sent_through = index
            return True
        self._schedule_recheck()
        return False

    async def _recent_history(self, now: float) -> FeeHistory:
        """The fee history, read again unless it was read within ``HISTORY_REUSE_S``."""
        if self._history is None or not 0 <= now - self._history[0] < HISTORY_REUSE_S:
            self._history = (now, await self.history())
        return self._history[1]

    async def history(self) -> FeeHistory:
        """The last ``window_blocks`` L1 blocks' fees, in pages of up to ``PAGE_BLOCKS``."""
        parts: list[FeeHistory] = []
        newest: int | str = "latest"
        remaining = self.policy.window_blocks
        while remaining > 0:
            part = await self.fees.fee_history(min(remaining, PAGE_BLOCKS), newest)
            if part.blocks == 0:
                if not parts:
                    return part  # the node has no block to tell of: its next block's fees alone
                break
            parts.insert(0, part)
            remaining -= part.blocks
            if part.oldest_block == 0:
                break
            newest = part.oldest_block - 1
        # Each page's own "next block" fees are the following page's first block's: only the newest's count.
        return FeeHistory.joined(parts)

    async def _batch(self, index: int) -> tuple[float | None, int]:
        """When the batch opened (its oldest block was batched), and its blob felts."""
        aggregator = await self.db.get_aggregator_batch(index)
        if aggregator is not None:
            return aggregator.created_at, aggregator.blob_len
        snos = await self.db.get_snos_batch(index)
        return (snos.created_at, 0) if snos is not None else (None, 0)

    async def _tell(self, index: int, decision: PostingDecision, waiting: int) -> None:
        """Log when the batch or the reason changes; alert once per batch not sent by its deadline."""
        key = (index, decision.code)
        held_before = self._logged is not None and self._logged[0] == index and self._logged[1] in WAITING
        if key != self._logged:
            self._logged = key
            if not decision.send:
                log.info("settlement of batch %d waits for lower L1 fees: %s", index, decision.reason)
            elif held_before:
                log.info("settlement of batch %d%s goes: %s", index, _with_others(waiting), decision.reason)
        if decision.missed_deadline and index not in self._alerted:
            self._alerted[index] = None
            while len(self._alerted) > MAX_ALERTED:
                del self._alerted[next(iter(self._alerted))]
            self.metrics.report(ev.SettlementDeadlineMissed(index))
            late = duration(-(decision.seconds_to_deadline or 0.0))
            what = "sent" if decision.send else "still not sent"
            log.warning("settlement of batch %d missed its deadline by %s (%s): %s", index, late, what, decision.reason)
            await self.alerts.send(
                f"Settlement deadline missed: batch {index}",
                f"Batch {index} was {what} {late} after its deadline (--settlement-deadline-seconds "
                f"{self.policy.deadline_s:g}): {decision.reason}. " + _advice(decision, held_before),
            )

    def _schedule_recheck(self) -> None:
        if self.rekick is None or (self._recheck is not None and not self._recheck.cancelled()):
            return
        self._recheck = asyncio.get_running_loop().call_later(self.recheck_s, self._rekick)

    def _rekick(self) -> None:
        self._recheck = None
        if self.rekick is not None:
            self.rekick()

    def close(self) -> None:
        """No more looks of its own (the runtime stops)."""
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None


def _advice(decision: PostingDecision, held: bool) -> str:
    if not decision.send:
        return "Raise --ethereum-l2-state-update-max-fee-wei to pay the current fees, or wait for them to fall."
    if held:
        return "L1 fees stayed above the hard cap until after the deadline."
    return "The batch was proven after its deadline: the pipeline before settlement takes longer; raise the deadline."


def _with_others(waiting: int) -> str:
    return f" (and the {waiting - 1} proven after it)" if waiting > 1 else ""
