"""When to post a closed batch's settlement on Ethereum: now, or later when L1 fees are lower (issue 20).

The original sends a settlement as soon as its batch is proven. With ``--settlement-deadline-seconds`` D > 0
a batch waits for cheaper L1 blocks, but never past its deadline:

- The *target* fees are a percentile (``--settlement-fee-percentile``, p30 by default) of the base fee and
  of the blob base fee over the last ``--settlement-fee-window-blocks`` L1 blocks (300: an hour of 12 s
  slots), from ``eth_feeHistory``.
- The settlement goes when its cost at the next block's fees (``execution_gas`` × base fee + blobs ×
  131072 × blob base fee) is at or under its cost at the target fees. One cost, not two separate tests:
  a blob fee far under its target may pay for a base fee a little over its own; what counts is what the
  transaction pays. The reason names the fee that is over its target.
- From ``relax_from`` × D (65 % of the deadline) the targets relax toward the hard cap: the percentile rises
  toward 100 (the window's dearest block), slowly at first (with the square of the time gone since), and
  ``margin_s`` before the deadline the target is the hard cap itself: then anything under it goes. Relaxing
  through the percentiles keeps the target among the fees the market has just charged; a straight line
  from the percentile to the cap would jump far above them at once (the cap is set for spikes), which
  replaying fee series showed to cost more (bench/fee_policy.py).
- The hard cap (``--ethereum-l2-state-update-max-fee-wei``, on the signed fee liability exactly as the
  transaction manager computes it, ``FeeCap``) stays absolute: above it nothing goes, deadline or not
  (the settlement job would refuse to sign anyway), and a missed deadline is reported.

D = 0 (the default) sends at once, as the original does. Pure: no I/O, no clock (the age is given).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from madara_orchestrator.domain.chain import GAS_PER_BLOB
from madara_orchestrator.domain.errors import InvalidInput

GWEI = 10**9


# --------------------------------------------------------------------------------------------------
# Fee history (``eth_feeHistory``)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeHistory:
    """``eth_feeHistory`` over consecutive L1 blocks from ``oldest_block``. The fee tuples hold one entry per
    block and then the next block's (the fees a transaction sent now pays): one more than the ratios."""

    oldest_block: int
    base_fees: tuple[int, ...]
    blob_base_fees: tuple[int, ...]
    gas_used_ratio: tuple[float, ...]
    blob_gas_used_ratio: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.gas_used_ratio)
        if len(self.base_fees) != n + 1 or len(self.blob_base_fees) != n + 1 or len(self.blob_gas_used_ratio) != n:
            raise InvalidInput(
                f"fee history of {n} blocks needs {n + 1} base fees and blob base fees and {n} blob gas ratios; "
                f"got {len(self.base_fees)}, {len(self.blob_base_fees)} and {len(self.blob_gas_used_ratio)}"
            )
        if self.oldest_block < 0 or any(f < 0 for f in (*self.base_fees, *self.blob_base_fees)):
            raise InvalidInput("fee history: a negative block number or fee")

    @property
    def blocks(self) -> int:
        return len(self.gas_used_ratio)

    @property
    def newest_block(self) -> int:
        return self.oldest_block + self.blocks - 1

    @property
    def next_base_fee(self) -> int:
        return self.base_fees[-1]

    @property
    def next_blob_base_fee(self) -> int:
        return self.blob_base_fees[-1]

    @classmethod
    def joined(cls, parts: Sequence[FeeHistory]) -> FeeHistory:
        """Consecutive pages (oldest first) as one history; the next block's fees are the newest page's."""
        if not parts:
            raise InvalidInput("fee history: no pages to join")
        for older, newer in itertools.pairwise(parts):
            if newer.oldest_block != older.newest_block + 1:
                raise InvalidInput(
                    f"fee history pages are not consecutive: blocks up to {older.newest_block}, then from "
                    f"{newer.oldest_block}"
                )
        return cls(
            oldest_block=parts[0].oldest_block,
            base_fees=(*(f for p in parts for f in p.base_fees[:-1]), parts[-1].next_base_fee),
            blob_base_fees=(*(f for p in parts for f in p.blob_base_fees[:-1]), parts[-1].next_blob_base_fee),
            gas_used_ratio=tuple(r for p in parts for r in p.gas_used_ratio),
            blob_gas_used_ratio=tuple(r for p in parts for r in p.blob_gas_used_ratio),
        )


def percentile(values: Sequence[int], p: float) -> int:
    """The nearest-rank ``p``-th percentile (0 → the least, 100 → the greatest): a value of the sample."""
    if not values:
        raise InvalidInput("percentile of no values")
    if not 0 <= p <= 100:
        raise InvalidInput(f"percentile must be from 0 to 100, got {p}")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


# --------------------------------------------------------------------------------------------------
# The hard cap


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeCap:
    """The hard cap on a settlement's signed fee liability (``--ethereum-l2-state-update-max-fee-wei``), with
    the fee rules of the transaction manager that signs (settlement/txmgr.py ``FeePolicy``: max fee per gas
    2 × multiplier × base fee + priority fee, blob fee cap multiplier × blob base fee)."""

    max_total_fee_wei: int
    gas_limit: int = 1_500_000
    priority_fee_wei: int = 200_000_000
    base_fee_multiplier: float = 1.1
    blob_fee_multiplier: float = 1.1

    def liability(self, base_fee: int, blob_base_fee: int, n_blobs: int) -> int:
        """What the transaction manager would sign for at these fees (its ``liability(fresh_fees(...))``)."""
        max_fee_per_gas = math.ceil(2 * base_fee * self.base_fee_multiplier) + self.priority_fee_wei
        max_fee_per_blob_gas = max(1, math.ceil(blob_base_fee * self.blob_fee_multiplier))
        return self.gas_limit * max_fee_per_gas + n_blobs * GAS_PER_BLOB * max_fee_per_blob_gas

    def fits(self, base_fee: int, blob_base_fee: int, n_blobs: int) -> bool:
        return self.liability(base_fee, blob_base_fee, n_blobs) <= self.max_total_fee_wei

    def max_base_fee(self) -> int:
        """The highest base fee under the cap (with the least blob fee): no relaxed target goes above it."""
        per_gas = self.max_total_fee_wei // self.gas_limit - self.priority_fee_wei
        return max(0, math.floor(per_gas / (2 * self.base_fee_multiplier)))

    def max_blob_base_fee(self, n_blobs: int) -> int:
        """The highest blob base fee under the cap for ``n_blobs`` blobs (with the least base fee)."""
        room = self.max_total_fee_wei - self.gas_limit * self.priority_fee_wei
        return max(0, math.floor(room // (max(1, n_blobs) * GAS_PER_BLOB) / self.blob_fee_multiplier))


# --------------------------------------------------------------------------------------------------
# The decision


class Wait:
    """Why a batch waits (the ``reason`` label of the metrics)."""

    BLOB_FEE = "blob_fee_above_target"
    BASE_FEE = "base_fee_above_target"
    BOTH = "fees_above_target"
    HARD_CAP = "above_hard_cap"


class Send:
    """Why a batch goes."""

    AT_ONCE = "at_once"
    """No deadline: the original's behaviour."""
    AT_TARGET = "at_target"
    RELAXED = "relaxed_target"
    """Over the percentile target but under the target relaxed toward the cap as the deadline nears."""
    DEADLINE = "deadline"
    """The deadline is near (or past): anything under the hard cap goes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PostingDecision:
    send: bool
    code: str
    """A ``Send`` or ``Wait`` value: fixed words, for logs that change only when it does, and metrics."""
    reason: str
    """One line for the operator, with the fees, the targets and the time to the deadline."""
    seconds_to_deadline: float | None = None
    """Negative once the deadline has passed; None without a deadline."""
    base_fee: int | None = None
    blob_base_fee: int | None = None
    target_base_fee: int | None = None
    target_blob_base_fee: int | None = None
    relaxed: float = 0.0
    """How far the targets have relaxed toward the hard cap, 0 to 1 (1: the hard cap is the target)."""
    target_percentile: float | None = None
    """The percentile the targets are taken at now (``percentile``, rising as the deadline nears)."""

    @property
    def missed_deadline(self) -> bool:
        return self.seconds_to_deadline is not None and self.seconds_to_deadline < 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PostingPolicy:
    """``deadline_s``: ``--settlement-deadline-seconds`` (0: send at once); ``percentile`` and
    ``window_blocks``: ``--settlement-fee-percentile`` and ``--settlement-fee-window-blocks``."""

    deadline_s: float = 0.0
    percentile: float = 30.0
    window_blocks: int = 300
    relax_from: float = 0.65
    """Share of the deadline after which the targets relax toward the hard cap. This default, ``relax_power``
    and ``margin_s`` were chosen by replaying bench/fee_policy.py's synthetic series (seeds 1 to 3, one-hour
    deadline) over 0.5/0.65, 1/2 and 60/300 s: the cheapest with no deadline missed."""
    relax_power: float = 2.0
    """The percentile rises with this power of the relaxation's share of time (1: linearly)."""
    margin_s: float = 300.0
    """The targets reach the hard cap this long before the deadline: room for a look that comes a tick late,
    a block that is full, or a fee over the cap at the last moment (at 60 s the bench missed deadlines)."""
    execution_gas: int = 500_000
    """Execution gas assumed for ``updateStateKzgDA``, to weigh the base fee against the blob fee."""

    def problems(self) -> list[str]:
        out = []
        if not (self.deadline_s >= 0 and math.isfinite(self.deadline_s)):
            out.append("--settlement-deadline-seconds must be 0 (send at once) or more")
        if not 0 <= self.percentile <= 100:
            out.append("--settlement-fee-percentile must be from 0 to 100")
        if self.window_blocks < 1:
            out.append("--settlement-fee-window-blocks must be at least 1")
        if not 0 <= self.relax_from <= 1 or self.margin_s < 0 or self.execution_gas < 0 or self.relax_power <= 0:
            out.append("the posting policy's relaxation share must be from 0 to 1, its margin and gas 0 or more")
        return out

    @property
    def waits(self) -> bool:
        """Whether batches may wait at all (a deadline is set)."""
        return self.deadline_s > 0

    def relaxation(self, age_s: float) -> float:
        """0 until ``relax_from`` of the deadline, then linearly to 1 at ``margin_s`` before it."""
        start = self.relax_from * self.deadline_s
        end = max(start, self.deadline_s - self.margin_s)
        if age_s >= end:
            return 1.0
        if age_s <= start:
            return 0.0
        return (age_s - start) / (end - start)

    def cost(self, base_fee: int, blob_base_fee: int, n_blobs: int) -> int:
        """What a settlement with ``n_blobs`` blobs pays at these fees (priority fee left out: it is the same)."""
        return self.execution_gas * base_fee + n_blobs * GAS_PER_BLOB * blob_base_fee

    def decide(self, history: FeeHistory | None, cap: FeeCap, *, age_s: float, n_blobs: int) -> PostingDecision:
        """Send a batch whose oldest block is ``age_s`` old now, or wait. ``history``: the last blocks' fees
        (None only without a deadline, when none is needed)."""
        if not self.waits:
            return PostingDecision(send=True, code=Send.AT_ONCE, reason="no settlement deadline: sent at once")
        if history is None:
            raise InvalidInput("a settlement deadline needs the L1 fee history")
        n_blobs = max(1, n_blobs)
        left = self.deadline_s - age_s
        base, blob = history.next_base_fee, history.next_blob_base_fee
        when = deadline_text(left)
        if not cap.fits(base, blob, n_blobs):
            liability = cap.liability(base, blob, n_blobs)
            return PostingDecision(
                send=False,
                code=Wait.HARD_CAP,
                reason=(
                    f"fee liability {eth(liability)} (base fee {gwei(base)}, blob base fee {gwei(blob)}, "
                    f"{n_blobs} blob{'s' if n_blobs != 1 else ''}) above the hard cap {eth(cap.max_total_fee_wei)} "
                    f"(--ethereum-l2-state-update-max-fee-wei); {when}"
                ),
                seconds_to_deadline=left,
                base_fee=base,
                blob_base_fee=blob,
            )
        window = self._window(history)
        relaxed = self.relaxation(age_s)
        # Without a past block (a new chain) the next block's fees are all there is to go by.
        past_base, past_blob = window.base_fees[:-1] or (base,), window.blob_base_fees[:-1] or (blob,)
        p_base, p_blob = percentile(past_base, self.percentile), percentile(past_blob, self.percentile)
        rank = self.percentile + (100 - self.percentile) * relaxed**self.relax_power
        if relaxed >= 1:
            target_base, target_blob = cap.max_base_fee(), cap.max_blob_base_fee(n_blobs)
            basis = "the deadline is near: the target is the hard cap"
        else:
            target_base = min(percentile(past_base, rank), cap.max_base_fee())
            target_blob = min(percentile(past_blob, rank), cap.max_blob_base_fee(n_blobs))
            basis = f"p{self.percentile:g} of the last {window.blocks} blocks" + (
                f", relaxed to p{rank:.0f} as the deadline nears" if rank > self.percentile else ""
            )
        over = [
            f"{name} {gwei(fee)} above target {gwei(target)}"
            for name, fee, target in (("blob base fee", blob, target_blob), ("base fee", base, target_base))
            if fee > target
        ]
        cost = self.cost(base, blob, n_blobs)
        send = cost <= self.cost(target_base, target_blob, n_blobs)
        if send:
            if cost <= self.cost(p_base, p_blob, n_blobs):
                code = Send.AT_TARGET
            else:
                code = Send.DEADLINE if relaxed >= 1 else Send.RELAXED
            fees = f"base fee {gwei(base)} (target {gwei(target_base)})"
            reason = f"{fees}, blob base fee {gwei(blob)} (target {gwei(target_blob)}), {basis}; {when}"
        else:
            code = Wait.BOTH if len(over) == 2 else Wait.BLOB_FEE if over[0].startswith("blob") else Wait.BASE_FEE
            reason = f"{' and '.join(over)} ({basis}); {when}"
        return PostingDecision(
            send=send,
            code=code,
            reason=reason,
            seconds_to_deadline=left,
            base_fee=base,
            blob_base_fee=blob,
            target_base_fee=target_base,
            target_blob_base_fee=target_blob,
            relaxed=relaxed,
            target_percentile=None if relaxed >= 1 else rank,
        )

    def _window(self, history: FeeHistory) -> FeeHistory:
        """The newest ``window_blocks`` blocks of ``history``."""
        cut = max(0, history.blocks - self.window_blocks)
        if cut == 0:
            return history
        return FeeHistory(
            oldest_block=history.oldest_block + cut,
            base_fees=history.base_fees[cut:],
            blob_base_fees=history.blob_base_fees[cut:],
            gas_used_ratio=history.gas_used_ratio[cut:],
            blob_gas_used_ratio=history.blob_gas_used_ratio[cut:],
        )


# --------------------------------------------------------------------------------------------------
# Words


def gwei(wei: int) -> str:
    if wei < 10**6:
        return f"{wei} wei"
    return f"{wei / GWEI:.3g} gwei"


def eth(wei: int) -> str:
    return f"{wei / 10**18:.4g} ETH"


def duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def deadline_text(left: float) -> str:
    return f"deadline in {duration(left)}" if left >= 0 else f"deadline missed by {duration(left)}"
