"""A local L1 for the devnet and the tests: anvil started on 127.0.0.1 on a free port, stopped cleanly.

anvil ends with the process that started it, even when that process is killed with SIGKILL: it is
started with a Linux parent-death signal (``PR_SET_PDEATHSIG``), which the kernel delivers, so no
cleanup code of ours has to run. A start-up in progress can be interrupted (``interrupt_starting``).

The binary ships inside the npm package pinned by ``tools/package-lock.json`` (``make setup`` installs it
into ``tools/node_modules``); ``MADARA_ORCHESTRATOR_ANVIL_BIN`` overrides the path.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
from eth_hash.auto import keccak

from madara_orchestrator.devnet.names import ANVIL_BIN_ENV
from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError
from madara_orchestrator.tls import default_tls

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_ANVIL_BIN = REPO_ROOT / "tools" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
HARDFORKS = ("cancun", "prague", "osaka")

# anvil's well-known development accounts (mnemonic "test test test ... junk"): public knowledge, devnet only.
DEV_PRIVATE_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)

_LISTENING = re.compile(r"Listening on (\d+\.\d+\.\d+\.\d+):(\d+)")

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when the thread that created it exits."""


class AnvilStartInterrupted(BackendUnavailable):
    """``interrupt_starting()`` was called while this anvil was starting; it has been stopped."""


def _parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to SIGTERM the child when its parent goes; None off Linux.

    Resolved before the fork, so the child only makes one libc call. If the parent died between the
    fork and the prctl, no signal would ever come: the child then exits at once."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    term = int(signal.SIGTERM)

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return set_parent_death_signal


class _Spawner:
    """Starts children from one daemon thread that lives as long as the process.

    The kernel sends the parent-death signal when the *thread* that forked the child exits, not the
    process; a child started from a worker thread (``asyncio.to_thread``'s pool, retired when its
    event loop closes) would be killed with that thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._requests: queue.SimpleQueue[tuple[list[str], dict[str, Any], Future[subprocess.Popen[str]]]] = (
            queue.SimpleQueue()
        )

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        hook = _parent_death_hook()
        if hook is None:
            return subprocess.Popen(cmd, **kwargs)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="anvil-spawner", daemon=True)
                self._thread.start()
        done: Future[subprocess.Popen[str]] = Future()
        self._requests.put((cmd, {**kwargs, "preexec_fn": hook}, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            cmd, kwargs, done = self._requests.get()
            if not done.set_running_or_notify_cancel():
                continue
            try:
                done.set_result(subprocess.Popen(cmd, **kwargs))
            except BaseException as exc:  # handed to the caller, which raises it
                done.set_exception(exc)


_SPAWNER = _Spawner()
_STARTING: set[Anvil] = set()
_STARTING_LOCK = threading.Lock()


def interrupt_starting() -> None:
    """Make every ``Anvil.start`` in progress in this process stop its anvil and raise
    ``AnvilStartInterrupted`` within a few tens of milliseconds (for signal handlers: a start-up runs
    in a worker thread, which no signal reaches)."""
    with _STARTING_LOCK:
        for node in _STARTING:
            node._interrupted.set()


def find_anvil_binary(override: str | os.PathLike[str] | None = None) -> Path:
    """The anvil executable: ``override``, else $MADARA_ORCHESTRATOR_ANVIL_BIN, else tools/node_modules."""
    raw = override or os.environ.get(ANVIL_BIN_ENV)
    path = Path(raw) if raw else DEFAULT_ANVIL_BIN
    if not path.is_file() or not os.access(path, os.X_OK):
        source = "given path" if override else (f"${ANVIL_BIN_ENV}" if raw else "tools/node_modules")
        raise ConfigError(
            [
                f"anvil binary not found at {path} ({source}): run `make setup` (it runs "
                f"`npm ci --prefix tools`), or set {ANVIL_BIN_ENV} to an anvil executable"
            ]
        )
    return path


@dataclass(frozen=True, slots=True, kw_only=True)
class AnvilConfig:
    hardfork: str = "prague"
    chain_id: int = 31337
    block_time_s: float | None = None
    """Interval mining every ``block_time_s`` seconds; None = automine (one block per transaction)."""
    no_mining: bool = False
    """Mine only on ``evm_mine`` (overrides ``block_time_s``); automine can be switched on later by RPC."""
    accounts: int = 4
    balance_eth: int = 10_000
    base_fee_wei: int | None = None
    gas_limit: int | None = None
    genesis: Path | None = None
    """A genesis.json (``--init``): e.g. to start with a non-trivial blob base fee (``excessBlobGas``)."""
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def args(self) -> list[str]:
        if self.hardfork not in HARDFORKS:
            raise ConfigError([f"unsupported anvil hardfork {self.hardfork!r}: choose one of {', '.join(HARDFORKS)}"])
        out = [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--hardfork",
            self.hardfork,
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
            "--balance",
            str(self.balance_eth),
        ]
        if self.no_mining:
            out.append("--no-mining")
        elif self.block_time_s is not None:
            out += ["--block-time", f"{self.block_time_s:g}"]
        if self.base_fee_wei is not None:
            out += ["--base-fee", str(self.base_fee_wei)]
        if self.gas_limit is not None:
            out += ["--gas-limit", str(self.gas_limit)]
        if self.genesis is not None:
            out += ["--init", str(self.genesis)]
        return out + list(self.extra_args)


class Anvil:
    """One anvil process. ``with Anvil(AnvilConfig(...)) as node: node.url`` starts and stops it."""

    def __init__(
        self,
        config: AnvilConfig | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config or AnvilConfig()
        self._binary = binary
        self._log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._listening = threading.Event()
        self._address: tuple[str, int] | None = None
        self._tail: list[str] = []
        self._interrupted = threading.Event()

    @property
    def url(self) -> str:
        if self._address is None:
            raise RuntimeError("anvil is not running")
        return f"http://{self._address[0]}:{self._address[1]}"

    @property
    def port(self) -> int:
        if self._address is None:
            raise RuntimeError("anvil is not running")
        return self._address[1]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        """Started, not stopped, and its process has not ended."""
        return self._proc is not None and self._address is not None and self._proc.poll() is None

    def start(self, *, timeout_s: float = 30.0) -> Anvil:
        """Start anvil and return once it answers ``eth_chainId``; raises BackendUnavailable otherwise
        (``AnvilStartInterrupted`` after ``interrupt_starting()``). anvil gets SIGTERM when this process dies."""
        if self._proc is not None:
            raise RuntimeError("anvil already started")
        binary = find_anvil_binary(self._binary)
        cmd = [str(binary), *self.config.args()]
        self._interrupted.clear()
        with _STARTING_LOCK:
            _STARTING.add(self)
        try:
            self._proc = _SPAWNER.popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            self._reader = threading.Thread(target=self._drain, args=(self._proc.stdout,), daemon=True)
            self._reader.start()
            deadline = time.monotonic() + timeout_s
            try:
                self._wait_listening(deadline)
                self._wait_answering(deadline)
            except BaseException:
                self.stop()
                raise
        finally:
            with _STARTING_LOCK:
                _STARTING.discard(self)
        log.info(
            "anvil started at %s (pid %s, hardfork %s, chain id %s, %s)",
            self.url,
            self._proc.pid,
            self.config.hardfork,
            self.config.chain_id,
            "no mining"
            if self.config.no_mining
            else (f"block time {self.config.block_time_s}s" if self.config.block_time_s else "automine"),
        )
        return self

    def _drain(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        sink = self._log_path.open("a") if self._log_path else None
        try:
            for line in stream:
                if sink:
                    sink.write(line)
                    sink.flush()
                self._tail = [*self._tail[-19:], line.rstrip()]
                if not self._listening.is_set():
                    match = _LISTENING.search(line)
                    if match:
                        self._address = (match.group(1), int(match.group(2)))
                        self._listening.set()
        finally:
            if sink:
                sink.close()

    def _wait_listening(self, deadline: float) -> None:
        assert self._proc is not None
        while not self._listening.wait(0.05):
            self._check_interrupted()
            if self._proc.poll() is not None:
                raise BackendUnavailable(
                    f"anvil exited with code {self._proc.returncode} before listening: "
                    + " | ".join(line for line in self._tail if line)[-2000:]
                )
            if time.monotonic() > deadline:
                raise BackendUnavailable("anvil did not report a listening address in time")

    def _wait_answering(self, deadline: float) -> None:
        last: Exception | None = None
        with httpx.Client(timeout=1.0, verify=default_tls()) as client:
            while time.monotonic() < deadline:
                self._check_interrupted()
                try:
                    resp = client.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
                    if resp.status_code == 200 and "result" in resp.json():
                        return
                except httpx.HTTPError as exc:
                    last = exc
                self._interrupted.wait(0.05)
        raise BackendUnavailable(f"anvil at {self.url} did not answer eth_chainId in time: {last}")

    def _check_interrupted(self) -> None:
        if self._interrupted.is_set():
            raise AnvilStartInterrupted("anvil start-up interrupted; anvil stopped")

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Terminate (then kill after ``timeout_s``) the process; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("anvil (pid %s) did not stop after SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait(timeout_s)
        if self._reader is not None:
            self._reader.join(timeout_s)
        if proc.stdout:
            proc.stdout.close()
        log.info("anvil at %s stopped", self.url if self._address else "?")
        self._address = None

    def warm_up_blob_checks(self) -> threading.Thread:
        """Have anvil load its KZG trusted setup now, in the background: it loads it when the first blob
        transaction comes (3 to 8 s on a busy machine), which would otherwise hold up the first settlement.
        Returns the daemon thread that sends ``send_unfunded_blob_tx``; it ends with the answer (ignored),
        or anvil stopping."""
        url = self.url

        def send() -> None:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                self.send_unfunded_blob_tx(url=url)

        thread = threading.Thread(target=send, name="anvil-kzg-warm-up", daemon=True)
        thread.start()
        return thread

    def send_unfunded_blob_tx(self, *, url: str | None = None) -> Any:
        """Send a blob transaction (one zero blob, in the form the hardfork takes) from an account without
        funds, and return anvil's JSON-RPC answer: anvil checks its blob, then refuses it for its funds;
        nothing is mined and no nonce is taken."""
        raw = _unfunded_blob_tx(self.config.chain_id, peerdas=self.config.hardfork == "osaka")
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
        return httpx.post(url or self.url, json=payload, timeout=120.0, verify=default_tls()).json()

    def rpc(self, method: str, params: Sequence[Any] = (), *, timeout_s: float = 10.0) -> Any:
        """A synchronous JSON-RPC call (test helpers: ``anvil_setNextBlockBaseFeePerGas``, ``evm_mine``...)."""
        resp = httpx.post(
            self.url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
            timeout=timeout_s,
            verify=default_tls(),
        )
        body = resp.json()
        if "error" in body:
            raise BackendUnavailable(f"anvil {method} failed: {body['error']}")
        return body.get("result")

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


WARM_UP_KEY = keccak(b"madara devnet: an account anvil never funds")
"""The key of ``warm_up_blob_checks``'s sender (not one of anvil's funded development accounts)."""


def _unfunded_blob_tx(chain_id: int, *, peerdas: bool) -> bytes:
    """A signed blob transaction carrying one zero blob, whose commitment and proofs are the point at
    infinity (valid, and computed without the trusted setup), from ``WARM_UP_KEY``'s empty account."""
    from eth_keys.datatypes import PrivateKey

    from madara_orchestrator.domain.chain import BYTES_PER_BLOB
    from madara_orchestrator.settlement.blob_tx import (
        CELL_PROOFS_PER_BLOB,
        Fees,
        Sidecar,
        SidecarForm,
        sign_blob_tx,
    )

    infinity = bytes([0xC0]) + bytes(47)
    versioned_hash = bytes([1]) + hashlib.sha256(infinity).digest()[1:]
    form = SidecarForm.EIP7594 if peerdas else SidecarForm.EIP4844
    sidecar = Sidecar(
        form=form,
        blobs=(bytes(BYTES_PER_BLOB),),
        commitments=(infinity,),
        proofs=(infinity,) * (CELL_PROOFS_PER_BLOB if peerdas else 1),
        versioned_hashes=(versioned_hash,),
    )
    fees = Fees(max_fee_per_gas=10**10, max_priority_fee_per_gas=10**9, max_fee_per_blob_gas=10**9)
    signed = sign_blob_tx(
        private_key=PrivateKey(WARM_UP_KEY),
        chain_id=chain_id,
        nonce=0,
        to="0x" + "00" * 19 + "01",
        data=b"",
        gas_limit=100_000,
        fees=fees,
        sidecar=sidecar,
    )
    return signed.raw
