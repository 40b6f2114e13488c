"""What the web dashboard shows (its routes: ``routes/dashboard.py``): the overview, one block, the latest
jobs.

Every query is bounded (latest/oldest job per stage, a few recent batches, the last settlements), so
polling every second or two stays cheap on any store. Nothing secret leaves: no settings are read, and
free text that may quote an outside URL (failure reasons, settlement errors) has URLs cut to
``scheme://host[:port]`` (RPC URLs often carry an API key in their path or query).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    BouncerWeights,
    SnosBatch,
    SnosBatchStatus,
)
from madara_orchestrator.domain.batching import BatchLimits
from madara_orchestrator.domain.chain import FELTS_PER_BLOB, blobs_for
from madara_orchestrator.domain.errors import NotFound
from madara_orchestrator.domain.health import chain_problem
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, StateUpdateMetadata, settlements_in_flight
from madara_orchestrator.domain.lag import LagRule
from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.engine.blocks import BlockRange, aggregator_batches, job_ranges
from madara_orchestrator.engine.plan import TriggerName
from madara_orchestrator.engine.runtime import Runtime
from madara_orchestrator.interfaces import Database

Json = dict[str, object]

STAGE_NAMES: dict[JobType, str] = {
    JobType.SNOS_RUN: "snos",
    JobType.PROOF_CREATION: "proof",
    JobType.AGGREGATOR: "aggregation",
    JobType.PROOF_REGISTRATION: "registration",
    JobType.DATA_SUBMISSION: "da",
    JobType.STATE_TRANSITION: "settlement",
}
"""Each stage's name on the page, in pipeline order; the layer's plan (engine/plan.py) says which stages it has
(an L3: no aggregation; each proof verified on the L2, each batch's state diff encoded for DA)."""
RECENT_BATCHES = 8
SETTLEMENT_SERIES = 60
"""How many of the latest settlements the overview's chart and fee figures cover."""
MAX_JOB_ROWS = 200
OUTSIDE_CALL_TIMEOUT_S = 2.0
MAX_TEXT = 600
"""Free text (failure reasons, errors) is cut to this many characters."""


def redact(text: str | None) -> str | None:
    """``text`` with every URL cut to ``scheme://host[:port]`` (no credentials, path or query), and cut
    to ``MAX_TEXT`` characters."""
    if text is None:
        return None
    cut = cut_urls(text)
    return cut if len(cut) <= MAX_TEXT else cut[: MAX_TEXT - 1] + "…"


# --------------------------------------------------------------------------------------------------
# Shapes


def job_row(job: Job, block_range: BlockRange | None) -> Json:
    common = job.common
    return {
        "id": str(job.id),
        "job_type": job.job_type.value,
        "internal_id": job.internal_id,
        "status": job.status.value,
        "external_id": redact(job.external_id) or None,
        "start_block": block_range[0] if block_range else None,
        "end_block": block_range[1] if block_range else None,
        "attempts": {
            "process": common.process_attempt_no,
            "process_retry": common.process_retry_attempt_no,
            "verification": common.verification_attempt_no,
            "verification_retry": common.verification_retry_attempt_no,
        },
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "timestamps": {
            "process_started_at": common.process_started_at,
            "process_completed_at": common.process_completed_at,
            "verification_started_at": common.verification_started_at,
            "verification_completed_at": common.verification_completed_at,
        },
        "failure_reason": redact(common.failure_reason),
        "previous_failure_reasons": [redact(r) for r in common.previous_failure_reasons[-10:]],
        "waiting_since": common.waiting_since,
    }


def _fee(entry: object) -> int | None:
    """A fee in wei from a stored attempt (``fee_paid_wei`` or ``fee_wei``), when one was recorded."""
    if not isinstance(entry, dict):
        return None
    for key in ("fee_paid_wei", "fee_wei"):
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def settlement_fee(meta: StateUpdateMetadata) -> int | None:
    """What the settlement paid: the fee recorded on its finalized attempt (or on the last attempt that has
    one). None when the settlement client records no fee (the devnet ledger never does)."""
    fees = [(a.get("status") == "Finalized", _fee(a)) for a in meta.tx_attempts if isinstance(a, dict)]
    recorded = [(final, fee) for final, fee in fees if fee is not None]
    if not recorded:
        return None
    finalized = [fee for final, fee in recorded if final]
    return finalized[-1] if finalized else recorded[-1][1]


def settlement_tx(job: Job, block_range: BlockRange | None) -> Json | None:
    meta = job.metadata.specific
    if not isinstance(meta, StateUpdateMetadata):
        return None
    attempts: list[Json] = []
    for a in meta.tx_attempts[-20:]:
        if not isinstance(a, dict):
            continue
        attempts.append(
            {
                "attempt_no": a.get("attempt_no"),
                "tx_hash": a.get("tx_hash"),
                "nonce": a.get("nonce"),
                "gas_multiplier": a.get("gas_multiplier"),
                "status": a.get("status"),
                "error": redact(a["error"]) if isinstance(a.get("error"), str) else None,
                "fee_wei": _fee(a),
            }
        )
    return {
        "job_id": str(job.id),
        "batch": meta.context.to_settle,
        "status": job.status.value,
        "start_block": block_range[0] if block_range else None,
        "end_block": block_range[1] if block_range else None,
        "tx_hash": meta.tx_hash,
        "tx_nonce": meta.tx_nonce,
        "fee_wei": settlement_fee(meta),
        "attempts": attempts,
        "settled_at": job.common.verification_completed_at if job.status == JobStatus.COMPLETED else None,
    }


def _weights_fill(weights: BouncerWeights, limits: BouncerWeights) -> list[Json]:
    used = weights.to_json()
    return [{"name": name, "used": used[name], "limit": limit} for name, limit in limits.to_json().items() if limit > 0]


def snos_batch_row(batch: SnosBatch, limits: BatchLimits, now: float) -> Json:
    max_blocks = limits.fixed_blocks_per_snos_batch or limits.max_blocks_per_snos_batch
    return {
        "index": batch.index,
        "status": batch.status.value,
        "start_block": batch.start_block,
        "end_block": batch.end_block,
        "aggregator_batch_index": batch.aggregator_batch_index,
        "blocks": batch.num_blocks,
        "max_blocks": max_blocks,
        "age_s": max(0.0, now - batch.created_at),
        "max_age_s": limits.max_batch_time_s,
        "weights": _weights_fill(batch.builtin_weights, limits.bouncer_weight_limits),
        "created_at": batch.created_at,
        "updated_at": batch.updated_at,
    }


def aggregator_batch_row(batch: AggregatorBatch, limits: BatchLimits, now: float) -> Json:
    return {
        "index": batch.index,
        "status": batch.status.value,
        "start_block": batch.start_block,
        "end_block": batch.end_block,
        "blocks": batch.num_blocks,
        "max_blocks": limits.max_batch_size,
        "blob_felts": batch.blob_len,
        "max_blob_felts": limits.max_blob_size,
        "input_size": batch.aggregator_input_size_upper_bound,
        "max_input_size": limits.max_aggregator_input_size,
        "age_s": max(0.0, now - batch.created_at),
        "max_age_s": limits.max_batch_time_s,
        "weights": _weights_fill(batch.builtin_weights, limits.aggregator_weight_limits),
        "created_at": batch.created_at,
        "updated_at": batch.updated_at,
    }


# --------------------------------------------------------------------------------------------------
# Reads


@dataclass(frozen=True, slots=True)
class Outside:
    """An answer from outside (sequencer, settlement layer), or why there is none."""

    value: int | None
    error: str | None


async def _ask(call: Callable[[], Awaitable[int | None]], what: str) -> Outside:
    try:
        async with asyncio.timeout(OUTSIDE_CALL_TIMEOUT_S):
            return Outside(await call(), None)
    except TimeoutError:
        return Outside(None, f"{what}: no answer within {OUTSIDE_CALL_TIMEOUT_S:g} s")
    except Exception as exc:
        return Outside(None, redact(f"{what}: {type(exc).__name__}: {exc}"))


async def _head_and_settled(runtime: Runtime) -> tuple[Outside, Outside]:
    """The sequencer's latest block and the settlement layer's last settled block, asked at once."""
    head, settled = await asyncio.gather(
        _ask(runtime.adapters.sequencer.block_number, "sequencer"),
        _ask(runtime.adapters.settlement.last_settled_block, "settlement layer"),
    )
    return head, settled


async def stage_progress(db: Database, job_type: JobType, *, settles_snos: bool = False) -> Json:
    """``through``: every block up to it has passed the stage (the first job not yet Completed starts
    after it); ``highest``: the highest block a Completed job of the stage covers."""
    latest = await db.latest_job(job_type, statuses=[JobStatus.COMPLETED])
    first_open = await db.oldest_job(job_type, excluding_statuses=[JobStatus.COMPLETED])
    ranges = await job_ranges(db, [j for j in (latest, first_open) if j is not None], settles_snos=settles_snos)
    highest = ranges[latest.id][1] if latest is not None and latest.id in ranges else None
    through = highest
    if first_open is not None and first_open.id in ranges and highest is not None:
        start = ranges[first_open.id][0]
        through = min(highest, start - 1) if start > 0 else None
    return {
        "through": through,
        "highest": highest,
        "first_open": None
        if first_open is None
        else {
            "job_type": first_open.job_type.value,
            "internal_id": first_open.internal_id,
            "status": first_open.status.value,
            "start_block": ranges.get(first_open.id, (None, None))[0],
        },
    }


def stages_of(runtime: Runtime) -> tuple[tuple[str, JobType], ...]:
    return runtime.config.plan.stages(STAGE_NAMES)


async def stages_through(runtime: Runtime) -> dict[str, Json]:
    """Each stage's progress; a block has passed a stage only once it passed the ones before (its later
    jobs wait on them)."""
    settles_snos = not runtime.config.plan.aggregator_batches
    stages: dict[str, Json] = {}
    previous: int | None = None
    for index, (name, job_type) in enumerate(stages_of(runtime)):
        progress = await stage_progress(runtime.storage.db, job_type, settles_snos=settles_snos)
        through = progress["through"]
        if index > 0 and isinstance(through, int) and (previous is None or through > previous):
            progress["through"] = through = previous
        previous = through if isinstance(through, int) else None
        stages[name] = progress
    return stages


async def job_counts(db: Database) -> dict[str, dict[str, int]]:
    return counts_by_name(await db.count_jobs())


def counts_by_name(raw: Mapping[tuple[JobType, JobStatus], int]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for (job_type, status), n in sorted(raw.items()):
        counts.setdefault(job_type.value, {})[status.value] = n
    return counts


async def lag(runtime: Runtime, head: int | None, settled: int | None, chain: str | None, now: float) -> Json:
    """How far settlement is behind the head, in blocks and in seconds (since the first unsettled block's
    batch opened), and the colour ``lag_rule`` gives it."""
    lag_blocks: int | None = None
    lag_seconds: float | None = None
    if head is not None and chain is None:
        first_unsettled = 0 if settled is None else settled + 1
        lag_blocks = max(0, head - first_unsettled + 1)
        if lag_blocks == 0:
            lag_seconds = 0.0
        else:
            waiting = await runtime.storage.db.snos_batch_for_block(first_unsettled)
            lag_seconds = None if waiting is None else max(0.0, now - waiting.created_at)
    rule = lag_rule(runtime)
    return {
        "blocks": lag_blocks,
        "seconds": lag_seconds,
        "level": rule.level(lag_blocks, lag_seconds).value,
        "normal_blocks": rule.normal_blocks,
        "normal_seconds": rule.normal_age_s,
    }


async def settlements_and_fees(runtime: Runtime) -> tuple[list[Json], Json]:
    """The latest settlements (oldest first) for the chart, and what they paid."""
    db = runtime.storage.db
    settlements = await db.list_jobs(
        job_types=[JobType.STATE_TRANSITION], statuses=[JobStatus.COMPLETED], limit=SETTLEMENT_SERIES, descending=True
    )
    ranges = await job_ranges(db, settlements, settles_snos=not runtime.config.plan.aggregator_batches)
    series: list[Json] = []
    fees: list[int] = []
    fee_blocks = 0
    for job in reversed(settlements):
        tx = settlement_tx(job, ranges.get(job.id))
        if tx is None or tx["end_block"] is None:
            continue
        fee, start, end = tx["fee_wei"], tx["start_block"], tx["end_block"]
        if isinstance(fee, int):
            fees.append(fee)
            if isinstance(start, int) and isinstance(end, int):
                fee_blocks += end - start + 1
        series.append(
            {
                "batch": tx["batch"],
                "start_block": start,
                "end_block": end,
                "at": job.common.verification_completed_at or job.updated_at,
                "fee_wei": fee,
                "tx_hash": tx["tx_hash"],
            }
        )
    aggregated = runtime.config.plan.aggregator_batches
    return series, {
        "window": len(series),
        "with_fee": len(fees),
        "total_wei": sum(fees) if fees else None,
        "unit": "ETH" if aggregated else "STRK",
        "blocks": fee_blocks,
        "per_block_wei": sum(fees) // fee_blocks if fees and fee_blocks else None,
        **(await blob_fill(db, series) if aggregated else NO_BLOB_FILL),
    }


async def batch_rows(runtime: Runtime, now: float) -> tuple[Json, Json, int | None]:
    """The open batches, the recent ones, and the last block batched."""
    db = runtime.storage.db
    limits = runtime.config.batching.limits
    open_aggregators = await db.list_aggregator_batches(statuses=[AggregatorBatchStatus.OPEN], limit=3)
    open_snos = await db.list_snos_batches(statuses=[SnosBatchStatus.OPEN], limit=3)
    recent_aggregators = await db.list_aggregator_batches(limit=RECENT_BATCHES, descending=True)
    recent_snos = await db.list_snos_batches(limit=RECENT_BATCHES, descending=True)
    latest_batches = recent_aggregators if runtime.config.plan.aggregator_batches else recent_snos
    open_rows: Json = {
        "aggregator": [aggregator_batch_row(b, limits, now) for b in open_aggregators],
        "snos": [snos_batch_row(b, limits, now) for b in open_snos],
    }
    recent_rows: Json = {
        "aggregator": [aggregator_batch_row(b, limits, now) for b in recent_aggregators],
        "snos": [snos_batch_row(b, limits, now) for b in recent_snos],
    }
    return open_rows, recent_rows, latest_batches[0].end_block if latest_batches else None


async def overview(runtime: Runtime, *, admin_enabled: bool) -> Json:
    now = runtime.clock.now()
    head, settled = await _head_and_settled(runtime)
    stages = await stages_through(runtime)
    raw_counts = await runtime.storage.db.count_jobs()
    counts = counts_by_name(raw_counts)
    chain = chain_problem(head.value, settled.value)
    lag_view = await lag(runtime, head.value, settled.value, chain, now)
    open_rows, recent_rows, batched_through = await batch_rows(runtime, now)
    failing = runtime.triggers.failing()
    series, fees = await settlements_and_fees(runtime)
    problems = [health.describe(name) for name, health in failing.items()]
    outbox = await runtime.outbox_problem()
    return {
        "now": now,
        "admin_enabled": admin_enabled,
        "head": head.value,
        "settled": settled.value,
        "errors": [e for e in (head.error, settled.error, chain, *problems, outbox) if e],
        "failing_triggers": [
            {
                "trigger": str(name),
                "failures": health.failures,
                "failing_since": health.failing_since,
                "last_error": health.last_error,
                "outage": health.outage,
            }
            for name, health in failing.items()
        ],
        "batching_failing": any(name in BATCHING_TRIGGERS for name in failing),
        "batched_through": batched_through,
        "stages": stages,
        "lag": lag_view,
        "attention": await attention_counts(runtime.storage.db),
        "open_batches": open_rows,
        "recent_batches": recent_rows,
        "job_counts": counts,
        "settlements_in_flight": {
            "count": settlements_in_flight(raw_counts),
            "limit": runtime.config.triggers.max_settlements_in_flight,
        },
        "settlements": series,
        "fees": fees,
        "posting": posting(runtime),
        "paused": {str(stage): pause.to_json() for stage, pause in (await runtime.pauses.current()).items()},
    }


def posting(runtime: Runtime) -> Json | None:
    """The posting gate's last look (``--settlement-deadline-seconds``): which batch waits for lower L1 fees and
    why, or went; None without a deadline (settlements go at once) or before its first look."""
    gate = runtime.settlement_gate
    if gate is None or gate.state is None:
        return None
    return gate.state.to_json()


BATCHING_TRIGGERS = frozenset({TriggerName.AGGREGATOR_BATCHING, TriggerName.SNOS_BATCHING})
NO_BLOB_FILL: Json = {"blob_fill": None, "blob_batches": 0}


def lag_rule(runtime: Runtime) -> LagRule:
    """The lag colour's rule (``domain/lag.py``) from this instance's batch limits: a settlement covers one
    aggregator batch (an L3: one SNOS batch)."""
    limits = runtime.config.batching.limits
    if runtime.config.plan.aggregator_batches:
        blocks = limits.max_batch_size
    else:
        blocks = limits.fixed_blocks_per_snos_batch or limits.max_blocks_per_snos_batch
    return LagRule(batch_blocks=blocks, batch_time_s=limits.max_batch_time_s)


async def blob_fill(db: Database, series: Sequence[Json]) -> Json:
    """How full the blobs of the settled aggregator batches were: their state diffs' felts over the capacity
    of the blobs they took (4096 felts each)."""
    indexes = sorted({s["batch"] for s in series if isinstance(s["batch"], int)})
    batches = await aggregator_batches(db, indexes)
    felts = sum(b.blob_len for b in batches)
    capacity = sum(blobs_for(b.blob_len) * FELTS_PER_BLOB for b in batches)
    return {"blob_fill": felts / capacity if capacity else None, "blob_batches": len(batches)}


ATTENTION_STATUSES = (JobStatus.FAILED, JobStatus.VERIFICATION_TIMEOUT, JobStatus.VERIFICATION_FAILED)
"""Statuses a job stays in until an operator acts."""
IN_FLIGHT_STATUSES = (
    JobStatus.CREATED,
    JobStatus.LOCKED_FOR_PROCESSING,
    JobStatus.PENDING_VERIFICATION,
    JobStatus.PENDING_RETRY,
)
WAITING_SCAN = 500
"""Jobs in flight looked at for those waiting out an outage (the job buffers keep far fewer in flight)."""


async def waiting_jobs(db: Database, *, limit: int = WAITING_SCAN) -> list[Job]:
    """Jobs in flight that wait for an outside service that does not answer, newest first."""
    jobs = await db.list_jobs(statuses=IN_FLIGHT_STATUSES, limit=WAITING_SCAN, descending=True)
    return [j for j in jobs if j.common.waiting_since is not None][:limit]


async def attention_counts(db: Database) -> Json:
    """The jobs that need attention: stuck until an operator acts (Failed, VerificationTimeout,
    VerificationFailed), and those waiting out an outage."""
    counts = await db.count_jobs()
    by_status = {s.value: sum(n for (_, status), n in counts.items() if status == s) for s in ATTENTION_STATUSES}
    waiting = len(await waiting_jobs(db))
    return {"total": sum(by_status.values()) + waiting, "by_status": by_status, "waiting": waiting}


async def attention_jobs(db: Database, *, job_types: Sequence[JobType], limit: int) -> list[Job]:
    stuck = await db.list_jobs(statuses=ATTENTION_STATUSES, job_types=job_types, limit=limit, descending=True)
    waiting = [j for j in await waiting_jobs(db) if not job_types or j.job_type in job_types]
    return sorted([*stuck, *waiting], key=lambda j: j.updated_at, reverse=True)[:limit]


async def block_view(runtime: Runtime, block_number: int) -> Json:
    db = runtime.storage.db
    limits = runtime.config.batching.limits
    now = runtime.clock.now()
    snos = await db.snos_batch_for_block(block_number)
    aggregator = await db.aggregator_batch_for_block(block_number)
    head, settled = await _head_and_settled(runtime)
    if snos is None and aggregator is None and (head.value is None or block_number > head.value):
        raise NotFound(f"Block not found: {block_number} is not in any batch and the chain head is {head.value}")
    jobs = sorted(await db.jobs_for_block(block_number), key=lambda j: _STAGE_ORDER.get(j.job_type, 99))
    ranges = await job_ranges(db, jobs, settles_snos=not runtime.config.plan.aggregator_batches)
    txs = [tx for j in jobs if (tx := settlement_tx(j, ranges.get(j.id))) is not None]
    return {
        "block_number": block_number,
        "head": head.value,
        "settled": settled.value,
        "is_settled": settled.value is not None and block_number <= settled.value,
        "errors": [e for e in (head.error, settled.error) if e],
        "snos_batch": None if snos is None else snos_batch_row(snos, limits, now),
        "aggregator_batch": None if aggregator is None else aggregator_batch_row(aggregator, limits, now),
        "jobs": [job_row(j, ranges.get(j.id)) for j in jobs],
        "settlement_txs": txs,
    }


_STAGE_ORDER = {job_type: i for i, job_type in enumerate(STAGE_NAMES)}


async def job_list(
    runtime: Runtime,
    *,
    statuses: Sequence[JobStatus],
    job_types: Sequence[JobType],
    limit: int,
    needs_attention: bool = False,
) -> list[Json]:
    """The latest jobs, newest first; ``needs_attention``: those stuck until an operator acts and those
    waiting out an outage (``statuses`` is then ignored)."""
    db = runtime.storage.db
    if needs_attention:
        jobs = await attention_jobs(db, job_types=job_types, limit=limit)
    else:
        jobs = await db.list_jobs(statuses=statuses, job_types=job_types, limit=limit, descending=True)
    ranges = await job_ranges(db, jobs, settles_snos=not runtime.config.plan.aggregator_batches)
    return [job_row(j, ranges.get(j.id)) for j in jobs]
