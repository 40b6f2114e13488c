"""The SNOS runner contract (``docs/snos-runner.md``): request, exit codes, error kinds, output checks.

A runner outside this process (a command, or a service over HTTP) runs the Starknet OS on one SNOS
batch and hands back a Cairo PIE and the OS output. Before a SnosRun job completes, ``check_output``
makes sure the two belong together and to the batch: the PIE reads, the OS output parses, it is the
PIE's output segment, it covers exactly the batch's blocks with the OS hints asked for, and the fact
and step count come from the PIE itself. A damaged output fails the job (``DamagedSnosOutput``, not
retryable) with a message naming what is wrong. A failure the runner does not classify is typed here by
the SPEC §2.8 markers of its message (``unclassified_failure``, ``typed_run``): the SnosRun handler
reads only typed errors. Pure: bytes and values in, values out.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, ParamSpec

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, JobError, Retryable
from madara_orchestrator.interfaces import SnosResult
from madara_orchestrator.runners.contract import CAIRO_PIE_FILE as CAIRO_PIE_FILE
from madara_orchestrator.runners.contract import EXIT_OK as EXIT_OK
from madara_orchestrator.runners.contract import EXIT_RETRYABLE as EXIT_RETRYABLE
from madara_orchestrator.runners.contract import (
    DamagedOutput,
    RunnerKind,
    block_text,
    bool_text,
    expected_prev_block_number,
    first_difference,
    parse_felts,
    read_json,
)
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.os_output import parse_os_output
from madara_orchestrator.starknet.pie import CairoPie, read_pie

CONTRACT_VERSION = 1
"""Sent with every request (``MADARA_SNOS_CONTRACT_VERSION``, ``"version"``); bumped on incompatible changes."""

EXIT_OS_FAILED = 65
"""The OS failed on these blocks (execution error, bad block data): retrying cannot help, fail fast. Exit
code 75 (``EXIT_RETRYABLE``): try again later (RPC trouble, rate limits, a pending block)."""

OS_OUTPUT_FILE = "os_output.json"
RESULT_FILE = "result.json"
ENV_PREFIX = "MADARA_SNOS_"
"""The request's variables in the command's environment (``MADARA_SNOS_START_BLOCK``, ...)."""
MAX_JSON_BYTES = 64 << 20
"""``os_output.json`` / ``result.json`` larger than this are refused (an OS output is a few thousand felts)."""


class ErrorKind(enum.StrEnum):
    """How the runner classifies its own failure (HTTP ``kind``; for a command, the exit code)."""

    RETRYABLE = "retryable"
    OS_FAILED = "os_failed"
    UNKNOWN = "unknown"
    """Classified from the message by the SPEC §2.8 markers (``unclassified_failure``)."""


NON_RETRYABLE_MARKERS = (
    "contractnotfound",
    "classhashnotfound",
    "undeclaredclasshash",
    "missing proof field",
    "invalid proof structure",
    "invalidtreeheight",
    "emptyproof",
    "invalidchildnodehash",
    "non-existence proof",
)
"""SPEC §2.8: a failure whose message names one of these fails fast, whatever else it says."""
RETRYABLE_MARKERS = (
    "rpcerror",
    "rpc error",
    "providererror",
    "ratelimited",
    "rate limited",
    "timeout",
    "timed out",
    "request error",
    "transport error",
    "transporterror",
    "connection reset",
    "connection refused",
    "connection aborted",
    "connection timed out",
    "error trying to connect",
    "dns error",
    "temporarily unavailable",
    "503",
    "429",
    "pendingblock",
    "still pending",
    "invalid response format",
    "proofconversionerror",
    "failed to convert rpc response",
    "blocknotfound",
    "block not found",
)
"""SPEC §2.8: a failure whose message names one of these (and none of the above) is retried."""


class SnosRunFailed(InvalidInput):
    """A run's failure that the runner did not classify and whose message, by the SPEC §2.8 markers, says
    another run cannot help (an OS error on these blocks, a proof the node cannot give): the SnosRun job
    fails at once."""


class SnosRunRetryable(Retryable):
    """A run's failure that the runner did not classify and whose message, by the SPEC §2.8 markers, may
    pass (RPC trouble, a rate limit, a timeout, a block not there yet): the SnosRun job is retried."""


def retry_may_help(message: str) -> bool:
    """SPEC §2.8 in its message form: retry network-ish failures, fail fast on execution errors."""
    text = message.lower()
    if any(marker in text for marker in NON_RETRYABLE_MARKERS):
        return False
    return any(marker in text for marker in RETRYABLE_MARKERS)


def unclassified_failure(message: str) -> SnosRunFailed | SnosRunRetryable:
    """A failure the runner did not classify (a command's stderr, an answer's ``unknown`` kind), typed by
    the SPEC §2.8 markers of its message. Leave block numbers out of ``message``: the markers include "503"
    and "429", which a number may contain."""
    return SnosRunRetryable(message) if retry_may_help(message) else SnosRunFailed(message)


P = ParamSpec("P")


def typed_run(run: Callable[P, Coroutine[Any, Any, SnosResult]]) -> Callable[P, Coroutine[Any, Any, SnosResult]]:
    """A runner's ``run(start_block, end_block)``, as the SnosRun handler reads it: typed errors only. A job's
    own failure (``JobError``), an outage (``BackendUnavailable``), a bad input (``InvalidInput``) or one not
    good yet (``Retryable``) passes as it is; any other error (an RPC error, an OS error of this machine) is
    typed by its message (``unclassified_failure``)."""

    @functools.wraps(run)
    async def typed(*args: P.args, **kwargs: P.kwargs) -> SnosResult:
        try:
            return await run(*args, **kwargs)
        except (JobError, BackendUnavailable, InvalidInput, Retryable):
            raise
        except Exception as exc:
            raise unclassified_failure(str(exc)) from exc

    return typed


class DamagedSnosOutput(DamagedOutput):
    """The runner said it succeeded, but what it handed back is unusable: the job's own failure."""


def os_hints(layer: str) -> tuple[bool, bool]:
    """``(full_output, use_kzg_da)``: fixed per layer as in the original (SPEC §9): L2 runs with the full
    state diff in the output and no KZG DA; L3 with a compressed diff published as blobs."""
    return (True, False) if layer == "l2" else (False, True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnosRequest:
    """One SNOS run: blocks ``start_block..=end_block`` read from ``rpc_url``."""

    rpc_url: str
    start_block: int
    end_block: int
    layout: str
    full_output: bool
    use_kzg_da: bool
    da_public_keys: tuple[int, ...] = ()
    """``--da-public-keys``: the OS encrypts the state diff for them and hashes them into its config hash;
    sent only when there are some."""

    def __post_init__(self) -> None:
        if not 0 <= self.start_block <= self.end_block:
            raise InvalidInput(
                f"a SNOS run needs 0 <= start_block <= end_block, got {self.start_block}..{self.end_block}"
            )

    @property
    def blocks(self) -> str:
        return f"{self.start_block}..{self.end_block}"

    def to_json(self) -> dict[str, Any]:
        """The HTTP request body."""
        return {
            "version": CONTRACT_VERSION,
            "rpc_url": self.rpc_url,
            "start_block": self.start_block,
            "end_block": self.end_block,
            "layout": self.layout,
            "full_output": self.full_output,
            "use_kzg_da": self.use_kzg_da,
            **({"da_public_keys": [hex(k) for k in self.da_public_keys]} if self.da_public_keys else {}),
        }

    @classmethod
    def from_json(cls, value: Any) -> SnosRequest:
        """A request body as a runner reads it (``InvalidInput`` naming the bad field)."""
        if not isinstance(value, Mapping):
            raise InvalidInput(f"a SNOS request is a JSON object, got {type(value).__name__}")
        if value.get("version", CONTRACT_VERSION) != CONTRACT_VERSION:
            raise InvalidInput(f"SNOS request version {value.get('version')!r}: this runner speaks {CONTRACT_VERSION}")

        def number(name: str) -> int:
            field = value.get(name)
            if not isinstance(field, int) or isinstance(field, bool) or field < 0:
                raise InvalidInput(f"SNOS request: {name} must be a non-negative integer, got {field!r:.40}")
            return field

        def flag(name: str) -> bool:
            field = value.get(name)
            if not isinstance(field, bool):
                raise InvalidInput(f"SNOS request: {name} must be true or false, got {field!r:.40}")
            return field

        def text(name: str) -> str:
            field = value.get(name)
            if not isinstance(field, str) or not field:
                raise InvalidInput(f"SNOS request: {name} must be a non-empty string, got {field!r:.40}")
            return field

        keys = value.get("da_public_keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise InvalidInput(f"SNOS request: da_public_keys must be a list of hex felts, got {keys!r:.60}")
        return cls(
            rpc_url=text("rpc_url"),
            start_block=number("start_block"),
            end_block=number("end_block"),
            layout=text("layout"),
            full_output=flag("full_output"),
            use_kzg_da=flag("use_kzg_da"),
            da_public_keys=parse_keys(",".join(keys)) if keys else (),
        )

    def arguments(self, output_dir: str) -> list[str]:
        """What a command gets after its own arguments."""
        return [
            "--rpc-url",
            self.rpc_url,
            "--start-block",
            str(self.start_block),
            "--end-block",
            str(self.end_block),
            "--layout",
            self.layout,
            "--full-output",
            bool_text(self.full_output),
            "--use-kzg-da",
            bool_text(self.use_kzg_da),
            *(["--da-public-keys", self.keys_text] if self.da_public_keys else []),
            "--output-dir",
            output_dir,
        ]

    @property
    def keys_text(self) -> str:
        """The DA public keys as the command line and the environment carry them: ``0x1f,0x2a``."""
        return ",".join(hex(k) for k in self.da_public_keys)

    def environment(self, output_dir: str) -> dict[str, str]:
        """The same values as ``MADARA_SNOS_*`` variables."""
        return {
            ENV_PREFIX + "CONTRACT_VERSION": str(CONTRACT_VERSION),
            ENV_PREFIX + "RPC_URL": self.rpc_url,
            ENV_PREFIX + "START_BLOCK": str(self.start_block),
            ENV_PREFIX + "END_BLOCK": str(self.end_block),
            ENV_PREFIX + "LAYOUT": self.layout,
            ENV_PREFIX + "FULL_OUTPUT": bool_text(self.full_output),
            ENV_PREFIX + "USE_KZG_DA": bool_text(self.use_kzg_da),
            **({ENV_PREFIX + "DA_PUBLIC_KEYS": self.keys_text} if self.da_public_keys else {}),
            ENV_PREFIX + "OUTPUT_DIR": output_dir,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SnosRunConfig:
    """What every run of one runner shares."""

    rpc_url: str
    layout: str = "all_cairo"
    full_output: bool = True
    use_kzg_da: bool = False
    da_public_keys: tuple[int, ...] = ()
    timeout_s: float = 3600.0

    def request(self, start_block: int, end_block: int) -> SnosRequest:
        return SnosRequest(
            rpc_url=self.rpc_url.rstrip("/"),
            start_block=start_block,
            end_block=end_block,
            layout=self.layout,
            full_output=self.full_output,
            use_kzg_da=self.use_kzg_da,
            da_public_keys=self.da_public_keys,
        )


def parse_keys(text: str) -> tuple[int, ...]:
    """``0x1f,0x2a`` → felts (``InvalidInput`` naming a bad key)."""
    keys: list[int] = []
    for key in text.split(","):
        try:
            value = int(key.strip(), 16)
        except ValueError:
            raise InvalidInput(f"SNOS request: DA public key {key.strip()[:70]!r} is not hex") from None
        if not 0 <= value < STARKNET_PRIME:
            raise InvalidInput(f"SNOS request: DA public key {key.strip()[:70]!r} is not a felt")
        keys.append(value)
    return tuple(keys)


# --------------------------------------------------------------------------------------------------
# Reading what a runner hands back


def parse_os_output_json(data: bytes | Any, where: str) -> list[int]:
    """``os_output.json``: a JSON array of felts (``0x`` hex strings; decimal strings and integers are
    accepted). ``data`` is the file's bytes or the already decoded JSON value."""
    return parse_felts(data, where, limit=MAX_JSON_BYTES, damaged=DamagedSnosOutput)


def parse_n_steps(value: Any, where: str) -> int | None:
    """The optional step count a runner reports (``result.json`` / the answer's ``n_steps``)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DamagedSnosOutput(f"{where}: n_steps must be a non-negative integer, got {value!r:.40}")
    return value


def parse_result_json(data: bytes, where: str) -> int | None:
    """``result.json`` (optional): an object; ``n_steps`` is checked against the PIE, other members are
    informational."""
    value = read_json(data, where, limit=MAX_JSON_BYTES, damaged=DamagedSnosOutput)
    if not isinstance(value, dict):
        raise DamagedSnosOutput(f"{where}: expected a JSON object, got {type(value).__name__}")
    return parse_n_steps(value.get("n_steps"), where)


# --------------------------------------------------------------------------------------------------
# The checks


def check_output(
    request: SnosRequest,
    *,
    cairo_pie_zip: bytes,
    os_output: Sequence[int],
    reported_n_steps: int | None = None,
    source: str = "the SNOS runner",
) -> SnosResult:
    """The result of a run, once its output passed every check (``DamagedSnosOutput`` names the first
    that failed). CPU-bound on a big PIE: call it in a worker thread."""
    # Imported here: runner programs written in Python import this module for the request and the exit
    # codes, and the hash libraries behind the facts take half a second to load.
    from madara_orchestrator.starknet.facts import snos_fact

    prefix = f"{source} returned a damaged output for blocks {request.blocks}:"
    try:
        pie: CairoPie = read_pie(cairo_pie_zip)
    except InvalidInput as exc:
        raise DamagedSnosOutput(f"{prefix} the Cairo PIE is unreadable: {exc}") from exc
    try:
        parsed = parse_os_output(os_output)
    except InvalidInput as exc:
        raise DamagedSnosOutput(f"{prefix} the OS output is not a Starknet OS output: {exc}") from exc
    try:
        segment = pie.output_segment()
    except InvalidInput as exc:
        raise DamagedSnosOutput(f"{prefix} the Cairo PIE has no readable output segment: {exc}") from exc
    if list(segment) != list(os_output):
        at = first_difference(segment, os_output)
        raise DamagedSnosOutput(
            f"{prefix} the OS output ({len(os_output)} felts) is not the PIE's output segment "
            f"({len(segment)} felts); they first differ at felt {at}"
        )
    header = parsed.header
    prev_expected = expected_prev_block_number(request.start_block)
    if header.prev_block_number != prev_expected or header.new_block_number != request.end_block:
        raise DamagedSnosOutput(
            f"{prefix} the OS output moves the chain from block {block_text(header.prev_block_number)} "
            f"to {block_text(header.new_block_number)}, the batch from {block_text(prev_expected)} "
            f"to {request.end_block}"
        )
    for name, got, asked in (
        ("use_kzg_da", header.use_kzg_da, request.use_kzg_da),
        ("full_output", header.full_output, request.full_output),
    ):
        if got != asked:
            raise DamagedSnosOutput(
                f"{prefix} the OS output has {name}={int(got)}, "
                f"but SNOS was asked to run with {name}={bool_text(asked)}"
            )
    try:
        fact = snos_fact(pie, os_output)
    except InvalidInput as exc:
        raise DamagedSnosOutput(f"{prefix} no fact can be computed from the Cairo PIE: {exc}") from exc
    n_steps = pie.n_steps
    if reported_n_steps is not None and reported_n_steps != n_steps:
        raise DamagedSnosOutput(
            f"{prefix} the runner reports n_steps={reported_n_steps}, the PIE's execution resources say {n_steps}"
        )
    return SnosResult(
        cairo_pie_zip=cairo_pie_zip,
        os_output=list(os_output),
        program_output=fact.program_output,
        fact=fact.fact,
        n_steps=n_steps,
    )


def failure_kind(value: Any) -> ErrorKind:
    """An answer's ``kind``; anything unknown is classified by its message."""
    try:
        return ErrorKind(value)
    except ValueError:
        return ErrorKind.UNKNOWN


def raise_failure(kind: ErrorKind, message: str) -> NoReturn:
    """The failure the runner reported, as the SnosRun handler takes it: the kind decides whether a retry
    can help; an unclassified failure is typed by the SPEC §2.8 markers of its message."""
    if kind is ErrorKind.RETRYABLE:
        raise JobError(message, retryable=True)
    if kind is ErrorKind.OS_FAILED:
        raise JobError(message, retryable=False)
    raise unclassified_failure(message)


SNOS_RUNNER = RunnerKind(
    waiting="SnosRun jobs",
    timeout_flag="--snos-timeout-seconds",
    logger="madara_orchestrator.snos",
    rpc_unanswered="SNOS RPC does not answer (%s); SnosRun jobs wait",
)
"""Both SNOS runners' names and readiness of the SNOS RPC (SPEC §9)."""
