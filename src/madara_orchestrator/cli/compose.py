"""The composition root: turns settings into a running stack. Only cli/ (and tests, benches) call this."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madara_orchestrator.backends.alerts import FanoutAlerts, LogAlerts, RecordingAlerts, WebhookAlerts
from madara_orchestrator.backends.aws_names import QueueAddressing
from madara_orchestrator.cli.backends import Backends, open_backends
from madara_orchestrator.cli.owning import own
from madara_orchestrator.cli.settings import (
    MOCK_ATLANTIC_PORT,
    Settings,
    batch_limits,
    load_bouncer_weight_limits,
)
from madara_orchestrator.cli.settings.running import LEASE_OPTIONS
from madara_orchestrator.cli.signers import open_signers
from madara_orchestrator.cli.telemetry import Telemetry, build_telemetry
from madara_orchestrator.domain.batching import StarknetVersions
from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, JobType
from madara_orchestrator.domain.posting import FeeCap, PostingPolicy
from madara_orchestrator.domain.queues import Layer
from madara_orchestrator.domain.redaction import url_origin
from madara_orchestrator.domain.retry import REDELIVERY
from madara_orchestrator.domain.settlement_tx import TxTotals
from madara_orchestrator.engine.batching import BatchingConfig
from madara_orchestrator.engine.cost import CountedObjects
from madara_orchestrator.engine.lease import LeaseTiming, key_guard, new_owner
from madara_orchestrator.engine.plan import PLANS, LayerPlan
from madara_orchestrator.engine.runtime import Adapters, Runtime, RuntimeConfig
from madara_orchestrator.engine.triggers import TriggerConfig
from madara_orchestrator.interfaces import (
    AggregatorRunner,
    AlertSink,
    Database,
    FactChecker,
    ObjectStore,
    ProverClient,
    QueueClient,
    SnosRunner,
    TxSigner,
    TxStore,
)
from madara_orchestrator.provers.fact_registry import AlwaysValidFactChecker
from madara_orchestrator.settlement.encoding import IS_VALID_SELECTOR
from madara_orchestrator.starknet.facts import fact_hex
from madara_orchestrator.starknet.feeder import FeederGatewayClient
from madara_orchestrator.starknet.os_config import os_config_hash
from madara_orchestrator.starknet.rpc import StarknetRpcClient

# What only some settings use is imported where it is built, not here: the devnet doubles, the settlement
# clients (Ethereum: rlp; Starknet: starknet_py), the signers (KMS: boto3), the OpenTelemetry SDK, the runners
# and provers not chosen. Every ``orchestrator run`` pays for what is imported at the top, whatever it runs with.
if TYPE_CHECKING:
    from madara_orchestrator.devnet.adapters import DevnetSettlement
    from madara_orchestrator.devnet.l2_fact_registrar import StarknetFactRegistrar
    from madara_orchestrator.devnet.mock_atlantic import MockAtlanticServer
    from madara_orchestrator.settlement.durable import DurableSender
    from madara_orchestrator.settlement.eth_rpc import EthRpc
    from madara_orchestrator.settlement.ethereum import EthereumSettlementClient
    from madara_orchestrator.settlement.starknet import StarknetSettlementClient
    from madara_orchestrator.settlement.txmgr import FeePolicy

log = logging.getLogger(__name__)


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
        # The API's webhook route is on with a secret, given or made for the in-process mock (atlantic_webhook_secret).
        prover_webhooks=bool(settings.atlantic_webhook_secret) or bool(settings.mock_atlantic_server),
        # SPEC §3.2: a name template (with the prefix) or an SQS ARN whose resource is the template.
        queue_names=QueueAddressing.parse(settings.queue_identifier, settings.aws_prefix).names,
        policies=policies,
        processing_concurrency={
            JobType.SNOS_RUN: settings.max_concurrent_snos_jobs,
            JobType.PROOF_CREATION: settings.max_concurrent_proving_jobs,
            JobType.AGGREGATOR: settings.max_concurrent_aggregator_jobs,
            JobType.STATE_TRANSITION: settings.settlements_in_flight,
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
            max_settlements_in_flight=settings.settlements_in_flight,
        ),
        retry=dataclasses.replace(REDELIVERY, base_delay_s=settings.retry_base_delay_seconds),
        trigger_interval_s=settings.interval_seconds,
        chain_poll_interval_s=settings.chain_poll_interval_seconds,
        heal_interval_s=settings.heal_interval_seconds,
        heal_stale_after_s=settings.heal_stale_after_seconds,
        graceful_shutdown_s=settings.graceful_shutdown_timeout,
        max_priority_queue_size=settings.max_priority_queue_size,
        dedup_proofs_by_job_id=settings.prover == "atlantic",
        backlog_alert_blocks=settings.backlog_alert_blocks,
        outbox_alert_s=settings.outbox_alert_seconds,
        settlement_fee_wait_s=settings.settlement_fee_wait_seconds,
        posting=PostingPolicy(
            deadline_s=settings.settlement_deadline_seconds,
            percentile=settings.settlement_fee_percentile,
            window_blocks=settings.settlement_fee_window_blocks,
        ),
    )


def fee_cap(policy: FeePolicy) -> FeeCap:
    """The posting policy's view of the transaction manager's hard cap: the same liability, the same rules."""
    return FeeCap(
        max_total_fee_wei=policy.max_total_fee_wei,
        gas_limit=policy.gas_limit,
        priority_fee_wei=policy.priority_fee_wei,
        base_fee_multiplier=policy.base_fee_multiplier,
        blob_fee_multiplier=policy.blob_fee_multiplier,
    )


SnosFactory = Callable[[StarknetRpcClient], SnosRunner]
"""Builds the SNOS runner over the client of the SNOS RPC: how a test plugs in a runner of its own."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementChoice:
    """The settlement layer the settings chose, and all the CLI says of it: chosen once, in ``_settlement``."""

    client: DevnetSettlement | EthereumSettlementClient | StarknetSettlementClient
    where: str
    """Where it is, for the start-up wait's lines: the RPC's origin (no credentials), or the devnet ledger."""
    flags: str
    """The flags that name it, for the "not the same chain" start-up error."""
    startup_check: Callable[[], Awaitable[str]] | None = None
    """What to check once at start-up (Ethereum: the node and the core contract); its answer is logged."""
    totals: Callable[[], Awaitable[TxTotals]] | None = None
    """The transactions sent so far (None on the devnet ledger, which sends none)."""
    sent_as: str = ""
    """What one transaction is, and the fee's units: ``blob transactions``/ETH/wei or ``update_state``/STRK/FRI."""
    fee_units: tuple[str, str] = ("ETH", "wei")
    sender: DurableSender[Any] | None = None
    """What sends the client's transactions (None on the devnet ledger, which sends none): a paused
    settlement holds it."""
    ethereum: EthereumSettlementClient | None = None
    """The client again when it settles on Ethereum: its L1's fee history and its hard cap are the posting
    policy's, its finalized transactions are counted in the metrics."""

    async def fee_paid(self) -> int | None:
        """Fees paid for settlement so far, in the layer's unit (wei; FRI on Starknet), None on the ledger."""
        return None if self.totals is None else (await self.totals()).fee_paid_wei

    async def summary(self) -> str:
        """What settlement did, for the devnet summary: transactions and the fees they paid."""
        if self.totals is None:
            from madara_orchestrator.devnet.adapters import DevnetSettlement

            assert isinstance(self.client, DevnetSettlement)
            return f"blobs settled on the devnet ledger (no L1): {await self.client.blob_count()}"
        totals = await self.totals()
        big, small = self.fee_units
        return (
            f"{self.sent_as}: {totals.settled} settled ({totals.attempts} signed), "
            f"fee paid: {totals.fee_paid_wei / 10**18:.6f} {big} ({totals.fee_paid_wei} {small})"
        )


@dataclass(slots=True, kw_only=True)
class EmbeddedStack:
    """One instance, built: its backends (cli/backends.py chooses them), its clients and its runtime. It owns
    everything it opened in one exit stack, closed (in reverse order) by ``close``."""

    settings: Settings
    backends: Backends
    sequencer: StarknetRpcClient
    feeder: FeederGatewayClient
    settlement_choice: SettlementChoice
    runtime: Runtime
    recorded_alerts: RecordingAlerts
    snos: SnosRunner
    prover: ProverClient
    exits: contextlib.AsyncExitStack
    mock_atlantic: MockAtlanticServer | None = None
    """The in-process mock Atlantic server of ``--mock-atlantic-server``."""
    telemetry: Telemetry | None = None

    @property
    def store(self) -> Database:
        return self.backends.storage.db

    @property
    def queue(self) -> QueueClient:
        return self.backends.storage.queue

    @property
    def objects(self) -> ObjectStore:
        return self.backends.storage.objects

    @property
    def settlement(self) -> DevnetSettlement | EthereumSettlementClient | StarknetSettlementClient:
        return self.settlement_choice.client

    @property
    def atlantic_webhook_secret(self) -> str | None:
        """The secret the API's Atlantic webhook requires: ``--atlantic-webhook-secret``, else the one the
        in-process mock of ``--mock-atlantic-server`` signs its webhooks with (made for this run)."""
        if self.settings.atlantic_webhook_secret:
            return str(self.settings.atlantic_webhook_secret)
        return self.mock_atlantic.state.config.webhook_secret if self.mock_atlantic is not None else None

    async def close(self) -> None:
        await self.exits.aclose()

    async def settlement_fee_wei(self) -> int | None:
        return await self.settlement_choice.fee_paid()

    async def settlement_summary(self) -> str:
        return await self.settlement_choice.summary()


async def build_embedded_stack(
    settings: Settings,
    *,
    owner: str | None = None,
    prover: ProverClient | None = None,
    snos: SnosFactory | None = None,
    kzg_worker: bool = False,
) -> EmbeddedStack:
    """The one place an instance is built. ``prover`` replaces the one the settings choose (the caller closes
    it), ``snos`` the SNOS runner (tests plug their own), ``kzg_worker`` puts KZG in a worker process
    (``place_kzg_work``; ``run`` and ``devnet``). A failure closes what was opened."""
    exits = contextlib.AsyncExitStack()
    try:
        mock_atlantic = await _start_mock_atlantic(settings) if settings.mock_atlantic_server else None
        if mock_atlantic is not None:
            own(exits, mock_atlantic.stop)
        config = runtime_config(settings)
        backends = await open_backends(settings, config, exits)
        sequencer = StarknetRpcClient(
            settings.rpc_for_snos or settings.need("madara_rpc_url"), attempts=3, retry_pause_s=0.5
        )
        own(exits, sequencer.aclose)
        feeder = feeder_client(settings)
        own(exits, feeder.aclose)
        owner = owner or new_owner()
        signers = await open_signers(settings, exits)
        choice = _settlement(settings, backends, owner, exits, signers.settlement)
        chain = ChainDetails(sequencer, feeder, settings.da_keys)
        if prover is None:
            prover = build_prover(
                settings,
                exits,
                mock_atlantic=mock_atlantic,
                chain_id=sequencer.chain_id,
                fee_token=chain.fee_token,
                verifier_signer=signers.verifier,
            )
        if snos is not None:
            snos_runner = snos(sequencer)
        else:
            # The devnet SNOS runner writes the chain's OS config hash where it is checked against the chain's
            # details (Atlantic's aggregator; DA keys); otherwise the devnet chain's, without asking the feeder.
            reads_chain = settings.prover == "atlantic" or bool(settings.da_keys)
            snos_runner = build_snos_runner(
                settings, sequencer, exits, config_hash=chain.os_config_hash if reads_chain else None
            )
        recorded = RecordingAlerts()
        telemetry = build_telemetry(settings)
        own(exits, telemetry.shutdown)  # closed after the runtime has stopped: the last export
        if choice.ethereum is not None:
            metrics = telemetry.metrics
            choice.ethereum.txmgr.on_finalized = lambda tx: metrics.settlement_tx_finalized(
                gas_used=tx.gas_used,
                gas_price_wei=tx.effective_gas_price_wei,
                blob_gas_used=tx.blob_gas_used,
                blob_gas_price_wei=tx.blob_gas_price_wei,
            )
        adapters = Adapters(
            storage=dataclasses.replace(
                backends.storage, objects=CountedObjects(backends.storage.objects, telemetry.metrics)
            ),
            alerts=FanoutAlerts(_alert_sinks(settings, backends, recorded), mask=settings.secret_mask()),
            sequencer=sequencer,
            feeder=feeder,
            batch_rpc=sequencer,
            snos=snos_runner,
            prover=prover,
            settlement=choice.client,
            aggregator_runner=build_aggregator_runner(settings, sequencer, exits),
            reference=_reference_node(settings, exits),
        )
        if choice.sender is not None:
            adapters.settlement_started = settlement_started(backends.tx_store)
        if choice.ethereum is not None:
            # Blob-fee-aware posting (--settlement-deadline-seconds): the L1's fee history, the signer's hard cap.
            adapters.fee_history = choice.ethereum.rpc
            config = dataclasses.replace(config, fee_cap=fee_cap(choice.ethereum.txmgr.policy))
        runtime = Runtime(config, adapters, owner=owner, clock=backends.clock, metrics=telemetry.metrics)
        if choice.sender is not None:
            # A paused settlement signs no new transaction (engine/pause.py); one broadcast is followed.
            choice.sender.hold = runtime.pauses.settlement_hold
        await place_kzg_work(settings, exits, worker=kzg_worker)  # last: a wrong setting is told at once
    except BaseException:
        await exits.aclose()
        raise
    return EmbeddedStack(
        settings=settings,
        backends=backends,
        sequencer=sequencer,
        feeder=feeder,
        settlement_choice=choice,
        runtime=runtime,
        recorded_alerts=recorded,
        snos=snos_runner,
        prover=prover,
        exits=exits,
        mock_atlantic=mock_atlantic,
        telemetry=telemetry,
    )


def needs_kzg_setup(settings: Settings) -> bool:
    """Whether this process computes KZG commitments and proofs (EIP-4844 blobs, SPEC §6.6, §8.2): an L2 that
    settles on Ethereum (the blob transaction's sidecar, the point proofs of ``updateStateKzgDA``, the KZG
    section of the aggregator's output and its check) or aggregates in the in-process mock Atlantic (its
    aggregations carry a KZG section). An L3 settles with calldata; the devnet ledger checks no blob."""
    if not layer_plan(settings).aggregator_batches:
        return False
    return bool(settings.settle_on_ethereum) or bool(settings.mock_atlantic_server)


async def place_kzg_work(settings: Settings, exits: contextlib.AsyncExitStack, *, worker: bool) -> None:
    """Where this process computes KZG when the settings need it (``needs_kzg_setup``). ckzg holds the GIL for
    seconds to load the trusted setup and about 0.1 s for a blob's cell proofs, so on the event loop's process
    it stops the loop, and the HTTP API with it, even from a worker thread. ``worker`` (a service process:
    ``run``, ``devnet``): in a worker process from now until ``exits`` closes (starknet/kzg.py
    ``compute_in_worker_process``), started at the first blob computation, which loads the setup there; a
    service that never computes a blob loads nothing. Otherwise (a process embedding the stack: the tests)
    in this process, the setup loaded now, once per process, so that no blob of the run stops the loop for it."""
    if not needs_kzg_setup(settings):
        return
    # Imported here: ckzg is for blob DA only; every other command starts without it.
    from madara_orchestrator.starknet import kzg

    if not worker:
        await asyncio.to_thread(kzg.kzg_settings)
        return
    kzg.compute_in_worker_process()

    async def stop() -> None:
        await asyncio.to_thread(kzg.stop_worker_process)

    own(exits, stop)


def settlement_started(tx_store: TxStore) -> Callable[[str], Awaitable[bool]]:
    """Whether a settlement key has a transaction stored (signed, maybe broadcast): a paused settlement still
    follows it to its receipt."""

    async def started(key: str) -> bool:
        return bool(await tx_store.attempts(key))

    return started


def _alert_sinks(settings: Settings, backends: Backends, recorded: RecordingAlerts) -> list[AlertSink]:
    sinks: list[AlertSink] = [LogAlerts(), recorded, *backends.alert_sinks]
    if settings.alert_webhook_url:
        sinks.append(WebhookAlerts(settings.alert_webhook_url))
    return sinks


def _reference_node(settings: Settings, exits: contextlib.AsyncExitStack) -> StarknetRpcClient | None:
    """``--replay-bounds-rpc-url``: the node each block's hash is checked against before batching."""
    if not settings.replay_bounds_rpc_url:
        return None
    reference = StarknetRpcClient(settings.replay_bounds_rpc_url, attempts=3, retry_pause_s=0.5)
    own(exits, reference.aclose)
    log.info("replay bounds: each block's hash is checked against %s before batching", reference.shown_url)
    return reference


def _settlement(
    settings: Settings, backends: Backends, owner: str, exits: contextlib.AsyncExitStack, signer: TxSigner | None
) -> SettlementChoice:
    """The settlement layer the settings choose: Starknet (an L3), Ethereum, or the devnet ledger."""
    # A settlement key (a batch) is sent by one process at a time: a named lease on the shared database.
    guard = key_guard(
        backends.storage.locks,
        owner,
        prefix="settlement-tx:",
        timing=LeaseTiming(duration_s=30.0),
        clock=backends.clock,
    )
    tx_store = backends.tx_store
    if settings.settle_on_starknet:
        # Imported here: it brings starknet_py, slow to import and needed only on this path.
        from madara_orchestrator.settlement.starknet import (
            StarknetChain,
            StarknetSettlementClient,
            StarknetSettlementConfig,
            starknet_json_rpc,
            starknet_sender,
        )

        starknet_config = StarknetSettlementConfig(
            rpc_url=settings.need("starknet_rpc_url"),
            account_address=settings.need("starknet_account_address"),
            private_key=settings.need("starknet_private_key"),
            core_contract_address=settings.need("starknet_cairo_core_contract_address"),
            finality_retry_wait_s=settings.starknet_finality_retry_wait_in_secs,
            confirmation_timeout_s=settings.starknet_tx_confirmation_timeout_secs,
            max_fee_fri=settings.starknet_max_fee_fri,
        )
        starknet_rpc = starknet_json_rpc(starknet_config.rpc_url, timeout_s=starknet_config.rpc_timeout_s)
        own(exits, starknet_rpc.aclose)
        chain = StarknetChain(starknet_config, starknet_rpc)
        starknet = StarknetSettlementClient(chain=chain, txmgr=starknet_sender(chain, tx_store, key_guard=guard))
        return _sending(
            starknet,
            tx_store,
            flags="--starknet-cairo-core-contract-address and --starknet-rpc-url",
            sent_as="update_state invokes",
            fee_units=("STRK", "FRI"),
        )
    if settings.settle_on_ethereum:
        from madara_orchestrator.settlement.eth_rpc import EthRpc
        from madara_orchestrator.settlement.ethereum import (
            EthereumSettlementClient,
            EthereumSettlementConfig,
            ethereum_tx_manager,
        )

        if signer is None:
            raise ConfigError(
                ["--settle-on-ethereum needs a signer: --ethereum-private-key, -signer-url or -kms-key-id"]
            )
        ethereum_config = EthereumSettlementConfig(
            rpc_url=settings.need("ethereum_rpc_url"),
            core_contract_address=settings.need("l1_core_contract_address"),
            max_fee_bumps=settings.ethereum_max_fee_bumps,
            l2_state_update_max_fee_wei=settings.ethereum_l2_state_update_max_fee_wei,
            tx_confirmation_timeout_s=settings.ethereum_tx_confirmation_timeout_secs,
            finality_retry_wait_s=settings.ethereum_finality_retry_wait_in_secs,
            disable_peerdas=settings.disable_peerdas,
            confirmations=settings.ethereum_confirmations,
        )
        ethereum_rpc = EthRpc(ethereum_config.rpc_url)  # the config's rpc_timeout_s: 30 s
        own(exits, ethereum_rpc.aclose)
        txmgr = ethereum_tx_manager(ethereum_config, rpc=ethereum_rpc, store=tx_store, signer=signer, key_guard=guard)
        ethereum = EthereumSettlementClient(ethereum_config, rpc=ethereum_rpc, txmgr=txmgr)
        return _sending(
            ethereum,
            tx_store,
            flags="--l1-core-contract-address and --ethereum-rpc-url",
            sent_as="blob transactions",
            startup_check=ethereum.check_at_startup,
            ethereum=ethereum,
        )
    from madara_orchestrator.devnet.adapters import DevnetSettlement

    ledger = DevnetSettlement(settings.devnet_settlement_path or Path(settings.data_dir) / "devnet-settlement.db")
    return SettlementChoice(client=ledger, where="the devnet ledger", flags="--devnet-settlement-path (or --data-dir)")


def _sending(
    client: EthereumSettlementClient | StarknetSettlementClient,
    tx_store: TxStore,
    *,
    flags: str,
    sent_as: str,
    startup_check: Callable[[], Awaitable[str]] | None = None,
    fee_units: tuple[str, str] = ("ETH", "wei"),
    ethereum: EthereumSettlementClient | None = None,
) -> SettlementChoice:
    """A settlement client that sends transactions (its rpc owned by the composition's exits from its
    opening): found at its RPC's origin, its totals those of its operator's transactions in its store."""
    return SettlementChoice(
        client=client,
        where=url_origin(client.config.rpc_url),
        flags=flags,
        startup_check=startup_check,
        totals=lambda: tx_store.totals(client.operator_address),
        sent_as=sent_as,
        fee_units=fee_units,
        sender=client.txmgr,
        ethereum=ethereum,
    )


def feeder_client(settings: Settings) -> FeederGatewayClient:
    """``--madara-feeder-gateway-url``, else the sequencer's RPC URL as the original does (a node or proxy
    serving both on one address): ``/feeder_gateway/...`` is appended to its path, and its query (an API
    key) is sent with each request. A stock Madara serves its gateway on another port (``--gateway-port``,
    8080): then the flag is needed."""
    return FeederGatewayClient(settings.madara_feeder_gateway_url or settings.need("madara_rpc_url"))


@dataclass(eq=False, repr=False)
class ChainDetails:
    """The chain's details the OS config hash is made of (SPEC §17), read once when first needed: the chain id
    (``starknet_chainId``), the STRK fee token (the feeder gateway's ``get_contract_addresses``, as the
    original reads it) and ``--da-public-keys``."""

    sequencer: StarknetRpcClient
    feeder: FeederGatewayClient
    da_keys: Sequence[int]
    _fee_token: int | None = dataclasses.field(default=None, init=False)

    def __post_init__(self) -> None:
        self.da_keys = tuple(self.da_keys)

    async def fee_token(self) -> int:
        if self._fee_token is None:
            self._fee_token = (await self.feeder.get_fee_tokens()).strk
        return self._fee_token

    async def os_config_hash(self) -> int:
        return os_config_hash(int(await self.sequencer.chain_id(), 16), await self.fee_token(), self.da_keys)


def build_snos_runner(
    settings: Settings,
    sequencer: StarknetRpcClient,
    exits: contextlib.AsyncExitStack,
    *,
    config_hash: Callable[[], Awaitable[int]] | None = None,
) -> SnosRunner:
    """The SNOS runner ``--snos-runner`` chooses (docs/snos-runner.md); ``config_hash`` is the OS config hash
    the devnet runner's outputs carry (default: the devnet chain's). Readiness asks ``sequencer``, the client
    of the SNOS RPC. What it opens is closed with ``exits``."""
    # Each runner is imported in its branch: only one is used.
    if settings.snos_runner == "devnet":
        from madara_orchestrator.devnet.adapters import DevnetSnosRunner

        return DevnetSnosRunner(sequencer, config_hash=config_hash)
    if settings.snos_runner not in ("command", "http"):
        raise ConfigError(["--snos-runner is required: command, http or devnet"])
    from madara_orchestrator.snos.contract import SnosRunConfig, os_hints

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
        from madara_orchestrator.snos.command import CommandSnosRunner

        work_dir = Path(settings.snos_work_dir) if settings.snos_work_dir else Path(settings.data_dir) / "snos"
        return CommandSnosRunner(settings.need("snos_command"), config, rpc=sequencer, work_dir=work_dir)
    from madara_orchestrator.snos.http import HttpSnosRunner

    runner = HttpSnosRunner(settings.need("snos_runner_url"), config, rpc=sequencer)
    own(exits, runner.aclose)
    return runner


def build_aggregator_runner(
    settings: Settings, sequencer: StarknetRpcClient, exits: contextlib.AsyncExitStack
) -> AggregatorRunner | None:
    """The aggregator runner ``--aggregator-runner`` chooses (docs/aggregator-runner.md); None where there is
    nothing to run (Atlantic aggregates in its buckets, an L3 has no aggregator batches). The runner reads
    the chain before each batch over ``sequencer``."""
    if settings.prover == "atlantic" or not layer_plan(settings).aggregator_batches:
        return None
    # Settling on Ethereum needs a KZG section in the output for the core contract to check the blobs.
    use_kzg_da = bool(settings.settle_on_ethereum)
    # Each runner is imported in its branch: only one is used.
    if settings.aggregator_runner == "devnet":
        from madara_orchestrator.devnet.adapters import DevnetAggregatorRunner

        return DevnetAggregatorRunner(kzg_da=use_kzg_da, rpc=sequencer)
    if settings.aggregator_runner not in ("command", "http"):
        raise ConfigError([f"--aggregator-runner is required with --prover {settings.prover}: command, http or devnet"])
    from madara_orchestrator.aggregator.contract import AggregatorRunConfig

    config = AggregatorRunConfig(
        rpc_url=settings.rpc_for_snos or settings.need("madara_rpc_url"),
        use_kzg_da=use_kzg_da,
        timeout_s=float(settings.aggregator_timeout_seconds),
    )
    if settings.aggregator_runner == "command":
        from madara_orchestrator.aggregator.command import CommandAggregatorRunner

        work_dir = Path(settings.data_dir) / "aggregator"
        return CommandAggregatorRunner(settings.need("aggregator_command"), config, rpc=sequencer, work_dir=work_dir)
    from madara_orchestrator.aggregator.http import HttpAggregatorRunner

    runner = HttpAggregatorRunner(settings.need("aggregator_runner_url"), config, rpc=sequencer)
    own(exits, runner.aclose)
    return runner


@dataclass(eq=False, repr=False)
class EthereumFactChecker:
    """``isValid(bytes32)`` of a GPS verifier (fact registry) over Ethereum JSON-RPC: read-only (SPEC §7.6)."""

    rpc: EthRpc
    address: str

    async def is_valid(self, fact: str) -> bool:
        result = await self.rpc.call(self.address, IS_VALID_SELECTOR + bytes.fromhex(fact_hex(fact)[2:]))
        return int.from_bytes(result[:32], "big") == 1


def _fact_checker(
    settlement_layer: str, rpc_url: str | None, address: str | None, exits: contextlib.AsyncExitStack
) -> FactChecker | None:
    """SPEC §7.6: ``starknet`` checks nothing (always valid); ``ethereum`` asks the verifier on L1."""
    if settlement_layer == "starknet":
        return AlwaysValidFactChecker()
    if not rpc_url or not address:
        return None
    from madara_orchestrator.settlement.eth_rpc import EthRpc

    rpc = EthRpc(rpc_url)
    own(exits, rpc.aclose)
    return EthereumFactChecker(rpc, address)


def build_prover(
    settings: Settings,
    exits: contextlib.AsyncExitStack,
    *,
    mock_atlantic: MockAtlanticServer | None = None,
    chain_id: Callable[[], Awaitable[str]] | None = None,
    fee_token: Callable[[], Awaitable[int]] | None = None,
    verifier_signer: TxSigner | None = None,
) -> ProverClient:
    """The prover client ``--prover`` chooses; what it opens is closed with ``exits``. ``chain_id`` gives the
    chain id (``starknet_chainId``, hex) and ``fee_token`` the chain's STRK fee token for Atlantic's buckets
    (``chain_id_hex``, ``fee_token_address``), asked at the first bucket."""
    # Each prover's client is imported in its branch: slow to import, and only one is used.
    if settings.prover == "atlantic":
        from madara_orchestrator.domain.proving import DEFAULT_ARTIFACTS_BASE_URL
        from madara_orchestrator.provers.atlantic import (
            AtlanticClient,
            AtlanticConfig,
            AtlanticNetwork,
            AtlanticQueryStep,
        )

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
                exits,
            ),
            chain_id_source=chain_id,
            fee_token_source=fee_token,
        )
        own(exits, atlantic.aclose)
        return atlantic
    if settings.prover == "sharp":
        from madara_orchestrator.provers.sharp import SharpClient, SharpConfig

        checker = _fact_checker(
            settings.sharp_settlement_layer,
            settings.sharp_rpc_node_url,
            settings.gps_verifier_contract_address,
            exits,
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
        own(exits, sharp.aclose)
        return sharp
    if settings.prover == "mock":
        from madara_orchestrator.provers.mock import MockProverClient

        registry = None
        if settings.mock_verifier_address:
            from madara_orchestrator.settlement.contracts import FactRegistryClient
            from madara_orchestrator.settlement.eth_rpc import EthRpc

            rpc = EthRpc(settings.need("ethereum_rpc_url"))
            own(exits, rpc.aclose)
            signing = verifier_signer or settings.need("mock_verifier_private_key")
            registry = FactRegistryClient(rpc, settings.mock_verifier_address, signing)
        return MockProverClient(registry=registry)
    from madara_orchestrator.devnet.adapters import DevnetProver

    return DevnetProver()


async def _start_mock_atlantic(settings: Settings) -> MockAtlanticServer:
    """``--mock-atlantic-server``: the mock on 127.0.0.1:4001, its webhook pointed at this orchestrator's API
    (none with ``--port 0``: the port is not known yet, and verification polls)."""
    api_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    webhook_url = f"http://{api_host}:{settings.port}/webhooks/atlantic" if settings.port else None
    # Signed (X-Atlantic-Signature), so the URL, which the mock logs, carries no secret.
    webhook_secret = (settings.atlantic_webhook_secret or secrets.token_urlsafe(32)) if webhook_url else None
    # The mock (a devnet double: uvicorn, Starlette) here, not at the top: needed only with this flag.
    from madara_orchestrator.devnet.mock_atlantic import MockAtlanticConfig, MockAtlanticServer

    registrar: StarknetFactRegistrar | None = None
    if settings.settle_on_starknet:
        # Imported here: it brings starknet_py, slow to import and needed only on this path.
        from madara_orchestrator.devnet.l2_fact_registrar import StarknetFactRegistrar
        from madara_orchestrator.devnet.starknet_l2 import FACT_REGISTRY_ADDRESS, VERIFIER_ACCOUNT

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
