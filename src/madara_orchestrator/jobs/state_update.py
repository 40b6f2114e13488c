"""StateTransition: settle a batch on the settlement layer, strictly in order (SPEC §8.4).

An L2 settles aggregator batches on L1 with blob DA (the aggregator's program output and DA segment).
An L3 settles SNOS batches on its L2 with calldata: the program outputs attested by the SNOS proof and by
the bridge proof ProofRegistration fetched.

Safe to repeat: before sending, and again after a failure, the settlement contract's last block is
compared with the batch's end block; a batch already settled (after a crash, or by hand) is not sent.

Several in flight (``--max-settlements-in-flight``): a batch whose predecessor is not settled yet is sent
after it (``after_key``: the settlement client broadcasts it once the predecessor's is broadcast, with the
next nonce); until then, or when the predecessor reverted, the job waits (``OutOfTurn``) without spending
its retry budget. Verification of a batch whose predecessors are still settling is pending, not rejected.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from madara_orchestrator.domain.artifacts import SnosFile, snos_key
from madara_orchestrator.domain.batches import AggregatorBatchStatus, SnosBatchStatus
from madara_orchestrator.domain.errors import InvalidInput, JobError, OutOfTurn, OutsideCondition, SettlementPaused
from madara_orchestrator.domain.jobs import Job, JobType, StateUpdateMetadata
from madara_orchestrator.interfaces import (
    AlertSink,
    Clock,
    Database,
    ObjectStore,
    SettlementAttemptsCarrier,
    SettlementClient,
    SettlementFigures,
    SettlementResult,
)
from madara_orchestrator.jobs.artifacts import decode_felts_json, decode_program_output
from madara_orchestrator.jobs.base import JobHandler, Processed, Verified
from madara_orchestrator.jobs.batch_status import move_aggregator_batch, move_snos_batch
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.stone_proof import InvalidProof, program_output_of_proof

SETTLEMENT_LAYER = "L1"
"""An L2's StateTransition settles on L1 (the devnet ledger stands in for it)."""
L3_SETTLEMENT_LAYER = "L2"
"""An L3's StateTransition settles on its L2."""
USE_KZG_DA_INDEX = 8
"""Where the OS output holds its ``use_kzg_da`` flag (SPEC §6.6, §8.4)."""


class BatchKind(enum.StrEnum):
    """What a StateTransition's internal id indexes: an aggregator batch (L2) or a SNOS batch (L3)."""

    AGGREGATOR = "aggregator"
    SNOS = "snos"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    """A settlement ready to send, and what it carries (for the figures)."""

    send: Callable[[], Awaitable[SettlementResult]]
    felts: int
    blobs: int


ZERO_HASH = "0x" + "0" * 64


def settlement_key(job_type: str, index: int) -> str:
    """The idempotency key of batch ``index``'s settlement (what the durable sender stores it under)."""
    return f"{job_type}-{index}"


def settlement_attempts_json(result: SettlementResult) -> list[dict[str, object]]:
    """The attempts for the job's metadata; the mined one carries the fee it paid (``fee_paid_wei``) and,
    when the receipt told it, its split (``gas_used``, ``effective_gas_price_wei``, ``blob_gas_used``,
    ``blob_gas_price_wei``)."""
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
        if result.fee_split is not None and a.tx_hash is not None and a.tx_hash == result.tx_hash:
            entry.update(result.fee_split.attempt_fields())  # the cost ledger's split (domain/cost.py)
        out.append(entry)
    return out


@dataclass(kw_only=True, eq=False, repr=False)
class StateUpdateJobHandler(JobHandler[StateUpdateMetadata]):
    """``fee_wait_s``: when fees are above the hard cap, how long to wait before trying again.
    ``figures``: where each settlement's blocks, blob fill, duration and fee are recorded.
    ``settles``: what a job's internal id indexes: aggregator batches (L2) or SNOS batches (L3).
    ``max_in_flight``: how many settlements may be in flight at once (how far behind verification may
    find the contract without rejecting); at least 1."""

    job_type = JobType.STATE_TRANSITION
    metadata_type = StateUpdateMetadata

    settlement: SettlementClient
    objects: ObjectStore
    db: Database
    clock: Clock
    alerts: AlertSink | None = None
    fee_wait_s: float = 60.0
    figures: SettlementFigures | None = None
    settles: BatchKind = BatchKind.AGGREGATOR
    max_in_flight: int = 1

    def __post_init__(self) -> None:
        self.max_in_flight = max(1, self.max_in_flight)

    @property
    def layer(self) -> str:
        """The layer settled on (the figures' label)."""
        return L3_SETTLEMENT_LAYER if self.settles == BatchKind.SNOS else SETTLEMENT_LAYER

    async def _bounds(self, index: int) -> tuple[int, int] | None:
        """(start_block, end_block) of the batch to settle, or None when there is no such batch."""
        batch = (
            await self.db.get_snos_batch(index)
            if self.settles == BatchKind.SNOS
            else await self.db.get_aggregator_batch(index)
        )
        return None if batch is None else (batch.start_block, batch.end_block)

    async def _end_block(self, index: int) -> int | None:
        bounds = await self._bounds(index)
        return None if bounds is None else bounds[1]

    async def _already_settled(self, end_block: int) -> bool:
        last = await self.settlement.last_settled_block()
        return last is not None and last >= end_block

    @staticmethod
    def _key(job_type: str, index: int) -> str:
        return settlement_key(job_type, index)

    async def _after_key(self, job: Job, to_settle: int) -> str | None:
        """The settlement this one must follow: the previous batch's, while that batch is not settled."""
        previous_end = await self._end_block(to_settle - 1) if to_settle > 1 else None
        if previous_end is None or await self._already_settled(previous_end):
            return None
        return self._key(job.job_type, to_settle - 1)

    async def process_with(self, job: Job, meta: StateUpdateMetadata) -> Processed:
        to_settle = meta.context.to_settle
        bounds = await self._bounds(to_settle)
        if bounds is None:
            raise JobError(f"batch {to_settle} to settle not found", retryable=False)
        start_block, end_block = bounds
        if await self._already_settled(end_block):
            return Processed(
                external_id=str(to_settle),
                specific=dataclasses.replace(meta, tx_hash=meta.tx_hash or ZERO_HASH),
            )
        key = self._key(job.job_type, to_settle)
        after = await self._after_key(job, to_settle)
        if self.settles == BatchKind.SNOS:
            prepared = await self._prepare_calldata(meta, to_settle, key, after)
        else:
            prepared = await self._prepare_blobs(meta, key, after)
        started = time.monotonic()
        try:
            result = await prepared.send()
        except SettlementPaused as exc:
            raise JobError(f"Batch {to_settle} put back: {exc}", specific=meta, wait_s=exc.wait_s) from exc
        except OutOfTurn as exc:
            if await self._already_settled(end_block):
                return Processed(external_id=str(to_settle), specific=dataclasses.replace(meta, tx_hash=ZERO_HASH))
            raise JobError(f"Batch {to_settle} waits for its turn: {exc}", specific=meta, wait_s=exc.wait_s) from exc
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
            retryable = exc.retryable if isinstance(exc, JobError) else True
            raise JobError(message, specific=failed, retryable=retryable) from exc
        if self.figures is not None and not result.already_settled:
            fee = result.fee_paid_wei
            self.figures.settlement_done(
                blocks=end_block - start_block + 1,
                felts=prepared.felts,
                blobs=prepared.blobs,
                seconds=time.monotonic() - started,
                fee_wei=fee,
                layer=self.layer,
            )
        settled = dataclasses.replace(
            meta, tx_hash=result.tx_hash, tx_nonce=result.nonce, tx_attempts=settlement_attempts_json(result)
        )
        return Processed(external_id=str(to_settle), specific=settled)

    async def _prepare_blobs(self, meta: StateUpdateMetadata, key: str, after: str | None) -> _Prepared:
        """L2: the aggregator's program output, and its DA segment as blobs (SPEC §8.4 step 4, §6.4)."""
        if not meta.program_output_path or not meta.da_segment_path:
            raise JobError("Missing required paths: program_output_path, da_segment_path", retryable=False)
        program_output = decode_program_output(await self.objects.get(meta.program_output_path))
        da_segment = decode_felts_json(await self.objects.get(meta.da_segment_path))
        blobs = felts_to_blobs(da_segment)

        async def send() -> SettlementResult:
            return await self.settlement.update_state_with_blobs(
                program_output, blobs, idempotency_key=key, after_key=after
            )

        return _Prepared(send=send, felts=len(da_segment), blobs=len(blobs))

    async def _prepare_calldata(
        self, meta: StateUpdateMetadata, to_settle: int, key: str, after: str | None
    ) -> _Prepared:
        """L3: the outputs the SNOS proof and the bridge proof attest, as calldata (SPEC §8.4 step 4)."""
        if not meta.snos_output_path:
            raise JobError("Missing required paths: snos_output_path", retryable=False)
        try:
            snos_output = decode_felts_json(await self.objects.get(meta.snos_output_path))
        except InvalidInput as exc:
            raise JobError(f"SNOS output {meta.snos_output_path} is unreadable: {exc}", retryable=False) from exc
        if len(snos_output) <= USE_KZG_DA_INDEX:
            raise JobError(
                f"SNOS output {meta.snos_output_path} has {len(snos_output)} felts: its use_kzg_da flag "
                f"(index {USE_KZG_DA_INDEX}) is missing",
                retryable=False,
            )
        if snos_output[USE_KZG_DA_INDEX] not in (0, 1):
            raise JobError(
                f"UseKZGDaError: SNOS batch {to_settle}'s output has use_kzg_da = {snos_output[USE_KZG_DA_INDEX]} "
                "at index 8; settling with calldata needs 0 or 1",
                retryable=False,
            )
        os_output = await self._proven_output(snos_key(to_settle, SnosFile.PROOF))
        bridge_output = await self._proven_output(snos_key(to_settle, SnosFile.BRIDGE_PROOF))

        async def send() -> SettlementResult:
            return await self.settlement.update_state_calldata(
                os_output, bridge_output, idempotency_key=key, after_key=after
            )

        return _Prepared(send=send, felts=len(os_output) + len(bridge_output), blobs=0)

    async def _proven_output(self, path: str) -> list[int]:
        """The program output the Stone proof at ``path`` attests."""
        proof = await self.objects.get(path)
        try:
            return program_output_of_proof(proof)
        except InvalidProof as exc:
            raise JobError(f"the proof {path} is not a valid Stark proof: {exc}", retryable=False) from exc

    async def verify_with(self, job: Job, meta: StateUpdateMetadata) -> Verified:
        to_settle = meta.context.to_settle
        expected = await self._end_block(to_settle)
        if expected is None:
            raise JobError(f"batch {to_settle} to settle not found")
        last = await self.settlement.last_settled_block()
        if last is None:
            raise JobError("Last settled block unavailable after state update")
        if last >= expected:
            if self.settles == BatchKind.SNOS:
                await move_snos_batch(self.db, to_settle, SnosBatchStatus.COMPLETED, now=self.clock.now())
            else:
                await move_aggregator_batch(self.db, to_settle, AggregatorBatchStatus.COMPLETED, now=self.clock.now())
            return Verified.verified()
        if await self._earlier_settling(to_settle, last):
            return Verified.pending()
        return Verified.rejected(f"Last settle block expected was {expected} but found {last}")

    async def _earlier_settling(self, to_settle: int, last: int) -> bool:
        """Whether the contract stands at the end of one of the ``max_in_flight`` batches before this one (or,
        that far from the first batch, before the first batch's end): they are still settling."""
        first = to_settle - self.max_in_flight
        for index in range(max(1, first), to_settle):
            if await self._end_block(index) == last:
                return True
        if first < 1:
            first_end = await self._end_block(1)
            return first_end is not None and last < first_end
        return False


def _attempts_of(exc: Exception, meta: StateUpdateMetadata) -> dict[str, Any]:
    """The attempts a settlement error carries (``attempts``, ``nonce``, ``tx_hash``), for the metadata."""
    if not isinstance(exc, SettlementAttemptsCarrier) or not exc.attempts:
        return {}
    attempts = list(exc.attempts)
    record = SettlementResult(tx_hash=exc.tx_hash or "", attempts=attempts)
    hashes = [a.tx_hash for a in attempts if a.tx_hash]
    return {
        "tx_attempts": settlement_attempts_json(record),
        "tx_nonce": exc.nonce if exc.nonce is not None else attempts[-1].nonce,
        "tx_hash": hashes[-1] if hashes else meta.tx_hash,
    }
