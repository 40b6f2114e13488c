"""The HTTP API answers every bad request in the envelope: out-of-range numbers (400), a wrong method
(405) and a huge body (413); the unknown-route fallback stays the original's plain-text 404 (SPEC §15.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.provers.atlantic_webhook import atlantic_webhook
from madara_orchestrator.server.app import MAX_BODY_BYTES, create_app

HUGE = "99999999999999999999999"
WEBHOOK_SECRET = "w" * 32
BLOCK_ROUTES = (
    "/jobs/block/{n}/status",
    "/api/v1/jobs/block/{n}/status",
    "/blocks/batch-for-block/{n}",
    "/blocks/settlement-status/{n}",
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # The sequencer is never called: these routes only read the database.
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0))
    app = create_app(stack.runtime, admin_enabled=True, admin_token="t" * 32, webhook=atlantic_webhook(WEBHOOK_SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield http
    await stack.close()


def assert_envelope(reply: httpx.Response, status: int, *words: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["success"] is False and set(body) == {"success", "message"}, body
    for word in words:
        assert word in body["message"], body["message"]


@pytest.mark.parametrize("number", [HUGE, str(2**63), "-1", "-99999999999999999999999"])
@pytest.mark.parametrize("route", BLOCK_ROUTES)
async def test_block_numbers_out_of_range_are_400_in_the_envelope(
    client: httpx.AsyncClient, route: str, number: str
) -> None:
    reply = await client.get(route.format(n=number))
    assert_envelope(reply, 400, "Invalid block number", number)


@pytest.mark.parametrize("route", BLOCK_ROUTES)
async def test_the_largest_block_number_is_answered_not_refused(client: httpx.AsyncClient, route: str) -> None:
    reply = await client.get(route.format(n=2**63 - 1))
    assert reply.status_code in (200, 404), reply.text
    assert reply.json()["success"] is (reply.status_code == 200)


@pytest.mark.parametrize("kind", ["snos", "aggregator"])
@pytest.mark.parametrize("index", [HUGE, "-1"])
async def test_batch_indexes_out_of_range_are_400_in_the_envelope(
    client: httpx.AsyncClient, kind: str, index: str
) -> None:
    reply = await client.get(f"/batches/{kind}", params={"index": index})
    assert_envelope(reply, 400, "index", index)


async def test_a_huge_limit_is_refused_as_too_large(client: httpx.AsyncClient) -> None:
    reply = await client.get("/batches/snos", params={"limit": HUGE})
    assert_envelope(reply, 400, "limit must be less than or equal to 500")


async def test_a_wrong_method_is_405_in_the_envelope(client: httpx.AsyncClient) -> None:
    reply = await client.post("/jobs/block/1/status")
    assert_envelope(reply, 405, "POST", "GET")
    assert "GET" in reply.headers["allow"]
    reply = await client.get("/webhooks/atlantic")
    assert_envelope(reply, 405, "GET", "POST")
    reply = await client.get("/admin/jobs/retry/failed")
    assert_envelope(reply, 405, "GET")


async def test_an_unknown_route_keeps_the_originals_plain_text_404(client: httpx.AsyncClient) -> None:
    reply = await client.get("/no/such/route")
    assert reply.status_code == 404
    assert reply.text == "The requested resource was not found"


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


@pytest.mark.parametrize("route", ["/webhooks/atlantic", "/admin/jobs/retry/failed", "/jobs"])
async def test_a_body_over_the_limit_is_413_in_the_envelope(client: httpx.AsyncClient, route: str) -> None:
    headers = {"Authorization": "Bearer " + "t" * 32}
    reply = await client.post(route, content=b"{" + b" " * MAX_BODY_BYTES + b"}", headers=headers)
    assert_envelope(reply, 413, "larger than", "1 MiB")
    # Without a Content-Length (chunked): counted as it arrives.
    reply = await client.post(route, content=chunks(2 * MAX_BODY_BYTES), headers=headers)
    assert_envelope(reply, 413, "larger than")


async def test_a_body_under_the_limit_reaches_the_route(client: httpx.AsyncClient) -> None:
    body = b"{" + b" " * (MAX_BODY_BYTES - 100) + b"}"
    reply = await client.post(f"/webhooks/atlantic/{WEBHOOK_SECRET}", content=body)
    assert reply.status_code == 400, reply.text  # the webhook's own complaint about the payload
    assert reply.json()["success"] is False


async def test_health_names_the_backend_that_is_down_and_answers_503(client: httpx.AsyncClient) -> None:
    # The fixture's sequencer URL has nothing listening; the embedded database, queue and storage are up.
    reply = await client.get("/health")
    assert reply.status_code == 503
    lines = reply.text.splitlines()
    assert lines[0] == "DOWN" and [line.split(":")[0] for line in lines[1:]] == ["sequencer_rpc"], reply.text
    reply = await client.get("/health", headers={"accept": "application/json"})
    assert reply.status_code == 503
    backends = reply.json()["backends"]
    assert {name for name, state in backends.items() if state["up"]} == {
        "database",
        "queue",
        "storage",
        "settlement_rpc",
    }
    assert backends["sequencer_rpc"]["error"]
    live = await client.get("/health/live")
    assert live.status_code == 200 and live.text == "UP", "liveness does not depend on the backends"
