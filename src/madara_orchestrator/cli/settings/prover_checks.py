"""The checks of the outside services a configuration chooses: the prover (Atlantic, SHARP, mock) and how
SNOS and the aggregator run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from madara_orchestrator.cli.settings.checks import address_problem, flag, named, required, url_problem
from madara_orchestrator.cli.settings.formats import is_felt
from madara_orchestrator.domain.errors import ConfigError, InvalidInput


def _pem_problems(values: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """Each file readable and PEM; then the three together must make a TLS identity and trust root."""
    problems: list[str] = []
    for name in names:
        path = values[name]
        if not path:
            continue
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            problems.append(f"{flag(name)} {path}: cannot read it: {exc.strerror or exc}")
            continue
        if b"-----BEGIN " not in data:
            problems.append(f"{flag(name)} {path}: not a PEM file (no -----BEGIN line)")
    if not problems and all(values[n] for n in names):
        from madara_orchestrator.provers.sharp import build_ssl_context  # here: the HTTP client is slow to import

        try:
            build_ssl_context(
                values["sharp_user_crt_file"], values["sharp_user_key_file"], values["sharp_server_crt_file"]
            )
        except ConfigError as exc:
            problems += exc.problems
    return problems


def atlantic_problems(values: Mapping[str, Any]) -> list[str]:
    from madara_orchestrator.provers.atlantic import AtlanticQueryStep  # here: the client is slow to import

    context = "with --prover atlantic"
    problems: list[str] = []
    if values["layer"] == "l3" and not values["cairo_verifier_program_hash"]:
        problems.append("Cairo verifier program hash is required for L3: set --cairo-verifier-program-hash")
    needed = [
        "atlantic_api_key",
        "atlantic_mock_fact_hash",
        "atlantic_prover_type",
        "atlantic_settlement_layer",
        "atlantic_network",
    ]
    if not values["mock_atlantic_server"]:
        needed.insert(1, "atlantic_service_url")
    mocked = (values["atlantic_mock_fact_hash"] or "").lower() == "true"
    if not mocked:
        needed += ["atlantic_rpc_node_url", "atlantic_verifier_contract_address"]
    problems += required(values, needed, context)
    mock_fact_hash = values["atlantic_mock_fact_hash"]
    if mock_fact_hash is not None and mock_fact_hash.lower() not in ("true", "false"):
        problems.append(f"--atlantic-mock-fact-hash must be true or false, got {mock_fact_hash!r}")
    try:
        AtlanticQueryStep.from_cli(values["atlantic_verifier_result"] or "")
    except InvalidInput as exc:
        problems.append(f"--atlantic-verifier-result: {exc}")
    for name in ("atlantic_service_url", "atlantic_rpc_node_url", "atlantic_artifacts_base_url"):
        problems.append(url_problem(values, name) or "")
    problems.append(address_problem(values, "atlantic_verifier_contract_address") or "")
    program_hash = values["cairo_verifier_program_hash"]
    if program_hash is not None and not is_felt(program_hash):
        problems.append(
            "--cairo-verifier-program-hash must be a felt (0x and hex, below 2^251 + 17·2^192 + 1), "
            f"got {program_hash!r}"
        )
    return [p for p in problems if p]


def sharp_problems(values: Mapping[str, Any]) -> list[str]:
    pem_files = ("sharp_user_crt_file", "sharp_user_key_file", "sharp_server_crt_file")
    problems: list[str] = []
    if values["layer"] == "l3":
        problems.append("SHARP prover is L2-only (fact registration happens on L1)")
    problems += required(
        values,
        ["sharp_customer_id", "sharp_url", *pem_files, "sharp_rpc_node_url", "gps_verifier_contract_address"],
        "with --prover sharp",
    )
    problems.append(url_problem(values, "sharp_url", schemes=("https",)) or "")
    problems.append(url_problem(values, "sharp_rpc_node_url") or "")
    problems.append(address_problem(values, "gps_verifier_contract_address") or "")
    problems += _pem_problems(values, pem_files)
    return [p for p in problems if p]


def mock_problems(values: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if values["layer"] == "l3":
        problems.append("Mock prover is L2-only")
    if not values["settle_on_ethereum"]:
        problems.append("--prover mock needs --settle-on-ethereum (it registers facts on the settlement chain)")
    if values["store_audit_artifacts"]:
        problems.append("--prover mock cannot be used with --store-audit-artifacts (it has no proofs)")
    if not values["mock_verifier_address"]:
        problems.append(
            f"{named('mock_verifier_address')} is required with --prover mock: without a fact registry no fact "
            "is registered and every settlement reverts on L1 (and spends gas)"
        )
    problems.append(address_problem(values, "mock_verifier_address") or "")
    # The way fact registrations are signed (one of a key, a remote signer, KMS; not the settlement
    # account) is checked with the settlement's: cli/settings/signer_checks.py.
    return [p for p in problems if p]


def _runner_problems(
    values: Mapping[str, Any],
    runner_name: str,
    command_name: str,
    url_name: str,
    check_command: Callable[[str], str | None],
) -> list[str]:
    """A runner's ``command`` mode needs a command that can be run, ``http`` a URL; the flags of one mode
    given with another (or with none) are a mistake worth naming (another runner would silently run)."""
    runner = values[runner_name]
    runner_flag, command_flag, url_flag = (flag(n) for n in (runner_name, command_name, url_name))
    problems: list[str] = []
    if runner == "command":
        if not values[command_name]:
            problems.append(f"{named(command_name)} is required with {runner_flag} command")
        else:
            problems.append(check_command(values[command_name]) or "")
    elif values[command_name]:
        problems.append(f"{command_flag} is set but {runner_flag} is {runner or 'not'}: add {runner_flag} command")
    if runner == "http":
        if not values[url_name]:
            problems.append(f"{named(url_name)} is required with {runner_flag} http")
        problems.append(url_problem(values, url_name) or "")
    elif values[url_name]:
        problems.append(f"{url_flag} is set but {runner_flag} is {runner or 'not'}: add {runner_flag} http")
    return [p for p in problems if p]


def snos_runner_problems(values: Mapping[str, Any]) -> list[str]:
    from madara_orchestrator.snos.command import command_problem  # here: the runner's module is slow to import

    problems = _runner_problems(values, "snos_runner", "snos_command", "snos_runner_url", command_problem)
    if values["snos_runner"] is None and not problems:
        problems.append(
            f"{named('snos_runner')} is required: command (--snos-command), http (--snos-runner-url) or devnet "
            "(a stand-in no prover accepts)"
        )
    return problems


def aggregator_runner_problems(values: Mapping[str, Any]) -> list[str]:
    """SHARP, mock and devnet provers need an aggregator runner, chosen by name; Atlantic aggregates in its
    buckets and an L3 has no aggregator batches."""
    runner = values["aggregator_runner"]
    if values["layer"] == "l3" or values["prover"] == "atlantic":
        why = "an L3 has no aggregator batches" if values["layer"] == "l3" else "Atlantic aggregates in its buckets"
        given = [n for n in ("aggregator_runner", "aggregator_command", "aggregator_runner_url") if values[n]]
        return [f"{flag(n)} is set but {why}: drop it" for n in given]
    from madara_orchestrator.aggregator.command import command_problem as aggregator_command_problem

    problems = _runner_problems(
        values, "aggregator_runner", "aggregator_command", "aggregator_runner_url", aggregator_command_problem
    )
    if runner is None and not problems and values["prover"]:
        problems.append(
            f"{named('aggregator_runner')} is required with --prover {values['prover']}: command "
            "(--aggregator-command), http (--aggregator-runner-url) or devnet (a stand-in no prover or core "
            "contract accepts)"
        )
    return problems


DEVNET_PROVER_ON_ETHEREUM = (
    "--prover devnet proves nothing and registers no facts, so a core contract on Ethereum rejects every "
    "settlement: use it with --settle-on-devnet, or settle on Ethereum with --prover mock (facts on a mock "
    "verifier), atlantic or sharp"
)
