"""The composition root: turns settings into a running stack. Only cli/ (and tests, benches) call this."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from madara_orchestrator.backends.alerts import FanoutAlerts, LogAlerts, RecordingAlerts, WebhookAlerts
from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.cli.settings import Settings, batch_limits, load_bouncer_weight_limits
from madara_orchestrator.devnet.adapters import (
    DevnetAggregatorRunner,
    DevnetProver,
    DevnetSettlement,
    DevnetSnosRunner,
)
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, JobType
from madara_orchestrator.domain.queues import Layer, QueueNames
from madara_orchestrator.engine.batching import BatchingConfig
from madara_orchestrator.engine.runtime import Adapters, Runtime, RuntimeConfig
from madara_orchestrator.engine.service import RetryPolicy
from madara_orchestrator.engine.triggers import TriggerConfig
from madara_orchestrator.interfaces import AlertSink, ProverClient
from madara_orchestrator.provers.mock import MockProverClient
from madara_orchestrator.settlement.contracts import FactRegistryClient
from madara_orchestrator.settlement.eth_rpc import EthRpc
from madara_orchestrator.settlement.ethereum import EthereumSettlementClient, EthereumSettlementConfig
from madara_orchestrator.starknet.feeder import FeederGatewayClient
from madara_orchestrator.starknet.rpc import StarknetRpcClient

LEASE_OPTIONS = {
    JobType.SNOS_RUN: "snos_job_timeout_seconds",
    JobType.PROOF_CREATION: "proving_job_timeout_seconds",
    JobType.STATE_TRANSITION: "state_transition_timeout_seconds",
    JobType.AGGREGATOR: "aggregator_job_timeout_seconds",
}


def runtime_config(settings: Settings) -> RuntimeConfig:
    policies = dict(DEFAULT_POLICIES)
    for job_type, option in LEASE_OPTIONS.items():
        policies[job_type] = dataclasses.replace(policies[job_type], lease_s=float(settings.values[option]))
    if settings.verification_poll_seconds is not None:
        policies = {
            t: dataclasses.replace(p, verification_delay_s=float(settings.verification_poll_seconds))
            for t, p in policies.items()
        }
    return RuntimeConfig(
        layer=Layer(settings.layer),
        queue_names=QueueNames(template=settings.queue_identifier, prefix=settings.aws_prefix),
        policies=policies,
        processing_concurrency={
            JobType.SNOS_RUN: settings.max_concurrent_snos_jobs,
            JobType.PROOF_CREATION: settings.max_concurrent_proving_jobs,
            JobType.AGGREGATOR: settings.max_concurrent_aggregator_jobs,
        },
        batching=BatchingConfig(
            limits=batch_limits(settings.values, load_bouncer_weight_limits(settings.bouncer_weights_limit_file)),
            aggregator_batches=Layer(settings.layer) == Layer.L2,
            min_block_to_process=settings.min_block_to_process,
            max_block_to_process=settings.max_block_to_process,
            max_batch_processing_size=settings.max_batch_processing_size,
            lock_duration_s=settings.batching_worker_lock_duration,
            create_buckets=settings.prover == "atlantic",
            # The open batch's files are for audit only (its state lives in memory and is rebuilt from the
            # chain after a restart): refreshing them every block would cost more than batching itself.
            open_batch_files_interval_s=10.0,
        ),
        triggers=TriggerConfig(
            layer=Layer(settings.layer),
            snos_job_buffer_size=settings.snos_job_buffer_size,
            aggregator_job_buffer_size=settings.aggregator_job_buffer_size,
            store_audit_artifacts=settings.store_audit_artifacts,
            snos_full_output=settings.snos_full_output,
            halt_on_failure=settings.halt_on_failure,
        ),
        retry=RetryPolicy(base_delay_s=settings.retry_base_delay_seconds),
        trigger_interval_s=settings.interval_seconds,
        chain_poll_interval_s=settings.chain_poll_interval_seconds,
        heal_interval_s=settings.heal_interval_seconds,
        graceful_shutdown_s=settings.graceful_shutdown_timeout,
        max_priority_queue_size=settings.max_priority_queue_size,
        dedup_proofs_by_job_id=settings.prover == "atlantic",
        settlement_fee_wait_s=settings.settlement_fee_wait_seconds,
    )


@dataclass(slots=True, kw_only=True)
class EmbeddedStack:
    settings: Settings
    database: SqliteDatabase
    store: SqliteStore
    queue: SqliteQueue
    objects: FilesystemObjectStore
    sequencer: StarknetRpcClient
    feeder: FeederGatewayClient
    settlement: DevnetSettlement | EthereumSettlementClient
    runtime: Runtime
    recorded_alerts: RecordingAlerts
    snos: DevnetSnosRunner

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sequencer.aclose()
        with contextlib.suppress(Exception):
            await self.feeder.aclose()
        if isinstance(self.settlement, EthereumSettlementClient):
            with contextlib.suppress(Exception):
                await self.settlement.aclose()
        await self.database.close()

    async def settlement_fee_wei(self) -> int | None:
        """Fees paid for settlement so far (None without an L1)."""
        if isinstance(self.settlement, EthereumSettlementClient):
            txmgr = self.settlement.txmgr
            return (await txmgr.store.totals(txmgr.address)).fee_paid_wei  # type: ignore[attr-defined]
        return None

    async def settlement_summary(self) -> str:
        """What settlement did, for the devnet summary: blob transactions and the fees they paid."""
        if isinstance(self.settlement, EthereumSettlementClient):
            txmgr = self.settlement.txmgr
            totals = await txmgr.store.totals(txmgr.address)  # type: ignore[attr-defined]
            return (
                f"blob transactions: {totals.settled} settled ({totals.attempts} signed), "
                f"fee paid: {totals.fee_paid_wei / 10**18:.6f} ETH ({totals.fee_paid_wei} wei)"
            )
        return f"blobs settled on the devnet ledger (no L1): {await self.settlement.blob_count()}"


async def build_embedded_stack(
    settings: Settings,
    *,
    snos_failures: dict[int, int] | None = None,
    prover_latency_s: float = 0.0,
    owner: str | None = None,
    prover: ProverClient | None = None,
) -> EmbeddedStack:
    """``prover`` replaces the devnet prover (tests plug a real client against a mock server)."""
    data_dir = Path(settings.data_dir)
    database = SqliteDatabase(settings.sqlite_path or data_dir / "orchestrator.db")
    await database.open()
    store = SqliteStore(database)
    config = runtime_config(settings)
    by_name, dead_letters = config.physical_queue_configs()
    queue = SqliteQueue(database, by_name, dead_letter_names=dead_letters, poll_interval_s=0.1)
    objects = FilesystemObjectStore(settings.storage_dir or data_dir / "objects")
    recorded = RecordingAlerts()
    sinks: list[AlertSink] = [LogAlerts(), recorded]
    if settings.alert_webhook_url:
        sinks.append(WebhookAlerts(settings.alert_webhook_url))
    sequencer = StarknetRpcClient(settings.rpc_for_snos or settings.madara_rpc_url, attempts=3, retry_pause_s=0.5)
    feeder = FeederGatewayClient(settings.madara_feeder_gateway_url or settings.madara_rpc_url)
    settlement: DevnetSettlement | EthereumSettlementClient
    if settings.settle_on_ethereum:
        settlement = EthereumSettlementClient(
            EthereumSettlementConfig(
                rpc_url=settings.ethereum_rpc_url,
                private_key=settings.ethereum_private_key,
                core_contract_address=settings.l1_core_contract_address,
                tx_store_path=Path(settings.sqlite_path or data_dir / "orchestrator.db"),
                max_fee_bumps=settings.ethereum_max_fee_bumps,
                l2_state_update_max_fee_wei=settings.ethereum_l2_state_update_max_fee_wei,
                tx_confirmation_timeout_s=settings.ethereum_tx_confirmation_timeout_secs,
                finality_retry_wait_s=settings.ethereum_finality_retry_wait_in_secs,
                disable_peerdas=settings.disable_peerdas,
                confirmations=settings.ethereum_confirmations,
            )
        )
    else:
        settlement = DevnetSettlement(settings.devnet_settlement_path or data_dir / "devnet-settlement.db")
    if prover is None and settings.prover == "mock":
        registry = None
        if settings.mock_verifier_address:
            registry = FactRegistryClient(
                EthRpc(settings.ethereum_rpc_url), settings.mock_verifier_address, settings.mock_verifier_private_key
            )
        prover = MockProverClient(registry=registry)
    snos = DevnetSnosRunner(sequencer, failures=snos_failures)
    adapters = Adapters(
        db=store,
        queue=queue,
        objects=objects,
        alerts=FanoutAlerts(sinks),
        locks=store,
        sequencer=sequencer,
        feeder=feeder,
        batch_rpc=sequencer,
        snos=snos,
        prover=prover or DevnetProver(latency_s=prover_latency_s),
        settlement=settlement,
        # Atlantic aggregates in its buckets; the others run the aggregator here. Settling on Ethereum
        # needs a real KZG section in the output for the contract to check.
        aggregator_runner=None
        if settings.prover == "atlantic"
        else DevnetAggregatorRunner(kzg_da=bool(settings.settle_on_ethereum), rpc=sequencer),
    )
    runtime = Runtime(config, adapters, owner=owner)
    return EmbeddedStack(
        settings=settings,
        database=database,
        store=store,
        queue=queue,
        objects=objects,
        sequencer=sequencer,
        feeder=feeder,
        settlement=settlement,
        runtime=runtime,
        recorded_alerts=recorded,
        snos=snos,
    )
