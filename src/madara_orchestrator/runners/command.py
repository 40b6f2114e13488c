"""What a command runner of either kind (SNOS, aggregator) shares: its program, its readiness, a fresh run
directory, and how the run's end is read (a timeout, exit code 75, a signal).

Each kind names itself (``label`` "SNOS command", ``flag`` ``--snos-command``, ``timeout_flag``, what waits
while it is not ready) and keeps what is its own: the request's arguments and variables, the other exit
codes, and reading the output.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Generic

from madara_orchestrator.domain.errors import InvalidInput, JobError
from madara_orchestrator.runners import process
from madara_orchestrator.runners.contract import EXIT_OK, EXIT_RETRYABLE, ConfigT, RpcT, RunnerKind
from madara_orchestrator.runners.process import STDERR_LOG, resolve_program, signal_name, stderr_tail


class CommandRunner(Generic[ConfigT, RpcT]):
    """A runner that runs ``command`` once per batch, in a fresh directory under ``work_dir``."""

    label: ClassVar[str] = "command"
    """How messages name it ("SNOS command")."""
    flag: ClassVar[str] = "--command"
    purpose: ClassVar[str] = "the program to run"
    kind: ClassVar[RunnerKind]
    """What waits while it is not ready, the timeout's option, the RPC's readiness."""
    log: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(
        self,
        command: str | Sequence[str],
        config: ConfigT,
        *,
        rpc: RpcT,
        work_dir: str | Path,
        environ: Mapping[str, str] | None = None,
        kill_grace_s: float = 5.0,
    ) -> None:
        """``work_dir`` holds one fresh directory per run; ``environ`` (default: this process's) is what the
        command's environment is made from; ``kill_grace_s`` is how long a timed-out command has between
        SIGTERM and SIGKILL."""
        if isinstance(command, str):
            self.argv = process.parse_command(command, flag=self.flag, purpose=self.purpose)
        else:
            self.argv = list(command)
        if not self.argv:
            raise InvalidInput(f"the {self.label} is empty")
        self.config = config
        self.rpc = rpc
        self.work_dir = Path(work_dir)
        self.environ = environ
        self.kill_grace_s = kill_grace_s

    @property
    def program(self) -> str:
        return self.argv[0]

    async def is_ready(self) -> bool:
        """The program is still there and the RPC answers (SPEC §9 readiness)."""
        return self.program_is_there() and await self.kind.rpc_answers(self.rpc)

    def program_is_there(self) -> bool:
        """The program is an executable file (else a warning that the jobs wait)."""
        if resolve_program(self.program) is None:
            self.log.warning("%s %s is not an executable file; %s wait", self.label, self.program, self.kind.waiting)
            return False
        return True

    def fresh_dir(self, prefix: str) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.work_dir))

    async def run_command(
        self, arguments: Sequence[str], variables: Mapping[str, str], run_dir: Path, subject: str
    ) -> int:
        """Run the command with ``arguments`` after its own and ``variables`` added to its environment, to
        its end. Raises the retryable ``JobError`` of a timeout, of exit code 75 and of a signal; returns any
        other exit code (0: done) for the caller to read. ``subject`` ("blocks 3..4") names the run."""
        exited = await process.run_in_group(
            [*self.argv, *arguments],
            env=process.child_environment(os.environ if self.environ is None else self.environ, variables),
            run_dir=run_dir,
            timeout_s=self.config.timeout_s,
            kill_grace_s=self.kill_grace_s,
            label=self.label,
            subject=subject,
        )
        code = exited.returncode
        if not exited.timed_out and code == EXIT_OK:
            return code
        tail = stderr_tail(run_dir / STDERR_LOG)
        if exited.timed_out:
            raise JobError(
                f"the {self.label} ran longer than {self.config.timeout_s:g} s ({self.kind.timeout_flag}) on {subject} "
                f"and was killed with its process group; it will be retried. stderr: {tail}",
                retryable=True,
            )
        if code == EXIT_RETRYABLE:
            raise JobError(
                f"the {self.label} asks to retry {subject} (exit code {EXIT_RETRYABLE}): {tail}", retryable=True
            )
        if code < 0:
            raise JobError(
                f"the {self.label} was killed by {signal_name(-code)} on {subject} (out of memory?); it will be "
                f"retried. stderr: {tail}",
                retryable=True,
            )
        return code
