"""``run``'s progress line: every ``--progress-interval-seconds`` (default 30 s; 0 turns it off) one INFO line
with what the dashboard's overview shows at a glance, read from the same overview so the two never disagree::

    progress: head 1042 | snos through 1019 | proven through 1019 | aggregated through 999 | settled through 999 |
    open batch 11: 23 blocks, 9,876/24,561 felts | lag 43 blocks, oldest waiting 2 min 10 s (ok)

then ``| needs attention N`` when jobs are stuck or wait out an outage, and ``| failing <trigger>, ...`` while
triggers keep failing. A line is written when something changed since the last one (the ages aside), and
every ``IDLE_REPEAT_S`` when nothing did, so a quiet chain does not fill the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.engine.runtime import Runtime
from madara_orchestrator.server.dashboard import overview

log = logging.getLogger("madara_orchestrator.progress")

IDLE_REPEAT_S = 300.0
"""When nothing changed, the line is still written this often (the process is alive and stuck, or idle)."""

STAGE_WORDS = {
    "snos": "snos",
    "proof": "proven",
    "aggregation": "aggregated",
    "registration": "verified on L2",
    "da": "DA encoded",
}


@dataclass(frozen=True, slots=True)
class Progress:
    line: str
    key: tuple[object, ...]
    """What counts as a change: the line without its ages."""


def _block(value: object) -> str:
    return str(value) if isinstance(value, int) else "-"


def _duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def _open_batch(open_batches: Mapping[str, Any], aggregator_batches: bool) -> str:
    rows = open_batches.get("aggregator" if aggregator_batches else "snos") or []
    if not rows:
        return "no open batch"
    b = rows[0]
    label = f"open batch {b['index']}: {b['blocks']} block{'' if b['blocks'] == 1 else 's'}"
    if aggregator_batches:
        label += f", {b['blob_felts']:,}/{b['max_blob_felts']:,} felts"
    return label


def progress_of(ov: Mapping[str, Any], *, aggregator_batches: bool) -> Progress:
    """The line for one overview (``server/dashboard.py overview``)."""
    fields = [f"head {_block(ov['head'])}"]
    for name, stage in ov["stages"].items():
        if name != "settlement":
            fields.append(f"{STAGE_WORDS.get(name, name)} through {_block(stage['through'])}")
    fields.append(f"settled through {_block(ov['settled'])}")
    fields.append(_open_batch(ov["open_batches"], aggregator_batches))
    lag = ov["lag"]
    key: list[object] = [*fields, lag["blocks"], lag["level"]]
    if lag["blocks"] is None:
        fields.append("lag unknown")
    elif lag["blocks"] == 0:
        fields.append("lag 0 blocks")
    else:
        waiting = "" if lag["seconds"] is None else f", oldest waiting {_duration(lag['seconds'])}"
        fields.append(f"lag {lag['blocks']} block{'' if lag['blocks'] == 1 else 's'}{waiting} ({lag['level']})")
    attention = ov["attention"]["total"]
    if attention:
        fields.append(f"needs attention {attention}")
    failing = [f["trigger"] for f in ov["failing_triggers"]]
    if failing:
        fields.append("failing " + ", ".join(failing))
    key += [attention, tuple(failing)]
    return Progress("progress: " + " | ".join(fields), tuple(key))


@dataclass(kw_only=True, eq=False, repr=False)
class ProgressLog:
    """Writes a progress line when it changed, or when ``idle_repeat_s`` passed since the last one."""

    idle_repeat_s: float = IDLE_REPEAT_S
    clock: Callable[[], float] = time.monotonic
    _last_key: tuple[object, ...] | None = field(default=None, init=False)
    _last_at: float | None = field(default=None, init=False)

    def should_write(self, key: tuple[object, ...]) -> bool:
        now = self.clock()
        if key == self._last_key and self._last_at is not None and now - self._last_at < self.idle_repeat_s:
            return False
        self._last_key, self._last_at = key, now
        return True


async def progress_loop(runtime: Runtime, interval_s: float, stop: asyncio.Event) -> None:
    """Until ``stop`` is set: every ``interval_s`` one line (``ProgressLog`` decides whether to write it)."""
    if interval_s <= 0:
        return
    writer = ProgressLog()
    aggregator_batches = runtime.config.plan.aggregator_batches
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
            return
        except TimeoutError:
            pass
        try:
            progress = progress_of(await overview(runtime, admin_enabled=False), aggregator_batches=aggregator_batches)
        except Exception as exc:
            text = cut_urls(f"progress unavailable: {type(exc).__name__}: {exc}")
            if writer.should_write((text,)):
                log.warning("%s", text)
            continue
        if writer.should_write(progress.key):
            log.info("%s", progress.line)
