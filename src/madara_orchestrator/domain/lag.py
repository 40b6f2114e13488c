"""How far behind settlement may be before it is news: the dashboard's lag colour.

Batching keeps blocks unsettled on purpose: a batch fills up to ``batch_blocks`` blocks (or closes at
``batch_time_s``), then it is proven and settled while the next one fills. So a healthy chain is normally
up to two batches behind, and its oldest unsettled block has waited at most the batch time plus the time
proving and settlement take (``SETTLE_TIME_S``, a remote prover's order of magnitude). The rule:

- ``ok`` (green): at most two batches of blocks behind, and the oldest unsettled block is no older than
  the batch time plus ``SETTLE_TIME_S``;
- ``behind`` (amber): beyond either;
- ``late`` (red): beyond twice either (more than four batches behind, or the oldest unsettled block older
  than twice the batch time plus ``SETTLE_TIME_S``);
- ``unknown``: the lag cannot be computed (the chain head or the settled block is unknown, or the settled
  block is above the head).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SETTLE_TIME_S = 1800.0
"""What proving and settling one closed batch normally takes at most (SNOS, a remote prover, aggregation,
the settlement transaction and its confirmations)."""


class LagLevel(enum.StrEnum):
    OK = "ok"
    BEHIND = "behind"
    LATE = "late"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class LagRule:
    batch_blocks: int
    """The most blocks one settlement covers (the max batch size; an L3's SNOS batch size)."""
    batch_time_s: float
    """The max batch time: an open batch closes when it is this old."""
    settle_time_s: float = SETTLE_TIME_S

    @property
    def normal_blocks(self) -> int:
        """One batch filling and one being proven and settled."""
        return 2 * max(1, self.batch_blocks)

    @property
    def normal_age_s(self) -> float:
        return self.batch_time_s + self.settle_time_s

    def level(self, blocks: int | None, age_s: float | None) -> LagLevel:
        if blocks is None:
            return LagLevel.UNKNOWN
        age = age_s or 0.0
        if blocks > 2 * self.normal_blocks or age > 2 * self.normal_age_s:
            return LagLevel.LATE
        if blocks > self.normal_blocks or age > self.normal_age_s:
            return LagLevel.BEHIND
        return LagLevel.OK
