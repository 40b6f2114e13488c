"""``--aggregator-runner command``: an operator's program runs the aggregator, once per aggregator batch
(``docs/aggregator-runner.md``).

The program gets ``--request FILE --output-dir DIR`` and ``MADARA_AGGREGATOR_*`` variables. It runs in a
fresh directory (``request.json`` and the SNOS PIEs under ``children/`` there, its output in ``output/``)
in a process group of its own, and writes ``cairo_pie.zip``, ``program_output.json`` and
``da_segment.json``. Exit 0 done, 75 retry later, 65 (or any other code) failed; a run longer than the
timeout is killed with its whole process group and retried. The output is checked
(``contract.check_output``) before the job goes on; the directory is removed afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from madara_orchestrator.aggregator.contract import (
    CAIRO_PIE_FILE,
    CHILDREN_DIR,
    DA_SEGMENT_FILE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRYABLE,
    PROGRAM_OUTPUT_FILE,
    REQUEST_FILE,
    AggregatorRequest,
    AggregatorRunConfig,
    ChainRpc,
    ChainStart,
    DamagedAggregatorOutput,
    chain_start,
    check_input,
    check_output,
    parse_felts_json,
    runner_rpc_answers,
)
from madara_orchestrator.domain.errors import InvalidInput, JobError
from madara_orchestrator.interfaces import AggregationInput, AggregationResult
from madara_orchestrator.runners import process
from madara_orchestrator.runners.process import STDERR_LOG, resolve_program, signal_name, stderr_tail

log = logging.getLogger(__name__)

FLAG = "--aggregator-command"
PURPOSE = "the program that runs the aggregator"
LABEL = "aggregator command"
OUTPUT_DIR = "output"


def parse_command(text: str) -> list[str]:
    return process.parse_command(text, flag=FLAG, purpose=PURPOSE)


def command_problem(text: str) -> str | None:
    """A problem line for settings validation, or None when the command can be run."""
    return process.command_problem(text, flag=FLAG, purpose=PURPOSE)


class CommandAggregatorRunner:
    """Implements ``AggregatorRunner`` by running ``command`` once per aggregator batch."""

    def __init__(
        self,
        command: str | Sequence[str],
        config: AggregatorRunConfig,
        *,
        rpc: ChainRpc,
        work_dir: str | Path,
        environ: Mapping[str, str] | None = None,
        kill_grace_s: float = 5.0,
    ) -> None:
        """``rpc``: the sequencer (readiness, the chain id, the chain before each batch); ``work_dir`` holds
        one fresh directory per run; ``environ`` (default: this process's) is what the command's environment
        is made from; ``kill_grace_s`` is how long a timed-out command has between SIGTERM and SIGKILL."""
        self.argv = parse_command(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise InvalidInput("the aggregator command is empty")
        self.config = config
        self.rpc = rpc
        self.work_dir = Path(work_dir)
        self.environ = environ
        self.kill_grace_s = kill_grace_s

    @property
    def program(self) -> str:
        return self.argv[0]

    async def is_ready(self) -> bool:
        """The program is still there and the sequencer answers."""
        if resolve_program(self.program) is None:
            log.warning("aggregator command %s is not an executable file; Aggregator jobs wait", self.program)
            return False
        return await runner_rpc_answers(self.rpc)

    async def run(self, batch: AggregationInput) -> AggregationResult:
        request = AggregatorRequest.of(batch, self.config, chain_id=await self.rpc.chain_id())
        start = await chain_start(self.rpc, batch.start_block)
        check_input(request, start)
        run_dir = await asyncio.to_thread(self._prepare, request)
        try:
            exited = await process.run_in_group(
                [*self.argv, *request.arguments(str(run_dir / REQUEST_FILE), str(run_dir / OUTPUT_DIR))],
                env=process.child_environment(
                    os.environ if self.environ is None else self.environ,
                    request.environment(str(run_dir / REQUEST_FILE), str(run_dir / OUTPUT_DIR)),
                ),
                run_dir=run_dir,
                timeout_s=self.config.timeout_s,
                kill_grace_s=self.kill_grace_s,
                label=LABEL,
                subject=request.subject,
            )
            tail = stderr_tail(run_dir / STDERR_LOG)
            if exited.timed_out:
                raise JobError(
                    f"the aggregator command ran longer than {self.config.timeout_s:g} s "
                    f"(--aggregator-timeout-seconds) on {request.subject} and was killed with its process group; "
                    f"it will be retried. stderr: {tail}",
                    retryable=True,
                )
            code = exited.returncode
            if code == EXIT_OK:
                return await asyncio.to_thread(self._collect, request, start, run_dir)
            if code == EXIT_RETRYABLE:
                raise JobError(
                    f"the aggregator command asks to retry {request.subject} (exit code {EXIT_RETRYABLE}): {tail}",
                    retryable=True,
                )
            if code < 0:
                raise JobError(
                    f"the aggregator command was killed by {signal_name(-code)} on {request.subject} "
                    f"(out of memory?); it will be retried. stderr: {tail}",
                    retryable=True,
                )
            meaning = "the aggregator failed" if code == EXIT_FAILED else "the aggregator command failed"
            raise JobError(f"{meaning} on {request.subject} (exit code {code}): {tail}", retryable=False)
        finally:
            await asyncio.to_thread(shutil.rmtree, run_dir, True)

    def _prepare(self, request: AggregatorRequest) -> Path:
        """A fresh run directory: ``request.json``, each SNOS PIE at ``children/<snos batch>/cairo_pie.zip``,
        an empty ``output/``."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=f"batch-{request.batch_index}-", dir=self.work_dir))
        try:
            pie_files = []
            for child in request.children:
                child_dir = run_dir / CHILDREN_DIR / str(child.snos_batch_index)
                child_dir.mkdir(parents=True)
                (child_dir / CAIRO_PIE_FILE).write_bytes(child.cairo_pie)
                pie_files.append(str(child_dir / CAIRO_PIE_FILE))
            (run_dir / REQUEST_FILE).write_text(json.dumps(request.to_json(pie_files=pie_files)))
            (run_dir / OUTPUT_DIR).mkdir()
        except BaseException:
            shutil.rmtree(run_dir, True)
            raise
        return run_dir

    def _collect(self, request: AggregatorRequest, start: ChainStart, run_dir: Path) -> AggregationResult:
        source = f"the aggregator command {Path(self.program).name}"
        out = run_dir / OUTPUT_DIR
        files = {name: out / name for name in (CAIRO_PIE_FILE, PROGRAM_OUTPUT_FILE, DA_SEGMENT_FILE)}
        missing = [name for name, path in files.items() if not path.is_file()]
        if missing:
            raise DamagedAggregatorOutput(
                f"{source} exited with code 0 on {request.subject} but did not write "
                f"{', '.join(missing)} in its output directory"
            )
        return check_output(
            request,
            start,
            cairo_pie_zip=files[CAIRO_PIE_FILE].read_bytes(),
            program_output=parse_felts_json(
                files[PROGRAM_OUTPUT_FILE].read_bytes(), f"{source}: {PROGRAM_OUTPUT_FILE}"
            ),
            da_segment=parse_felts_json(files[DA_SEGMENT_FILE].read_bytes(), f"{source}: {DA_SEGMENT_FILE}"),
            source=source,
        )
