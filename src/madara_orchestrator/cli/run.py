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
from collections.abc import Coroutine
from typing import Any, TypeVar

from madara_orchestrator.cli import run_help
from madara_orchestrator.cli.compose import EmbeddedStack, build_embedded_stack
from madara_orchestrator.cli.progress import progress_loop
from madara_orchestrator.cli.settings import RUN_OPTIONS, Settings, add_options, load_run_settings
from madara_orchestrator.domain.errors import BackendUnavailable, OrchestratorError
from madara_orchestrator.engine.lease import default_instance_id
from madara_orchestrator.engine.telemetry import log_fields
from madara_orchestrator.server.app import create_app
from madara_orchestrator.server.background import BackgroundServer, bind_listener
from madara_orchestrator.starknet.rpc import UnexpectedRpcResult

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
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body)


def instance_id(settings: Settings) -> str:
    """This instance's stable name: ``--instance-id``, else ``<hostname>-<port>`` (the same at every restart,
    so leases held by a killed earlier run are taken back at once)."""
    return str(settings.instance_id or default_instance_id(settings.port))


def configure_logging() -> None:
    """``LOG_FORMAT=json`` for one object per line; the level from ``LOG_LEVEL`` (default INFO)."""
    handler = logging.StreamHandler(sys.stderr)
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


def run_command(args: argparse.Namespace) -> int:
    load_dotenv_file()
    settings = load_run_settings(args)
    configure_logging()
    return asyncio.run(serve(settings))


def chain_name(chain_id: str) -> str:
    """``0x534e5f5345504f4c4941`` as ``SN_SEPOLIA``; a chain id that is not short ASCII text stays hex."""
    value = int(chain_id, 16)
    text = value.to_bytes((value.bit_length() + 7) // 8, "big").decode("ascii", errors="replace")
    return text if text and text.isprintable() and text.isascii() else chain_id


async def wait_for_sequencer(stack: EmbeddedStack, *, timeout_s: float = 300.0, pause_s: float = 5.0) -> str:
    """Fetch the chain id, retrying every 5 s for up to 300 s as the original does. A node that answers
    with something other than a chain id is not retried: it is the wrong URL or an incompatible node."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return chain_name(await stack.sequencer.chain_id())
        except UnexpectedRpcResult:
            raise
        except OrchestratorError as exc:
            if time.monotonic() >= deadline:
                raise BackendUnavailable(
                    f"sequencer at {stack.sequencer.url} did not answer within {timeout_s:.0f} s: {exc}"
                ) from exc
            log.warning("sequencer not reachable yet (%s); retrying in %.0f s", exc, pause_s)
            await asyncio.sleep(pause_s)


async def until_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """The result of ``work``, or None as soon as ``stop`` is set (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


async def serve(settings: Settings) -> int:
    # Signals first: Ctrl-C and SIGTERM are honoured at any moment, start-up waits included.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGQUIT, lambda: os._exit(130))
    # The API's port first: a busy port is reported before anything is created or contacted.
    listener = bind_listener(settings.host, settings.port)
    try:
        stack = await build_embedded_stack(settings, owner=instance_id(settings))
    except BaseException:
        listener.close()
        raise
    server: BackgroundServer | None = None
    try:
        await stack.store.ping()
        chain = await until_stopped(wait_for_sequencer(stack), stop)
        if chain is None:
            log.info("stopped before the sequencer answered")
            return 0
        log.info("connected to chain %s at %s", chain, stack.sequencer.url)
        log.info("backends: %s", stack.backends.shape)
        if stack.telemetry is not None:
            log.info("telemetry: %s", stack.telemetry.describe())
        webhook_secret = stack.atlantic_webhook_secret
        app = create_app(
            stack.runtime,
            admin_enabled=settings.admin_enabled,
            admin_token=settings.admin_token,
            atlantic_webhook_secret=webhook_secret,
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
        log.info("HTTP API on %s", server.url)
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
