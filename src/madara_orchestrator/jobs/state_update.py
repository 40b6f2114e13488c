"""StateTransition: settle a batch on the settlement layer, strictly in order (SPEC §8.4).

Safe to repeat: before sending, and again after a failure, the settlement contract's last block is
compared with the batch's end block; a batch already settled (after a crash, or by hand) is not sent.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol

from madara_orchestrator.domain.batches import AggregatorBatchStatus
from madara_orchestrator.domain.errors import JobError, OutsideCondition
from madara_orchestrator.domain.jobs import Job, JobType, StateUpdateMetadata
from madara_orchestrator.interfaces import AlertSink, Clock, Database, ObjectStore, SettlementClient, SettlementResult
from madara_orchestrator.jobs.artifacts import decode_felts_json, decode_program_output
from madara_orchestrator.jobs.base import Processed, Verified
from madara_orchestrator.jobs.batch_status import move_aggregator_batch
from madara_orchestrator.starknet.blob import felts_to_blobs

SETTLEMENT_LAYER = "L1"
"""An L2's StateTransition settles on L1 (the devnet ledger stands in for it)."""


class SettlementFigures(Protocol):
    """Where a settlement's costs are recorded (engine/metrics.py ``Metrics``)."""

    def settlement_done(
        self, *, blocks: int, felts: int, blobs: int, seconds: float, fee_wei: int | None, layer: str = ...
    ) -> None: ...

    def settlement_fee_capped(self) -> None: ...


ZERO_HASH = "0x" + "0" * 64


def settlement_attempts_json(result: SettlementResult) -> list[dict[str, object]]:
    """The attempts for the job's metadata; the mined one carries the fee it paid (``fee_paid_wei``)."""
    out: list[dict[str, object]] = []
    for a in result.attempts:
        entry: dict[str, object] = {
            "attempt_no": a.attempt_no,
            "tx_hash": a.tx_hash,
            "nonce": a.nonce,
            "gas_multiplier": f"{a.gas_multiplier:.2f}",
            "status": a.status,
            "error": a.error,
        }
        if result.fee_paid_wei is not None and a.tx_hash is not None and a.tx_hash == result.tx_hash:
            entry["fee_paid_wei"] = str(result.fee_paid_wei)
        out.append(entry)
    return out


class StateUpdateJobHandler:
    job_type = JobType.STATE_TRANSITION

    def __init__(
        self,
        *,
        settlement: SettlementClient,
        objects: ObjectStore,
        db: Database,
        clock: Clock,
        alerts: AlertSink | None = None,
        fee_wait_s: float = 60.0,
        figures: SettlementFigures | None = None,
    ) -> None:
        """``fee_wait_s``: when fees are above the hard cap, how long to wait before trying again.
        ``figures``: where each settlement's blocks, blob fill, duration and fee are recorded."""
        self.settlement = settlement
        self.objects = objects
        self.db = db
        self.clock = clock
        self.alerts = alerts
        self.fee_wait_s = fee_wait_s
        self.figures = figures

    async def check_ready(self, job: Job) -> float | None:
        return None

    async def _end_block(self, index: int) -> int | None:
        batch = await self.db.get_aggregator_batch(index)
        return None if batch is None else batch.end_block

    async def _already_settled(self, end_block: int) -> bool:
        last = await self.settlement.last_settled_block()
        return last is not None and last >= end_block

    async def process(self, job: Job) -> Processed:
        meta = job.metadata.specific
        assert isinstance(meta, StateUpdateMetadata)
        to_settle = meta.context.to_settle
        batch = await self.db.get_aggregator_batch(to_settle)
        if batch is None:
            raise JobError(f"batch {to_settle} to settle not found", retryable=False)
        end_block = batch.end_block
        if await self._already_settled(end_block):
            return Processed(
                external_id=str(to_settle),
                specific=dataclasses.replace(meta, tx_hash=meta.tx_hash or ZERO_HASH),
            )
        if not meta.program_output_path or not meta.da_segment_path:
            raise JobError("Missing required paths: program_output_path, da_segment_path", retryable=False)
        program_output = decode_program_output(await self.objects.get(meta.program_output_path))
        da_segment = decode_felts_json(await self.objects.get(meta.da_segment_path))
        blobs = felts_to_blobs(da_segment)
        started = time.monotonic()
        try:
            result = await self.settlement.update_state_with_blobs(
                program_output, blobs, idempotency_key=f"{job.job_type}-{to_settle}"
            )
        except Exception as exc:
            failed = dataclasses.replace(
                meta,
                context=dataclasses.replace(meta.context, last_failed=to_settle),
                **_attempts_of(exc, meta),
            )
            if await self._already_settled(end_block):
                return Processed(
                    external_id=str(to_settle),
                    specific=dataclasses.replace(failed, tx_hash=failed.tx_hash or ZERO_HASH),
                )
            message = f"Error occurred during state update of batch {to_settle}: {exc}"
            if isinstance(exc, OutsideCondition):
                if self.figures is not None:
                    self.figures.settlement_fee_capped()
                if self.alerts is not None:
                    await self.alerts.send(
                        "Settlement fee above the hard cap",
                        f"{message}\nSettlement of batch {to_settle} is paused; it resumes by itself when fees fall "
                        f"(checked every {self.fee_wait_s:.0f} s), or raise --ethereum-l2-state-update-max-fee-wei.",
                    )
                raise JobError(message, specific=failed, wait_s=self.fee_wait_s) from exc
            raise JobError(message, specific=failed, retryable=getattr(exc, "retryable", True)) from exc
        if self.figures is not None and not result.already_settled:
            fee = result.fee_paid_wei
            self.figures.settlement_done(
                blocks=end_block - batch.start_block + 1,
                felts=len(da_segment),
                blobs=len(blobs),
                seconds=time.monotonic() - started,
                fee_wei=fee,
                layer=SETTLEMENT_LAYER,
            )
        settled = dataclasses.replace(
            meta, tx_hash=result.tx_hash, tx_nonce=result.nonce, tx_attempts=settlement_attempts_json(result)
        )
        return Processed(external_id=str(to_settle), specific=settled)

    async def verify(self, job: Job) -> Verified:
        meta = job.metadata.specific
        assert isinstance(meta, StateUpdateMetadata)
        to_settle = meta.context.to_settle
        expected = await self._end_block(to_settle)
        if expected is None:
            raise JobError(f"batch {to_settle} to settle not found")
        last = await self.settlement.last_settled_block()
        if last is None:
            raise JobError("Last settled block unavailable after state update")
        if last >= expected:
            await move_aggregator_batch(self.db, to_settle, AggregatorBatchStatus.COMPLETED, now=self.clock.now())
            return Verified.verified()
        previous_end = await self._end_block(to_settle - 1) if to_settle > 1 else None
        if (previous_end is not None and last == previous_end) or (to_settle == 1 and last < expected):
            return Verified.pending()
        return Verified.rejected(f"Last settle block expected was {expected} but found {last}")


def _attempts_of(exc: Exception, meta: StateUpdateMetadata) -> dict[str, Any]:
    """The attempts a settlement error carries (``attempts``, ``nonce``, ``tx_hash``), for the metadata."""
    attempts = list(getattr(exc, "attempts", None) or [])
    if not attempts:
        return {}
    record = SettlementResult(tx_hash=getattr(exc, "tx_hash", None) or "", attempts=attempts)
    hashes = [a.tx_hash for a in attempts if a.tx_hash]
    nonce = getattr(exc, "nonce", None)
    return {
        "tx_attempts": settlement_attempts_json(record),
        "tx_nonce": nonce if nonce is not None else attempts[-1].nonce,
        "tx_hash": hashes[-1] if hashes else meta.tx_hash,
    }
