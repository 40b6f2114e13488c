"""The mock Atlantic's configuration, injected faults and in-memory queries and buckets."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from madara_orchestrator.devnet.layout_bridge import (
    VerifierConfiguration,
)
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.interfaces import FactRegistry

ARTIFACTS_PREFIX = "/artifacts"
L2_VERIFICATION = "PROOF_VERIFICATION_ON_L2"
BRIDGE_LAYOUT = "recursive_with_poseidon"


class L2FactRegistry(Protocol):
    """Where an L2 verification query's fact is registered (Integrity's fact registry on the L2)."""

    async def register(self, fact: int, *, security_bits: int, verifier_config: VerifierConfiguration) -> str:
        """Register a verification of ``fact`` (Integrity's ``register_fact``); returns the transaction hash.
        Raises when the registration fails."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class MockAtlanticConfig:
    latency_s: float = 0.0
    failure_rate: float = 0.0
    seed: int = 0
    processing_s: float = 0.5
    """Seconds from submission (or bucket close) to DONE."""
    webhook_url: str | None = None
    webhook_secret: str | None = None
    """When set, each webhook carries ``X-Atlantic-Signature: sha256=<HMAC-SHA256 of the body>`` (the
    orchestrator's ``--atlantic-webhook-secret``); the URL stays free of it, so the mock's logs are too."""
    api_key: str | None = None
    """When set, the ``api-key`` header must equal it; otherwise any non-empty key is accepted."""
    compute_facts: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise InvalidInput(f"failure rate {self.failure_rate} is not between 0 and 1")
        if self.latency_s < 0 or self.processing_s < 0:
            raise InvalidInput("latency and processing time cannot be negative")


@dataclass(slots=True, kw_only=True)
class Fault:
    """A one-shot misbehaviour applied to the next ``count`` matching API requests (or queries).

    ``status``: answer ``status_code`` with ``body``; ``delay``: sleep ``delay_s`` first (client
    timeouts); ``malformed``: answer 200 with ``body`` (not what the client expects);
    ``fail_query``: the next submitted query ends FAILED with ``reason``.
    """

    kind: Literal["status", "delay", "malformed", "fail_query"]
    count: int = 1
    status_code: int = 503
    delay_s: float = 0.0
    body: str = "not json"
    reason: str = "injected failure"
    path_contains: str = ""
    method: str = ""
    """Only requests with this HTTP method (any when empty)."""


@dataclass(slots=True)
class Query:
    data: dict[str, Any]
    pie: bytes | None = None
    proof_input: bytes | None = None
    da_segment: list[int] | None = None
    """The aggregator's DA segment (``da_blob.json``); None serves a placeholder."""
    proof: str | None = None
    """The ``proof.json`` served: set by an L2 verification, else built from the PIE on first download."""
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True, kw_only=True)
class MockAtlanticState:
    config: MockAtlanticConfig
    queries: dict[str, Query] = field(default_factory=dict)
    by_dedup: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    webhook_deliveries: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """``(method, path)`` of every request, for tests."""
    submissions: int = 0
    rng: random.Random = field(default_factory=random.Random)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    fact_registry: FactRegistry | None = None
    """Where aggregator facts are registered (Atlantic's FACT_HASH_REGISTRATION on L1); None: nowhere."""
    l2_fact_registry: L2FactRegistry | None = None
    """Where L2 verification queries register the bridge output's fact; None: nowhere."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def take_fault(self, path: str, kinds: tuple[str, ...], method: str = "") -> Fault | None:
        for fault in self.faults:
            if fault.kind in kinds and fault.path_contains in path and fault.method in ("", method):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}_{uuid.uuid4().hex[:8]}"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def spawn(state: MockAtlanticState, coro: Awaitable[None]) -> None:
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
