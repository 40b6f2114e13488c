"""Pausing a stage of the pipeline (batching, proving, settlement) during an incident, and resuming it.

A pause is stored (the ``pauses`` table of the job store), so every instance and every restart honours it.
What a pause holds back: batching runs (no block is batched), the creation of proof jobs (Proving and
Aggregator triggers: nothing new goes to the prover), and settlement (no StateTransition job is created, a
created one that has sent nothing is put back, and no new transaction is signed). Work in progress
finishes: a job already processing completes, a settlement transaction already broadcast is followed to its
receipt. Nothing fails because of a pause.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

from madara_orchestrator.domain.errors import InvalidInput

MAX_TEXT = 300
"""The longest reason or "by" a pause keeps (characters)."""


class Stage(enum.StrEnum):
    BATCHING = "batching"
    PROVING = "proving"
    SETTLEMENT = "settlement"

    @classmethod
    def parse(cls, text: str) -> Stage:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise InvalidInput(
                f"unknown stage {text!r}: one of {', '.join(s.value for s in cls)} may be paused"
            ) from None


def pause_text(value: str | None, what: str, *, default: str) -> str:
    """``value`` as a pause keeps it: one line, at most ``MAX_TEXT`` characters; ``default`` when empty."""
    text = (value or "").strip()
    if not text:
        return default
    if any(ch in text for ch in "\r\n\x00"):
        raise InvalidInput(f"the pause's {what} must be one line")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"the pause's {what} is {len(text)} characters; at most {MAX_TEXT}")
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    stage: Stage
    reason: str
    by: str
    """Who paused it: the operator's ``--by`` (the CLI defaults to user@host), else the instance that took
    the request."""
    since: float
    """Epoch seconds."""

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"{self.stage} paused by {self.by} since {when}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage.value, "reason": self.reason, "by": self.by, "since": self.since}
