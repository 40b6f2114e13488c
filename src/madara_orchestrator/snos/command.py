"""``--snos-runner command``: an operator's program runs SNOS, once per SNOS batch (``docs/snos-runner.md``).

The program gets the request as arguments and ``MADARA_SNOS_*`` variables, runs in a fresh output
directory in a process group of its own, and writes ``cairo_pie.zip``, ``os_output.json`` and
optionally ``result.json`` there. Its exit code says what happened: 0 done, 75 retry later, 65 the OS
failed on these blocks; anything else is typed from its stderr by the SPEC §2.8 markers. A run
longer than the timeout is killed with its whole process group and retried. The output is checked
(``contract.check_output``) before the job completes; the directory is removed afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.interfaces import ChainIdRpc, SnosResult
from madara_orchestrator.runners import process
from madara_orchestrator.runners.command import CommandRunner
from madara_orchestrator.runners.process import STDERR_LOG, stderr_tail
from madara_orchestrator.snos.contract import (
    CAIRO_PIE_FILE,
    EXIT_OK,
    EXIT_OS_FAILED,
    OS_OUTPUT_FILE,
    RESULT_FILE,
    SNOS_RUNNER,
    DamagedSnosOutput,
    SnosRequest,
    SnosRunConfig,
    check_output,
    parse_os_output_json,
    parse_result_json,
    typed_run,
    unclassified_failure,
)

log = logging.getLogger(__name__)

FLAG = "--snos-command"
PURPOSE = "the program that runs SNOS"
__all__ = ["CommandSnosRunner", "command_environment", "command_problem", "parse_command", "stderr_tail"]


def parse_command(text: str) -> list[str]:
    """``--snos-command``: a program path or name, optionally with arguments, split as a shell would
    (quotes, no expansion). ``InvalidInput`` when it cannot be split or is empty."""
    return process.parse_command(text, flag=FLAG, purpose=PURPOSE)


def command_problem(text: str) -> str | None:
    """A problem line for settings validation, or None when the command can be run."""
    return process.command_problem(text, flag=FLAG, purpose=PURPOSE)


def command_environment(environ: Mapping[str, str], request: SnosRequest, output_dir: str) -> dict[str, str]:
    """The command's environment: ours without the orchestrator's own variables, plus the request's."""
    return process.child_environment(environ, request.environment(output_dir))


class CommandSnosRunner(CommandRunner[SnosRunConfig, ChainIdRpc]):
    """Implements ``SnosRunner`` by running ``command`` once per SNOS batch."""

    label = "SNOS command"
    flag = FLAG
    purpose = PURPOSE
    kind = SNOS_RUNNER
    log = log

    @typed_run
    async def run(self, start_block: int, end_block: int) -> SnosResult:
        request = self.config.request(start_block, end_block)
        run_dir = await asyncio.to_thread(self.fresh_dir, f"blocks-{request.start_block}-{request.end_block}-")
        try:
            output_dir = str(run_dir)
            returncode = await self.run_command(
                request.arguments(output_dir), request.environment(output_dir), run_dir, f"blocks {request.blocks}"
            )
            if returncode == EXIT_OK:
                return await asyncio.to_thread(self._collect, request, run_dir)
            tail = stderr_tail(run_dir / STDERR_LOG)
            if returncode == EXIT_OS_FAILED:
                raise JobError(
                    f"the OS failed on blocks {request.blocks} (SNOS command exit code {EXIT_OS_FAILED}): {tail}",
                    retryable=False,
                )
            # Typed by the SPEC §2.8 markers of its stderr. No block numbers here: the markers include
            # "503" and "429", which a block number may contain.
            raise unclassified_failure(f"the SNOS command exited with code {returncode}: {tail}")
        finally:
            await asyncio.to_thread(shutil.rmtree, run_dir, True)

    def _collect(self, request: SnosRequest, run_dir: Path) -> SnosResult:
        source = f"the SNOS command {Path(self.program).name}"
        files = {name: run_dir / name for name in (CAIRO_PIE_FILE, OS_OUTPUT_FILE)}
        missing = [name for name, path in files.items() if not path.is_file()]
        if missing:
            raise DamagedSnosOutput(
                f"{source} exited with code 0 on blocks {request.blocks} but did not write "
                f"{' and '.join(missing)} in its output directory"
            )
        os_output = parse_os_output_json(files[OS_OUTPUT_FILE].read_bytes(), f"{source}: {OS_OUTPUT_FILE}")
        result_path = run_dir / RESULT_FILE
        n_steps = (
            parse_result_json(result_path.read_bytes(), f"{source}: {RESULT_FILE}") if result_path.is_file() else None
        )
        return check_output(
            request,
            cairo_pie_zip=files[CAIRO_PIE_FILE].read_bytes(),
            os_output=os_output,
            reported_n_steps=n_steps,
            source=source,
        )
