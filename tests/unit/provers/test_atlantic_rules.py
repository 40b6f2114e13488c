"""Atlantic pure parts: job size declaration, webhook parsing, query objects."""

from __future__ import annotations

import json

import pytest

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.provers.atlantic import (
    AtlanticJobSize,
    AtlanticQuery,
    AtlanticQueryStatus,
    AtlanticQueryStep,
    declared_job_size,
    parse_atlantic_webhook,
    validate_proof,
)
from madara_orchestrator.provers.errors import InvalidProofFormat, MalformedResponse


@pytest.mark.parametrize(
    ("n_steps", "size"),
    [
        (0, "S"),
        (12_999_999, "S"),
        (13_000_000, "M"),
        (29_999_999, "M"),
        (30_000_000, "L"),
        (None, "L"),  # unknown → 40 M
    ],
)
def test_declared_job_size(n_steps: int | None, size: str) -> None:
    assert declared_job_size(n_steps) is AtlanticJobSize(size)


def test_webhook_is_parsed() -> None:
    hook = parse_atlantic_webhook(
        json.dumps({"atlanticQueryId": "q1", "status": "DONE", "bucketId": "b1", "step": "PROOF_GENERATION"}).encode()
    )
    assert (hook.id, hook.status, hook.bucket_id, hook.step) == (
        "q1",
        AtlanticQueryStatus.DONE,
        "b1",
        "PROOF_GENERATION",
    )
    assert hook.is_final


def test_webhook_in_status_endpoint_shape_is_parsed() -> None:
    body = json.dumps({"atlanticQuery": {"id": "q2", "status": "FAILED", "errorReason": "oom"}}).encode()
    hook = parse_atlantic_webhook(body)
    assert (hook.id, hook.status, hook.error_reason) == ("q2", AtlanticQueryStatus.FAILED, "oom")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"status": "DONE"}',
        b'{"atlanticQueryId": "", "status": "DONE"}',
        b'{"atlanticQueryId": 5, "status": "DONE"}',
        b'{"atlanticQueryId": "q", "status": "FINISHED"}',
        b'{"atlanticQueryId": "q"}',
        b'{"atlanticQueryId": "q", "status": "DONE", "bucketId": 7}',
    ],
)
def test_malformed_webhooks_are_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="Atlantic webhook"):
        parse_atlantic_webhook(body)


@pytest.mark.parametrize(
    "value",
    [None, [], {"status": "DONE"}, {"id": "q"}, {"id": "q", "status": "WHATEVER"}],
)
def test_malformed_query_objects_are_typed_errors(value: object) -> None:
    with pytest.raises(MalformedResponse):
        AtlanticQuery.from_json(value, "query status")


def test_cli_step_names_are_kebab_case() -> None:
    assert AtlanticQueryStep.from_cli("proof-generation") is AtlanticQueryStep.PROOF_GENERATION
    with pytest.raises(InvalidInput, match="proof-verification-on-l2"):
        AtlanticQueryStep.from_cli("prove-it")


def test_proof_validation() -> None:
    text = json.dumps({"proof_parameters": {}, "public_input": {}})
    assert validate_proof(text.encode()) == text
    for bad in (b"nope", b"[1]", b'{"public_input": {}}'):
        with pytest.raises(InvalidProofFormat):
            validate_proof(bad)
