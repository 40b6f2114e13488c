"""How L1 transactions are signed: exactly one of a private key, a remote signer or an AWS KMS key, for the
settlement account (``--ethereum-*``) and for the mock verifier's account (``--mock-verifier-*``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from madara_orchestrator.cli.settings.checks import address_problem, flag, named, url_problem
from madara_orchestrator.cli.settings.formats import private_key_body
from madara_orchestrator.domain.errors import InvalidInput

SETTLEMENT = ("ethereum_private_key", "ethereum_signer_url", "ethereum_kms_key_id")
VERIFIER = ("mock_verifier_private_key", "mock_verifier_signer_url", "mock_verifier_kms_key_id")
TLS = ("ethereum_signer_tls_ca", "ethereum_signer_tls_cert", "ethereum_signer_tls_key")


def one_way_problems(
    values: Mapping[str, Any], names: tuple[str, str, str], *, needed: str | None, what: str
) -> list[str]:
    """Exactly one of ``names`` (key, signer URL, KMS key) when ``needed`` (its context) is set, at most one
    otherwise; a signer URL with its address."""
    given = [name for name in names if values[name]]
    problems: list[str] = []
    if len(given) > 1:
        together = "both" if len(given) == 2 else "all"
        problems.append(
            f"{' and '.join(flag(n) for n in given)} are {together} given: {what} is signed one way only; keep one "
            "(a remote signer or KMS keeps the key out of the process)"
        )
    elif not given and needed:
        problems.append(
            f"{named(names[0])}, {flag(names[1])} or {flag(names[2])} is required {needed}: how {what} is signed"
        )
    url = names[1]
    address = url.replace("_url", "_address")
    if values[url] and not values[address]:
        problems.append(f"{named(address)} is required with {flag(url)}: the account the signer signs for")
    problems.append(url_problem(values, url) or "")
    problems.append(address_problem(values, address) or "")
    if values[address] and not values[url]:
        problems.append(f"{flag(address)} is for {flag(url)}: give the signer's URL, or leave the address out")
    return [p for p in problems if p]


def _same_account(values: Mapping[str, Any]) -> str | None:
    pairs = zip(SETTLEMENT, VERIFIER, strict=True)
    for settle, verify in pairs:
        a, b = values[settle], values[verify]
        if not a or not b:
            continue
        if settle == "ethereum_private_key":
            same = private_key_body(a) is not None and private_key_body(a) == private_key_body(b)
        else:
            same = a == b and (
                settle != "ethereum_signer_url"
                or (values["ethereum_signer_address"] or "").lower()
                == (values["mock_verifier_signer_address"] or "").lower()
            )
        if same:
            return (
                f"{flag(verify)} must differ from {flag(settle)}: fact registrations and settlements would compete "
                "for the same account's nonces"
            )
    return None


def tls_problems(values: Mapping[str, Any]) -> list[str]:
    """The remote signer's TLS files readable, certificate and key together; headers well-formed."""
    problems: list[str] = []
    uses_signer = values["ethereum_signer_url"] or values["mock_verifier_signer_url"]
    extras = [n for n in (*TLS, "ethereum_signer_header") if values[n]]
    if extras and not uses_signer:
        problems.append(
            f"{' and '.join(flag(n) for n in extras)} configure a remote signer: give --ethereum-signer-url "
            "(or --mock-verifier-signer-url), or leave them out"
        )
    if bool(values["ethereum_signer_tls_cert"]) != bool(values["ethereum_signer_tls_key"]):
        problems.append("--ethereum-signer-tls-cert and --ethereum-signer-tls-key go together (mutual TLS)")
    for name in TLS:
        path = values[name]
        if path and not Path(path).is_file():
            problems.append(f"{named(name)}: {path} is not a readable file")
    if values["ethereum_signer_header"]:
        # Imported only when there are headers to check: the signer imports rlp and eth-utils (0.2 s).
        from madara_orchestrator.settlement.remote_signer import parse_headers

        try:
            parse_headers(values["ethereum_signer_header"])
        except InvalidInput as exc:
            problems.append(str(exc))
    return problems


def signer_problems(values: Mapping[str, Any]) -> list[str]:
    """The settlement account's way of signing (exactly one with --settle-on-ethereum), the mock verifier's
    (checked with ``--prover mock``), the two accounts different, and the remote signer's TLS."""
    problems = one_way_problems(
        values,
        SETTLEMENT,
        needed="with --settle-on-ethereum" if values["settle_on_ethereum"] else None,
        what="a settlement",
    )
    problems += one_way_problems(
        values,
        VERIFIER,
        needed="with --prover mock" if values["prover"] == "mock" else None,
        what="a fact registration",
    )
    problems.append(_same_account(values) or "")
    return [p for p in problems + tls_problems(values) if p]
