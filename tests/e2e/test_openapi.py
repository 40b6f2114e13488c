"""The API's OpenAPI document: served at ``/openapi.json``, valid, covering every route; and a bounded
schemathesis run against a served orchestrator with settled blocks in it (no 5xx, and every response's
status code, content type and body as documented)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import load_all_checks
from schemathesis.core.result import Err
from starlette.routing import Route

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.server.app import create_app
from tests.helpers.pipeline import eventually, start_pipeline

ADMIN_TOKEN = "t" * 32
MAX_EXAMPLES = 20
"""Per operation and generation mode: about 40 operations x 2 modes x 20 cases, a few seconds in all."""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0))
    app = create_app(stack.runtime, admin_enabled=True, admin_token=ADMIN_TOKEN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        http.app_routes = app.routes  # type: ignore[attr-defined]
        yield http
    await stack.close()


async def test_the_document_is_served_valid_and_covers_every_route(client: httpx.AsyncClient) -> None:
    reply = await client.get("/openapi.json")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    document = reply.json()
    validate(document)
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    mounted = {
        (route.path, method)
        for route in client.app_routes  # type: ignore[attr-defined]
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    assert documented == mounted
    schemathesis.openapi.from_dict(document)  # loads


async def test_without_admin_routes_the_document_has_none(tmp_path: Path) -> None:
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0))
    try:
        app = create_app(stack.runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            document = (await http.get("/openapi.json")).json()
        validate(document)
        assert not [path for path in document["paths"] if path.startswith("/admin")]
        assert "securitySchemes" not in document["components"]
    finally:
        await stack.close()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/dashboard/blocks/9999999999999999999",  # 19 digits, above the largest stored integer
        "/api/v1/dashboard/blocks/%C2%B2",  # '²': str.isdigit says yes, int() says no
        "/api/v1/dashboard/jobs?limit=%C2%B2",
        "/jobs/block/1%0A/status",  # a trailing newline is not part of a number
        "/batches/snos?limit=5%0A",
    ],
)
async def test_odd_numbers_are_400_in_the_envelope_not_500(client: httpx.AsyncClient, url: str) -> None:
    reply = await client.get(url)
    assert reply.status_code == 400, reply.text
    assert reply.json()["success"] is False


def run_schemathesis(document: dict[str, Any], base_url: str) -> tuple[int, list[str]]:
    """Every operation, positive then negative data, ``MAX_EXAMPLES`` cases each (derandomized, no
    shrinking, so the run is bounded and repeatable). Returns how many requests went out and one line per
    failing operation and mode. Negative data for an operation without parameters or body is impossible:
    skipped."""
    load_all_checks()
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.status_code_conformance,
        schemathesis.checks.content_type_conformance,
        schemathesis.checks.response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the document has an operation schemathesis cannot load: {result.err()}")
            continue
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(base_url=base_url, headers=headers, checks=checks, timeout=10)

            try:
                check()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, f"no positive case for {operation.path}"
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
                failures.append(f"{operation.method.upper()} {operation.path} ({mode}): {exc}")
    return sent, failures


@pytest.mark.slow
async def test_schemathesis_finds_nothing_against_a_served_orchestrator(tmp_path: Path) -> None:
    p = await start_pipeline(tmp_path, blocks=3, admin_token=ADMIN_TOKEN)
    try:

        async def settled() -> bool:
            return await p.stack.settlement.last_settled_block() == 2

        await eventually(settled, 30, "blocks 0..2 to settle")
        async with httpx.AsyncClient(base_url=p.api.url) as http:
            document = (await http.get("/openapi.json")).json()
        # The cases go out from a thread (schemathesis is synchronous); the server keeps this loop.
        sent, failures = await asyncio.to_thread(run_schemathesis, document, p.api.url)
        assert not failures, "\n\n".join(failures)
        assert sent > 20 * len(document["paths"]), sent
    finally:
        await p.close()
