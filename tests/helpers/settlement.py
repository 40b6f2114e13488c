"""A settlement client double for the StateTransition job's tests: it settles a blob update at once, recording
each send with the key it must follow."""

from __future__ import annotations

from collections.abc import Sequence

from madara_orchestrator.domain.errors import OutOfTurn
from madara_orchestrator.interfaces import SettlementAttempt, SettlementResult


class FakeSettlement:
    """``sent``: ``(idempotency_key, after_key)`` of every send. A send raises the first of ``errors`` if any, or
    ``OutOfTurn`` when its key is in ``out_of_turn``; else it settles (one Finalized attempt, nonce ``nonce``)
    and ``last`` moves up to the block its program output ends at (``program_output[3]``)."""

    def __init__(self, *, nonce: int = 4) -> None:
        self.last: int | None = None
        self.sent: list[tuple[str, str | None]] = []
        self.errors: list[Exception] = []
        self.out_of_turn: set[str] = set()
        self.nonce = nonce

    async def last_settled_block(self) -> int | None:
        return self.last

    async def update_state_with_blobs(
        self,
        program_output: Sequence[int],
        blobs: Sequence[bytes],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult:
        self.sent.append((idempotency_key, after_key))
        if self.errors:
            raise self.errors.pop(0)
        if idempotency_key in self.out_of_turn:
            raise OutOfTurn(f"settlement {idempotency_key} waits for {after_key} before it", wait_s=7)
        self.last = program_output[3] if self.last is None else max(self.last, program_output[3])
        attempt = SettlementAttempt(
            attempt_no=1, tx_hash="0xabc", nonce=self.nonce, gas_multiplier=1.1, status="Finalized"
        )
        return SettlementResult(tx_hash="0xabc", nonce=self.nonce, attempts=[attempt])

    async def update_state_calldata(self, *a: object, **k: object) -> SettlementResult:  # pragma: no cover
        raise NotImplementedError

    async def verify_tx_inclusion(self, tx_hash: str) -> str:  # pragma: no cover
        return "Verified"
