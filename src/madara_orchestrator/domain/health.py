"""What ``/health`` and the dashboard say about one process: each trigger's run of failures, the chain
positions that cannot be right, and the overall state. Pure values and rules: the engine records each
trigger run's outcome, ``server/`` renders them.

- A trigger is *failing* after ``failing_after`` failures in a row, or once it has failed without a success
  for ``failing_after_s`` seconds (a trigger that failed twice and was not run again is failing too).
- After a failure a trigger's next run waits ``backoff_base_s`` doubled per further failure, at most
  ``backoff_max_s``; a success clears it all.
- The outbox (SQS: a job's next message is written with its change, and a relay sends it on) is *stuck*
  once its oldest message has waited ``OUTBOX_STUCK_AFTER_S``: a relay sends every row at once (what is
  left of a delay goes with it), so in a working deployment none waits more than a few seconds.
- ``UP``: every backend answers and nothing is failing; ``DEGRADED``: the backends answer but a trigger
  keeps failing, the chain positions contradict each other or the outbox is stuck; ``DOWN``: a backend
  does not answer.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_ERROR_TEXT = 500
OUTBOX_STUCK_AFTER_S = 60.0
"""An outbox whose oldest message has waited this long is not being relayed (/health DEGRADED)."""
"""A trigger's last error is kept (and shown) to this many characters."""


class HealthStatus(enum.StrEnum):
    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerPolicy:
    """When a trigger counts as failing, and how its re-runs back off."""

    failing_after: int = 3
    failing_after_s: float = 30.0
    backoff_base_s: float = 2.0
    backoff_max_s: float = 60.0

    def retry_delay_s(self, failures: int) -> float:
        """The wait before the next run after ``failures`` failures in a row (1 → the base)."""
        if failures <= 0:
            return 0.0
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** min(failures - 1, 30)))


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerHealth:
    """One trigger's current run of failures (all empty while it succeeds). ``last_error`` is already cut
    (no URL path, query or credentials)."""

    failures: int = 0
    failing_since: float | None = None
    last_failure_at: float | None = None
    last_error: str | None = None
    outage: bool = False
    """The last failure was an outside service that did not answer (not a bug of ours)."""
    retry_in_s: float | None = None
    """The back-off after the last failure."""

    def failed(self, error: str, *, now: float, outage: bool, policy: TriggerPolicy) -> TriggerHealth:
        """After one more failure; ``error`` (already cut) is kept to ``MAX_ERROR_TEXT`` characters."""
        failures = self.failures + 1
        if len(error) > MAX_ERROR_TEXT:
            error = error[: MAX_ERROR_TEXT - 1] + "…"
        return dataclasses.replace(
            self,
            failures=failures,
            failing_since=self.failing_since if self.failing_since is not None else now,
            last_failure_at=now,
            last_error=error,
            outage=outage,
            retry_in_s=policy.retry_delay_s(failures),
        )

    def is_failing(self, now: float, policy: TriggerPolicy) -> bool:
        if self.failures == 0 or self.failing_since is None:
            return False
        return self.failures >= policy.failing_after or now - self.failing_since >= policy.failing_after_s

    def describe(self, name: str) -> str:
        """``trigger SnosBatching failing (4 times since 12:00:01 UTC): <error>``."""
        since = "" if self.failing_since is None else f" since {utc_time(self.failing_since)}"
        times = "once" if self.failures == 1 else f"{self.failures} times"
        return f"trigger {name} failing ({times}{since}): {self.last_error or 'unknown error'}"


def utc_time(timestamp: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(timestamp))


def chain_problem(head: int | None, settled: int | None) -> str | None:
    """A settled block above the sequencer's head: the settlement layer's state is another chain's (or the
    sequencer was reset), so no lag can be computed from the two."""
    if head is None or settled is None or settled <= head:
        return None
    return (
        f"settled block {settled} is above the sequencer's head {head}: the settlement layer holds another "
        "chain's state (check the core contract address and the sequencer URL), or the sequencer was reset"
    )


@dataclass(frozen=True, slots=True)
class OutboxWaiting:
    """Messages of one queue written to the outbox with their job's change and not sent on yet: how many,
    and how long the oldest has waited (0 when none)."""

    queue: str
    messages: int
    oldest_s: float


def outbox_problem(waiting: Sequence[OutboxWaiting], *, stuck_after_s: float = OUTBOX_STUCK_AFTER_S) -> str | None:
    """The outbox's oldest message has waited ``stuck_after_s`` or more: no relay sends it to the queue."""
    oldest = max((w.oldest_s for w in waiting if w.messages > 0), default=0.0)
    if oldest < stuck_after_s:
        return None
    messages = sum(w.messages for w in waiting)
    return (
        f"outbox: {messages} message(s) waiting to be sent to the queue, the oldest for {oldest:.0f} s: the relay "
        "is not sending them (is SQS reachable? see the log's 'outbox relay' warnings)"
    )


def health_status(backends: Mapping[str, str | None], problems: Sequence[str]) -> HealthStatus:
    if any(why is not None for why in backends.values()):
        return HealthStatus.DOWN
    return HealthStatus.DEGRADED if problems else HealthStatus.UP
