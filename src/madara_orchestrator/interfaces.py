"""The Protocols: one per outside thing the engine and the jobs talk to.

Each Protocol lists only the methods really called. Implementations live in one module each
(``backends/sqlite.py``, ``backends/filesystem.py``, ``provers/atlantic.py``, ...); in-memory ones for
fast unit tests live in ``backends/memory.py`` and pass the same contract tests as the real ones.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from madara_orchestrator.domain.batches import (
    AggregatorBatch,
    AggregatorBatchStatus,
    BouncerWeights,
    SnosBatch,
    SnosBatchStatus,
)
from madara_orchestrator.domain.cost import FeeSplit
from madara_orchestrator.domain.errors import RpcError
from madara_orchestrator.domain.eth_tx import SignedBody, UnsignedTx
from madara_orchestrator.domain.health import OutboxWaiting
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.domain.pause import Pause, Stage
from madara_orchestrator.domain.posting import FeeHistory
from madara_orchestrator.domain.proving import (
    AggregationArtifacts,
    ProverTask,
    TaskStatus,
    TaskType,
)
from madara_orchestrator.domain.settlement_tx import AttemptRecord, AttemptStatus, TxKeyRecord, TxTotals

# --------------------------------------------------------------------------------------------------
# Time


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch, with sub-second precision."""
        ...


# --------------------------------------------------------------------------------------------------
# Queues (SQS semantics)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMessage:
    queue: str
    message_id: str
    body: str
    receipt: str
    """Opaque handle of this delivery; ack/nack/extend with a stale receipt do nothing."""
    receive_count: int
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int


class QueueClient(Protocol):
    """At-least-once delivery with visibility timeouts and dead-lettering after N receives."""

    async def send(self, queue: str, body: str, *, delay_s: float = 0.0) -> str: ...

    async def receive(self, queue: str, *, wait_s: float = 0.0) -> QueueMessage | None: ...

    async def ack(self, message: QueueMessage) -> None:
        """Delete the message: it will not be delivered again."""
        ...

    async def nack(self, message: QueueMessage, *, delay_s: float = 0.0) -> None:
        """Make the message visible again after ``delay_s`` (SQS ChangeMessageVisibility)."""
        ...

    async def extend(self, message: QueueMessage, *, visibility_s: float) -> None:
        """Keep the message hidden for ``visibility_s`` more seconds (heartbeat of a long handler)."""
        ...

    async def depth(self, queue: str) -> QueueDepth: ...


# --------------------------------------------------------------------------------------------------
# Object storage, alerts, locks


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes:
        """Raises ``NotFound`` when the key does not exist."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str) -> list[str]: ...


@runtime_checkable
class ObjectSizes(Protocol):
    """An object store that tells a stored object's size without reading it (the cost ledger's bytes)."""

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""
        ...


class ExpiringStore(Protocol):
    """Object storage with an expiry rule for settled artifacts (SPEC §4.12, §18: S3's lifecycle rule)."""

    async def tag_for_expiry(self, keys: Sequence[str]) -> int:
        """Mark each key ``expire-after-settlement=true``; a missing key counts as done, any other failure
        raises (the caller tries again later). Returns how many existing objects were marked."""
        ...


class AlertSink(Protocol):
    async def send(self, subject: str, message: str) -> None:
        """Deliver an alert. Never raises: a failed alert is logged, not fatal."""
        ...


class LockService(Protocol):
    """Named leases. An expired lease is free at once (no TTL reaper delay, unlike SPEC §12)."""

    async def acquire(self, key: str, owner: str, ttl_s: float) -> bool: ...

    async def release(self, key: str, owner: str) -> bool: ...


class PauseStore(Protocol):
    """Which stages are paused (``domain/pause.py``), shared by every instance of a deployment."""

    async def pause(self, pause: Pause) -> tuple[Pause, bool]:
        """Store ``pause``; when its stage is paused already, that pause stands. Returns the stored pause and
        whether it is this one."""
        ...

    async def resume(self, stage: Stage) -> Pause | None:
        """Remove the stage's pause; the pause removed, or None when it was not paused."""
        ...

    async def pauses(self) -> dict[Stage, Pause]: ...


# --------------------------------------------------------------------------------------------------
# The outside world


class SequencerRpc(Protocol):
    """The Starknet JSON-RPC calls the orchestrator makes to the sequencer (Madara)."""

    async def block_number(self) -> int: ...

    async def chain_id(self) -> str: ...

    async def get_block_with_tx_hashes(self, block_number: int) -> dict[str, Any]: ...

    async def get_state_update(self, block_number: int) -> dict[str, Any]: ...

    async def get_nonce(self, block_number: int, address: int) -> int: ...


@dataclass(frozen=True, slots=True)
class RpcCall:
    method: str
    params: Any


class BatchRpc(Protocol):
    """JSON-RPC calls sent as batches: squashing's and stateful compression's reads at past blocks
    (``StarknetRpcClient`` fits). One answer per call, in order: the result, or the node's ``RpcError``."""

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]: ...


class NonceSource(Protocol):
    """What the DA job asks the sequencer for; ``SequencerRpc`` and ``StarknetRpcClient`` fit."""

    async def get_nonce(self, block_number: int, address: int) -> int: ...


class ChainIdRpc(Protocol):
    """The SNOS RPC as readiness sees it: it answers ``starknet_chainId`` (SPEC §9)."""

    async def chain_id(self) -> str: ...


class ChainRpc(Protocol):
    """What an aggregator runner reads from the sequencer: readiness, and the chain before the batch."""

    async def chain_id(self) -> str: ...

    async def get_state_update(self, block_number: int) -> dict[str, Any]: ...

    async def get_block_with_tx_hashes(self, block_number: int) -> dict[str, Any]: ...


class ReferenceNode(Protocol):
    """A reference Starknet node for the replay-bounds check (SPEC §5.9, ``--replay-bounds-rpc-url``):
    block headers only. ``BackendUnavailable`` while it cannot be reached; any error is waited out."""

    async def get_block_with_tx_hashes(self, block_number: int) -> dict[str, Any]: ...


class FeederGateway(Protocol):
    """Madara's feeder gateway: the one call batching needs that JSON-RPC does not offer."""

    async def get_block_bouncer_weights(self, block_number: int) -> BouncerWeights:
        """``GET /feeder_gateway/get_block_bouncer_weights?blockNumber=N``, as reported (zero proving gas
        for an empty block is left to the batching policy). ``BackendUnavailable`` while the gateway is
        unreachable or answers 5xx; ``InvalidInput`` for an answer of the wrong shape."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SnosResult:
    cairo_pie_zip: bytes
    os_output: list[int]
    """The raw OS output felts (stored as ``snos_output.json``)."""
    program_output: list[int]
    """The output segment the fact is computed over (stored as ``program_output.txt``)."""
    fact: str
    """``0x`` + 64 lowercase hex."""
    n_steps: int


class SnosRunner(Protocol):
    async def is_ready(self) -> bool:
        """Whether the SNOS RPC answers; a job that is not ready is put back with a delay."""
        ...

    async def run(self, start_block: int, end_block: int) -> SnosResult:
        """Raises typed errors only (SPEC §2.8): ``JobError`` (the run's own failure, retryable or not, as
        it is), ``BackendUnavailable`` (an outage, waited out), ``Retryable`` (may pass: retried) or
        ``InvalidInput`` (fails the job at once)."""
        ...


@runtime_checkable
class ProverClient(Protocol):
    """SPEC §7.1: the five operations every prover backend implements."""

    async def submit_task(self, task: ProverTask) -> str: ...

    async def get_task_status(self, task_type: TaskType, job_key: str, fact: str | None = None) -> TaskStatus: ...

    async def get_proof(self, task_id: str) -> str: ...

    async def submit_l2_query(
        self, task_id: str, proof: str, n_steps: int | None, *, dedup_id: str | None = None
    ) -> str:
        """Verify ``proof`` on L2 (L3's ProofRegistration). With ``dedup_id`` a second call for the same id
        (a retry after a crash) returns the query already submitted, unless that one failed."""
        ...

    async def get_aggregation_artifacts(self, external_id: str, include_proof: bool) -> AggregationArtifacts: ...


class DaClient(Protocol):
    max_blobs_per_txn: int
    max_bytes_per_blob: int

    async def publish_state_diff(self, blobs: Sequence[bytes], to: bytes) -> str: ...

    async def verify_inclusion(self, external_id: str) -> str:
        """``Pending``, ``Verified`` or ``Rejected: <reason>``."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementAttempt:
    attempt_no: int
    tx_hash: str | None
    nonce: int
    gas_multiplier: float
    status: str
    """Finalized, Replaced, TimedOut, RejectedUnderpriced or SubmissionFailed (SPEC §2.2)."""
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementResult:
    tx_hash: str
    nonce: int | None = None
    attempts: list[SettlementAttempt] = field(default_factory=list)
    fee_paid_wei: int | None = None
    """What the mined transaction cost (execution + blob fee), when the settlement layer tells."""
    already_settled: bool = False
    """The key was settled by an earlier call; nothing was sent by this one."""
    fee_split: FeeSplit | None = None
    """The mined transaction's execution and blob gas and prices (Ethereum), when this call saw its receipt."""


class SettlementClient(Protocol):
    async def last_settled_block(self) -> int | None:
        """The settlement contract's last block, or None when nothing is settled yet."""
        ...

    async def update_state_with_blobs(
        self,
        program_output: Sequence[int],
        blobs: Sequence[bytes],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult:
        """Settle with blob DA. ``idempotency_key`` (the batch) lets a durable sender avoid a double send.
        ``after_key``: the settlement this one follows while it is in flight (several in flight): nothing is
        sent before that one is broadcast, and it takes the next nonce; ``OutOfTurn`` when it must wait."""
        ...

    async def update_state_calldata(
        self,
        snos_output: Sequence[int],
        program_output: Sequence[int],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult: ...

    async def verify_tx_inclusion(self, tx_hash: str) -> str:
        """``Pending``, ``Verified`` or ``Rejected: <reason>``."""
        ...


# --------------------------------------------------------------------------------------------------
# The database: jobs and batches


class JobStore(Protocol):
    """The source of truth for jobs. Writes are guarded by ``version`` (optimistic locking)."""

    async def create_job(self, job: Job) -> bool:
        """Insert; False (and no change) when a job with the same (job_type, internal_id) exists."""
        ...

    async def get_job(self, job_id: uuid.UUID) -> Job | None: ...

    async def get_job_by_internal_id(self, job_type: JobType, internal_id: int) -> Job | None: ...

    async def update_job(self, job: Job, *, now: float, only_if_lease_expired: bool = False) -> Job:
        """Persist ``job`` if the stored version is still ``job.version``; returns it with version+1.

        Raises ``StaleVersion`` otherwise. With ``only_if_lease_expired`` the write also requires that
        no live lease is held (a take-over must not race a heartbeat)."""
        ...

    async def renew_lease(self, job_id: uuid.UUID, owner: str, expires_at: float) -> bool:
        """Extend a lease we hold, without a version bump. False when the lease is no longer ours."""
        ...

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] = (),
        job_types: Sequence[JobType] = (),
        min_internal_id: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[Job]: ...

    async def latest_job(self, job_type: JobType, *, statuses: Sequence[JobStatus] = ()) -> Job | None:
        """The job of that type with the highest internal id."""
        ...

    async def oldest_job(self, job_type: JobType, *, excluding_statuses: Sequence[JobStatus] = ()) -> Job | None: ...

    async def jobs_without_successor(
        self,
        job_type: JobType,
        status: JobStatus,
        successor_type: JobType,
        *,
        min_internal_id: int = 0,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs of ``job_type`` in ``status`` with no ``successor_type`` job of the same internal id, oldest first."""
        ...

    async def jobs_for_block(self, block_number: int) -> list[Job]: ...

    async def jobs_by_external_id(self, external_id: str, job_types: Sequence[JobType]) -> list[Job]:
        """Jobs whose prover/settlement id is ``external_id`` (webhooks name jobs this way)."""
        ...

    async def remember_prover_notice(
        self, external_id: str, job_types: Sequence[JobType], *, received_at: float, forget_before: float
    ) -> None:
        """Keep a prover's "done" for ``external_id``, for a job of ``job_types`` not yet stored as waiting on
        it (its webhook came while the job was processed): ``take_prover_notice`` finds it once the job is.
        Committed when this returns, and seen by every process on the store. Notices received before
        ``forget_before`` are dropped."""
        ...

    async def take_prover_notice(self, external_id: str, job_type: JobType, *, received_after: float) -> bool:
        """Drop the notice kept for (``external_id``, ``job_type``): True when one received at or after
        ``received_after`` was there (for one caller only, when several take it at once)."""
        ...

    async def count_jobs(self) -> dict[tuple[JobType, JobStatus], int]: ...

    async def stalled_jobs(self, statuses: Sequence[JobStatus], updated_before: float, limit: int) -> list[Job]: ...


class BatchStore(Protocol):
    """SNOS and aggregator batches. Like jobs, every write is guarded on ``version``: a status changes only
    through ``transition_*_batch`` (domain/batches.py) and a write from a stale copy raises ``StaleVersion``."""

    async def insert_snos_batch(self, batch: SnosBatch) -> SnosBatch:
        """Store a new batch (its ``version`` must be 0); ``AlreadyExists`` when the index or a block of
        its range is taken. Returns it as stored."""
        ...

    async def update_snos_batch(self, batch: SnosBatch, *, now: float) -> SnosBatch:
        """Persist ``batch`` if the stored version is still ``batch.version``; returns it with version+1
        and ``updated_at = now``. ``StaleVersion`` otherwise, ``NotFound`` when there is no such batch."""
        ...

    async def insert_aggregator_batch(self, batch: AggregatorBatch) -> AggregatorBatch: ...

    async def update_aggregator_batch(self, batch: AggregatorBatch, *, now: float) -> AggregatorBatch: ...

    async def get_snos_batch(self, index: int) -> SnosBatch | None: ...

    async def get_aggregator_batch(self, index: int) -> AggregatorBatch | None: ...

    async def latest_snos_batch(self) -> SnosBatch | None: ...

    async def latest_aggregator_batch(self) -> AggregatorBatch | None: ...

    async def list_snos_batches(
        self,
        *,
        indexes: Sequence[int] = (),
        statuses: Sequence[SnosBatchStatus] = (),
        aggregator_index: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[SnosBatch]: ...

    async def list_aggregator_batches(
        self,
        *,
        indexes: Sequence[int] = (),
        statuses: Sequence[AggregatorBatchStatus] = (),
        limit: int | None = None,
        descending: bool = False,
    ) -> list[AggregatorBatch]: ...

    async def snos_batches_without_jobs(
        self, status: SnosBatchStatus, *, min_index: int = 0, limit: int | None = None
    ) -> list[SnosBatch]: ...

    async def count_snos_batches(self, *, aggregator_index: int) -> int:
        """How many SNOS batches belong to that aggregator batch."""
        ...

    async def snos_batch_for_block(self, block_number: int) -> SnosBatch | None:
        """The SNOS batch whose range holds the block (an indexed lookup, SPEC §5.12)."""
        ...

    async def aggregator_batch_for_block(self, block_number: int) -> AggregatorBatch | None: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send once the job write it belongs to is committed."""

    queue: str
    body: str
    delay_s: float = 0.0


class AtomicJobWrites(Protocol):
    """A store that holds the queue too (SQLite, PostgreSQL), or an outbox its relay sends on (SQS), writes a
    job and the messages that follow from it in one transaction: a crash between the two then leaves neither
    a job changed without its next message nor a message without the change."""

    async def create_job_and_send(self, job: Job, queue: str, body: str, *, delay_s: float = 0.0) -> bool:
        """False (and nothing sent) when a job with the same (job_type, internal_id) exists."""
        ...

    async def update_job_and_send(
        self, job: Job, messages: Sequence[Outgoing], *, now: float, only_if_lease_expired: bool = False
    ) -> Job:
        """``JobStore.update_job`` and ``messages`` in one transaction: both or neither (``StaleVersion``
        sends nothing)."""
        ...


class OutboxRelay(Protocol):
    """Sends the messages an outbox (``AtomicJobWrites`` whose queue is elsewhere) holds, until ``stop``."""

    async def run(self, stop: asyncio.Event) -> None: ...

    async def waiting(self) -> Sequence[OutboxWaiting]:
        """The messages not sent yet, per queue that has some, with how long the oldest has waited."""
        ...


class Database(JobStore, BatchStore, Protocol):
    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregationResult:
    cairo_pie_zip: bytes
    program_output: list[int]
    """The aggregator's filtered program output, what settlement sends."""
    da_segment: list[int]
    """The state diff to publish as blobs."""
    fact: str
    """``0x`` + 64 hex: the GPS fact of (aggregator program hash, program output)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregationChild:
    """One SNOS batch of an aggregator batch, as its SNOS run left it."""

    snos_batch_index: int
    start_block: int
    end_block: int
    os_output: list[int]
    """The SNOS run's program output (``program_output.txt``): on L2, the OS output itself."""
    cairo_pie_zip: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregationInput:
    """An aggregator batch to aggregate: blocks ``start_block..=end_block``, its SNOS batches in order."""

    batch_index: int
    start_block: int
    end_block: int
    children: list[AggregationChild]


class AggregatorRunner(Protocol):
    """Runs the aggregator over the batch's SNOS outputs (SHARP and mock provers; Atlantic aggregates in its
    buckets)."""

    async def is_ready(self) -> bool:
        """Whether a run can start now; an Aggregator job that is not ready is put back with a delay."""
        ...

    async def run(self, batch: AggregationInput) -> AggregationResult: ...


# --------------------------------------------------------------------------------------------------
# A prover's completion webhook (the HTTP API's ``/webhooks/atlantic``)


@dataclass(frozen=True, slots=True)
class ProverNotice:
    """What a prover's completion webhook says: the query (and its bucket) it is about and its status."""

    query_id: str
    status: str
    is_final: bool
    bucket_id: str | None = None


class ProverWebhook(Protocol):
    """How the API checks and reads a prover's webhook; ``cli/`` gives one when a secret is configured."""

    @property
    def secret(self) -> str: ...

    @property
    def statuses(self) -> tuple[str, ...]:
        """The statuses a notice may carry (for the OpenAPI document)."""
        ...

    def sign(self, body: bytes) -> str:
        """The signature header's value that authenticates ``body``."""
        ...

    def parse(self, body: bytes) -> ProverNotice:
        """``InvalidInput`` when ``body`` is not a notice."""


# --------------------------------------------------------------------------------------------------
# Settlement: what the job sees of an error and of the metrics; the L1 node; the fact registry


@runtime_checkable
class SettlementAttemptsCarrier(Protocol):
    """A settlement error that carries the attempts made so far (``settlement.errors.SettlementTxError``)."""

    attempts: list[SettlementAttempt]
    nonce: int | None
    tx_hash: str | None


class SettlementFigures(Protocol):
    """Where a settlement's costs are recorded (engine/metrics.py ``Metrics``)."""

    def settlement_done(
        self, *, blocks: int, felts: int, blobs: int, seconds: float, fee_wei: int | None, layer: str = ...
    ) -> None: ...

    def settlement_fee_capped(self) -> None: ...


class EthBackend(Protocol):
    async def chain_id(self) -> int: ...

    async def block_number(self) -> int: ...

    async def latest_block(self) -> dict[str, Any]: ...

    async def blob_base_fee(self) -> int: ...

    async def transaction_count(self, address: str, block: str = "latest") -> int: ...

    async def send_raw_transaction(self, raw: bytes) -> str: ...

    async def transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None: ...

    async def call(self, to: str, data: bytes, block: str = "latest") -> bytes: ...


class TxSigner(Protocol):
    """Signs the L1 transactions of one account: with a key in the process (``LocalKeySigner``), a remote
    signer (``RemoteSigner``: Web3Signer's ``eth_signTransaction``) or AWS KMS (``KmsSigner``). The key
    itself never reaches the caller."""

    @property
    def address(self) -> str:
        """The account's checksummed address."""
        ...

    @property
    def description(self) -> str:
        """What signs, for the log (never a secret): "a local key", "remote signer at https://host:9000"."""
        ...

    async def sign(self, tx: UnsignedTx) -> SignedBody:
        """The signed transaction, checked: its fields are ``tx``'s and its sender is ``address``.
        ``BackendUnavailable`` when the signer cannot be reached, ``InvalidInput`` when it refuses or returns
        something else."""
        ...

    async def aclose(self) -> None: ...


class FeeHistorySource(Protocol):
    """The L1's recent fees, for the posting policy (``domain/posting.py``); ``EthRpc`` fits."""

    async def fee_history(self, block_count: int, newest_block: int | str = "latest") -> FeeHistory:
        """``eth_feeHistory`` for up to ``block_count`` blocks ending at ``newest_block`` (a node may answer
        fewer). ``BackendUnavailable`` when the node cannot be reached or answers without blob fees."""
        ...


@runtime_checkable
class FactChecker(Protocol):
    async def is_valid(self, fact: str) -> bool:
        """Whether the verifier has registered ``fact``."""
        ...


@runtime_checkable
class FactRegistry(FactChecker, Protocol):
    async def register(self, fact: str) -> str:
        """Register ``fact`` and wait for it to be mined; returns the transaction hash (``0x…``).

        Raises when the transaction reverts.
        """
        ...


# --------------------------------------------------------------------------------------------------
# The settlement transaction records (one per idempotency key, one per signed attempt)


class TxStore(Protocol):
    """Where every signed settlement transaction is recorded before it is broadcast (``SqliteTxStore``,
    ``PostgresTxStore``, ``MemoryTxStore``)."""

    async def get_key(self, key: str) -> TxKeyRecord | None: ...

    async def create_key(self, key: str, sender: str) -> TxKeyRecord:
        """Insert a pending key, or return the existing one unchanged."""
        ...

    async def reserve_nonce(self, key: str, *, chain_latest: int, chain_pending: int) -> int:
        """The key's nonce; on first call a gap below the nonces other pending keys of the same sender hold
        (one released while later ones were sent), else the lowest nonce above every nonce mined, held by
        another pending key or counted pending by the node."""
        ...

    async def release_nonce(self, key: str) -> None:
        """Forget the key's nonce (it was consumed by another transaction); its in-flight attempts become Replaced."""
        ...

    async def add_attempt(self, attempt: AttemptRecord) -> None: ...

    async def set_attempt_status(
        self, key: str, attempt_no: int, status: AttemptStatus, *, error: str | None = None
    ) -> None: ...

    async def attempts(self, key: str) -> list[AttemptRecord]: ...

    async def finalize(self, key: str, attempt_no: int, *, fee_paid_wei: int | None, block_number: int | None) -> None:
        """Mark the attempt Finalized and the key settled; other in-flight attempts become Replaced."""
        ...

    async def mark_reverted(self, key: str, attempt_no: int, *, error: str, block_number: int | None) -> None: ...

    async def restart_key(self, key: str) -> None:
        """A reverted key is settled again from scratch: pending, no nonce (its attempts stay as history)."""
        ...

    async def pending_keys(self, sender: str) -> list[TxKeyRecord]: ...

    async def totals(self, sender: str | None = None) -> TxTotals:
        """For a summary line: keys settled and pending, attempts signed, fees paid."""
        ...
