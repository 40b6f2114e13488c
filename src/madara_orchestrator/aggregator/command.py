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
import shutil
from pathlib import Path

from madara_orchestrator.aggregator.contract import (
    AGGREGATOR_RUNNER,
    CAIRO_PIE_FILE,
    CHILDREN_DIR,
    DA_SEGMENT_FILE,
    EXIT_FAILED,
    EXIT_OK,
    PROGRAM_OUTPUT_FILE,
    REQUEST_FILE,
    AggregatorRequest,
    AggregatorRunConfig,
    ChainRpc,
    ChainStart,
    DamagedAggregatorOutput,
    check_output,
    checked_request,
    parse_felts_json,
)
from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.interfaces import AggregationInput, AggregationResult
from madara_orchestrator.runners import process
from madara_orchestrator.runners.command import CommandRunner
from madara_orchestrator.runners.process import STDERR_LOG, stderr_tail

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


class CommandAggregatorRunner(CommandRunner[AggregatorRunConfig, ChainRpc]):
    """Implements ``AggregatorRunner`` by running ``command`` once per aggregator batch; ``rpc`` is the
    sequencer (readiness, the chain id, the chain before each batch)."""

    label = LABEL
    flag = FLAG
    purpose = PURPOSE
    kind = AGGREGATOR_RUNNER
    log = log

    async def run(self, batch: AggregationInput) -> AggregationResult:
        request, start = await checked_request(batch, self.config, self.rpc)
        run_dir = await asyncio.to_thread(self._prepare, request)
        try:
            request_file, output_dir = str(run_dir / REQUEST_FILE), str(run_dir / OUTPUT_DIR)
            code = await self.run_command(
                request.arguments(request_file, output_dir),
                request.environment(request_file, output_dir),
                run_dir,
                request.subject,
            )
            if code == EXIT_OK:
                return await asyncio.to_thread(self._collect, request, start, run_dir)
            tail = stderr_tail(run_dir / STDERR_LOG)
            meaning = "the aggregator failed" if code == EXIT_FAILED else "the aggregator command failed"
            raise JobError(f"{meaning} on {request.subject} (exit code {code}): {tail}", retryable=False)
        finally:
            await asyncio.to_thread(shutil.rmtree, run_dir, True)

    def _prepare(self, request: AggregatorRequest) -> Path:
        """A fresh run directory: ``request.json``, each SNOS PIE at ``children/<snos batch>/cairo_pie.zip``,
        an empty ``output/``."""
        run_dir = self.fresh_dir(f"batch-{request.batch_index}-")
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
