"""Running a runner's command: a fresh directory, its own process group, a timeout, its stderr's tail.

Shared by ``--snos-runner command`` and ``--aggregator-runner command``: each names its flag and the
what it runs in the messages (``--snos-command``, "SNOS command"). Nothing here knows a request or an output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput

log = logging.getLogger(__name__)

SECRET_ENV_PREFIX = "MADARA_ORCHESTRATOR_"
"""The orchestrator's own variables (keys, tokens) are never passed to a command."""
STDERR_TAIL_BYTES = 8192
"""How much of the end of a command's stderr is read to classify and report a failure."""
MESSAGE_TAIL_CHARS = 800
"""How much of it a failure message carries."""
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"


def parse_command(text: str, *, flag: str, purpose: str) -> list[str]:
    """A command line: a program path or name, optionally with arguments, split as a shell would (quotes,
    no expansion). ``InvalidInput`` naming ``flag`` when it cannot be split or is empty; ``purpose`` says
    what the program is for ("the program that runs SNOS")."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise InvalidInput(f"{flag} {text!r} cannot be split into arguments: {exc}") from None
    if not argv:
        raise InvalidInput(f"{flag} is empty: give {purpose}")
    return argv


def resolve_program(program: str) -> str | None:
    """The executable file ``program`` names: a path (with a ``/``) as is, a bare name on ``PATH``."""
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program)
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(program)


def command_problem(text: str, *, flag: str, purpose: str) -> str | None:
    """A problem line for settings validation, or None when the command can be run."""
    try:
        argv = parse_command(text, flag=flag, purpose=purpose)
    except InvalidInput as exc:
        return str(exc)
    program = argv[0]
    if resolve_program(program) is not None:
        return None
    if os.sep in program:
        path = Path(program)
        if not path.exists():
            why = "does not exist"
        elif not path.is_file():
            why = "is not a file"
        else:
            why = "is not executable (chmod +x it, or put its interpreter first)"
        return f"{flag}: {program} {why}"
    return f"{flag}: {program!r} is not found on PATH (give its full path)"


def child_environment(environ: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """A command's environment: ``environ`` without the orchestrator's own variables, plus ``extra``."""
    env = {k: v for k, v in environ.items() if not k.startswith(SECRET_ENV_PREFIX)}
    env.update(extra)
    return env


def stderr_tail(path: Path) -> str:
    """The last lines of a command's stderr on one line (``a | b | c``), or a note that it was silent."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - STDERR_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return "(its stderr could not be read)"
    lines = [line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    if not lines:
        return "(nothing on stderr)"
    text = " | ".join(lines)
    return text if len(text) <= MESSAGE_TAIL_CHARS else "…" + text[-MESSAGE_TAIL_CHARS:]


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True, slots=True)
class Exited:
    """How a command ended: its exit code (negative: killed by that signal), and whether it was killed
    for running past its timeout."""

    returncode: int
    timed_out: bool


async def run_in_group(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    run_dir: Path,
    timeout_s: float,
    kill_grace_s: float,
    label: str,
    subject: str,
) -> Exited:
    """Run ``argv`` in ``run_dir`` (its working directory; ``stdout.log`` and ``stderr.log`` there) in a
    new session, to its end. Past ``timeout_s`` the whole group gets SIGTERM, then SIGKILL after
    ``kill_grace_s``. Cancelled, it kills the group at once. ``BackendUnavailable`` when the program
    cannot be started. ``label`` ("SNOS command") and ``subject`` ("blocks 3..4") name the run in logs."""
    with (run_dir / STDOUT_LOG).open("wb") as stdout, (run_dir / STDERR_LOG).open("wb") as stderr:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=run_dir,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise BackendUnavailable(f"cannot start the {label} {argv[0]}: {exc.strerror or exc}") from exc
    log.info("%s started on %s (pid %d)", label, subject, process.pid)
    try:
        async with asyncio.timeout(timeout_s):
            returncode = await process.wait()
    except TimeoutError:
        await _stop_group(process, kill_grace_s, label)
        return Exited(process.returncode if process.returncode is not None else -signal.SIGKILL, True)
    except BaseException:
        kill_group(process.pid, signal.SIGKILL)
        raise
    log.info("%s on %s exited with code %d", label, subject, returncode)
    return Exited(returncode, False)


async def _stop_group(process: asyncio.subprocess.Process, kill_grace_s: float, label: str) -> None:
    """SIGTERM to the whole group, SIGKILL after the grace period (to the group: helpers the command
    started die with it), then reap the command."""
    log.warning("%s (pid %d) timed out; stopping its process group", label, process.pid)
    kill_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(kill_grace_s):
            await process.wait()
    kill_group(process.pid, signal.SIGKILL)
    await process.wait()


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
