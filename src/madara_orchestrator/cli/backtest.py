"""``orchestrator backtest``: a chain's blocks through ``run``'s batching, to try the limits before setting them.

The batching flags are ``run``'s own declarations (cli/settings/), so they have the same names, variables,
defaults and checks; engine/backtest.py runs ``run``'s Batcher over the blocks on stores in this process's
memory. Nothing is written anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from madara_orchestrator.backends.memory import MemoryObjectStore, MemoryStore
from madara_orchestrator.cli import run_help
from madara_orchestrator.cli.run import load_dotenv_file
from madara_orchestrator.cli.settings import ENV_PREFIX, RUN_OPTIONS, add_options, batch_limits
from madara_orchestrator.cli.settings.checks import batching_problems, load_bouncer_weight_limits
from madara_orchestrator.cli.settings.loading import resolve_checked
from madara_orchestrator.cli.settings.proving import BatchingSettings
from madara_orchestrator.domain.batches import BouncerWeights
from madara_orchestrator.domain.batching import BatchLimits, StarknetVersions
from madara_orchestrator.domain.chain import FELTS_PER_BLOB
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, OrchestratorError, RpcError
from madara_orchestrator.domain.redaction import cut_urls, url_origin
from madara_orchestrator.engine.backtest import (
    BacktestBatch,
    BacktestResult,
    Fees,
    Scratch,
    backtest,
    settlement_fees,
    unpriced,
)
from madara_orchestrator.starknet.feeder import FeederGatewayClient, FeederGatewayUnusable
from madara_orchestrator.starknet.rpc import StarknetRpcClient
from madara_orchestrator.starknet.rpc_types import NO_BLOCKS

NOT_BATCHING = frozenset({"batching_worker_lock_duration", "replay_bounds_rpc_url"})
"""Batching settings of ``run`` that do not decide what a batch holds (the lease; the reference node)."""
BACKTEST_OPTIONS = tuple(
    o
    for o in RUN_OPTIONS
    if (o.group == BatchingSettings.GROUP and o.name not in NOT_BATCHING) or o.name == "madara_feeder_gateway_url"
)
"""``run``'s declarations the backtest takes: the feeder gateway and every limit that decides a batch."""
RPC_URL_VARIABLE = ENV_PREFIX + "MADARA_RPC_URL"
DEFAULT_SETTLEMENT_GAS = 400_000
"""A rough figure for one ``updateStateKzgDA``'s execution gas; ``--settlement-gas`` sets the chain's own."""

DESCRIPTION = (
    "Replay blocks --from..--to of a Starknet chain through the batching of `orchestrator run` (the same "
    "policy, squashing, compression and blob encoding, the same flags and MADARA_ORCHESTRATOR_* variables) "
    "and print the aggregator batches it would make (one settlement each): blocks, why each closed, blobs, "
    "fill, felts; then settlements, blobs, and the fee per block. Each settlement is priced at the L1 prices "
    "recorded in its last block's header (l1_gas_price.price_in_wei as the base fee, "
    "l1_data_gas_price.price_in_wei as the blob base fee), or at --base-fee-wei / --blob-base-fee-wei when "
    "given; the output says which. A node whose headers lack them gets no fee figures. Time-based closes "
    "(--max-batch-time-seconds) use the blocks' timestamps. "
    "It READS: the node's JSON-RPC (starknet_blockNumber, starknet_getBlockWithTxHashes with the headers' "
    "L1 prices, starknet_getStateUpdate, and starknet_getStorageAt/getClassHashAt/getNonce at past blocks, as "
    "squashing and compression do), the feeder gateway's bouncer weights (get_block_bouncer_weights; when the node has "
    "none they count as zero, and the output says so), --bouncer-weights-limit-file, the environment and "
    "./.env. It WRITES NOTHING: no database, no storage, no files; batches live in memory until it exits."
)
EPILOG = (
    "L2 only (aggregator batches settled with blobs). Exit codes: 0 done, 1 the node cannot be reached or "
    "fails, 2 bad flags. Example: orchestrator backtest --rpc-url http://127.0.0.1:9944 --from 1000 --to 2000 "
    "--max-num-blobs 3 (at the recorded L1 prices); add --blob-base-fee-wei 1000000000 --base-fee-wei 5000000000 "
    "to price every settlement at those instead"
)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "backtest",
        help="replay a chain's blocks through run's batching limits (reads a node, writes nothing)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=run_help.HelpFormatter,
    )
    parser.add_argument(
        "--rpc-url",
        default=None,
        metavar="URL",
        help=f"the Starknet JSON-RPC node to read: any node (default: {RPC_URL_VARIABLE}, run's --madara-rpc-url)",
    )
    parser.add_argument("--from", dest="first", type=int, default=0, metavar="BLOCK", help="first block (default 0)")
    parser.add_argument(
        "--to", dest="last", type=int, default=None, metavar="BLOCK", help="last block (default: the node's newest)"
    )
    parser.add_argument(
        "--base-fee-wei",
        type=int,
        default=None,
        metavar="WEI",
        help=(
            "L1 base fee to price every settlement at (default: each batch's recorded in its last block's header, "
            "l1_gas_price.price_in_wei)"
        ),
    )
    parser.add_argument(
        "--blob-base-fee-wei",
        type=int,
        default=None,
        metavar="WEI",
        help=(
            "L1 blob base fee to price every settlement's blobs at (default: each batch's recorded in its last "
            "block's header, l1_data_gas_price.price_in_wei)"
        ),
    )
    parser.add_argument(
        "--priority-fee-wei", type=int, default=0, metavar="WEI", help="priority fee per gas on top (default 0)"
    )
    parser.add_argument(
        "--settlement-gas",
        type=int,
        default=DEFAULT_SETTLEMENT_GAS,
        metavar="GAS",
        help=(
            f"execution gas of one settlement, blobs aside (default {DEFAULT_SETTLEMENT_GAS:,}, a rough figure: "
            "take yours from a settlement receipt's gasUsed)"
        ),
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the table")
    add_options(parser, BACKTEST_OPTIONS)
    parser.set_defaults(handler=backtest_command)


# --------------------------------------------------------------------------------------------------
# Flags


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        _ = parts.port
        good = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        good = False
    return None if good else "--rpc-url must be an http:// or https:// URL with a host"


def _fees(args: argparse.Namespace) -> tuple[Fees, list[str]]:
    """The prices given; a price not given is each batch's recorded one."""
    problems = [
        f"--{name.replace('_', '-')} must be 0 or more, got {value}"
        for name in ("base_fee_wei", "blob_base_fee_wei", "priority_fee_wei", "settlement_gas")
        if (value := getattr(args, name)) is not None and value < 0
    ]
    fees = Fees(
        base_fee_wei=args.base_fee_wei,
        blob_base_fee_wei=args.blob_base_fee_wei,
        priority_fee_wei=args.priority_fee_wei,
        settlement_gas=args.settlement_gas,
    )
    return fees, problems


def load_backtest_settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], BatchLimits, StarknetVersions, Fees]:
    """The flags and variables, checked as ``run`` checks them; every problem on one line (``InvalidInput``)."""
    env = os.environ if environ is None else environ
    values, problems, _ = resolve_checked(args, BACKTEST_OPTIONS, env)
    url = values["rpc_url"] = args.rpc_url or env.get(RPC_URL_VARIABLE) or None
    if not url:
        problems.append(f"--rpc-url is required (or {RPC_URL_VARIABLE}): the node whose blocks to replay")
    elif problem := _url_problem(url):
        problems.append(problem)
    if values["madara_feeder_gateway_url"] and _url_problem(values["madara_feeder_gateway_url"]):
        problems.append("--madara-feeder-gateway-url must be an http:// or https:// URL with a host")
    if args.first < 0:
        problems.append(f"--from must be 0 or more, got {args.first}")
    if args.last is not None and args.last < args.first:
        problems.append(f"--to {args.last} is before --from {args.first}")
    problems += batching_problems(values)
    versions = StarknetVersions.parse(values["allow_starknet_versions"])
    problems += [f"--allow-starknet-versions: {p}" for p in versions.problems()]
    fees, fee_problems = _fees(args)
    problems += fee_problems
    if problems:
        raise InvalidInput("; ".join(problems) + "; see orchestrator backtest --help")
    limits = batch_limits(values, load_bouncer_weight_limits(values["bouncer_weights_limit_file"]))
    return values, limits, versions, fees


# --------------------------------------------------------------------------------------------------
# The node


class WeightsOrZero:
    """Implements ``FeederGateway``: the node's bouncer weights, or zero weights for every block when it serves
    no feeder gateway (a plain JSON-RPC node); ``missing`` then says why."""

    def __init__(self, gateway: FeederGatewayClient) -> None:
        self.gateway = gateway
        self.missing: str | None = None

    async def get_block_bouncer_weights(self, block_number: int) -> BouncerWeights:
        if self.missing is None:
            try:
                return await self.gateway.get_block_bouncer_weights(block_number)
            except FeederGatewayUnusable as exc:
                self.missing = cut_urls(str(exc))
        return BouncerWeights()


async def _newest_block(client: StarknetRpcClient) -> int:
    try:
        return await client.block_number()
    except RpcError as exc:
        if exc.code == NO_BLOCKS:
            return -1
        raise OrchestratorError(
            f"the node at {client.shown_url} refused starknet_blockNumber ({exc}): is --rpc-url a Starknet node?"
        ) from None
    except BackendUnavailable as exc:
        raise BackendUnavailable(
            f"cannot reach the node at {client.shown_url} ({cut_urls(str(exc))}): check --rpc-url and that the node "
            "is running"
        ) from None


async def run_backtest(
    values: Mapping[str, Any], limits: BatchLimits, versions: StarknetVersions, first: int, last: int | None
) -> tuple[BacktestResult, str | None, str | None]:
    """The result, the feeder gateway's absence (if so), and a note when ``--to`` is past the node's head."""
    url = str(values["rpc_url"])
    probe = StarknetRpcClient(url, attempts=1, timeout_s=10.0)
    try:
        head = await _newest_block(probe)
    finally:
        await probe.aclose()
    if head < first:
        raise InvalidInput(
            f"the node at {probe.shown_url} has no block {first} yet (its newest is {head}): lower --from"
        )
    note = None
    if last is None or last > head:
        note = None if last is None else f"--to {last} is past the node's newest block {head}: stopped at {head}"
        last = head
    client = StarknetRpcClient(url, attempts=3, retry_pause_s=0.5)
    weights = WeightsOrZero(FeederGatewayClient(values["madara_feeder_gateway_url"] or url))
    memory = MemoryStore()
    try:
        result = await backtest(
            node=client,
            feeder=weights,
            rpc=client,
            scratch=Scratch(db=memory, objects=MemoryObjectStore(), locks=memory),
            limits=limits,
            first=first,
            last=last,
            versions=versions,
            on_block=_progress_printer(first, last),
        )
        return result, weights.missing, note
    except RpcError as exc:
        raise OrchestratorError(f"the node at {client.shown_url} answered an error: {cut_urls(str(exc))}") from None
    except BackendUnavailable as exc:
        raise BackendUnavailable(
            f"the node at {client.shown_url} stopped answering ({cut_urls(str(exc))}): check it and run again "
            "(nothing was written)"
        ) from None
    except InvalidInput as exc:  # the node's answers, not the flags: exit 1
        raise OrchestratorError(f"the node at {client.shown_url} gave an unusable answer: {exc}") from None
    finally:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        await client.aclose()
        await weights.gateway.aclose()


def _progress_printer(first: int, last: int) -> Any:
    """A progress line on a terminal's stderr, every 50 blocks; nothing otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(number: int) -> None:
        if (number - first) % 50 == 0 or number == last:
            print(f"\rblock {number} of {first}-{last}", end="", file=sys.stderr, flush=True)

    return show


def backtest_command(args: argparse.Namespace) -> int:
    load_dotenv_file()
    values, limits, versions, fees = load_backtest_settings(args)
    try:
        result, no_weights, note = asyncio.run(run_backtest(values, limits, versions, args.first, args.last))
    except OrchestratorError:
        raise
    except Exception as exc:  # never a traceback: one line, what and where
        raise OrchestratorError(f"backtest failed: {type(exc).__name__}: {cut_urls(str(exc))}") from None
    source = url_origin(str(values["rpc_url"]))
    report = Report(result=result, limits=limits, fees=fees, source=source, no_weights=no_weights, note=note)
    if args.json:
        print(json.dumps(report_json(report)))
    else:
        print_report(report, sys.stdout)
    return 0


# --------------------------------------------------------------------------------------------------
# The report


def _limits_json(limits: BatchLimits) -> dict[str, Any]:
    return {
        "max_batch_size": limits.max_batch_size,
        "max_num_blobs": limits.max_num_blobs,
        "blob_size_buffer": limits.blob_size_buffer,
        "max_blob_felts": limits.max_blob_size,
        "max_batch_time_seconds": limits.max_batch_time_s,
        "max_blocks_per_snos_batch": limits.max_blocks_per_snos_batch,
        "fixed_blocks_per_snos_batch": limits.fixed_blocks_per_snos_batch,
        "max_snos_batches_per_aggregator_batch": limits.max_snos_batches_per_aggregator_batch,
        "max_aggregator_input_size": limits.max_aggregator_input_size,
    }


RECORDED = "recorded in the blocks' headers"
GIVEN = "given"


def _basis(given: int | None) -> str:
    return RECORDED if given is None else GIVEN


def unpriced_note(result: BacktestResult, fees: Fees) -> str | None:
    """Why the settlements get no fee figures (once, for every batch concerned), or None when all are priced."""
    missing = unpriced(result.batches, fees)
    if not missing:
        return None
    flags = " and ".join(
        flag
        for flag, given in (("--base-fee-wei", fees.base_fee_wei), ("--blob-base-fee-wei", fees.blob_base_fee_wei))
        if given is None
    )
    others = f" (and those of {len(missing) - 1} other batch(es))" if len(missing) > 1 else ""
    return (
        f"block {missing[0].end_block}'s header{others} records no L1 prices in wei (l1_gas_price.price_in_wei, "
        f"l1_data_gas_price.price_in_wei): no fee figures; give {flags} to price the settlements"
    )


def _fees_json(result: BacktestResult, fees: Fees) -> dict[str, Any]:
    totals = settlement_fees(result.batches, fees)
    return {
        "base_fee": _basis(fees.base_fee_wei),
        "blob_base_fee": _basis(fees.blob_base_fee_wei),
        "base_fee_wei": fees.base_fee_wei,
        "blob_base_fee_wei": fees.blob_base_fee_wei,
        "priority_fee_wei": fees.priority_fee_wei,
        "settlement_gas": fees.settlement_gas,
        "execution_wei": None if totals is None else totals.execution_wei,
        "blob_wei": None if totals is None else totals.blob_wei,
        "total_wei": None if totals is None else totals.total_wei,
        "per_block_wei": totals.total_wei // result.blocks if totals is not None and result.blocks else None,
        "unpriced": unpriced_note(result, fees),
    }


def _batch_json(batch: BacktestBatch, fees: Fees, priced: bool) -> dict[str, Any]:
    prices = fees.prices(batch) if priced else None
    cost = fees.settlement(batch) if priced else None
    return {
        **batch.to_json(),
        "priced_at": prices.to_json() if prices else None,
        "fee_wei": cost.total_wei if cost else None,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What a backtest's report shows, as text (``print_report``) or JSON (``report_json``)."""

    result: BacktestResult
    limits: BatchLimits
    fees: Fees
    source: str
    """The node, as its origin (no credentials, path or query)."""
    no_weights: str | None
    """Why the bouncer weights count as zero; None when the feeder gateway gave them."""
    note: str | None


def report_json(report: Report) -> dict[str, Any]:
    result, fees, no_weights = report.result, report.fees, report.no_weights
    paid = result.blobs * FELTS_PER_BLOB
    priced = not unpriced(result.batches, fees)
    return {
        "node": report.source,
        "from": result.first_block,
        "to": result.last_block,
        "note": report.note,
        "stopped": result.stopped,
        "bouncer_weights": "zero: the node serves no feeder gateway" if no_weights else "from the feeder gateway",
        "limits": _limits_json(report.limits),
        "batches": [_batch_json(b, fees, priced) for b in result.batches],
        "totals": {
            "blocks": result.blocks,
            "settlements": len(result.batches),
            "blobs": result.blobs,
            "felts": result.felts,
            "fill": round(result.felts / paid, 4) if paid else 0.0,
        },
        "fees": _fees_json(result, fees),
        "alerts": list(result.alerts),
        "written": "nothing",
    }


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.9f} ETH ({wei:,} wei)"


def print_report(report: Report, out: TextIO) -> None:
    result, limits, fees, no_weights = report.result, report.limits, report.fees, report.no_weights

    def say(line: str = "") -> None:
        print(line, file=out)

    say(f"backtest of blocks {result.first_block}-{result.last_block} from {report.source} (nothing written)")
    say(
        f"limits: --max-batch-size {limits.max_batch_size}, --max-num-blobs {limits.max_num_blobs} "
        f"(--blob-size-buffer {limits.blob_size_buffer}: {limits.max_blob_size:,} felts), "
        f"--max-batch-time-seconds {limits.max_batch_time_s:g}, --max-aggregator-input-size "
        f"{limits.max_aggregator_input_size:,}, --max-snos-batches-per-aggregator-batch "
        f"{limits.max_snos_batches_per_aggregator_batch}"
    )
    for line in (report.note, no_weights and f"bouncer weights counted as zero: {no_weights}"):
        if line:
            say(f"note: {line}")
    priced = not unpriced(result.batches, fees)
    fee_head = f"  {'fee ETH':>11}" if priced else ""
    say()
    say(f"{'batch':>6}  {'blocks':<17} {'n':>5}  {'blobs':>5}  {'fill':>6}  {'felts':>9}{fee_head}  closed by")
    for b in result.batches:
        why = b.reason + (f" ({b.detail})" if b.detail else "")
        span = f"{b.start_block}-{b.end_block}"
        cost = fees.settlement(b) if priced else None
        fee = f"  {cost.total_wei / 10**18:>11.9f}" if cost else ""
        say(
            f"{b.index:>6}  {span:<17} {b.num_blocks:>5}  {b.blobs:>5}  {b.fill:>6.1%}  {b.felts:>9,}{fee}  "
            f"{b.closed_by}: {why}"
        )
    say()
    _print_totals(result, fees, say)


def _price_words(name: str, given: int | None, recorded: list[int], *, mixed: bool) -> str:
    if given is not None:
        return f"{name} {given:,} wei" + (" (given)" if mixed else "")
    span = f"{min(recorded):,}" if min(recorded) == max(recorded) else f"{min(recorded):,}-{max(recorded):,}"
    return f"{name} {span} wei" + (" (recorded)" if mixed else "")


def _print_fees(result: BacktestResult, fees: Fees, say: Any) -> None:
    if problem := unpriced_note(result, fees):
        say(f"fees: {problem}")
        return
    totals = settlement_fees(result.batches, fees)
    if totals is None or not result.blocks:
        return
    recorded = [b.l1_prices for b in result.batches if b.l1_prices]
    given = (fees.base_fee_wei is not None) + (fees.blob_base_fee_wei is not None)
    last_header = "each settlement at its last block's l1_gas_price and l1_data_gas_price"
    basis = {
        0: f"the L1 prices {RECORDED} ({last_header})",
        1: f"L1 prices given and {RECORDED} (each settlement at its last block's)",
        2: "the L1 prices given",
    }[given]
    base = _price_words("base fee", fees.base_fee_wei, [p.base_fee_wei for p in recorded], mixed=given == 1)
    blob = _price_words(
        "blob base fee", fees.blob_base_fee_wei, [p.blob_base_fee_wei for p in recorded], mixed=given == 1
    )
    say(
        f"fees at {basis}: {base} + priority {fees.priority_fee_wei:,} wei, {blob}, {fees.settlement_gas:,} gas a "
        f"settlement: {_eth(totals.total_wei)} (execution {totals.execution_wei:,} wei, blobs {totals.blob_wei:,} wei)"
    )
    say(f"fee per block: {_eth(totals.total_wei // result.blocks)}")


def _print_totals(result: BacktestResult, fees: Fees, say: Any) -> None:
    n = len(result.batches)
    paid = result.blobs * FELTS_PER_BLOB
    if n:
        say(
            f"totals: {n} settlement(s), {result.blobs} blob(s), {result.blocks} block(s): "
            f"{result.blocks / n:.1f} blocks and {result.blobs / n:.2f} blobs per settlement, "
            f"blob fill {result.felts / paid if paid else 0:.1%} ({result.felts:,} felts used / {paid:,} paid for)"
        )
    else:
        say("totals: no block batched")
    _print_fees(result, fees, say)
    for subject in result.alerts:
        say(f"run would alert: {subject}")
    if result.stopped:
        say(f"stopped early: {result.stopped}")
