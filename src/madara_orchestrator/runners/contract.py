"""What the SNOS and aggregator runner contracts share: the exit codes 0 and 75, the PIE's file name, the
damaged-output failure, reading a JSON array of
felts a runner hands back, block numbers as the OS writes them, and the readiness of the RPC a runner reads.

Pure, and light to import: runner programs written in Python import the contracts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from madara_orchestrator.domain.errors import InvalidInput, JobError, OrchestratorError
from madara_orchestrator.interfaces import ChainIdRpc
from madara_orchestrator.starknet.felt import STARKNET_PRIME, parse_felt

EXIT_OK = 0
EXIT_RETRYABLE = 75
"""Both contracts' "try again later" exit code: the job is retried."""
CAIRO_PIE_FILE = "cairo_pie.zip"
"""The Cairo PIE a runner of either kind writes."""


class TimedConfig(Protocol):
    """A runner's configuration, as what they share sees it: the timeout of a run."""

    @property
    def timeout_s(self) -> float: ...


ConfigT = TypeVar("ConfigT", bound=TimedConfig)
RpcT = TypeVar("RpcT", bound=ChainIdRpc)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerKind:
    """What the two runners of one kind (its command and its service) say alike: what waits while the
    runner is not ready, the option of a run's timeout, and how the RPC its readiness reads is checked."""

    waiting: str
    """What waits while it is not ready ("SnosRun jobs")."""
    timeout_flag: str
    """The option that sets a run's timeout (``--snos-timeout-seconds``)."""
    logger: str
    """The logger of the warning that the RPC does not answer."""
    rpc_unanswered: str
    """That warning, with the error ("SNOS RPC does not answer (%s); SnosRun jobs wait")."""

    async def rpc_answers(self, rpc: ChainIdRpc) -> bool:
        """Readiness of the runner's RPC (SPEC §9): it answers ``starknet_chainId``."""
        return await rpc_answers(rpc, logger=self.logger, unanswered=self.rpc_unanswered)


class DamagedOutput(JobError):
    """The runner said it succeeded, but what it handed back is unusable: the job's own failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def bool_text(value: bool) -> str:
    return "true" if value else "false"


def expected_prev_block_number(start_block: int) -> int:
    """The OS output's ``prev_block_number`` for a run starting at ``start_block`` (-1 as a felt at genesis)."""
    return start_block - 1 if start_block > 0 else STARKNET_PRIME - 1


def block_text(felt: int) -> str:
    return "-1" if felt == STARKNET_PRIME - 1 else str(felt)


def first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def read_json(data: bytes, where: str, *, limit: int, damaged: type[DamagedOutput]) -> Any:
    """A file's JSON value: ``damaged`` when it is larger than ``limit`` bytes or not JSON."""
    if len(data) > limit:
        raise damaged(f"{where}: {len(data)} bytes is more than the {limit} allowed")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(f"{where}: not valid JSON ({exc})") from exc


def parse_felts(data: bytes | Any, where: str, *, limit: int, damaged: type[DamagedOutput]) -> list[int]:
    """A JSON array of felts (``0x`` hex strings; decimal strings and integers are accepted): the file's
    bytes or the already decoded value."""
    if isinstance(data, bytes):
        data = read_json(data, where, limit=limit, damaged=damaged)
    if not isinstance(data, list):
        raise damaged(f"{where}: expected a JSON array of felts, got {type(data).__name__}")
    try:
        return [parse_felt(value, f"{where}[{i}]") for i, value in enumerate(data)]
    except InvalidInput as exc:
        raise damaged(str(exc)) from exc


async def rpc_answers(rpc: ChainIdRpc, *, logger: str, unanswered: str) -> bool:
    """The RPC answers ``starknet_chainId``; else ``unanswered`` ("SNOS RPC does not answer (%s); SnosRun
    jobs wait", with the error) is logged by ``logger``."""
    try:
        await rpc.chain_id()
    except OrchestratorError as exc:
        logging.getLogger(logger).warning(unanswered, exc)
        return False
    return True
