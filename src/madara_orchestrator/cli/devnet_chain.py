"""``orchestrator devnet-chain``: a chain for ``orchestrator run`` to settle, without an orchestrator.

It starts the devnet sequencer (Starknet JSON-RPC over HTTP on 127.0.0.1, a block every
``--block-time`` seconds) and a local L1 (anvil with the devnet core contract and fact registry),
writes the settings ``orchestrator run`` needs as a ``.env`` file (mode 0600: it holds dev keys),
prints them with the keys masked, and runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from eth_keys.datatypes import PrivateKey

from madara_orchestrator.cli.devnet import (
    LocalL1,
    add_core_contract_argument,
    starkware_core_problem,
    start_local_l1,
)
from madara_orchestrator.cli.run import configure_logging, done_or_stopped
from madara_orchestrator.cli.settings import ENV_PREFIX, RUN_OPTIONS
from madara_orchestrator.devnet.anvil import find_anvil_binary, interrupt_starting
from madara_orchestrator.devnet.sequencer import DEFAULT_TX_PER_BLOCK, DevnetSequencer
from madara_orchestrator.domain.errors import ConfigError, InvalidInput
from madara_orchestrator.server.background import BackgroundServer

DEFAULT_BLOCK_TIME_S = 1.0
"""A block a second: the pace ``orchestrator run`` with its defaults is expected to keep."""

RUN_DATA_ROOT = ".orchestrator-data"
"""``run``'s default data directory; each chain gets a fresh directory under it (see ``chain_env``)."""

_OPTION_BY_NAME = {option.name: option for option in RUN_OPTIONS}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "devnet-chain",
        help="run a devnet sequencer and a local L1 for `orchestrator run`, and write its .env",
        description="Start the devnet sequencer (Starknet JSON-RPC on 127.0.0.1) and a local L1 (anvil with "
        "the devnet core contract and fact registry deployed), write the settings `orchestrator run` needs "
        "to settle this chain as a .env file (mode 0600: it holds anvil's well-known dev keys), and run "
        "until Ctrl-C. Then, in another terminal in the same directory: `orchestrator run`.",
    )
    parser.add_argument(
        "--block-time",
        type=float,
        default=DEFAULT_BLOCK_TIME_S,
        help=f"seconds between blocks (default {DEFAULT_BLOCK_TIME_S:g})",
    )
    parser.add_argument(
        "--tx-per-block",
        type=int,
        default=DEFAULT_TX_PER_BLOCK,
        help=f"transactions per block (default {DEFAULT_TX_PER_BLOCK})",
    )
    parser.add_argument(
        "--env-file", default=".env", help="where to write the settings for `orchestrator run` (default ./.env)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --env-file")
    parser.add_argument(
        "--rpc-port", type=int, default=0, help="port of the sequencer's JSON-RPC (default: a free port)"
    )
    parser.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="HTTP API port written for `orchestrator run` (default: none written, so run's default 3000)",
    )
    parser.add_argument("--hardfork", choices=("prague", "osaka"), default="prague", help="anvil hardfork")
    add_core_contract_argument(parser)
    parser.add_argument("--log-dir", default=None, help="directory for anvil.log (default: a new temporary directory)")
    parser.set_defaults(handler=devnet_chain_command)


def _port_problem(flag: str, port: int | None) -> str | None:
    if port is None or port == 0:
        return None
    if not 0 < port < 65536:
        return f"{flag} must be between 1 and 65535, got {port}"
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return f"{flag} {port}: 127.0.0.1:{port} is not available ({exc.strerror}); choose another port"
    return None


def check_arguments(args: argparse.Namespace) -> Path:
    """Every problem with the arguments in one ConfigError, before anything starts; the .env path."""
    problems: list[str] = []
    if args.block_time <= 0:
        problems.append(f"--block-time must be positive, got {args.block_time:g}")
    if args.tx_per_block < 0:
        problems.append(f"--tx-per-block must be 0 or more, got {args.tx_per_block}")
    for flag, port in (("--rpc-port", args.rpc_port), ("--api-port", args.api_port)):
        problem = _port_problem(flag, port)
        if problem:
            problems.append(problem)
    env_path = Path(args.env_file).expanduser().absolute()
    if env_path.is_dir():
        problems.append(f"--env-file {args.env_file} is a directory; give a file path")
    elif (env_path.exists() or env_path.is_symlink()) and not args.force:
        problems.append(
            f"--env-file {args.env_file} already exists: pass --force to replace it "
            "(a .env from an earlier devnet-chain points at a chain that no longer runs)"
        )
    if not env_path.parent.is_dir():
        problems.append(f"--env-file {args.env_file}: directory {env_path.parent} does not exist")
    if args.log_dir is not None and Path(args.log_dir).exists() and not Path(args.log_dir).is_dir():
        problems.append(f"--log-dir {args.log_dir} is not a directory")
    try:
        find_anvil_binary()
    except ConfigError as exc:
        problems += exc.problems
    problems.append(starkware_core_problem(args.core_contract) or "")
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError(problems)
    return env_path


def devnet_chain_command(args: argparse.Namespace) -> int:
    env_path = check_arguments(args)
    if "LOG_LEVEL" not in os.environ:
        os.environ["LOG_LEVEL"] = "WARNING"
    configure_logging()
    return asyncio.run(run_chain(args, env_path))


def operator_address(private_key: str) -> str:
    return str(PrivateKey(bytes.fromhex(private_key.removeprefix("0x"))).public_key.to_checksum_address())


def chain_env(sequencer_url: str, l1: LocalL1, *, data_dir: Path, api_port: int | None) -> dict[str, str]:
    """The ``MADARA_ORCHESTRATOR_*`` settings with which ``orchestrator run`` settles this chain.

    Beyond where things are and which keys sign: ``ETHEREUM_CONFIRMATIONS=0`` and a 0.2 s receipt poll,
    because anvil mines each transaction at once and never reorgs (with run's defaults, 3 confirmations
    would wait for blocks that only the next settlement's transactions create); and a data directory
    of its own, because run's state from an earlier chain would not match this fresh L1."""
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "madara_rpc_url": sequencer_url,
        # The devnet chain's SNOS and aggregator are the stand-ins, chosen by name (run implies neither).
        "snos_runner": "devnet",
        "aggregator_runner": "devnet",
        **l1.overrides,
        "starknet_operator_address": operator_address(l1.overrides["ethereum_private_key"]),
    }
    if api_port is not None:
        values["port"] = api_port
    env: dict[str, str] = {}
    for name, value in values.items():
        option = _OPTION_BY_NAME.get(name)
        if option is None or option.env is None:
            raise InvalidInput(f"devnet-chain: `orchestrator run` has no setting {name!r}")
        if value is None or (value is False and option.default is False):
            continue  # run's default
        env[ENV_PREFIX + option.env] = _env_value(value)
    return env


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _secret_variables() -> frozenset[str]:
    return frozenset(ENV_PREFIX + o.env for o in RUN_OPTIONS if o.secret and o.env)


def env_file_text(env: Mapping[str, str]) -> str:
    header = (
        f"# Written by `orchestrator devnet-chain` at {time.strftime('%Y-%m-%d %H:%M:%S')}: the settings with\n"
        "# which `orchestrator run`, started in this directory, settles that devnet chain.\n"
        "# The keys are anvil's well-known development keys: never use them on a real chain.\n"
    )
    return header + "".join(f"{name}={value}\n" for name, value in env.items())


def write_env_file(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` at ``path`` with mode 0600 from the first byte, all at once; without ``force``,
    an existing file (even one created since the arguments were checked) is left alone."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise InvalidInput(f"--env-file {path} already exists: pass --force to replace it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def masked(env: Mapping[str, str]) -> list[str]:
    """The .env lines as printed: what ``run`` treats as a secret (keys, the L1 RPC URL) is masked."""
    secrets = _secret_variables()
    return [f"{name}={'***' if name in secrets else value}" for name, value in env.items()]


async def _until_stopped(start: asyncio.Task[LocalL1], stop: asyncio.Event) -> LocalL1 | None:
    """The local L1 once started, or None if a stop signal came first (anvil then stopped, promptly)."""
    await done_or_stopped(start, stop)
    if not stop.is_set():
        return start.result()
    if start.done():
        if start.exception() is None:
            await asyncio.to_thread(start.result().stop)
        return None
    interrupt_starting()  # anvil's start-up wait runs in a thread: make it stop anvil and give up
    start.cancel()  # the contract deployment, if that is where it is
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await start
    return None


async def run_chain(args: argparse.Namespace, env_path: Path, *, out: TextIO = sys.stdout) -> int:
    # Signals first: a Ctrl-C at any moment, start-up included, ends in a clean and prompt shutdown.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="orchestrator-devnet-chain-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    sequencer = DevnetSequencer(block_time_s=args.block_time, tx_per_block=args.tx_per_block)
    rpc_server = BackgroundServer(sequencer.app, port=args.rpc_port or None)
    l1: LocalL1 | None = None
    wrote_env = False
    try:
        await rpc_server.start()
        l1 = await _until_stopped(
            asyncio.create_task(start_local_l1(log_dir, hardfork=args.hardfork, core_contract=args.core_contract)), stop
        )
        if l1 is None:
            print("stopped during start-up", file=out, flush=True)
            return 0
        run_data = env_path.parent / RUN_DATA_ROOT / f"devnet-chain-{time.strftime('%Y%m%d-%H%M%S')}"
        env = chain_env(rpc_server.url, l1, data_dir=run_data, api_port=args.api_port)
        write_env_file(env_path, env_file_text(env), force=args.force)
        wrote_env = True
        sequencer.start_producing()
        print(
            f"devnet sequencer: {rpc_server.url}  (Starknet JSON-RPC, a block every {args.block_time:g} s, "
            f"{args.tx_per_block} transactions per block)",
            file=out,
        )
        print(
            f"local L1 (anvil, {args.hardfork}): {l1.anvil.url}  "
            f"{args.core_contract} core contract {l1.contracts.core_contract}, "
            f"fact registry {l1.contracts.fact_registry}  (log: {log_dir / 'anvil.log'})",
            file=out,
        )
        print(f"wrote {env_path} (mode 0600), the settings for `orchestrator run`:", file=out)
        for line in masked(env):
            print(f"  {line}", file=out)
        print(
            f"now, in another terminal in {env_path.parent}: orchestrator run    (Ctrl-C here stops the chain)",
            file=out,
            flush=True,
        )
        await stop.wait()
    finally:
        await sequencer.stop_producing()
        await rpc_server.stop()
        if l1 is not None:
            await asyncio.to_thread(l1.stop)
    print(
        f"stopped: {sequencer.chain.head + 1} blocks produced"
        + (f"; {env_path} now points at a stopped chain" if wrote_env else ""),
        file=out,
        flush=True,
    )
    return 0
