"""What the tests' runner programs (SNOS: ``snos_runner_program``, the aggregator: ``aggregator_runner_program``)
share: the failure a run reports, and the misbehaviours a test can ask of the command."""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class RunnerFailure(Exception):
    """A failure the runner reports: its kind decides the exit code / HTTP answer."""

    def __init__(self, kind: enum.Enum, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def hang(pid_file_variable: str) -> None:
    """Ignore SIGTERM, start a helper that would outlive us, record both pids (in the file the variable
    names, if any), sleep."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    pid_file = os.environ.get(pid_file_variable)
    if pid_file:
        Path(pid_file).write_text(f"{os.getpid()} {helper.pid}\n")
    time.sleep(600)


def dump_environment(variable: str) -> None:
    """Write the names of our environment's variables to the file ``variable`` names, if it is set."""
    dump = os.environ.get(variable)
    if dump:
        Path(dump).write_text("\n".join(sorted(os.environ)) + "\n")
