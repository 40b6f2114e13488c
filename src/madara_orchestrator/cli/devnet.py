"""``orchestrator devnet``: a devnet sequencer plus the orchestrator on the embedded backends.

Everything runs in this process on 127.0.0.1, in a fresh data directory: the sequencer produces
blocks, the orchestrator carries them through every stage, progress is shown per stage, and with
``--blocks N`` it ends once N blocks are settled, with a summary whose last line is
``settled N blocks in T s``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madara_orchestrator.cli.run import configure_logging
from madara_orchestrator.cli.settings import RUN_OPTIONS, Settings
from madara_orchestrator.devnet.adapters import DEVNET_AGGREGATOR_PROGRAM_HASH, DevnetProver
from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS, REPO_ROOT, Anvil, AnvilConfig
from madara_orchestrator.devnet.l1_contracts import DevnetContracts, deploy_devnet_contracts
from madara_orchestrator.devnet.layout_bridge import DEVNET_CAIRO_VERIFIER_PROGRAM_HASH
from madara_orchestrator.devnet.program_output import DEVNET_OS_PROGRAM_HASH, devnet_config_hash
from madara_orchestrator.devnet.sequencer import DEFAULT_TX_PER_BLOCK, DevnetSequencer
from madara_orchestrator.domain.artifacts import AggregatorFile, aggregator_key
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.chain import FELTS_PER_BLOB, blobs_to_hold
from madara_orchestrator.domain.errors import ConfigError, Conflict, OrchestratorError
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.engine.report import pipeline_report
from madara_orchestrator.jobs.artifacts import decode_felts_json
from madara_orchestrator.server.background import BackgroundServer, bind_listener, free_port
from madara_orchestrator.settlement.contracts import deploy_contract, deploy_starkware_core
from madara_orchestrator.settlement.eth_rpc import EthRpc

# The Starknet double and what verifies on it (starknet_py) are imported in ``start_local_l2``, the stack and its
# API where they are built: ``orchestrator devnet-chain`` (a local L1 only) and an L2 devnet start without them.
if TYPE_CHECKING:
    from madara_orchestrator.cli.compose import EmbeddedStack
    from madara_orchestrator.devnet.mock_atlantic import MockAtlanticServer
    from madara_orchestrator.devnet.starknet_l2 import StarknetL2Double

STAGE_NAMES: dict[JobType, str] = {
    JobType.SNOS_RUN: "snos",
    JobType.PROOF_CREATION: "proven",
    JobType.AGGREGATOR: "aggregated",
    JobType.PROOF_REGISTRATION: "registered",
    JobType.DATA_SUBMISSION: "da",
    JobType.STATE_TRANSITION: "settled",
}
"""Each stage's name on the progress line; the layer's plan (engine/plan.py) says which stages it has."""


def stages_of(stack: EmbeddedStack) -> tuple[tuple[str, JobType], ...]:
    return stack.runtime.config.plan.stages(STAGE_NAMES)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "devnet",
        help="run a devnet sequencer and the orchestrator on the embedded backends",
        description="Start a devnet sequencer and the orchestrator with embedded backends in a fresh data "
        "directory, and show progress per stage. With --blocks N, stop once N blocks are settled.",
    )
    parser.add_argument("--blocks", type=int, default=None, help="stop after this many blocks are settled")
    parser.add_argument("--block-time", type=float, default=0.5, help="seconds between blocks (default 0.5)")
    parser.add_argument(
        "--tx-per-block",
        type=int,
        default=DEFAULT_TX_PER_BLOCK,
        help=f"transactions per devnet block (default {DEFAULT_TX_PER_BLOCK}: batches fill by size)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="blocks per settled batch: aggregator batch (default: run's, 100), or SNOS batch with --layer l3 (10)",
    )
    parser.add_argument(
        "--max-batch-time",
        type=float,
        default=DEVNET_MAX_BATCH_TIME_S,
        help=f"seconds before an open batch closes (default {DEVNET_MAX_BATCH_TIME_S:g})",
    )
    parser.add_argument("--data-dir", default=None, help="data directory (default: a new temporary directory)")
    parser.add_argument("--port", type=int, default=None, help="HTTP API port (default: 3000 if free)")
    parser.add_argument("--prover-latency", type=float, default=0.0, help="seconds the devnet prover takes")
    parser.add_argument(
        "--settlement",
        choices=("anvil", "ledger"),
        default="anvil",
        help="anvil (default): a local L1 whose core contract checks every blob; ledger: no L1, a file",
    )
    parser.add_argument("--hardfork", choices=("prague", "osaka"), default="prague", help="anvil hardfork")
    add_core_contract_argument(parser)
    parser.add_argument(
        "--layer",
        choices=("l2", "l3"),
        default="l2",
        help="l2 (default): settle on the local L1; l3: an L3 settling on a local Starknet L2 (a JSON-RPC double "
        "with a core contract), its proofs verified there by a local mock Atlantic server",
    )
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    parser.set_defaults(handler=devnet_command)


DEVNET_MAX_BATCH_TIME_S = 60.0
"""A running devnet settles at least this often; with --blocks the last batch closes as soon as it is full."""


def devnet_settings(data_dir: Path, sequencer_url: str, *, port: int) -> Settings:
    values: dict[str, Any] = {o.name: o.default for o in RUN_OPTIONS}
    values.update(
        data_dir=str(data_dir),
        madara_rpc_url=sequencer_url,
        prover="devnet",
        # The stand-ins, by name: nothing else implies them.
        snos_runner="devnet",
        aggregator_runner="devnet",
        settle_on_devnet=True,
        port=port,
        verification_poll_seconds=0.05,
        chain_poll_interval_seconds=0.1,
        interval_seconds=5.0,
        heal_interval_seconds=10.0,
        retry_base_delay_seconds=0.5,
        max_batch_processing_size=100,
        snos_job_buffer_size=200,
        aggregator_job_buffer_size=50,
        graceful_shutdown_timeout=10.0,
        max_batch_time_seconds=DEVNET_MAX_BATCH_TIME_S,
        batching_worker_lock_duration=30.0,
    )
    return Settings(values)


@dataclass
class LocalL1:
    """anvil with the devnet contracts deployed, and the settings that point the orchestrator at it."""

    anvil: Anvil
    contracts: DevnetContracts
    overrides: dict[str, Any]

    def stop(self) -> None:
        self.anvil.stop()


STARKWARE_CORE_JSON = REPO_ROOT.parent / "shared" / "vectors" / "contracts" / "StarknetCore.starkware.json"
"""StarkWare's compiled core contract, where the project's checkout keeps the shared test vectors."""


def add_core_contract_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--core-contract",
        choices=("devnet", "starkware"),
        default="devnet",
        help="core contract on anvil: devnet (default; contracts/StarknetCore.sol) or starkware (StarkWare's "
        "compiled Starknet.sol from ../shared/vectors/contracts)",
    )


def starkware_core_problem(core_contract: str) -> str | None:
    """Why ``--core-contract starkware`` cannot be used here (its compiled contract is missing), else None."""
    if core_contract == "starkware" and not STARKWARE_CORE_JSON.is_file():
        return f"--core-contract starkware needs StarkWare's compiled contract at {STARKWARE_CORE_JSON}"
    return None


async def start_local_l1(data_dir: Path, *, hardfork: str = "prague", core_contract: str = "devnet") -> LocalL1:
    """Start anvil (automine) and deploy the devnet's contracts on it (``deploy_local_l1``)."""
    anvil = Anvil(AnvilConfig(hardfork=hardfork), log_path=data_dir / "anvil.log")
    await asyncio.to_thread(anvil.start)
    try:
        return await deploy_local_l1(anvil, core_contract=core_contract)
    except BaseException:
        anvil.stop()
        raise


async def deploy_local_l1(anvil: Anvil, *, core_contract: str = "devnet") -> LocalL1:
    """Deploy the fact registry and a core contract on a running ``anvil``: the devnet one, or with
    ``core_contract="starkware"`` StarkWare's (``STARKWARE_CORE_JSON``), initialised for the devnet's
    outputs (OS and aggregator program hashes, the devnet chain's config hash, genesis at block -1).

    The operator settles with dev key 0; facts are registered with dev key 1, so the two never compete
    for nonces. PeerDAS cell proofs on osaka, EIP-4844 blob proofs on prague (the node's hardfork). anvil
    loads its KZG trusted setup meanwhile, in the background (``warm_up_blob_checks``), not when the first
    settlement comes."""
    hardfork = anvil.config.hardfork
    rpc = EthRpc(anvil.url)
    try:
        if core_contract == "starkware":
            registry = await deploy_contract(rpc, DEV_PRIVATE_KEYS[1], "FactRegistry")
            core = await deploy_starkware_core(
                rpc,
                DEV_PRIVATE_KEYS[1],
                STARKWARE_CORE_JSON,
                program_hash=DEVNET_OS_PROGRAM_HASH,
                aggregator_program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH,
                verifier=registry,
                config_hash=devnet_config_hash(),
            )
            contracts = DevnetContracts(
                fact_registry=registry,
                core_contract=core,
                program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH,
                config_hash=devnet_config_hash(),
            )
        else:
            contracts = await deploy_devnet_contracts(
                rpc, DEV_PRIVATE_KEYS[1], program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH, config_hash=devnet_config_hash()
            )
    finally:
        await rpc.aclose()
    anvil.warm_up_blob_checks()
    overrides = {
        "settle_on_devnet": False,
        "settle_on_ethereum": True,
        "ethereum_rpc_url": anvil.url,
        "ethereum_private_key": DEV_PRIVATE_KEYS[0],
        "l1_core_contract_address": contracts.core_contract,
        "ethereum_confirmations": 0,
        "ethereum_finality_retry_wait_in_secs": 0.2,
        "disable_peerdas": hardfork == "prague",
        "prover": "mock",
        "mock_verifier_address": contracts.fact_registry,
        "mock_verifier_private_key": DEV_PRIVATE_KEYS[1],
    }
    return LocalL1(anvil, contracts, overrides)


def _port(requested: int | None) -> int:
    if requested is not None:
        return requested
    try:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 3000))
        return 3000
    except OSError:
        return free_port()


def devnet_command(args: argparse.Namespace) -> int:
    problems = []
    if args.blocks is not None and args.blocks <= 0:
        problems.append(f"--blocks must be a positive integer, got {args.blocks}")
    if args.tx_per_block < 0:
        problems.append(f"--tx-per-block must be 0 or more, got {args.tx_per_block}")
    if args.max_batch_size is not None and args.max_batch_size <= 0:
        problems.append(f"--max-batch-size must be a positive integer, got {args.max_batch_size}")
    if args.max_batch_time <= 0:
        problems.append(f"--max-batch-time must be positive, got {args.max_batch_time}")
    if args.block_time <= 0:
        problems.append(f"--block-time must be positive, got {args.block_time}")
    if args.layer == "l3" and args.settlement != "anvil":
        problems.append(
            "--settlement chooses an L2's settlement layer; --layer l3 settles on the local Starknet double"
        )
    problems.append(starkware_core_problem(args.core_contract) or "")
    if args.core_contract != "devnet" and (args.layer == "l3" or args.settlement != "anvil"):
        problems.append("--core-contract chooses the L1 core contract: only with --settlement anvil on an L2")
    problems = [p for p in problems if p]
    if args.data_dir and Path(args.data_dir).exists() and any(Path(args.data_dir).iterdir()):
        problems.append(f"--data-dir {args.data_dir} is not empty; the devnet starts from a fresh directory")
    if problems:
        raise ConfigError(problems)
    if "LOG_LEVEL" not in os.environ:
        os.environ["LOG_LEVEL"] = "WARNING"
    configure_logging()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="orchestrator-devnet-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run_devnet(args, data_dir))


def progress_line(*, head: int, done: dict[str, int], settled_blocks: int, open_batch: str, failed: int) -> str:
    """Every field ``label value``: ``head 12 | snos 3 | proven 3 | aggregated 1 | settled 1 (blocks 0-9) |
    open batch 2: 5 blocks, 1,234/24,561 felts``, then ``failed N`` when some job failed."""
    fields = [f"head {head}"] + [f"{name} {count}" for name, count in done.items()]
    if settled_blocks:
        blocks = "block 0" if settled_blocks == 1 else f"blocks 0-{settled_blocks - 1}"
        fields[-1] += f" ({blocks})"
    fields.append(open_batch)
    if failed:
        fields.append(f"failed {failed}")
    return " | ".join(fields)


class Progress:
    def __init__(self, stream: Any = sys.stdout) -> None:
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last = ""
        self.last_print = 0.0

    def show(self, line: str, *, final: bool = False) -> None:
        if line == self.last and not final:
            return
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self.last)))
            if final:
                self.stream.write("\n")
        elif final or now - self.last_print >= 1.0:
            self.stream.write(line + "\n")
            self.last_print = now
        self.stream.flush()
        self.last = line


async def stage_counts(stack: EmbeddedStack) -> tuple[dict[str, int], int]:
    counts = await stack.store.count_jobs()
    done = {name: counts.get((job_type, JobStatus.COMPLETED), 0) for name, job_type in stages_of(stack)}
    failed = sum(n for (_, status), n in counts.items() if status == JobStatus.FAILED)
    return done, failed


async def open_batch_label(stack: EmbeddedStack) -> str:
    """The open aggregator batch as the progress line shows it: ``open batch 3: 12 blocks, 9,876/24,561 felts``
    (an L3's open SNOS batch: ``open batch 3: 12 blocks``)."""
    if not stack.runtime.config.plan.aggregator_batches:
        snos = await stack.store.latest_snos_batch()
        if snos is None or snos.status != SnosBatchStatus.OPEN:
            return "no open batch"
        return f"open batch {snos.index}: {snos.num_blocks} blocks"
    latest = await stack.store.latest_aggregator_batch()
    if latest is None or latest.status != AggregatorBatchStatus.OPEN:
        return "no open batch"
    limit = stack.runtime.batcher.limits.max_blob_size
    return f"open batch {latest.index}: {latest.num_blocks} blocks, {latest.blob_len:,}/{limit:,} felts"


async def batches_completed(stack: EmbeddedStack, blocks: int) -> bool:
    """Whether the batches of the first ``blocks`` blocks are settled and verified (Completed)."""
    if not stack.runtime.config.plan.aggregator_batches:
        snos = await stack.store.list_snos_batches(statuses=[SnosBatchStatus.COMPLETED], limit=1, descending=True)
        return bool(snos) and snos[0].end_block >= blocks - 1
    done = await stack.store.list_aggregator_batches(
        statuses=[AggregatorBatchStatus.COMPLETED], limit=1, descending=True
    )
    return bool(done) and done[0].end_block >= blocks - 1


async def close_tail(stack: EmbeddedStack, *, last_block: int) -> bool:
    """With --blocks N: once block N-1 is batched, close the open batches so the tail settles now
    rather than at the batch's maximum age. True once done."""
    latest: AggregatorBatch | SnosBatch | None
    if stack.runtime.config.plan.aggregator_batches:
        latest = await stack.store.latest_aggregator_batch()
        is_open = latest is not None and latest.status == AggregatorBatchStatus.OPEN
    else:
        latest = await stack.store.latest_snos_batch()
        is_open = latest is not None and latest.status == SnosBatchStatus.OPEN
    if latest is None or latest.end_block < last_block:
        return False
    if is_open:
        try:
            await stack.runtime.triggers.close_open_batches()
        except Conflict:
            return False  # a batching run holds the lease; try again on the next tick
    return True


async def batching_summary(stack: EmbeddedStack, settled_blocks: int) -> list[str]:
    """Blocks and blobs per settlement, blob fill (felts used / felts paid for) and fee per settled block."""
    if not stack.runtime.config.plan.aggregator_batches:
        return await l3_batching_summary(stack, settled_blocks)
    settled = await stack.store.list_aggregator_batches(statuses=[AggregatorBatchStatus.COMPLETED])
    if not settled:
        return ["batches: none settled"]
    used = paid = 0
    for batch in settled:
        try:
            felts = len(
                decode_felts_json(await stack.objects.get(aggregator_key(batch.index, AggregatorFile.DA_SEGMENT)))
            )
        except OrchestratorError:
            continue
        used += felts
        paid += blobs_to_hold(felts) * FELTS_PER_BLOB
    blocks = sum(b.num_blocks for b in settled)
    lines = [
        f"batches: {len(settled)} settled, {blocks / len(settled):.1f} blocks per settlement, "
        f"{paid / FELTS_PER_BLOB / len(settled):.2f} blobs per settlement, "
        f"blob fill {used / paid if paid else 0:.3f} ({used:,} felts used / {paid:,} paid for)"
    ]
    fee = await stack.settlement_fee_wei()
    if fee is not None and settled_blocks:
        lines.append(f"fee per settled block: {fee / settled_blocks / 10**18:.9f} ETH ({fee // settled_blocks} wei)")
    return lines


async def l3_batching_summary(stack: EmbeddedStack, settled_blocks: int) -> list[str]:
    """An L3's settlements: SNOS batches, one ``update_state`` invoke each, and the fee per block in FRI."""
    settled = await stack.store.list_snos_batches(statuses=[SnosBatchStatus.COMPLETED])
    if not settled:
        return ["batches: none settled"]
    blocks = sum(b.num_blocks for b in settled)
    lines = [f"batches: {len(settled)} settled, {blocks / len(settled):.1f} blocks per settlement"]
    fee = await stack.settlement_fee_wei()
    if fee is not None and settled_blocks:
        lines.append(f"fee per settled block: {fee / settled_blocks / 10**18:.9f} STRK ({fee // settled_blocks} FRI)")
    return lines


@dataclass
class LocalL2:
    """An L3's settlement layer: the Starknet double over JSON-RPC, and the mock Atlantic server that
    verifies proofs on it (registering their facts with the double's verifier account)."""

    double: StarknetL2Double
    server: BackgroundServer
    atlantic: MockAtlanticServer
    overrides: dict[str, Any]

    async def stop(self) -> None:
        await self.atlantic.stop()
        await self.server.stop()


async def start_local_l2() -> LocalL2:
    from madara_orchestrator.devnet.l2_fact_registrar import StarknetFactRegistrar
    from madara_orchestrator.devnet.mock_atlantic import MockAtlanticConfig, MockAtlanticServer
    from madara_orchestrator.devnet.starknet_l2 import OPERATOR_ACCOUNT, VERIFIER_ACCOUNT, StarknetL2Double

    double = StarknetL2Double()
    server = BackgroundServer(double.app)
    await server.start()
    verifier = VERIFIER_ACCOUNT
    registrar = StarknetFactRegistrar(
        rpc_url=server.url,
        account_address=verifier.address,
        private_key=verifier.private_key,
        registry_address=double.fact_registry_address,
    )
    atlantic = MockAtlanticServer(MockAtlanticConfig(processing_s=0.0), port=0, l2_fact_registry=registrar)
    try:
        await atlantic.start()
    except BaseException:
        await server.stop()
        raise
    operator = OPERATOR_ACCOUNT
    overrides = {
        "layer": "l3",
        "settle_on_devnet": False,
        "settle_on_starknet": True,
        "da_on_starknet": True,
        "starknet_rpc_url": server.url,
        "starknet_account_address": hex(operator.address),
        "starknet_private_key": hex(operator.private_key),
        "starknet_cairo_core_contract_address": hex(double.core_contract_address),
        "starknet_finality_retry_wait_in_secs": 0.05,
        "prover": "atlantic",
        "atlantic_service_url": atlantic.url,
        "atlantic_artifacts_base_url": atlantic.artifacts_url,
        "atlantic_api_key": "devnet",
        "atlantic_mock_fact_hash": "true",
        "atlantic_prover_type": "starkware",
        "atlantic_settlement_layer": "starknet",
        "atlantic_network": "testnet",
        "cairo_verifier_program_hash": hex(DEVNET_CAIRO_VERIFIER_PROGRAM_HASH),
    }
    return LocalL2(double, server, atlantic, overrides)


@dataclass
class DevnetRun:
    """What ``orchestrator devnet`` started: the sequencer and its RPC server, the stack, and the local L1 (anvil)
    or L2 (the Starknet double) it settles on, if any."""

    sequencer: DevnetSequencer
    rpc_server: BackgroundServer
    stack: EmbeddedStack
    l1: LocalL1 | None = None
    l2: LocalL2 | None = None

    async def stop_layers(self) -> None:
        if self.l1 is not None:
            self.l1.stop()
        if self.l2 is not None:
            await self.l2.stop()


async def _start_devnet(args: argparse.Namespace, data_dir: Path, port: int) -> DevnetRun:
    """The sequencer, the settlement layer the arguments choose, and the stack; a failure stops what started."""
    from madara_orchestrator.cli.compose import build_embedded_stack

    sequencer = DevnetSequencer(block_time_s=args.block_time, tx_per_block=args.tx_per_block)
    rpc_server = BackgroundServer(sequencer.app)
    l1: LocalL1 | None = None
    l2: LocalL2 | None = None
    try:
        await rpc_server.start()
        settings = devnet_settings(data_dir, rpc_server.url, port=port)
        overrides: dict[str, Any] = {"max_batch_time_seconds": int(max(1, args.max_batch_time))}
        if args.max_batch_size is not None:
            # An L3 settles each SNOS batch: there the batch is the SNOS batch.
            overrides["max_blocks_per_snos_batch" if args.layer == "l3" else "max_batch_size"] = args.max_batch_size
        if args.layer == "l3":
            l2 = await start_local_l2()
            overrides.update(l2.overrides)
        elif args.settlement == "anvil":
            l1 = await start_local_l1(data_dir, hardfork=args.hardfork, core_contract=args.core_contract)
            overrides.update(l1.overrides)
        settings = Settings({**settings.values, **overrides}, settings.secrets)
        # --prover-latency: how long the devnet prover takes (only the devnet prover has one).
        prover = DevnetProver(latency_s=args.prover_latency) if settings.prover == "devnet" else None
        stack = await build_embedded_stack(settings, prover=prover, kzg_worker=True)
    except BaseException:
        await rpc_server.stop()
        if l1 is not None:
            l1.stop()
        if l2 is not None:
            await l2.stop()
        raise
    return DevnetRun(sequencer, rpc_server, stack, l1, l2)


def _print_banner(run: DevnetRun, args: argparse.Namespace, api_url: str, data_dir: Path) -> None:
    out = sys.stdout
    print(f"devnet sequencer: {run.rpc_server.url}  (Starknet JSON-RPC, a block every {args.block_time:g} s)", file=out)
    print(f"orchestrator API: {api_url}  (/health, /jobs?status=..., /metrics)", file=out)
    if run.l1 is not None:
        l1 = run.l1
        print(
            f"local L1 (anvil, {args.hardfork}): {l1.anvil.url}  "
            f"{args.core_contract} core contract {l1.contracts.core_contract}, "
            f"fact registry {l1.contracts.fact_registry}",
            file=out,
        )
    elif run.l2 is not None:
        l2 = run.l2
        print(
            f"local L2 (Starknet JSON-RPC double): {l2.server.url}  core contract "
            f"{hex(l2.double.core_contract_address)}, fact registry {hex(l2.double.fact_registry_address)}; "
            f"mock Atlantic {l2.atlantic.url}",
            file=out,
        )
    else:
        print("settlement:       devnet ledger (no L1)", file=out)
    print(f"data directory:   {data_dir}", file=out, flush=True)


@dataclass
class Watched:
    settled_blocks: int = 0
    elapsed_s: float = 0.0
    code: int = 0


async def _watch(run: DevnetRun, args: argparse.Namespace, stop: asyncio.Event) -> Watched:
    """Show progress until the blocks asked for are settled, the time is up, or ``stop`` is set."""
    out = sys.stdout
    stack = run.stack
    started = time.monotonic()
    progress = Progress(out)
    watched = Watched()
    tail_closed = False
    while not stop.is_set():
        done, failed = await stage_counts(stack)
        last = await stack.settlement.last_settled_block()
        watched.settled_blocks = 0 if last is None else last + 1
        line = progress_line(
            head=run.sequencer.chain.head,
            done=done,
            settled_blocks=watched.settled_blocks,
            open_batch=await open_batch_label(stack),
            failed=failed,
        )
        if args.blocks is not None and not tail_closed:
            tail_closed = await close_tail(stack, last_block=args.blocks - 1)
        progress.show(line)
        if (
            args.blocks is not None
            and watched.settled_blocks >= args.blocks
            and await batches_completed(stack, args.blocks)
        ):
            break
        if args.timeout is not None and time.monotonic() - started > args.timeout:
            progress.show(line, final=True)
            print(f"error: timed out after {args.timeout:g} s with {watched.settled_blocks} blocks settled", file=out)
            watched.code = 1
            break
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.2)
        except TimeoutError:
            pass
    watched.elapsed_s = time.monotonic() - started
    progress.show(progress.last, final=True)
    return watched


async def _report(stack: EmbeddedStack, settled_blocks: int) -> list[str]:
    """The summary's lines: each stage's latencies, what settlement did, batching, alerts."""
    stages = stages_of(stack)
    report = await pipeline_report(stack.store, tuple(job_type for _, job_type in stages))
    lines = ["", "stage           jobs   created->completed p50/p95 (s)   hand-off p50/p95 (s)"]
    for name, job_type in stages:
        s = report.stage[job_type]
        h = report.handoff.get(job_type)
        hand = f"{h.p50:8.3f} / {h.p95:6.3f}" if h and h.count else "       - /      -"
        lines.append(f"{name:<14} {s.count:>5}   {s.p50:10.3f} / {s.p95:8.3f}           {hand}")
    lines.append(await stack.settlement_summary())
    lines.extend(await batching_summary(stack, settled_blocks))
    lines.append(f"alerts: {len(stack.recorded_alerts.sent)}, data: {stack.settings.data_dir}")
    return lines


async def run_devnet(args: argparse.Namespace, data_dir: Path) -> int:
    from madara_orchestrator.server.app import create_app

    out = sys.stdout
    # Signals first: a Ctrl-C during start-up must also end in a clean shutdown.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The API port first: a busy port is one clear error before anything is started.
    listener = bind_listener("127.0.0.1", _port(args.port))
    try:
        run = await _start_devnet(args, data_dir, listener.getsockname()[1])
    except BaseException:
        listener.close()
        raise
    stack = run.stack
    api = BackgroundServer(create_app(stack.runtime), sock=listener)
    await api.start()
    _print_banner(run, args, api.url, data_dir)
    run.sequencer.start_producing(max_blocks=args.blocks)
    await stack.runtime.start()
    try:
        watched = await _watch(run, args, stop)
    finally:
        await run.sequencer.stop_producing()
        await stack.runtime.stop()
        await api.stop()
        await run.rpc_server.stop()
    lines = await _report(stack, watched.settled_blocks)
    await stack.close()
    await run.stop_layers()
    for line in lines:
        print(line, file=out)
    if stop.is_set():
        print(f"stopped: settled {watched.settled_blocks} blocks in {watched.elapsed_s:.1f} s", file=out)
        return 0
    if watched.code == 0:
        print(f"settled {watched.settled_blocks} blocks in {watched.elapsed_s:.1f} s", file=out)
    logging.shutdown()
    return watched.code
