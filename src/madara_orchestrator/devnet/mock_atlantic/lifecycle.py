"""A query's and a bucket's life: RECEIVED → IN_PROGRESS → DONE (or FAILED), the artifacts, the webhook."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import httpx
from starlette.responses import JSONResponse, Response

from madara_orchestrator.devnet.mock_atlantic.aggregation import (
    AGGREGATOR_PROGRAM_HASH,
    are_consecutive,
    build_mock_aggregation,
    child_output,
    is_os_output,
)
from madara_orchestrator.devnet.mock_atlantic.proofs import fill_fact, proof_of_query, verify_on_l2
from madara_orchestrator.devnet.mock_atlantic.state import L2_VERIFICATION, MockAtlanticState, Query, now
from madara_orchestrator.devnet.mock_atlantic.validation import config_hash_problem
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.provers.atlantic import ATLANTIC_SIGNATURE_HEADER, atlantic_webhook_signature
from madara_orchestrator.starknet.facts import (
    aggregator_fact_info,
)
from madara_orchestrator.starknet.pie import (
    read_pie,
)
from madara_orchestrator.tls import default_tls

log = logging.getLogger(__name__)


async def process_query(state: MockAtlanticState, query: Query, injected_failure: str | None) -> None:
    cfg = state.config
    await asyncio.sleep(cfg.processing_s / 2)
    query.data["status"] = "IN_PROGRESS"
    query.data["steps"] = ["TRACE_GENERATION"]
    reason = injected_failure
    if reason is None and query.pie is not None:
        reason = await asyncio.to_thread(fill_fact, query, cfg.compute_facts)
    if reason is None and query.proof_input is not None and query.data["result"] == L2_VERIFICATION:
        reason = await verify_on_l2(state, query)
    elif reason is None and query.proof_input is not None:
        try:
            json.loads(query.proof_input)
        except ValueError as exc:
            reason = f"inputFile is not JSON: {exc}"
    await asyncio.sleep(cfg.processing_s / 2)
    _finish(query, reason)
    await deliver_webhook(state, query)


def _finish(query: Query, reason: str | None) -> None:
    data = query.data
    data["completedAt"] = now()
    query.done.set()
    if reason is not None:
        data["status"] = "FAILED"
        data["errorReason"] = reason
        return
    data["status"] = "DONE"
    data["step"] = data["result"]
    data["steps"] = ["TRACE_GENERATION", data["result"]]


async def aggregate_bucket(state: MockAtlanticState, bucket: dict[str, Any]) -> None:
    """Wait for the children, then add a DONE aggregator query (FACT_HASH_REGISTRATION) to the bucket."""
    children = [q for q in state.queries.values() if q.data["bucketId"] == bucket["id"]]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(5.0, 20 * state.config.processing_s)):
            await asyncio.gather(*(q.done.wait() for q in children))
    await asyncio.sleep(state.config.processing_s)
    failed = [q for q in children if q.data["status"] != "DONE"]
    query_id = state.new_id("query")
    data: dict[str, Any] = {
        "id": query_id,
        "status": "DONE",
        "step": "FACT_HASH_REGISTRATION",
        "result": "FACT_HASH_REGISTRATION",
        "bucketId": bucket["id"],
        "bucketJobIndex": None,
        "programHash": AGGREGATOR_PROGRAM_HASH,
        "integrityFactHash": None,
        "errorReason": None,
        "createdAt": now(),
        "completedAt": now(),
        "isProofMocked": True,
    }
    last_pie = next((q.pie for q in reversed(children) if q.pie is not None), None)
    aggregator = Query(data=data, pie=last_pie)
    reason: str | None = None
    if failed or not children:
        reason = f"{len(failed)} child queries did not finish" if failed else "the bucket has no child queries"
    else:
        ordered = sorted(children, key=lambda q: q.data["bucketJobIndex"] or 0)
        outputs = [child_output(q.pie) for q in ordered]
        os_outputs = [o for o in outputs if o is not None and is_os_output(o)]
        if len(os_outputs) == len(outputs) and are_consecutive(os_outputs):
            reason = await _aggregate_os_outputs(state, aggregator, os_outputs, bucket.get("aggregatorParams"))
    if reason is not None:
        data["status"] = "FAILED"
        data["errorReason"] = reason
        bucket["status"] = "FAILED"
    else:
        bucket["status"] = "DONE"
    state.queries[query_id] = aggregator
    await deliver_webhook(state, aggregator)


async def _aggregate_os_outputs(
    state: MockAtlanticState, aggregator: Query, outputs: list[list[int]], params: Any
) -> str | None:
    """Fill the aggregator query with a PIE and DA segment consistent with the children; register its fact.

    Returns the failure reason, if any."""
    reason = config_hash_problem(params, outputs)
    if reason is not None:
        return reason
    try:
        pie, da_segment = await asyncio.to_thread(build_mock_aggregation, outputs)
        info = await asyncio.to_thread(aggregator_fact_info, read_pie(pie))
    except InvalidInput as exc:
        return f"aggregation failed: {exc}"
    aggregator.pie, aggregator.da_segment = pie, da_segment
    aggregator.data.update(programHash=hex(info.program_hash), integrityFactHash=info.fact, sharpFactHash=info.fact)
    if state.fact_registry is not None:
        try:
            tx_hash = await state.fact_registry.register(info.fact)
        except Exception as exc:
            log.warning("mock Atlantic: registering fact %s failed: %s", info.fact, exc)
            return f"fact registration failed: {exc}"
        aggregator.data["transactionId"] = tx_hash
        log.info("mock Atlantic: registered aggregator fact %s in %s", info.fact, tx_hash)
    return None


def artifact_names(query: Query) -> list[str]:
    names = ["proof.json"]
    if query.pie is not None:
        names += ["pie.cairo0.zip", "da_blob.json"]
    return names


def serve_artifact(state: MockAtlanticState, query: Query, name: str) -> Response:
    if name == "pie.cairo0.zip":
        return Response(query.pie or b"", media_type="application/zip")
    if name == "da_blob.json":
        return JSONResponse([hex(i) for i in (query.da_segment if query.da_segment is not None else range(4))])
    return Response(query.proof if query.proof is not None else proof_of_query(query), media_type="application/json")


async def deliver_webhook(state: MockAtlanticState, query: Query) -> None:
    """POST the completion to ``webhook_url``: three tries, short timeouts, never raises."""
    url = state.config.webhook_url
    if not url:
        return
    data = query.data
    payload = {
        "atlanticQueryId": data["id"],
        "status": data["status"],
        "bucketId": data.get("bucketId"),
        "step": data.get("step"),
        "errorReason": data.get("errorReason"),
    }
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    secret = state.config.webhook_secret
    if secret:
        headers[ATLANTIC_SIGNATURE_HEADER] = atlantic_webhook_signature(secret, body)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0), verify=default_tls()) as client:
        for attempt in range(1, 4):
            try:
                response = await client.post(url, content=body, headers=headers)
                if response.is_success:
                    state.webhook_deliveries.append(payload)
                    return
                log.warning("mock Atlantic: webhook %s answered %d", url, response.status_code)
            except httpx.HTTPError as exc:
                log.warning("mock Atlantic: webhook %s attempt %d failed: %s", url, attempt, exc)
            await asyncio.sleep(0.2 * attempt)
    log.error("mock Atlantic: webhook for query %s not delivered to %s", data["id"], url)
