"""The composition root: turns settings into a running stack. Only cli/ (and tests, benches) call this."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from madara_orchestrator.aggregator.command import CommandAggregatorRunner
from madara_orchestrator.aggregator.contract import AggregatorRunConfig
from madara_orchestrator.aggregator.http import HttpAggregatorRunner
from madara_orchestrator.backends.alerts import FanoutAlerts, LogAlerts, RecordingAlerts, WebhookAlerts
from madara_orchestrator.backends.aws_names import QueueAddressing
from madara_orchestrator.cli.backends import Backends, open_backends
from madara_orchestrator.cli.settings import (
    MOCK_ATLANTIC_PORT,
    Settings,
    batch_limits,
    load_bouncer_weight_limits,
)
from madara_orchestrator.cli.telemetry import Telemetry, build_telemetry
from madara_orchestrator.devnet.adapters import (
    DevnetAggregatorRunner,
    DevnetProver,
    DevnetSettlement,
    DevnetSnosRunner,
)
from madara_orchestrator.devnet.l2_fact_registrar import StarknetFactRegistrar
from madara_orchestrator.devnet.starknet_l2 import FACT_REGISTRY_ADDRESS, VERIFIER_ACCOUNT
from madara_orchestrator.domain.batching import StarknetVersions
from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, JobType
from madara_orchestrator.domain.queues import Layer
from madara_orchestrator.engine.batching import BatchingConfig
from madara_orchestrator.engine.lease import LeaseTiming, key_guard, new_owner
from madara_orchestrator.engine.plan import PLANS, LayerPlan
from madara_orchestrator.engine.runtime import Adapters, Runtime, RuntimeConfig
from madara_orchestrator.engine.service import RetryPolicy
from madara_orchestrator.engine.triggers import TriggerConfig
from madara_orchestrator.interfaces import (
    AggregatorRunner,
    AlertSink,
    Database,
    ObjectStore,
    ProverClient,
    QueueClient,
    SnosRunner,
)
from madara_orchestrator.provers.atlantic import (
    DEFAULT_ARTIFACTS_BASE_URL,
    AtlanticClient,
    AtlanticConfig,
    AtlanticNetwork,
    AtlanticQueryStep,
)
from madara_orchestrator.provers.fact_registry import AlwaysValidFactChecker, FactChecker
from madara_orchestrator.provers.mock import MockProverClient
from madara_orchestrator.provers.mock_atlantic_server import MockAtlanticConfig, MockAtlanticServer
from madara_orchestrator.provers.sharp import SharpClient, SharpConfig
from madara_orchestrator.settlement.contracts import FactRegistryClient
from madara_orchestrator.settlement.encoding import IS_VALID_SELECTOR
from madara_orchestrator.settlement.eth_rpc import EthRpc
from madara_orchestrator.settlement.ethereum import EthereumSettlementClient, EthereumSettlementConfig
from madara_orchestrator.settlement.starknet import StarknetSettlementClient, StarknetSettlementConfig
from madara_orchestrator.snos.command import CommandSnosRunner
from madara_orchestrator.snos.contract import SnosRunConfig, os_hints
from madara_orchestrator.snos.http import HttpSnosRunner
from madara_orchestrator.starknet.facts import fact_hex
from madara_orchestrator.starknet.feeder import FeederGatewayClient
from madara_orchestrator.starknet.os_config import os_config_hash
from madara_orchestrator.starknet.rpc import StarknetRpcClient

log = logging.getLogger(__name__)
Closer = Callable[[], Awaitable[None]]

LEASE_OPTIONS = {
    JobType.SNOS_RUN: "snos_job_timeout_seconds",
    JobType.PROOF_CREATION: "proving_job_timeout_seconds",
    JobType.STATE_TRANSITION: "state_transition_timeout_seconds",
    JobType.AGGREGATOR: "aggregator_job_timeout_seconds",
}


def layer_plan(settings: Settings) -> LayerPlan:
    """The pipeline ``--layer`` chooses (``engine/plan.py``)."""
    return PLANS[Layer(settings.layer)]


def runtime_config(settings: Settings) -> RuntimeConfig:
    policies = dict(DEFAULT_POLICIES)
    for job_type, option in LEASE_OPTIONS.items():
        policies[job_type] = dataclasses.replace(policies[job_type], lease_s=float(settings.values[option]))
    if settings.verification_poll_seconds is not None:
        policies = {
            t: dataclasses.replace(
                p, verification_delay_s=float(settings.verification_poll_seconds), first_verification_delay_s=None
            )
            for t, p in policies.items()
        }
    plan = layer_plan(settings)
    return RuntimeConfig(
        plan=plan,
        # SPEC §3.2: a name template (with the prefix) or an SQS ARN whose resource is the template.
        queue_names=QueueAddressing.parse(settings.queue_identifier, settings.aws_prefix).names,
        policies=policies,
        processing_concurrency={
            JobType.SNOS_RUN: settings.max_concurrent_snos_jobs,
            JobType.PROOF_CREATION: settings.max_concurrent_proving_jobs,
            JobType.AGGREGATOR: settings.max_concurrent_aggregator_jobs,
        },
        batching=BatchingConfig(
            limits=batch_limits(settings.values, load_bouncer_weight_limits(settings.bouncer_weights_limit_file)),
            min_block_to_process=settings.min_block_to_process,
            max_block_to_process=settings.max_block_to_process,
            max_batch_processing_size=settings.max_batch_processing_size,
            lock_duration_s=settings.batching_worker_lock_duration,
            create_buckets=settings.prover == "atlantic" and plan.aggregator_batches,
            # The open batch's files are for audit only (its state lives in memory and is rebuilt from the
            # chain after a restart): refreshing them every block would cost more than batching itself.
            open_batch_files_interval_s=10.0,
            starknet_versions=StarknetVersions.parse(settings.allow_starknet_versions),
        ),
        triggers=TriggerConfig(
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
        heal_stale_after_s=settings.heal_stale_after_seconds,
        graceful_shutdown_s=settings.graceful_shutdown_timeout,
        max_priority_queue_size=settings.max_priority_queue_size,
        dedup_proofs_by_job_id=settings.prover == "atlantic",
        settlement_fee_wait_s=settings.settlement_fee_wait_seconds,
    )


@dataclass(slots=True, kw_only=True)
class EmbeddedStack:
    """One instance, built: its backends (cli/backends.py chooses them), its clients and its runtime."""

    settings: Settings
    backends: Backends
    store: Database
    queue: QueueClient
    objects: ObjectStore
    sequencer: StarknetRpcClient
    feeder: FeederGatewayClient
    settlement: DevnetSettlement | EthereumSettlementClient | StarknetSettlementClient
    runtime: Runtime
    recorded_alerts: RecordingAlerts
    snos: SnosRunner
    prover: ProverClient
    mock_atlantic: MockAtlanticServer | None = None
    """The in-process mock Atlantic server of ``--mock-atlantic-server``."""
    telemetry: Telemetry | None = None
    closers: list[Closer] = field(default_factory=list)
    """What the stack built and must close: prover HTTP clients, L1 RPC clients, the mock server."""

    @property
    def atlantic_webhook_secret(self) -> str | None:
        """The secret the API's Atlantic webhook requires: ``--atlantic-webhook-secret``, else the one the
        in-process mock of ``--mock-atlantic-server`` signs its webhooks with (made for this run)."""
        if self.settings.atlantic_webhook_secret:
            return str(self.settings.atlantic_webhook_secret)
        return self.mock_atlantic.state.config.webhook_secret if self.mock_atlantic is not None else None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sequencer.aclose()
        with contextlib.suppress(Exception):
            await self.feeder.aclose()
        if isinstance(self.settlement, (EthereumSettlementClient, StarknetSettlementClient)):
            with contextlib.suppress(Exception):
                await self.settlement.aclose()
        await _close_all(self.closers)
        await self.backends.close()

    async def settlement_fee_wei(self) -> int | None:
        """Fees paid for settlement so far, in the settlement layer's unit (wei; FRI on Starknet), None on
        the devnet ledger."""
        if isinstance(self.settlement, EthereumSettlementClient):
            txmgr = self.settlement.txmgr
            return (await txmgr.store.totals(txmgr.address)).fee_paid_wei
        if isinstance(self.settlement, StarknetSettlementClient):
            return (await self.backends.tx_store.totals(self.settlement.operator_address)).fee_paid_wei
        return None

    async def settlement_summary(self) -> str:
        """What settlement did, for the devnet summary: blob transactions and the fees they paid."""
        if isinstance(self.settlement, EthereumSettlementClient):
            txmgr = self.settlement.txmgr
            totals = await txmgr.store.totals(txmgr.address)
            return (
                f"blob transactions: {totals.settled} settled ({totals.attempts} signed), "
                f"fee paid: {totals.fee_paid_wei / 10**18:.6f} ETH ({totals.fee_paid_wei} wei)"
            )
        if isinstance(self.settlement, StarknetSettlementClient):
            totals = await self.backends.tx_store.totals(self.settlement.operator_address)
            return (
                f"update_state invokes: {totals.settled} settled ({totals.attempts} signed), "
                f"fee paid: {totals.fee_paid_wei / 10**18:.6f} STRK ({totals.fee_paid_wei} FRI)"
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
    """``prover`` replaces the one the settings choose (tests plug a client of their own; the caller closes it)."""
    closers: list[Closer] = []
    mock_atlantic = await _start_mock_atlantic(settings) if settings.mock_atlantic_server else None
    if mock_atlantic is not None:
        closers.append(mock_atlantic.stop)
    try:
        return await _build(settings, closers, mock_atlantic, snos_failures, prover_latency_s, owner, prover)
    except BaseException:
        await _close_all(closers)
        raise


async def _build(
    settings: Settings,
    closers: list[Closer],
    mock_atlantic: MockAtlanticServer | None,
    snos_failures: dict[int, int] | None,
    prover_latency_s: float,
    owner: str | None,
    prover: ProverClient | None,
) -> EmbeddedStack:
    data_dir = Path(settings.data_dir)
    config = runtime_config(settings)
    backends = await open_backends(settings, config)
    closers.insert(0, backends.close)  # closed last, if building fails from here on
    owner = owner or new_owner()
    recorded = RecordingAlerts()
    sinks: list[AlertSink] = [LogAlerts(), recorded, *backends.alert_sinks]
    if settings.alert_webhook_url:
        sinks.append(WebhookAlerts(settings.alert_webhook_url))
    sequencer = StarknetRpcClient(
        settings.rpc_for_snos or settings.need("madara_rpc_url"), attempts=3, retry_pause_s=0.5
    )
    feeder = feeder_client(settings)
    chain = ChainDetails(sequencer, feeder, settings.da_keys)
    # A settlement key (a batch) is sent by one process at a time: a named lease on the shared database.
    settlement_guard = key_guard(
        backends.locks, owner, prefix="settlement-tx:", timing=LeaseTiming(duration_s=30.0), clock=backends.clock
    )
    settlement: DevnetSettlement | EthereumSettlementClient | StarknetSettlementClient
    if settings.settle_on_starknet:
        settlement = StarknetSettlementClient(
            StarknetSettlementConfig(
                rpc_url=settings.need("starknet_rpc_url"),
                account_address=settings.need("starknet_account_address"),
                private_key=settings.need("starknet_private_key"),
                core_contract_address=settings.need("starknet_cairo_core_contract_address"),
                finality_retry_wait_s=settings.starknet_finality_retry_wait_in_secs,
                confirmation_timeout_s=settings.starknet_tx_confirmation_timeout_secs,
                max_fee_fri=settings.starknet_max_fee_fri,
            ),
            store=backends.tx_store,
            key_guard=settlement_guard,
        )
    elif settings.settle_on_ethereum:
        settlement = EthereumSettlementClient(
            EthereumSettlementConfig(
                rpc_url=settings.need("ethereum_rpc_url"),
                private_key=settings.need("ethereum_private_key"),
                core_contract_address=settings.need("l1_core_contract_address"),
                tx_store_path=Path(settings.sqlite_path or data_dir / "orchestrator.db"),  # unused: store= below
                max_fee_bumps=settings.ethereum_max_fee_bumps,
                l2_state_update_max_fee_wei=settings.ethereum_l2_state_update_max_fee_wei,
                tx_confirmation_timeout_s=settings.ethereum_tx_confirmation_timeout_secs,
                finality_retry_wait_s=settings.ethereum_finality_retry_wait_in_secs,
                disable_peerdas=settings.disable_peerdas,
                confirmations=settings.ethereum_confirmations,
            ),
            rpc=EthRpc(settings.need("ethereum_rpc_url")),  # the config's rpc_timeout_s: 30 s
            store=backends.tx_store,
            key_guard=settlement_guard,
        )
    else:
        settlement = DevnetSettlement(settings.devnet_settlement_path or data_dir / "devnet-settlement.db")
    if prover is None:
        prover = build_prover(
            settings,
            closers,
            mock_atlantic=mock_atlantic,
            prover_latency_s=prover_latency_s,
            chain_id=sequencer.chain_id,
            fee_token=chain.fee_token,
        )
    # The devnet SNOS runner writes the chain's OS config hash where it is checked against the chain's details
    # (Atlantic's aggregator; DA keys); otherwise the devnet chain's, without asking the feeder gateway.
    reads_chain = settings.prover == "atlantic" or bool(settings.da_keys)
    snos = build_snos_runner(
        settings, sequencer, closers, failures=snos_failures, config_hash=chain.os_config_hash if reads_chain else None
    )
    reference: StarknetRpcClient | None = None
    if settings.replay_bounds_rpc_url:
        reference = StarknetRpcClient(settings.replay_bounds_rpc_url, attempts=3, retry_pause_s=0.5)
        closers.append(reference.aclose)
        log.info("replay bounds: each block's hash is checked against %s before batching", reference.shown_url)
    adapters = Adapters(
        db=backends.db,
        queue=backends.queue,
        objects=backends.objects,
        alerts=FanoutAlerts(sinks, mask=settings.secret_mask()),
        locks=backends.locks,
        sequencer=sequencer,
        feeder=feeder,
        batch_rpc=sequencer,
        snos=snos,
        prover=prover,
        settlement=settlement,
        aggregator_runner=build_aggregator_runner(settings, sequencer, closers),
        expiring=backends.expiring,
        atomic_creation=backends.atomic_creation,
        reference=reference,
    )
    telemetry = build_telemetry(settings)
    closers.append(telemetry.shutdown)  # after the runtime has stopped: the last export
    if isinstance(settlement, EthereumSettlementClient):
        metrics = telemetry.metrics
        settlement.txmgr.on_finalized = lambda tx: metrics.settlement_tx_finalized(
            gas_used=tx.gas_used,
            gas_price_wei=tx.effective_gas_price_wei,
            blob_gas_used=tx.blob_gas_used,
            blob_gas_price_wei=tx.blob_gas_price_wei,
        )
    runtime = Runtime(config, adapters, owner=owner, clock=backends.clock, metrics=telemetry.metrics)
    return EmbeddedStack(
        settings=settings,
        backends=backends,
        store=backends.db,
        queue=backends.queue,
        objects=backends.objects,
        sequencer=sequencer,
        feeder=feeder,
        settlement=settlement,
        runtime=runtime,
        recorded_alerts=recorded,
        snos=snos,
        prover=prover,
        mock_atlantic=mock_atlantic,
        telemetry=telemetry,
        closers=closers[1:],  # the stack closes its backends itself, after everything else
    )


def feeder_client(settings: Settings) -> FeederGatewayClient:
    """``--madara-feeder-gateway-url``, else the sequencer's RPC URL as the original does (a node or proxy
    serving both on one address): ``/feeder_gateway/...`` is appended to its path, and its query (an API
    key) is sent with each request. A stock Madara serves its gateway on another port (``--gateway-port``,
    8080): then the flag is needed."""
    return FeederGatewayClient(settings.madara_feeder_gateway_url or settings.need("madara_rpc_url"))


class ChainDetails:
    """The chain's details the OS config hash is made of (SPEC §17), read once when first needed: the chain id
    (``starknet_chainId``), the STRK fee token (the feeder gateway's ``get_contract_addresses``, as the
    original reads it) and ``--da-public-keys``."""

    def __init__(self, sequencer: StarknetRpcClient, feeder: FeederGatewayClient, da_keys: Sequence[int]) -> None:
        self.sequencer = sequencer
        self.feeder = feeder
        self.da_keys = tuple(da_keys)
        self._fee_token: int | None = None

    async def fee_token(self) -> int:
        if self._fee_token is None:
            self._fee_token = (await self.feeder.get_fee_tokens()).strk
        return self._fee_token

    async def os_config_hash(self) -> int:
        return os_config_hash(int(await self.sequencer.chain_id(), 16), await self.fee_token(), self.da_keys)


def build_snos_runner(
    settings: Settings,
    sequencer: StarknetRpcClient,
    closers: list[Closer],
    *,
    failures: dict[int, int] | None = None,
    config_hash: Callable[[], Awaitable[int]] | None = None,
) -> SnosRunner:
    """The SNOS runner ``--snos-runner`` chooses (docs/snos-runner.md); ``failures`` is the devnet runner's
    failure injection (tests), ``config_hash`` the OS config hash its outputs carry (default: the devnet
    chain's). Readiness asks ``sequencer``, the client of the SNOS RPC."""
    if settings.snos_runner == "devnet":
        return DevnetSnosRunner(sequencer, failures=failures, config_hash=config_hash)
    if settings.snos_runner not in ("command", "http"):
        raise ConfigError(["--snos-runner is required: command, http or devnet"])
    full_output, use_kzg_da = os_hints(settings.layer)
    config = SnosRunConfig(
        rpc_url=settings.rpc_for_snos or settings.need("madara_rpc_url"),
        layout=settings.snos_layout_name,
        full_output=full_output,
        use_kzg_da=use_kzg_da,
        da_public_keys=settings.da_keys,
        timeout_s=float(settings.snos_timeout_seconds),
    )
    if settings.snos_runner == "command":
        work_dir = Path(settings.snos_work_dir) if settings.snos_work_dir else Path(settings.data_dir) / "snos"
        return CommandSnosRunner(settings.need("snos_command"), config, rpc=sequencer, work_dir=work_dir)
    runner = HttpSnosRunner(settings.need("snos_runner_url"), config, rpc=sequencer)
    closers.append(runner.aclose)
    return runner


def build_aggregator_runner(
    settings: Settings, sequencer: StarknetRpcClient, closers: list[Closer]
) -> AggregatorRunner | None:
    """The aggregator runner ``--aggregator-runner`` chooses (docs/aggregator-runner.md); None where there is
    nothing to run (Atlantic aggregates in its buckets, an L3 has no aggregator batches). The runner reads
    the chain before each batch over ``sequencer``."""
    if settings.prover == "atlantic" or not layer_plan(settings).aggregator_batches:
        return None
    # Settling on Ethereum needs a KZG section in the output for the core contract to check the blobs.
    use_kzg_da = bool(settings.settle_on_ethereum)
    if settings.aggregator_runner == "devnet":
        return DevnetAggregatorRunner(kzg_da=use_kzg_da, rpc=sequencer)
    if settings.aggregator_runner not in ("command", "http"):
        raise ConfigError([f"--aggregator-runner is required with --prover {settings.prover}: command, http or devnet"])
    config = AggregatorRunConfig(
        rpc_url=settings.rpc_for_snos or settings.need("madara_rpc_url"),
        use_kzg_da=use_kzg_da,
        timeout_s=float(settings.aggregator_timeout_seconds),
    )
    if settings.aggregator_runner == "command":
        work_dir = Path(settings.data_dir) / "aggregator"
        return CommandAggregatorRunner(settings.need("aggregator_command"), config, rpc=sequencer, work_dir=work_dir)
    runner = HttpAggregatorRunner(settings.need("aggregator_runner_url"), config, rpc=sequencer)
    closers.append(runner.aclose)
    return runner


class EthereumFactChecker:
    """``isValid(bytes32)`` of a GPS verifier (fact registry) over Ethereum JSON-RPC: read-only (SPEC §7.6)."""

    def __init__(self, rpc: EthRpc, address: str) -> None:
        self.rpc = rpc
        self.address = address

    async def is_valid(self, fact: str) -> bool:
        result = await self.rpc.call(self.address, IS_VALID_SELECTOR + bytes.fromhex(fact_hex(fact)[2:]))
        return int.from_bytes(result[:32], "big") == 1


def _fact_checker(
    settlement_layer: str, rpc_url: str | None, address: str | None, closers: list[Closer]
) -> FactChecker | None:
    """SPEC §7.6: ``starknet`` checks nothing (always valid); ``ethereum`` asks the verifier on L1."""
    if settlement_layer == "starknet":
        return AlwaysValidFactChecker()
    if not rpc_url or not address:
        return None
    rpc = EthRpc(rpc_url)
    closers.append(rpc.aclose)
    return EthereumFactChecker(rpc, address)


def build_prover(
    settings: Settings,
    closers: list[Closer],
    *,
    mock_atlantic: MockAtlanticServer | None = None,
    prover_latency_s: float = 0.0,
    chain_id: Callable[[], Awaitable[str]] | None = None,
    fee_token: Callable[[], Awaitable[int]] | None = None,
) -> ProverClient:
    """The prover client ``--prover`` chooses; what it opens is added to ``closers``. ``chain_id`` gives the
    chain id (``starknet_chainId``, hex) and ``fee_token`` the chain's STRK fee token for Atlantic's buckets
    (``chain_id_hex``, ``fee_token_address``), asked at the first bucket."""
    if settings.prover == "atlantic":
        service_url = settings.atlantic_service_url
        artifacts_url = settings.atlantic_artifacts_base_url
        if mock_atlantic is not None:
            service_url = service_url or mock_atlantic.url
            if artifacts_url == DEFAULT_ARTIFACTS_BASE_URL:
                artifacts_url = mock_atlantic.artifacts_url
        atlantic = AtlanticClient(
            AtlanticConfig(
                service_url=service_url or settings.need("atlantic_service_url"),
                api_key=settings.need("atlantic_api_key"),
                network=AtlanticNetwork(settings.need("atlantic_network").upper()),
                artifacts_base_url=artifacts_url,
                mock_fact_hash=settings.need("atlantic_mock_fact_hash").lower(),
                result=AtlanticQueryStep.from_cli(settings.atlantic_verifier_result),
                cairo_vm=settings.atlantic_verifier_cairo_vm,
                sharp_prover=settings.atlantic_sharp_prover,
                settlement_layer=settings.need("atlantic_settlement_layer"),
                prover_layout=settings.prover_layout_name,
                cairo_verifier_program_hash=settings.cairo_verifier_program_hash,
                da_public_keys=settings.da_keys,
            ),
            fact_checker=_fact_checker(
                settings.need("atlantic_settlement_layer"),
                settings.atlantic_rpc_node_url,
                settings.atlantic_verifier_contract_address,
                closers,
            ),
            chain_id_source=chain_id,
            fee_token_source=fee_token,
        )
        closers.append(atlantic.aclose)
        return atlantic
    if settings.prover == "sharp":
        checker = _fact_checker(
            settings.sharp_settlement_layer,
            settings.sharp_rpc_node_url,
            settings.gps_verifier_contract_address,
            closers,
        )
        sharp = SharpClient(
            SharpConfig(
                url=settings.need("sharp_url"),
                customer_id=settings.need("sharp_customer_id"),
                user_crt_file=settings.sharp_user_crt_file,
                user_key_file=settings.sharp_user_key_file,
                server_crt_file=settings.sharp_server_crt_file,
            ),
            fact_checker=checker,
        )
        closers.append(sharp.aclose)
        return sharp
    if settings.prover == "mock":
        registry = None
        if settings.mock_verifier_address:
            rpc = EthRpc(settings.need("ethereum_rpc_url"))
            closers.append(rpc.aclose)
            registry = FactRegistryClient(
                rpc, settings.mock_verifier_address, settings.need("mock_verifier_private_key")
            )
        return MockProverClient(registry=registry)
    return DevnetProver(latency_s=prover_latency_s)


async def _start_mock_atlantic(settings: Settings) -> MockAtlanticServer:
    """``--mock-atlantic-server``: the mock on 127.0.0.1:4001, its webhook pointed at this orchestrator's API
    (none with ``--port 0``: the port is not known yet, and verification polls)."""
    api_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    webhook_url = f"http://{api_host}:{settings.port}/webhooks/atlantic" if settings.port else None
    # Signed (X-Atlantic-Signature), so the URL, which the mock logs, carries no secret.
    webhook_secret = (settings.atlantic_webhook_secret or secrets.token_urlsafe(32)) if webhook_url else None
    registrar: StarknetFactRegistrar | None = None
    if settings.settle_on_starknet:
        # L3: L2 verifications register their facts on the settlement layer with the devnet's verifier
        # account, so this mock only works against the devnet's Starknet double (orchestrator devnet --layer l3).
        registrar = StarknetFactRegistrar(
            rpc_url=settings.need("starknet_rpc_url"),
            account_address=VERIFIER_ACCOUNT.address,
            private_key=VERIFIER_ACCOUNT.private_key,
            registry_address=FACT_REGISTRY_ADDRESS,
        )
    server = MockAtlanticServer(
        MockAtlanticConfig(webhook_url=webhook_url, webhook_secret=webhook_secret),
        port=MOCK_ATLANTIC_PORT,
        l2_fact_registry=registrar,
    )
    try:
        await server.start()
    except (OSError, RuntimeError) as exc:
        await server.stop()
        raise BackendUnavailable(
            f"--mock-atlantic-server: cannot listen on 127.0.0.1:{MOCK_ATLANTIC_PORT}: {exc}"
        ) from exc
    log.info("mock Atlantic server on %s (webhooks to %s)", server.url, webhook_url or "nowhere")
    return server


async def _close_all(closers: list[Closer]) -> None:
    """Close in reverse order of opening; one failing close does not keep the others open."""
    while closers:
        closer = closers.pop()
        with contextlib.suppress(Exception):
            await closer()
