"""``run``'s periodic progress line (issue 17, item 9): head, each stage, the open batch and the lag in one INFO
line, written when something changed and every few minutes when nothing did; 0 turns it off."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.progress import IDLE_REPEAT_S, ProgressLog, progress_loop, progress_of
from madara_orchestrator.cli.settings import RUN_OPTIONS, add_options, load_run_settings
from madara_orchestrator.domain.errors import ConfigError
from tests.helpers.engine import FakeClock
from tests.helpers.jsonrpc_server import running_jsonrpc_server


def stage(through: int | None) -> dict[str, Any]:
    return {"through": through, "highest": through, "first_open": None}


def an_overview(**changes: Any) -> dict[str, Any]:
    ov: dict[str, Any] = {
        "head": 1042,
        "settled": 999,
        "errors": [],
        "stages": {
            "snos": stage(1019),
            "proof": stage(1019),
            "aggregation": stage(999),
            "settlement": stage(999),
        },
        "open_batches": {
            "aggregator": [{"index": 11, "blocks": 23, "blob_felts": 9876, "max_blob_felts": 24561}],
            "snos": [],
        },
        "lag": {"blocks": 43, "seconds": 130.4, "level": "ok", "normal_blocks": 200, "normal_seconds": 2100.0},
        "attention": {"total": 0, "by_status": {}, "waiting": 0},
        "failing_triggers": [],
    }
    ov.update(changes)
    return ov


def test_the_line_names_the_head_each_stage_the_open_batch_and_the_lag() -> None:
    progress = progress_of(an_overview(), aggregator_batches=True)
    assert progress.line == (
        "progress: head 1042 | snos through 1019 | proven through 1019 | aggregated through 999 | "
        "settled through 999 | open batch 11: 23 blocks, 9,876/24,561 felts | "
        "lag 43 blocks, oldest waiting 2 min 10 s (ok)"
    )


def test_stuck_jobs_failing_triggers_and_an_unknown_lag_are_in_the_line() -> None:
    ov = an_overview(
        head=5,
        settled=72,
        stages={"snos": stage(None), "proof": stage(None), "aggregation": stage(None), "settlement": stage(None)},
        open_batches={"aggregator": [], "snos": []},
        lag={"blocks": None, "seconds": None, "level": "unknown", "normal_blocks": 200, "normal_seconds": 2100.0},
        attention={"total": 2, "by_status": {"Failed": 2}, "waiting": 0},
        failing_triggers=[{"trigger": "AggregatorBatching"}, {"trigger": "SnosBatching"}],
    )
    assert progress_of(ov, aggregator_batches=True).line == (
        "progress: head 5 | snos through - | proven through - | aggregated through - | settled through 72 | "
        "no open batch | lag unknown | needs attention 2 | failing AggregatorBatching, SnosBatching"
    )


def test_a_line_is_written_when_something_changed_and_every_five_minutes_when_nothing_did() -> None:
    clock = FakeClock()
    writer = ProgressLog(clock=clock)
    first = progress_of(an_overview(), aggregator_batches=True)
    assert writer.should_write(first.key)
    clock.advance(30)
    older = an_overview(lag={**an_overview()["lag"], "seconds": 160.0})
    assert not writer.should_write(progress_of(older, aggregator_batches=True).key), "only the age changed"
    clock.advance(30)
    assert writer.should_write(progress_of(an_overview(head=1043), aggregator_batches=True).key)
    clock.advance(IDLE_REPEAT_S - 1)
    assert not writer.should_write(progress_of(an_overview(head=1043), aggregator_batches=True).key)
    clock.advance(1)
    assert writer.should_write(progress_of(an_overview(head=1043), aggregator_batches=True).key), "idle: a reminder"


async def test_the_running_loop_logs_the_line_and_zero_turns_it_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = {"starknet_chainId": lambda _: "0x534e5f5345504f4c4941", "starknet_blockNumber": lambda _: 5}
    with running_jsonrpc_server(handlers) as sequencer:
        stack = await build_embedded_stack(devnet_settings(tmp_path / "data", sequencer.url, port=0))
        try:
            stop = asyncio.Event()
            await asyncio.wait_for(progress_loop(stack.runtime, 0, stop), timeout=1)  # off: returns at once
            caplog.set_level(logging.INFO, logger="madara_orchestrator.progress")
            logged = Logged()
            logging.getLogger("madara_orchestrator.progress").addHandler(logged)
            try:
                loop = asyncio.ensure_future(progress_loop(stack.runtime, 0.01, stop))
                await asyncio.wait_for(logged.event.wait(), timeout=10)
            finally:
                logging.getLogger("madara_orchestrator.progress").removeHandler(logged)
            stop.set()
            await asyncio.wait_for(loop, timeout=10)
        finally:
            await stack.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "madara_orchestrator.progress"]
    assert lines[0] == (
        "progress: head 5 | snos through - | proven through - | aggregated through - | settled through - | "
        "no open batch | lag 6 blocks (ok)"
    )
    assert len(lines) == 1, "nothing changed: one line, not one per interval"


class Logged(logging.Handler):
    """Sets ``event`` at the first record."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


def test_the_interval_is_an_option_and_may_not_be_negative() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, RUN_OPTIONS)
    env = {
        "MADARA_ORCHESTRATOR_MADARA_RPC_URL": "http://127.0.0.1:9944",
        "MADARA_ORCHESTRATOR_PROVER": "devnet",
        "MADARA_ORCHESTRATOR_SNOS_RUNNER": "devnet",
        "MADARA_ORCHESTRATOR_AGGREGATOR_RUNNER": "devnet",
        "MADARA_ORCHESTRATOR_SETTLE_ON_DEVNET": "true",
    }
    assert load_run_settings(parser.parse_args([]), env).progress_interval_seconds == 30
    assert (
        load_run_settings(parser.parse_args(["--progress-interval-seconds", "0"]), env).progress_interval_seconds == 0
    )
    with pytest.raises(ConfigError, match="--progress-interval-seconds must be 0"):
        load_run_settings(parser.parse_args(["--progress-interval-seconds", "-1"]), env)
