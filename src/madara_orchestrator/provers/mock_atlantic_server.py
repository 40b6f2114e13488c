"""A server speaking the Atlantic REST subset ``AtlanticClient`` uses (SPEC §7.5), for tests and devnets.

Routes: ``GET atlantic-query-by-dedup-id``, ``POST atlantic-query`` (multipart), ``GET
atlantic-query/{id}``, ``POST buckets``, ``GET buckets/{id}``, ``POST buckets/close``, and the
artifacts under ``/artifacts/queries/{id}/{file}``. A submitted PIE is read and its real GPS fact
computed; an unreadable PIE makes the query FAILED with the reason. Queries go RECEIVED →
IN_PROGRESS → DONE over ``processing_s``; then the completion webhook is POSTed (if configured).

Knobs: ``latency_s`` (every API answer), ``failure_rate`` (share of API requests answered 503,
drawn from ``random.Random(seed)``: the same request sequence gives the same failures) and
one-shot ``Fault``s injected by tests (``state.inject``) or over HTTP (``POST /_mock/faults``).

Buckets: ``POST buckets`` is refused (400) unless its ``aggregatorVersion``, ``mockProof`` and
``aggregatorParams`` are what the aggregator takes (``bucket_request_problem``); the bucket keeps them.
Aggregation: when a bucket is closed and every child PIE holds a Starknet OS output (SPEC §6.6) of
consecutive block ranges, the bucket's chain id, fee token and DA public keys must give the children's
OS config hash, as the 0.14.1 aggregator asserts (``config_hash_problem``; else the bucket FAILS), and
the aggregator query's artifacts are consistent with the children, so they can be
settled: ``pie.cairo0.zip`` is a Cairo PIE of a mock aggregator program whose output is the
bootloader-style children section followed by the aggregator's own output (first block's pre-state
to last block's post-state, a KZG section for the blobs of the DA segment, the children's messages),
and ``da_blob.json`` is the DA segment (the children's state-diff areas, prefixed by their count).
With a ``fact_registry``, the aggregator fact (program hash with the ``AGGREGATOR`` prefix, see
``mock_aggregator_program_hash``) is registered before the bucket is DONE, as Atlantic's
FACT_HASH_REGISTRATION step does on L1. Children that are not OS outputs (a test program's PIE)
keep the old behaviour: the last child's PIE and a placeholder DA segment. The devnet SNOS runner's
stand-in PIE (a zip with ``devnet.json``) is accepted as a child, its output read from it.

Proofs: the ``proof.json`` of a query with a PIE is a Stone-shaped proof (``stone_proof_json``, no STARK
in it) of the bootloader running the PIE, as Atlantic proves a PIE: its public input attests the
bootloaded output ``[1, len + 2, program_hash, *PIE output]`` (``devnet.layout_bridge``), so
``program_output_of_proof`` gives what Piltover reads as ``snos_output``. The PIE's program hash is the one
computed for its fact; a devnet stand-in's is the one it records. An L2 verification query
(``result=PROOF_VERIFICATION_ON_L2``, file ``inputFile``, SPEC §7.9) must hold a wrapped Stone proof
(``wrap_proof``) and a hex ``programHash`` (the layout bridge program, ``--cairo-verifier-program-hash``);
it is answered with the layout bridge's proof as ``proof.json``, whose bootloaded output is
``[1, 4, programHash, verified program hash, poseidon(verified output)]``, and with an ``l2_fact_registry``
its fact ``poseidon(bootloader_program_hash, poseidon(bridge output))`` is registered there (Integrity on
the L2), with the security bits of the bridge proof, as Atlantic does. A bad input or a failed registration
ends the query FAILED.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import itertools
import json
import logging
import random
import socket
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from madara_orchestrator.devnet.layout_bridge import (
    BOOTLOADER_PROGRAM_HASH,
    BRIDGE_VERIFIER_CONFIG,
    VerifierConfiguration,
    bootloaded_output,
    bridge_output,
    l2_fact,
    output_hash,
    security_bits,
)
from madara_orchestrator.devnet.program_output import DevnetStateTransition, build_program_output
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.interfaces import FactRegistry
from madara_orchestrator.provers.atlantic import ATLANTIC_SIGNATURE_HEADER, atlantic_webhook_signature
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.facts import (
    add_aggregator_prefix,
    aggregator_fact_info,
    compute_program_hash,
    fact_info,
)
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.os_config import os_config_hash
from madara_orchestrator.starknet.pie import (
    CairoPie,
    ExecutionResources,
    PieMemory,
    PieMetadata,
    PieProgram,
    Relocatable,
    SegmentInfo,
    read_pie,
    write_pie,
)
from madara_orchestrator.starknet.stone_proof import (
    InvalidProof,
    program_output_of_proof,
    stone_proof_json,
    unwrap_proof,
)

log = logging.getLogger(__name__)

ARTIFACTS_PREFIX = "/artifacts"
AGGREGATOR_PROGRAM_HASH = "0x" + "ab" * 31 + "01"
"""Placeholder program hash reported for the mock aggregator query when the children are not OS outputs."""
MOCK_AGGREGATOR_PROGRAM = PieProgram(
    data=(0x40780017FFF7FFF, 1, 0x208B7FFF7FFF7FFE, int.from_bytes(b"mock atlantic aggregator", "big")),
    builtins=("output",),
    main=0,
)
"""The program of the mock aggregator PIE: never run, only hashed (a core contract is deployed with its hash)."""
OS_HEADER_SIZE = 10
L2_VERIFICATION = "PROOF_VERIFICATION_ON_L2"
BRIDGE_LAYOUT = "recursive_with_poseidon"


class L2FactRegistry(Protocol):
    """Where an L2 verification query's fact is registered (Integrity's fact registry on the L2)."""

    async def register(self, fact: int, *, security_bits: int, verifier_config: VerifierConfiguration) -> str:
        """Register a verification of ``fact`` (Integrity's ``register_fact``); returns the transaction hash.
        Raises when the registration fails."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class MockAtlanticConfig:
    latency_s: float = 0.0
    failure_rate: float = 0.0
    seed: int = 0
    processing_s: float = 0.5
    """Seconds from submission (or bucket close) to DONE."""
    webhook_url: str | None = None
    webhook_secret: str | None = None
    """When set, each webhook carries ``X-Atlantic-Signature: sha256=<HMAC-SHA256 of the body>`` (the
    orchestrator's ``--atlantic-webhook-secret``); the URL stays free of it, so the mock's logs are too."""
    api_key: str | None = None
    """When set, the ``api-key`` header must equal it; otherwise any non-empty key is accepted."""
    compute_facts: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise InvalidInput(f"failure rate {self.failure_rate} is not between 0 and 1")
        if self.latency_s < 0 or self.processing_s < 0:
            raise InvalidInput("latency and processing time cannot be negative")


@dataclass(slots=True, kw_only=True)
class Fault:
    """A one-shot misbehaviour applied to the next ``count`` matching API requests (or queries).

    ``status``: answer ``status_code`` with ``body``; ``delay``: sleep ``delay_s`` first (client
    timeouts); ``malformed``: answer 200 with ``body`` (not what the client expects);
    ``fail_query``: the next submitted query ends FAILED with ``reason``.
    """

    kind: Literal["status", "delay", "malformed", "fail_query"]
    count: int = 1
    status_code: int = 503
    delay_s: float = 0.0
    body: str = "not json"
    reason: str = "injected failure"
    path_contains: str = ""
    method: str = ""
    """Only requests with this HTTP method (any when empty)."""


@dataclass(slots=True)
class _Query:
    data: dict[str, Any]
    pie: bytes | None = None
    proof_input: bytes | None = None
    da_segment: list[int] | None = None
    """The aggregator's DA segment (``da_blob.json``); None serves a placeholder."""
    proof: str | None = None
    """The ``proof.json`` served: set by an L2 verification, else built from the PIE on first download."""
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True, kw_only=True)
class MockAtlanticState:
    config: MockAtlanticConfig
    queries: dict[str, _Query] = field(default_factory=dict)
    by_dedup: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    webhook_deliveries: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """``(method, path)`` of every request, for tests."""
    submissions: int = 0
    rng: random.Random = field(default_factory=random.Random)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    fact_registry: FactRegistry | None = None
    """Where aggregator facts are registered (Atlantic's FACT_HASH_REGISTRATION on L1); None: nowhere."""
    l2_fact_registry: L2FactRegistry | None = None
    """Where L2 verification queries register the bridge output's fact; None: nowhere."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def take_fault(self, path: str, kinds: tuple[str, ...], method: str = "") -> Fault | None:
        for fault in self.faults:
            if fault.kind in kinds and fault.path_contains in path and fault.method in ("", method):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}_{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------------
# The app


def create_app(config: MockAtlanticConfig | None = None, state: MockAtlanticState | None = None) -> Starlette:
    """A Starlette app; ``app.state.mock`` is the ``MockAtlanticState`` (tests poke at it)."""
    state = state or MockAtlanticState(config=config or MockAtlanticConfig())
    cfg = state.config

    def api(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
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
            return await handler(request)

        return wrapped

    async def dedup_lookup(request: Request) -> Response:
        dedup_id = request.query_params.get("dedupId", "")
        query_id = state.by_dedup.get(dedup_id)
        if query_id is None:
            return JSONResponse({"message": f"no query with dedupId {dedup_id}"}, status_code=404)
        return JSONResponse({"atlanticQuery": state.queries[query_id].data})

    async def submit_query(request: Request) -> Response:
        try:
            form = await request.form()
        except ClientDisconnect:  # the client died mid-upload (a killed orchestrator): nothing was submitted
            return JSONResponse({"message": "the client disconnected during the upload"}, status_code=400)
        fields: dict[str, list[str]] = {}
        files: dict[str, bytes] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[name] = await value.read()
            else:
                fields.setdefault(name, []).append(value)

        def first(name: str) -> str | None:
            return fields.get(name, [None])[0]

        dedup_id = first("dedupId")
        if dedup_id and dedup_id in state.by_dedup:
            existing = state.queries[state.by_dedup[dedup_id]]
            if existing.data["status"] != "FAILED":
                return JSONResponse({"atlanticQueryId": existing.data["id"]})
        if "pieFile" not in files and "inputFile" not in files:
            return JSONResponse({"message": "pieFile or inputFile is required"}, status_code=400)
        bucket_id = first("bucketId")
        if bucket_id is not None:
            bucket = state.buckets.get(bucket_id)
            if bucket is None:
                return JSONResponse({"message": f"unknown bucket {bucket_id}"}, status_code=400)
            if bucket["status"] != "OPEN":
                return JSONResponse({"message": f"bucket {bucket_id} is {bucket['status']}"}, status_code=400)
        index = first("bucketJobIndex")
        query_id = state.new_id("query")
        state.submissions += 1
        results = fields.get("result", ["PROOF_GENERATION"])
        data: dict[str, Any] = {
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
            "createdAt": _now(),
            "completedAt": None,
            "result": results[0],
            "network": first("network"),
            "hints": None,
            "sharpProver": first("sharpProver"),
            "bucketId": bucket_id,
            "bucketJobIndex": int(index) if index and index.isdigit() else None,
            "customerName": "mock",
            "isJobSizeValid": True,
            "isProofMocked": True,
            "dedupId": dedup_id,
            "formFields": fields,
        }
        query = _Query(data=data, pie=files.get("pieFile"), proof_input=files.get("inputFile"))
        state.queries[query_id] = query
        if dedup_id:
            state.by_dedup[dedup_id] = query_id
        if bucket_id is not None:
            state.buckets[bucket_id]["leaves"] += 1
        failure = state.take_fault(request.url.path, ("fail_query",))
        _spawn(state, _process_query(state, query, failure.reason if failure else None))
        return JSONResponse({"atlanticQueryId": query_id})

    async def query_status(request: Request) -> Response:
        query = state.queries.get(request.path_params["query_id"])
        if query is None:
            return JSONResponse({"message": "query not found"}, status_code=404)
        query_id = query.data["id"]
        urls = [f"{ARTIFACTS_PREFIX}/queries/{query_id}/{name}" for name in _artifact_names(query)]
        return JSONResponse({"atlanticQuery": query.data, "metadataUrls": urls})

    async def create_bucket(request: Request) -> Response:
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
            "createdAt": _now(),
        }
        state.buckets[bucket_id] = bucket
        return JSONResponse({"atlanticBucket": bucket})

    async def get_bucket(request: Request) -> Response:
        bucket = state.buckets.get(request.path_params["bucket_id"])
        if bucket is None:
            return JSONResponse({"message": "bucket not found"}, status_code=404)
        queries = [q.data for q in state.queries.values() if q.data["bucketId"] == bucket["id"]]
        return JSONResponse({"bucket": bucket, "queries": queries})

    async def close_bucket(request: Request) -> Response:
        bucket = state.buckets.get(request.query_params.get("bucketId", ""))
        if bucket is None:
            return JSONResponse({"message": "bucket not found"}, status_code=404)
        if bucket["status"] != "OPEN":
            return JSONResponse({"message": f"bucket is {bucket['status']}, not OPEN"}, status_code=400)
        bucket["status"] = "IN_PROGRESS"
        _spawn(state, _aggregate_bucket(state, bucket))
        return JSONResponse({"atlanticBucket": bucket})

    async def artifact(request: Request) -> Response:
        query = state.queries.get(request.path_params["query_id"])
        name = request.path_params["file"]
        if query is None or query.data["status"] != "DONE" or name not in _artifact_names(query):
            return PlainTextResponse("not found", status_code=404)
        if name == "proof.json" and query.proof is None:
            query.proof = await asyncio.to_thread(_proof_of_query, query)
        return _artifact(state, query, name)

    async def add_faults(request: Request) -> Response:
        try:
            body = await request.json()
            items = body if isinstance(body, list) else [body]
            faults = [Fault(**item) for item in items]
        except (ValueError, TypeError) as exc:
            return JSONResponse({"message": f"bad fault: {exc}"}, status_code=400)
        for fault in faults:
            state.inject(fault)
        return JSONResponse({"faults": [asdict(f) for f in state.faults]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "queries": len(state.queries), "buckets": len(state.buckets)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)

    app = Starlette(
        routes=[
            Route("/atlantic-query-by-dedup-id", api(dedup_lookup), methods=["GET"]),
            Route("/atlantic-query", api(submit_query), methods=["POST"]),
            Route("/atlantic-query/{query_id}", api(query_status), methods=["GET"]),
            Route("/buckets", api(create_bucket), methods=["POST"]),
            Route("/buckets/close", api(close_bucket), methods=["POST"]),
            Route("/buckets/{bucket_id}", api(get_bucket), methods=["GET"]),
            Route(ARTIFACTS_PREFIX + "/queries/{query_id}/{file}", api(artifact), methods=["GET"]),
            Route("/_mock/faults", add_faults, methods=["POST"]),
            Route("/_mock/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.mock = state
    return app


# --------------------------------------------------------------------------------------------------
# Query life cycle


def _spawn(state: MockAtlanticState, coro: Awaitable[None]) -> None:
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def _process_query(state: MockAtlanticState, query: _Query, injected_failure: str | None) -> None:
    cfg = state.config
    await asyncio.sleep(cfg.processing_s / 2)
    query.data["status"] = "IN_PROGRESS"
    query.data["steps"] = ["TRACE_GENERATION"]
    reason = injected_failure
    if reason is None and query.pie is not None:
        reason = await asyncio.to_thread(_fill_fact, query, cfg.compute_facts)
    if reason is None and query.proof_input is not None and query.data["result"] == L2_VERIFICATION:
        reason = await _verify_on_l2(state, query)
    elif reason is None and query.proof_input is not None:
        try:
            json.loads(query.proof_input)
        except ValueError as exc:
            reason = f"inputFile is not JSON: {exc}"
    await asyncio.sleep(cfg.processing_s / 2)
    _finish(query, reason)
    await _deliver_webhook(state, query)


def _fill_fact(query: _Query, compute_facts: bool) -> str | None:
    """Read the PIE and record its program hash and fact; the reason when the PIE is unusable.

    The devnet SNOS runner's stand-in (no Cairo program to hash) is accepted without a fact."""
    assert query.pie is not None
    try:
        pie = read_pie(query.pie)
        if compute_facts:
            info = fact_info(pie)
            query.data["programHash"] = hex(info.program_hash)
            query.data["integrityFactHash"] = info.fact
            query.data["sharpFactHash"] = info.fact
    except InvalidInput as exc:
        if _devnet_stand_in_output(query.pie) is not None:
            program_hash = _devnet_stand_in_program_hash(query.pie)
            if program_hash is not None:
                query.data["programHash"] = hex(program_hash)
            return None
        return f"INVALID_CAIRO_PIE: {exc}"
    return None


async def _verify_on_l2(state: MockAtlanticState, query: _Query) -> str | None:
    """Check the wrapped proof, build the layout bridge's proof and register its fact; the failure reason."""
    assert query.proof_input is not None
    program_hash = query.data.get("programHash")
    if not program_hash:
        return "programHash (the Cairo verifier program hash) is required for PROOF_VERIFICATION_ON_L2"
    try:
        verifier_program_hash = int(program_hash, 16)
    except ValueError:
        return f"programHash {program_hash!r:.80} is not a hex felt"
    try:
        verified = unwrap_proof(query.proof_input)
        snos_output = program_output_of_proof(verified)
    except InvalidProof as exc:
        return f"INVALID_PROOF: {exc}"
    bridge = bridge_output(
        snos_output,
        layout_bridge_program_hash=verifier_program_hash,
        verified_program_hash=_program_hash_of_proof(verified),
    )
    query.proof = stone_proof_json(bridge, layout=BRIDGE_LAYOUT, program_hash=hex(BOOTLOADER_PROGRAM_HASH))
    fact = l2_fact(BOOTLOADER_PROGRAM_HASH, bridge)
    query.data.update(integrityFactHash=hex(fact), chain="L2")
    if state.l2_fact_registry is not None:
        try:
            tx_hash = await state.l2_fact_registry.register(
                fact,
                security_bits=security_bits(json.loads(query.proof)["proof_parameters"]),
                verifier_config=BRIDGE_VERIFIER_CONFIG,
            )
        except Exception as exc:
            log.warning("mock Atlantic: registering L2 fact %s failed: %s", hex(fact), exc)
            return f"fact registration failed: {exc}"
        query.data["transactionId"] = tx_hash
        log.info("mock Atlantic: registered L2 fact %s in %s", hex(fact), tx_hash)
    return None


def _proof_of_query(query: _Query) -> str:
    """A Stone-shaped proof of the bootloader running the query's PIE: it attests the bootloaded output
    (the PIE's output behind the bootloader's task header; no output when there is no readable PIE)."""
    data = query.data
    output = _child_output(query.pie)
    bootloaded = [] if output is None else bootloaded_output(int(data.get("programHash") or "0x0", 16), output)
    return stone_proof_json(
        bootloaded, layout=data.get("layout") or "dynamic", program_hash=hex(BOOTLOADER_PROGRAM_HASH)
    )


def _program_hash_of_proof(proof: dict[str, Any]) -> int:
    """The hash of the program a Stone proof proves, as the Cairo verifier outputs it: the one its public
    input declares (the mock's proofs do), else a Poseidon digest of its program segment's cells (the mock
    does not compute a Cairo program hash from them)."""
    public_input = proof["public_input"]
    declared = public_input.get("program_hash")
    with contextlib.suppress(ValueError, TypeError):
        return int(declared, 16)
    try:
        program = public_input["memory_segments"]["program"]
        begin, stop = int(program["begin_addr"]), int(program["stop_ptr"])
        cells = [c for c in public_input["public_memory"] if begin <= int(c["address"]) < stop]
        return output_hash([int(str(c["value"]), 0) for c in cells])
    except (KeyError, TypeError, ValueError):
        return output_hash([])


def _finish(query: _Query, reason: str | None) -> None:
    data = query.data
    data["completedAt"] = _now()
    query.done.set()
    if reason is not None:
        data["status"] = "FAILED"
        data["errorReason"] = reason
        return
    data["status"] = "DONE"
    data["step"] = data["result"]
    data["steps"] = ["TRACE_GENERATION", data["result"]]


async def _aggregate_bucket(state: MockAtlanticState, bucket: dict[str, Any]) -> None:
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
        "createdAt": _now(),
        "completedAt": _now(),
        "isProofMocked": True,
    }
    last_pie = next((q.pie for q in reversed(children) if q.pie is not None), None)
    aggregator = _Query(data=data, pie=last_pie)
    reason: str | None = None
    if failed or not children:
        reason = f"{len(failed)} child queries did not finish" if failed else "the bucket has no child queries"
    else:
        ordered = sorted(children, key=lambda q: q.data["bucketJobIndex"] or 0)
        outputs = [_child_output(q.pie) for q in ordered]
        os_outputs = [o for o in outputs if o is not None and _is_os_output(o)]
        if len(os_outputs) == len(outputs) and _are_consecutive(os_outputs):
            reason = await _aggregate_os_outputs(state, aggregator, os_outputs, bucket.get("aggregatorParams"))
    if reason is not None:
        data["status"] = "FAILED"
        data["errorReason"] = reason
        bucket["status"] = "FAILED"
    else:
        bucket["status"] = "DONE"
    state.queries[query_id] = aggregator
    await _deliver_webhook(state, aggregator)


async def _aggregate_os_outputs(
    state: MockAtlanticState, aggregator: _Query, outputs: list[list[int]], params: Any
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


# --------------------------------------------------------------------------------------------------
# The bucket's aggregator parameters

AGGREGATOR_VERSIONS = ("snos_aggregator_0.13.2", "snos_aggregator_0.13.3", "snos_aggregator_0.14.1")
AGGREGATOR_PARAMS = {"use_kzg_da", "full_output", "chain_id_hex", "fee_token_address", "public_keys"}


def _is_hex_felt(value: Any) -> bool:
    if not isinstance(value, str) or value[:2].lower() != "0x" or not 2 < len(value) <= 66:
        return False
    try:
        return int(value, 16) < STARKNET_PRIME
    except ValueError:
        return False


def bucket_request_problem(body: Any) -> str | None:
    """Why a ``POST buckets`` body is refused (HTTP 400), else None: a known ``aggregatorVersion``, a boolean
    ``mockProof``, and ``aggregatorParams`` with boolean ``use_kzg_da``/``full_output``, and optionally
    ``chain_id_hex``, ``fee_token_address`` (hex felts) and ``public_keys`` (a non-empty list of hex felts),
    nothing else (the aggregator's input, ``AggregatorInput`` of StarkWare's sequencer)."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if body.get("aggregatorVersion") not in AGGREGATOR_VERSIONS:
        return f"aggregatorVersion must be one of {', '.join(AGGREGATOR_VERSIONS)}"
    if not isinstance(body.get("mockProof", False), bool):
        return "mockProof must be a boolean"
    params = body.get("aggregatorParams")
    if not isinstance(params, dict):
        return "aggregatorParams must be an object"
    unknown = sorted(set(params) - AGGREGATOR_PARAMS)
    if unknown:
        return f"aggregatorParams: unknown field(s) {', '.join(unknown)}"
    for name in ("use_kzg_da", "full_output"):
        if not isinstance(params.get(name), bool):
            return f"aggregatorParams.{name} must be a boolean"
    for name in ("chain_id_hex", "fee_token_address"):
        if name in params and not _is_hex_felt(params[name]):
            return f"aggregatorParams.{name} must be a hex felt (0x...), got {str(params[name])[:80]!r}"
    keys = params.get("public_keys")
    if "public_keys" in params and (not isinstance(keys, list) or not keys or not all(map(_is_hex_felt, keys))):
        return "aggregatorParams.public_keys must be a non-empty list of hex felts (0x...)"
    return None


def config_hash_problem(params: Any, outputs: Sequence[Sequence[int]]) -> str | None:
    """What the 0.14.1 aggregator asserts before combining (``check_public_keys``): the OS config hash of its
    input (chain id, fee token, DA public keys) is the children's ``starknet_os_config_hash``. None when it is."""
    params = params if isinstance(params, dict) else {}
    if "chain_id_hex" not in params or "fee_token_address" not in params:
        return "aggregation failed: the bucket's aggregatorParams lack chain_id_hex or fee_token_address"
    keys = [int(k, 16) for k in params.get("public_keys") or []]
    expected = os_config_hash(int(params["chain_id_hex"], 16), int(params["fee_token_address"], 16), keys)
    for index, output in enumerate(outputs, start=1):
        if output[7] != expected:
            return (
                f"aggregation failed: child {index} has OS config hash {output[7]:#x}, but the bucket's chain id, "
                f"fee token and {len(keys)} DA public key(s) give {expected:#x}"
            )
    return None


# --------------------------------------------------------------------------------------------------
# A consistent mock aggregation


@functools.cache
def mock_aggregator_program_hash() -> int:
    """The aggregator program hash with the ``AGGREGATOR`` prefix: what the mock's facts are made with."""
    return add_aggregator_prefix(compute_program_hash(MOCK_AGGREGATOR_PROGRAM))


def _devnet_stand_in_output(data: bytes) -> list[int] | None:
    """The output of the devnet SNOS runner's stand-in PIE (a zip with ``devnet.json``), else None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            body = json.loads(archive.read("devnet.json"))
        output = body["output"]
        return [int(word, 16) for word in output] if isinstance(output, list) else None
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError):
        return None


def _devnet_stand_in_program_hash(data: bytes) -> int | None:
    """The program hash a devnet stand-in PIE records (``devnet_pie(..., program_hash=...)``), if any."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            value = json.loads(archive.read("devnet.json")).get("program_hash")
        return int(value, 16) if isinstance(value, str) else None
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError, OSError):
        return None


def _child_output(pie: bytes | None) -> list[int] | None:
    """A child's program output: the PIE's output segment, or the devnet stand-in's output."""
    if pie is None:
        return None
    try:
        return read_pie(pie).output_segment()
    except InvalidInput:
        return _devnet_stand_in_output(pie)


def _os_sections(output: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """``(L2→L1 message words, L1→L2 message words, state-diff area)`` of an OS output (SPEC §6.6)."""
    at = OS_HEADER_SIZE
    if output[8] == 1:
        at += 2 + 4 * output[OS_HEADER_SIZE + 1]
    to_l1 = list(output[at + 1 : at + 1 + output[at]])
    at += 1 + output[at]
    to_l2 = list(output[at + 1 : at + 1 + output[at]])
    at += 1 + output[at]
    if at > len(output):
        raise InvalidInput(f"OS output of {len(output)} words ends inside its message segments")
    return to_l1, to_l2, list(output[at:])


def _is_os_output(output: Sequence[int]) -> bool:
    if len(output) < OS_HEADER_SIZE + 2 or output[8] not in (0, 1) or output[9] not in (0, 1):
        return False
    if any(not 0 <= w < STARKNET_PRIME for w in output):
        return False
    try:
        _os_sections(output)
    except (InvalidInput, IndexError):
        return False
    return True


def _block(felt: int) -> int:
    """A block number felt as an int (P - 1 is the block before genesis, -1)."""
    return felt - STARKNET_PRIME if felt > STARKNET_PRIME // 2 else felt


def _are_consecutive(outputs: Sequence[Sequence[int]]) -> bool:
    """Each child starts where the previous one ended, and each moves forward."""
    if any(_block(o[3]) <= _block(o[2]) for o in outputs):
        return False
    return all(later[2] == earlier[3] for earlier, later in itertools.pairwise(outputs))


def build_mock_aggregation(children: Sequence[Sequence[int]]) -> tuple[bytes, list[int]]:
    """The aggregator PIE zip and DA segment for children OS outputs of consecutive block ranges.

    Output: ``[n, (len_i + 2, os_program_hash_i, child_i…)…]`` then the aggregator's own output in the
    OS layout, with a real KZG section for the DA segment's blobs and the children's messages."""
    if not children:
        raise InvalidInput("an aggregation needs at least one child")
    first, last = children[0], children[-1]
    to_l1: list[int] = []
    to_l2: list[int] = []
    diffs: list[int] = [len(children)]
    for child in children:
        messages_to_l1, messages_to_l2, diff = _os_sections(child)
        to_l1 += messages_to_l1
        to_l2 += messages_to_l2
        diffs += diff
    transition = DevnetStateTransition(
        initial_root=first[0],
        final_root=last[1],
        prev_block_number=_block(first[2]),
        new_block_number=_block(last[3]),
        prev_block_hash=first[4],
        new_block_hash=last[5],
        os_program_hash=first[6],
        config_hash=first[7],
    )
    own = build_program_output(transition, felts_to_blobs(diffs), rest=(len(to_l1), *to_l1, len(to_l2), *to_l2))
    output: list[int] = [len(children)]
    for child in children:
        output += [len(child) + 2, child[6], *child]
    output += own
    return _pie_with_output(MOCK_AGGREGATOR_PROGRAM, output), diffs


def _pie_with_output(program: PieProgram, output: Sequence[int]) -> bytes:
    """A structurally valid Cairo PIE: program segment 0, execution 1, output 2 holding ``output``."""
    cells: dict[Relocatable, int | Relocatable] = {Relocatable(0, i): w for i, w in enumerate(program.data)}
    cells[Relocatable(1, 0)] = Relocatable(2, 0)
    cells[Relocatable(1, 1)] = Relocatable(2, len(output))
    cells.update({Relocatable(2, i): w for i, w in enumerate(output)})
    pie = CairoPie(
        metadata=PieMetadata(
            program=program,
            program_segment=SegmentInfo(index=0, size=len(program.data)),
            execution_segment=SegmentInfo(index=1, size=2),
            ret_fp_segment=SegmentInfo(index=3, size=0),
            ret_pc_segment=SegmentInfo(index=4, size=0),
            builtin_segments={"output": SegmentInfo(index=2, size=len(output))},
        ),
        memory=PieMemory(cells),
        additional_data={"output_builtin": {"pages": {}, "attributes": {}}},
        execution_resources=ExecutionResources(
            n_steps=1000 + 10 * len(output), builtin_instance_counter={"output_builtin": len(output)}
        ),
    )
    return write_pie(pie)


def _artifact_names(query: _Query) -> list[str]:
    names = ["proof.json"]
    if query.pie is not None:
        names += ["pie.cairo0.zip", "da_blob.json"]
    return names


def _artifact(state: MockAtlanticState, query: _Query, name: str) -> Response:
    if name == "pie.cairo0.zip":
        return Response(query.pie or b"", media_type="application/zip")
    if name == "da_blob.json":
        return JSONResponse([hex(i) for i in (query.da_segment if query.da_segment is not None else range(4))])
    return Response(query.proof if query.proof is not None else _proof_of_query(query), media_type="application/json")


async def _deliver_webhook(state: MockAtlanticState, query: _Query) -> None:
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
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------------------------------
# Running it


class MockAtlanticServer:
    """The app under uvicorn on a socket of its own (port 0 → a free port), started and stopped in-process."""

    def __init__(
        self,
        config: MockAtlanticConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fact_registry: FactRegistry | None = None,
        l2_fact_registry: L2FactRegistry | None = None,
    ) -> None:
        """``fact_registry``: where aggregator facts are registered (an L1 fact registry in e2e tests);
        ``l2_fact_registry``: where L2 verification queries register their facts (the L3 devnet's L2)."""
        self.state = MockAtlanticState(
            config=config or MockAtlanticConfig(), fact_registry=fact_registry, l2_fact_registry=l2_fact_registry
        )
        self.app = create_app(state=self.state)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the mock Atlantic server is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def artifacts_url(self) -> str:
        return self.url + ARTIFACTS_PREFIX

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets NODELAY
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False, log_config=None)
        self._server = uvicorn.Server(config)
        # _serve skips uvicorn's signal capture: a Ctrl-C or SIGTERM is the embedding process's to handle (the
        # mock must keep answering while the orchestrator beside it shuts down gracefully).
        self._task = asyncio.create_task(self._server._serve(sockets=[sock]))
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if not self._server.started:
            await self.stop()
            raise RuntimeError("the mock Atlantic server did not start")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._task = None

    async def __aenter__(self) -> MockAtlanticServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def serve(config: MockAtlanticConfig, *, host: str = "127.0.0.1", port: int = 4001) -> None:
    """Run until interrupted (the ``orchestrator mock-atlantic`` command)."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
