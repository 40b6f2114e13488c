"""Settings of how SNOS and the aggregator run (docs/snos-runner.md, docs/aggregator-runner.md)."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.cli.settings.declare import (
    POSITIVE,
    Group,
    SettingsGroup,
    setting,
)
from madara_orchestrator.cli.settings.provers import LAYOUTS

SNOS_RUNNERS = ("command", "http", "devnet")
AGGREGATOR_RUNNERS = ("command", "http", "devnet")


@dataclass(frozen=True)
class SnosSettings(SettingsGroup):
    GROUP = Group("SNOS", "How the Starknet OS is run on each SNOS batch (docs/snos-runner.md).")

    snos_runner: str | None = setting(
        "SNOS_RUNNER",
        (
            "how SNOS runs: command (--snos-command, once per SNOS batch), http (a runner service at "
            "--snos-runner-url) or devnet (a stand-in: the OS output built from the sequencer's state updates; no PIE "
            "a prover takes); see docs/snos-runner.md"
        ),
        choices=AGGREGATOR_RUNNERS,
        required="required",
    )
    snos_command: str | None = setting(
        "SNOS_COMMAND",
        (
            "the program (a path or a name on PATH, optionally with its own arguments) that runs SNOS on one batch and "
            "writes cairo_pie.zip and os_output.json"
        ),
        metavar="COMMAND",
        required="required with --snos-runner command",
    )
    snos_runner_url: str | None = setting(
        "SNOS_RUNNER_URL",
        "base URL of the SNOS runner service (POST /run, GET /health)",
        secret=True,
        required="required with --snos-runner http",
    )
    snos_timeout_seconds: float = setting(
        "SNOS_TIMEOUT_SECONDS",
        (
            "with --snos-runner command|http: longest one SNOS run may take; then the command is killed with its "
            "process group (or the request abandoned) and the job retried"
        ),
        default=3600.0,
        rule=POSITIVE,
    )
    snos_work_dir: str | None = setting(
        "SNOS_WORK_DIR",
        "with --snos-runner command: where each run gets its output directory (default: <data-dir>/snos)",
    )
    rpc_for_snos: str | None = setting("RPC_FOR_SNOS", "RPC used by SNOS (default: the sequencer RPC)", metavar="URL")
    snos_layout_name: str = setting(
        "SNOS_LAYOUT_NAME",
        "Cairo layout SNOS runs with",
        default="all_cairo",
        choices=LAYOUTS,
    )
    snos_full_output: bool = setting("SNOS_FULL_OUTPUT", "recorded in SnosRun metadata", default=False)


@dataclass(frozen=True)
class AggregatorSettings(SettingsGroup):
    GROUP = Group(
        "aggregator",
        (
            "With --prover sharp, mock or devnet: how the aggregator runs over each aggregator batch's SNOS outputs "
            "(docs/aggregator-runner.md)."
        ),
    )

    aggregator_runner: str | None = setting(
        "AGGREGATOR_RUNNER",
        (
            "how the aggregator runs over each aggregator batch's SNOS outputs: command (--aggregator-command), http "
            "(a runner service at --aggregator-runner-url) or devnet (a stand-in whose PIE, program hash and messages "
            "no prover or core contract accepts); see docs/aggregator-runner.md"
        ),
        choices=AGGREGATOR_RUNNERS,
        required="required with --prover sharp, --prover mock or --prover devnet",
    )
    aggregator_command: str | None = setting(
        "AGGREGATOR_COMMAND",
        (
            "the program (a path or a name on PATH, optionally with its own arguments) that runs the aggregator on one "
            "batch and writes cairo_pie.zip, program_output.json and da_segment.json"
        ),
        metavar="COMMAND",
        required="required with --aggregator-runner command",
    )
    aggregator_runner_url: str | None = setting(
        "AGGREGATOR_RUNNER_URL",
        "base URL of the aggregator runner service (POST /aggregate, GET /health)",
        secret=True,
        required="required with --aggregator-runner http",
    )
    aggregator_timeout_seconds: float = setting(
        "AGGREGATOR_TIMEOUT_SECONDS",
        (
            "with --aggregator-runner command|http: longest one aggregator run may take; then it is killed with its "
            "process group (or the request abandoned) and the job retried"
        ),
        default=3600.0,
        rule=POSITIVE,
    )
