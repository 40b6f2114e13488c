"""The mock Atlantic's routes: the REST subset ``AtlanticClient`` uses (SPEC §7.5) and the ``/_mock`` controls.

Every API route goes through ``_guarded``: the request is recorded, then the configured latency, injected
faults, random failures and the ``api-key`` check apply, as Atlantic's gateway would answer them. A client
that goes away before its body has arrived (an orchestrator killed mid-upload) is logged in one line and
answered to nobody (``_client_gone``), on every route.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from madara_orchestrator.devnet.mock_atlantic.lifecycle import (
    aggregate_bucket,
    artifact_names,
    process_query,
    serve_artifact,
)
from madara_orchestrator.devnet.mock_atlantic.proofs import proof_of_query
from madara_orchestrator.devnet.mock_atlantic.state import (
    ARTIFACTS_PREFIX,
    Fault,
    MockAtlanticConfig,
    MockAtlanticState,
    Query,
    now,
    spawn,
)
from madara_orchestrator.devnet.mock_atlantic.validation import bucket_request_problem

Handler = Callable[[MockAtlanticState, Request], Awaitable[Response]]

log = logging.getLogger(__name__)


def create_app(config: MockAtlanticConfig | None = None, state: MockAtlanticState | None = None) -> Starlette:
    """A Starlette app; ``app.state.mock`` is the ``MockAtlanticState`` (tests poke at it)."""
    state = state or MockAtlanticState(config=config or MockAtlanticConfig())

    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return functools.partial(_guarded, state, handler)

    def control(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return functools.partial(handler, state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)

    app = Starlette(
        routes=[
            Route("/atlantic-query-by-dedup-id", api(_dedup_lookup), methods=["GET"]),
            Route("/atlantic-query", api(_submit_query), methods=["POST"]),
            Route("/atlantic-query/{query_id}", api(_query_status), methods=["GET"]),
            Route("/buckets", api(_create_bucket), methods=["POST"]),
            Route("/buckets/close", api(_close_bucket), methods=["POST"]),
            Route("/buckets/{bucket_id}", api(_get_bucket), methods=["GET"]),
            Route(ARTIFACTS_PREFIX + "/queries/{query_id}/{file}", api(_artifact), methods=["GET"]),
            Route("/_mock/faults", control(_add_faults), methods=["POST"]),
            Route("/_mock/health", control(_health), methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={ClientDisconnect: _client_gone},
    )
    app.state.mock = state
    return app


async def _client_gone(request: Request, exc: Exception) -> Response:
    """Nobody is left to answer, and nothing was done with a request whose body never arrived whole."""
    log.info("mock Atlantic: the client went away during %s %s; request dropped", request.method, request.url.path)
    return Response(status_code=499)


async def _guarded(state: MockAtlanticState, handler: Handler, request: Request) -> Response:
    cfg = state.config
    path = request.url.path
    state.requests.append((request.method, path))
    if cfg.latency_s:
        await asyncio.sleep(cfg.latency_s)
    delay = state.take_fault(path, ("delay",), request.method)
    if delay is not None:
        await asyncio.sleep(delay.delay_s)
    fault = state.take_fault(path, ("status", "malformed"), request.method)
    if fault is not None:
        code = 200 if fault.kind == "malformed" else fault.status_code
        return PlainTextResponse(fault.body, status_code=code)
    if cfg.failure_rate and state.rng.random() < cfg.failure_rate:
        return JSONResponse({"message": "mock Atlantic: random failure"}, status_code=503)
    if not path.startswith(ARTIFACTS_PREFIX):
        key = request.headers.get("api-key", "")
        if not key or (cfg.api_key is not None and key != cfg.api_key):
            return JSONResponse({"message": "missing or wrong api-key header"}, status_code=401)
    return await handler(state, request)


async def _dedup_lookup(state: MockAtlanticState, request: Request) -> Response:
    dedup_id = request.query_params.get("dedupId", "")
    query_id = state.by_dedup.get(dedup_id)
    if query_id is None:
        return JSONResponse({"message": f"no query with dedupId {dedup_id}"}, status_code=404)
    return JSONResponse({"atlanticQuery": state.queries[query_id].data})


async def _submit_query(state: MockAtlanticState, request: Request) -> Response:
    form = await request.form()  # a client gone mid-upload (a killed orchestrator) submits nothing: _client_gone
    fields: dict[str, list[str]] = {}
    files: dict[str, bytes] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            files[name] = await value.read()
        else:
            fields.setdefault(name, []).append(value)
    dedup_id = _first(fields, "dedupId")
    if dedup_id and dedup_id in state.by_dedup:
        existing = state.queries[state.by_dedup[dedup_id]]
        if existing.data["status"] != "FAILED":
            return JSONResponse({"atlanticQueryId": existing.data["id"]})
    if "pieFile" not in files and "inputFile" not in files:
        return JSONResponse({"message": "pieFile or inputFile is required"}, status_code=400)
    bucket_id = _first(fields, "bucketId")
    if bucket_id is not None:
        bucket = state.buckets.get(bucket_id)
        if bucket is None:
            return JSONResponse({"message": f"unknown bucket {bucket_id}"}, status_code=400)
        if bucket["status"] != "OPEN":
            return JSONResponse({"message": f"bucket {bucket_id} is {bucket['status']}"}, status_code=400)
    query_id = state.new_id("query")
    state.submissions += 1
    query = Query(data=_query_data(query_id, fields), pie=files.get("pieFile"), proof_input=files.get("inputFile"))
    state.queries[query_id] = query
    if dedup_id:
        state.by_dedup[dedup_id] = query_id
    if bucket_id is not None:
        state.buckets[bucket_id]["leaves"] += 1
    failure = state.take_fault(request.url.path, ("fail_query",))
    spawn(state, process_query(state, query, failure.reason if failure else None))
    return JSONResponse({"atlanticQueryId": query_id})


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    return fields.get(name, [None])[0]


def _query_data(query_id: str, fields: dict[str, list[str]]) -> dict[str, Any]:
    """A new query's record, as ``GET atlantic-query/{id}`` answers it, from the submitted form fields."""
    first = functools.partial(_first, fields)
    results = fields.get("result", ["PROOF_GENERATION"])
    index = first("bucketJobIndex")
    return {
        "id": query_id,
        "externalId": None,
        "transactionId": None,
        "status": "RECEIVED",
        "step": "TRACE_GENERATION",
        "programHash": first("programHash"),
        "integrityFactHash": None,
        "sharpFactHash": None,
        "layout": first("layout"),
        "isFactMocked": first("mockFactHash") == "true",
        "chain": "L1",
        "jobSize": first("declaredJobSize"),
        "declaredJobSize": first("declaredJobSize"),
        "cairoVm": first("cairoVm"),
        "cairoVersion": first("cairoVersion"),
        "steps": [],
        "errorReason": None,
        "submittedByClient": "mock",
        "projectId": "mock-project",
        "createdAt": now(),
        "completedAt": None,
        "result": results[0],
        "network": first("network"),
        "hints": None,
        "sharpProver": first("sharpProver"),
        "bucketId": first("bucketId"),
        "bucketJobIndex": int(index) if index and index.isdigit() else None,
        "customerName": "mock",
        "isJobSizeValid": True,
        "isProofMocked": True,
        "dedupId": first("dedupId"),
        "formFields": fields,
    }


async def _query_status(state: MockAtlanticState, request: Request) -> Response:
    query = state.queries.get(request.path_params["query_id"])
    if query is None:
        return JSONResponse({"message": "query not found"}, status_code=404)
    query_id = query.data["id"]
    urls = [f"{ARTIFACTS_PREFIX}/queries/{query_id}/{name}" for name in artifact_names(query)]
    return JSONResponse({"atlanticQuery": query.data, "metadataUrls": urls})


async def _create_bucket(state: MockAtlanticState, request: Request) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"message": "the body must be JSON"}, status_code=400)
    problem = bucket_request_problem(body)
    if problem is not None:
        return JSONResponse({"message": problem}, status_code=400)
    bucket_id = state.new_id("bucket")
    bucket = {
        "id": bucket_id,
        "externalId": body.get("externalId"),
        "status": "OPEN",
        "aggregatorVersion": body["aggregatorVersion"],
        "aggregatorParams": body.get("aggregatorParams"),
        "mockProof": body.get("mockProof"),
        "nodeWidth": body.get("nodeWidth"),
        "leaves": 0,
        "chain": "L1",
        "projectId": "mock-project",
        "createdByClient": "mock",
        "createdAt": now(),
    }
    state.buckets[bucket_id] = bucket
    return JSONResponse({"atlanticBucket": bucket})


async def _get_bucket(state: MockAtlanticState, request: Request) -> Response:
    bucket = state.buckets.get(request.path_params["bucket_id"])
    if bucket is None:
        return JSONResponse({"message": "bucket not found"}, status_code=404)
    queries = [q.data for q in state.queries.values() if q.data["bucketId"] == bucket["id"]]
    return JSONResponse({"bucket": bucket, "queries": queries})


async def _close_bucket(state: MockAtlanticState, request: Request) -> Response:
    bucket = state.buckets.get(request.query_params.get("bucketId", ""))
    if bucket is None:
        return JSONResponse({"message": "bucket not found"}, status_code=404)
    if bucket["status"] != "OPEN":
        return JSONResponse({"message": f"bucket is {bucket['status']}, not OPEN"}, status_code=400)
    bucket["status"] = "IN_PROGRESS"
    spawn(state, aggregate_bucket(state, bucket))
    return JSONResponse({"atlanticBucket": bucket})


async def _artifact(state: MockAtlanticState, request: Request) -> Response:
    query = state.queries.get(request.path_params["query_id"])
    name = request.path_params["file"]
    if query is None or query.data["status"] != "DONE" or name not in artifact_names(query):
        return PlainTextResponse("not found", status_code=404)
    if name == "proof.json" and query.proof is None:
        query.proof = await asyncio.to_thread(proof_of_query, query)
    return serve_artifact(state, query, name)


async def _add_faults(state: MockAtlanticState, request: Request) -> Response:
    try:
        body = await request.json()
        items = body if isinstance(body, list) else [body]
        faults = [Fault(**item) for item in items]
    except (ValueError, TypeError) as exc:
        return JSONResponse({"message": f"bad fault: {exc}"}, status_code=400)
    for fault in faults:
        state.inject(fault)
    return JSONResponse({"faults": [asdict(f) for f in state.faults]})


async def _health(state: MockAtlanticState, request: Request) -> Response:
    return JSONResponse({"status": "ok", "queries": len(state.queries), "buckets": len(state.buckets)})
