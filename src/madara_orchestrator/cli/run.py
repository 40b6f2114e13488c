"""``orchestrator run``: the long-running service (SPEC §17)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from madara_orchestrator.cli import run_help, task_dump
from madara_orchestrator.cli.redacting import RedactingFilter
from madara_orchestrator.cli.settings import (
    ENV_PREFIX,
    RUN_OPTIONS,
    Settings,
    add_options,
    load_run_settings,
    unknown_variables,
)
from madara_orchestrator.cli.setup import SETUP_ONLY_OPTIONS
from madara_orchestrator.devnet.names import ANVIL_BIN_ENV
from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError, InvalidInput, RpcError
from madara_orchestrator.domain.redaction import SecretMask, url_origin
from madara_orchestrator.engine.lease import default_instance_id
from madara_orchestrator.engine.telemetry import log_fields

if TYPE_CHECKING:
    from madara_orchestrator.cli.compose import EmbeddedStack

T = TypeVar("T")

log = logging.getLogger("madara_orchestrator")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the orchestrator service",
        usage=run_help.RUN_USAGE,
        description=run_help.RUN_DESCRIPTION,
        formatter_class=run_help.HelpFormatter,
    )
    add_options(parser, RUN_OPTIONS)
    parser.set_defaults(handler=run_command)


class JsonFormatter(logging.Formatter):
    """One JSON object a line. A line emitted while a job is processed or verified also carries the job
    (``job_id``, ``job_type``, ``internal_id``, ``blocks``, ``operation``, ``attempt``) and its ``trace_id``
    (engine/telemetry.py), the id of the exported trace when OTLP export is on."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "target": record.name,
            "message": record.getMessage(),
        }
        body.update(log_fields())
        if record.exc_info or record.exc_text:
            body["error"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(body)


def instance_id(settings: Settings) -> str:
    """This instance's stable name: ``--instance-id``, else ``<hostname>-<port>`` (the same at every restart,
    so leases held by a killed earlier run are taken back at once)."""
    return str(settings.instance_id or default_instance_id(settings.port))


def configure_logging(mask: SecretMask | None = None) -> None:
    """``LOG_FORMAT=json`` for one object per line; the level from ``LOG_LEVEL`` (default INFO). Every line
    is redacted (``RedactingFilter``): URLs cut, and the secrets of ``mask`` masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(mask))
    if os.environ.get("LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_dotenv_file() -> None:
    with contextlib.suppress(ImportError):
        from dotenv import load_dotenv

        load_dotenv(os.path.join(os.getcwd(), ".env"), override=False)


OTHER_VARIABLES = (ANVIL_BIN_ENV.removeprefix(ENV_PREFIX),)
"""Variables, beyond the options of ``run`` and ``setup``, that other commands read (the devnet commands'
anvil), so a ``.env`` shared with them is not warned about. ``HOST`` and ``PORT``, which ``orchestrator
jobs`` reads, are run's own options too."""


def unknown_variable_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per ``MADARA_ORCHESTRATOR_*`` variable nothing reads (``.env`` is loaded already)."""
    env = os.environ if environ is None else environ
    return unknown_variables(env, [*RUN_OPTIONS, *SETUP_ONLY_OPTIONS], also=OTHER_VARIABLES)


def run_command(args: argparse.Namespace) -> int:
    load_dotenv_file()
    warnings = unknown_variable_warnings()
    try:
        settings = load_run_settings(args)
    except ConfigError as exc:
        # A misspelt variable is often why a setting is missing: say so beside the problems.
        raise ConfigError([*exc.problems, *(f"note: {w}" for w in warnings)]) from None
    mask = settings.secret_mask()
    configure_logging(mask)
    sys.excepthook = _logged_excepthook
    for warning in warnings:
        log.warning("%s", warning)
    return asyncio.run(serve(settings))


def _logged_excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """An error nobody caught goes through the log (so through its redaction), not raw to stderr."""
    log.critical("orchestrator run stopped on an unexpected error", exc_info=(kind, exc, tb))


def chain_name(chain_id: str) -> str:
    """``0x534e5f5345504f4c4941`` as ``SN_SEPOLIA``; a chain id that is not short ASCII text stays hex."""
    value = int(chain_id, 16)
    text = value.to_bytes((value.bit_length() + 7) // 8, "big").decode("ascii", errors="replace")
    return text if text and text.isprintable() and text.isascii() else chain_id


START_WAIT_S = 300.0
"""How long start-up waits for an outside service that does not answer (the original's 300 s)."""
START_RETRY_S = 5.0
START_REPORT_EVERY_S = 60.0
"""While start-up waits, one line says what is awaited, then one line a minute how long it has waited."""


async def wait_until_answered(
    what: str,
    where: str,
    probe: Callable[[], Awaitable[T]],
    *,
    timeout_s: float = START_WAIT_S,
    pause_s: float = START_RETRY_S,
    report_every_s: float = START_REPORT_EVERY_S,
    meanwhile: str = "",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """``probe()``'s answer, trying again every ``pause_s`` for up to ``timeout_s`` while it raises
    ``BackendUnavailable`` (the service is down or starting). An ``InvalidInput`` (a service that answers,
    but is the wrong one) is raised at once. Says once what it waits for, then once a minute how long."""
    started = clock()
    reported: float | None = None
    while True:
        try:
            answer = await probe()
        except InvalidInput:
            raise
        except BackendUnavailable as exc:
            waited = clock() - started
            if waited >= timeout_s:
                raise BackendUnavailable(f"{what} at {where} did not answer within {timeout_s:.0f} s: {exc}") from exc
            if reported is None:
                log.warning(
                    "%s not reachable yet at %s (%s); waiting up to %.0f s, trying every %.0f s%s",
                    what,
                    where,
                    exc,
                    timeout_s,
                    pause_s,
                    meanwhile,
                )
                reported = waited
            elif waited - reported >= report_every_s:
                log.warning("still waiting for the %s at %s: %.0f s so far (%s)", what, where, waited, exc)
                reported = waited
            await sleep(pause_s)
            continue
        if reported is not None:
            log.info("%s at %s answered after %.0f s", what, where, clock() - started)
        return answer


async def wait_for_sequencer(
    stack: EmbeddedStack, *, timeout_s: float = START_WAIT_S, pause_s: float = START_RETRY_S, meanwhile: str = ""
) -> str:
    """The chain's name, from ``starknet_chainId``, waiting for the sequencer as the original does (every
    5 s, up to 300 s). A node that answers with something other than a chain id, or does not know the
    method, is not waited for: it is the wrong URL or an incompatible node."""
    from madara_orchestrator.starknet.rpc import StarknetRpcClient
    from madara_orchestrator.starknet.rpc_types import METHOD_NOT_FOUND

    # One try per probe (the stack's client tries three times, each failure a line of its own).
    client = StarknetRpcClient(stack.sequencer.url, attempts=1, timeout_s=10.0)

    async def probe() -> str:
        try:
            return chain_name(await client.chain_id())
        except RpcError as exc:
            if exc.code == METHOD_NOT_FOUND:
                raise InvalidInput(
                    f"the sequencer at {client.shown_url} does not know starknet_chainId ({exc.rpc_message}): "
                    "it is not a Starknet node; check --madara-rpc-url (and --rpc-for-snos)"
                ) from exc
            raise BackendUnavailable(f"starknet_chainId answered {exc}") from exc

    try:
        return await wait_until_answered(
            "sequencer", client.shown_url, probe, timeout_s=timeout_s, pause_s=pause_s, meanwhile=meanwhile
        )
    finally:
        await client.aclose()


async def check_settlement(stack: EmbeddedStack) -> None:
    """Start-up checks of the settlement layer: on Ethereum, that the node is one (``eth_chainId``) and the
    core contract is there and answers ``stateBlockNumber()``; on any layer, that its settled block is not
    beyond the sequencer's newest block (it would be another chain's). A wrong node or contract raises
    ``InvalidInput``; one that does not answer, ``BackendUnavailable`` (waited for)."""
    from madara_orchestrator.starknet.rpc_types import NO_BLOCKS

    choice = stack.settlement_choice
    if choice.startup_check is not None:
        log.info("settlement layer: %s", await choice.startup_check())
    settled = await choice.client.last_settled_block()
    try:
        head: int | None = await stack.sequencer.block_number()
    except RpcError as exc:
        if exc.code != NO_BLOCKS:
            raise BackendUnavailable(f"starknet_blockNumber answered {exc}") from exc
        head = None
    if settled is not None and (head is None or settled > head):
        newest = "has no block yet" if head is None else f"is at block {head}"
        raise InvalidInput(
            f"the settlement layer has settled block {settled} but the sequencer {newest}: they are not the same "
            f"chain; check --madara-rpc-url and {choice.flags}"
        )


async def _checked(stack: EmbeddedStack) -> bool:
    await check_settlement(stack)
    return True


async def done_or_stopped(task: asyncio.Future[Any], stop: asyncio.Event) -> None:
    """Wait until ``task`` is done or ``stop`` is set, whichever comes first (``task`` is left as it is)."""
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()


async def until_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """The result of ``work``, or None as soon as ``stop`` is set (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    await done_or_stopped(task, stop)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


async def serve(settings: Settings) -> int:
    # The service's parts are imported here, not at the top: every other command starts without them.
    from madara_orchestrator.cli.compose import build_embedded_stack
    from madara_orchestrator.cli.progress import progress_loop
    from madara_orchestrator.provers.atlantic_webhook import atlantic_webhook
    from madara_orchestrator.server.app import create_app
    from madara_orchestrator.server.background import BackgroundServer, bind_listener

    # Signals first: Ctrl-C and SIGTERM are honoured at any moment, start-up waits included.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGQUIT, lambda: os._exit(130))
    task_dump.install(loop)
    # The API's port first: a busy port is reported before anything is created or contacted.
    listener = bind_listener(settings.host, settings.port)
    try:
        # Under ``stop``: building waits for PostgreSQL when it is down (cli/backends.py). KZG (blob DA) is
        # computed in a worker process, which loads the trusted setup at the first blob (cli/compose.py).
        building = build_embedded_stack(settings, owner=instance_id(settings), kzg_worker=True)
        built = await until_stopped(building, stop)
    except BaseException:
        listener.close()
        raise
    if built is None:
        listener.close()
        log.info("stopped before the backends answered")
        return 0
    stack = built
    server: BackgroundServer | None = None
    try:
        await stack.store.ping()
        # The API before the waits: /health answers (and says what is down) while start-up waits.
        webhook_secret = stack.atlantic_webhook_secret
        app = create_app(
            stack.runtime,
            admin_enabled=settings.admin_enabled,
            admin_token=settings.admin_token,
            webhook=atlantic_webhook(webhook_secret),
        )
        if settings.prover == "atlantic":
            log.info(
                "Atlantic webhooks %s",
                "on (POST /webhooks/atlantic/<secret>, or signed with X-Atlantic-Signature)"
                if webhook_secret
                else "off (no --atlantic-webhook-secret): jobs waiting on Atlantic are polled",
            )
        server = BackgroundServer(app, sock=listener)
        await server.start()
        meanwhile = f"; meanwhile GET /health on {server.url} says what is down"
        chain = await until_stopped(wait_for_sequencer(stack, meanwhile=meanwhile), stop)
        if chain is None:
            log.info("stopped before the sequencer answered")
            return 0
        log.info("connected to chain %s at %s", chain, url_origin(stack.sequencer.url))
        log.info(
            "feeder gateway: %s (%s)",
            stack.feeder.shown_url,
            "--madara-feeder-gateway-url"
            if settings.madara_feeder_gateway_url
            else "the RPC URL's address; set --madara-feeder-gateway-url if the gateway is elsewhere",
        )
        checked = await until_stopped(
            wait_until_answered(
                "settlement layer", stack.settlement_choice.where, lambda: _checked(stack), meanwhile=meanwhile
            ),
            stop,
        )
        if checked is None:
            log.info("stopped before the settlement layer answered")
            return 0
        log.info("HTTP API on %s", server.url)
        log.info("backends: %s", stack.backends.shape)
        if stack.telemetry is not None:
            log.info("telemetry: %s", stack.telemetry.describe())
        await stack.runtime.start()
        progress = asyncio.ensure_future(progress_loop(stack.runtime, settings.progress_interval_seconds, stop))
        await stop.wait()
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        log.info("shutting down (grace %.0f s)", settings.graceful_shutdown_timeout)
        await stack.runtime.stop()
    finally:
        if server is not None:
            await server.stop()
        else:
            listener.close()
        await stack.close()
    return 0
