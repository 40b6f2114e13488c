"""Atlantic (Herodotus) prover client (SPEC §7.3): queries, buckets, artifacts, L2 verification.

Idempotency: a child query carries ``dedupId``; before submitting, the client looks the id up and
returns the existing query unless it FAILED. The lookup and the submission are retried together,
so a submission whose answer was lost is found by the next lookup instead of being sent twice.

Retries (improvement over SPEC, which retries only network errors): transport errors, timeouts,
HTTP 429 and 5xx are retried with backoff within a budget; other 4xx and malformed answers fail
at once with a typed error.

Completion webhooks (improvement over polling every 30 s): ``parse_atlantic_webhook`` reads the
JSON body Atlantic (or the mock server) POSTs when a query ends::

    {"atlanticQueryId": "<query id>", "status": "DONE" | "FAILED" | ...,
     "bucketId": "<bucket id>" | null, "step": "<query step>" | null, "errorReason": "<text>" | null}

The webhook only says "look now": the job's verification still asks ``get_task_status``, so a
forged call costs one status request and cannot mark anything done. It is authenticated all the same
(``--atlantic-webhook-secret``: the secret in the callback URL's path, or the body signed as
``X-Atlantic-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, ``atlantic_webhook_signature``); we found
no public statement of what Atlantic itself signs, so the path form is the one a plain callback URL gives.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import io
import json
import logging
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.proving import (
    DEFAULT_ARTIFACTS_BASE_URL,
    AggregationArtifacts,
    CreateBucket,
    CreateJob,
    RunAggregation,
    TaskStatus,
    TaskType,
)
from madara_orchestrator.interfaces import FactChecker
from madara_orchestrator.provers.errors import (
    AggregatorQueryNotFound,
    InvalidProofFormat,
    MalformedResponse,
    MissingCairoVerifierProgramHash,
    ProverApiError,
    TaskInvalid,
)
from madara_orchestrator.provers.http import HttpProver, RetryPolicy, json_object, raise_for_status
from madara_orchestrator.starknet.facts import fact_hex
from madara_orchestrator.starknet.stone_proof import InvalidProof, parse_proof
from madara_orchestrator.tls import default_tls

log = logging.getLogger(__name__)

SERVICE = "Atlantic"
DEFAULT_N_STEPS = 40_000_000
AGGREGATOR_VERSION = "snos_aggregator_0.14.1"
L2_VERIFICATION_LAYOUT = "recursive_with_poseidon"

PIE_FILE = "pie.cairo0.zip"
DA_BLOB_FILE = "da_blob.json"
PROOF_FILE = "proof.json"
SNOS_OUTPUT_FILE = "snos_output.json"


class AtlanticQueryStatus(enum.StrEnum):
    RECEIVED = "RECEIVED"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    FAILED = "FAILED"


class AtlanticBucketStatus(enum.StrEnum):
    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    FAILED = "FAILED"


class AtlanticQueryStep(enum.StrEnum):
    TRACE_GENERATION = "TRACE_GENERATION"
    PROOF_GENERATION = "PROOF_GENERATION"
    PROOF_VERIFICATION = "PROOF_VERIFICATION"
    PROOF_VERIFICATION_ON_L1 = "PROOF_VERIFICATION_ON_L1"
    PROOF_VERIFICATION_ON_L2 = "PROOF_VERIFICATION_ON_L2"
    PROOF_GENERATION_AND_VERIFICATION = "PROOF_GENERATION_AND_VERIFICATION"
    FACT_HASH_REGISTRATION = "FACT_HASH_REGISTRATION"
    TRACE_AND_METADATA_GENERATION = "TRACE_AND_METADATA_GENERATION"

    @classmethod
    def from_cli(cls, value: str) -> AtlanticQueryStep:
        """Accept the kebab-case CLI name (``proof-generation``) or the wire name."""
        try:
            return cls(value.strip().upper().replace("-", "_"))
        except ValueError:
            names = ", ".join(s.lower().replace("_", "-") for s in cls)
            raise InvalidInput(f"unknown Atlantic query step {value!r}: expected one of {names}") from None


AGGREGATOR_STEPS = (
    AtlanticQueryStep.FACT_HASH_REGISTRATION,
    AtlanticQueryStep.PROOF_GENERATION_AND_VERIFICATION,
)


class AtlanticNetwork(enum.StrEnum):
    MAINNET = "MAINNET"
    TESTNET = "TESTNET"


class AtlanticJobSize(enum.StrEnum):
    S = "S"
    M = "M"
    L = "L"


def declared_job_size(n_steps: int | None) -> AtlanticJobSize:
    """Millions of steps (40 M when unknown): 0–12 → S, 13–29 → M, else L."""
    millions = (DEFAULT_N_STEPS if n_steps is None else n_steps) // 1_000_000
    if millions <= 12:
        return AtlanticJobSize.S
    if millions <= 29:
        return AtlanticJobSize.M
    return AtlanticJobSize.L


S = TypeVar("S", AtlanticQueryStatus, AtlanticBucketStatus)


def _status(kind: type[S], value: dict[str, Any], operation: str, what: str) -> S:
    """The ``status`` of a query or bucket object; ``MalformedResponse`` naming ``what`` when unknown."""
    try:
        return kind(str(value.get("status")))
    except ValueError:
        raise MalformedResponse(
            f"{SERVICE} {operation}: {what} has an unknown status {value.get('status')!r}"
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class AtlanticQuery:
    id: str
    status: AtlanticQueryStatus
    step: str | None = None
    bucket_id: str | None = None
    bucket_job_index: int | None = None
    error_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any, operation: str) -> AtlanticQuery:
        if not isinstance(value, dict):
            raise MalformedResponse(f"{SERVICE} {operation}: a query should be an object, got {str(value)[:200]!r}")
        query_id = value.get("id")
        if not isinstance(query_id, str) or not query_id:
            raise MalformedResponse(f"{SERVICE} {operation}: query without an id: {str(value)[:200]!r}")
        status = _status(AtlanticQueryStatus, value, operation, f"query {query_id}")
        index = value.get("bucketJobIndex")
        return cls(
            id=query_id,
            status=status,
            step=_opt_str(value.get("step")),
            bucket_id=_opt_str(value.get("bucketId")),
            bucket_job_index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            error_reason=_opt_str(value.get("errorReason")),
            raw=value,
        )

    @property
    def is_final(self) -> bool:
        return self.status in (AtlanticQueryStatus.DONE, AtlanticQueryStatus.FAILED)


@dataclass(frozen=True, slots=True, kw_only=True)
class AtlanticBucket:
    id: str
    status: AtlanticBucketStatus
    queries: tuple[AtlanticQuery, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any, operation: str, queries: Any = ()) -> AtlanticBucket:
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            raise MalformedResponse(f"{SERVICE} {operation}: a bucket should have an id: {str(value)[:200]!r}")
        status = _status(AtlanticBucketStatus, value, operation, f"bucket {value['id']}")
        if not isinstance(queries, list | tuple):
            raise MalformedResponse(f"{SERVICE} {operation}: bucket queries should be a list")
        return cls(
            id=value["id"],
            status=status,
            queries=tuple(AtlanticQuery.from_json(q, operation) for q in queries),
            raw=value,
        )


ATLANTIC_SIGNATURE_HEADER = "X-Atlantic-Signature"


def atlantic_webhook_signature(secret: str, body: bytes) -> str:
    """The ``X-Atlantic-Signature`` value that authenticates ``body``: ``sha256=`` + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_atlantic_webhook(body: bytes) -> AtlanticQuery:
    """Read a completion webhook (format in the module docstring) as the query it tells of; stricter than
    ``AtlanticQuery.from_json`` (``bucketId``, ``step``, ``errorReason`` must be strings or null), and
    ``InvalidInput`` when malformed.

    Also accepts ``{"atlanticQuery": {<query object>}}``, the shape of the status endpoint.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"Atlantic webhook: the body is not JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise InvalidInput("Atlantic webhook: the body should be a JSON object")
    if isinstance(payload.get("atlanticQuery"), dict):
        query = payload["atlanticQuery"]
    else:
        query = {**payload, "id": payload.get("atlanticQueryId")}
    query_id = query.get("id")
    if not isinstance(query_id, str) or not query_id.strip():
        raise InvalidInput("Atlantic webhook: atlanticQueryId is missing or not a non-empty string")
    try:
        AtlanticQueryStatus(str(query.get("status")))
    except ValueError:
        expected = ", ".join(AtlanticQueryStatus)
        raise InvalidInput(f"Atlantic webhook: status {query.get('status')!r} is not one of {expected}") from None
    for name in ("bucketId", "step", "errorReason"):
        if query.get(name) is not None and not isinstance(query[name], str):
            raise InvalidInput(f"Atlantic webhook: {name} should be a string or null")
    return AtlanticQuery.from_json(query, "webhook")


@dataclass(frozen=True, slots=True, kw_only=True)
class AtlanticConfig:
    service_url: str
    api_key: str
    network: AtlanticNetwork
    artifacts_base_url: str = DEFAULT_ARTIFACTS_BASE_URL
    mock_fact_hash: str = "false"
    """``"true"`` marks facts and proofs as mocked on Atlantic's side and disables fact checks."""
    result: AtlanticQueryStep = AtlanticQueryStep.PROOF_GENERATION
    cairo_vm: str = "rust"
    sharp_prover: str = "stone"
    settlement_layer: str = "ethereum"
    prover_layout: str = "dynamic"
    """Sent as ``layout`` only when settling on Starknet."""
    cairo_verifier_program_hash: str | None = None
    chain_id: str | None = None
    """The chain id as text (``SN_SEPOLIA``); buckets get it as ``0x`` + hex of its ASCII bytes."""
    fee_token_address: int | None = None
    """The chain's STRK fee token; when None it is asked of ``fee_token_source`` (the feeder gateway)."""
    da_public_keys: tuple[int, ...] = ()
    """``--da-public-keys``: sent as ``public_keys``, omitted when empty."""
    aggregator_version: str = AGGREGATOR_VERSION
    timeout_s: float = 60.0
    """Per HTTP request (connect, read, write); artifact downloads get four times as long."""
    attempt_timeout_s: float = 300.0
    """Bound on one whole attempt (a big PIE upload included), on top of httpx's per-phase timeouts."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def is_fact_mocked(self) -> bool:
        return self.mock_fact_hash.strip().lower() == "true"


def _is_retryable_status(status: int, body: str) -> bool:
    return status == 429 or status >= 500


class AtlanticClient(HttpProver):
    """Implements ``ProverClient`` against the Atlantic REST API."""

    service = SERVICE
    unsupported_message = "Atlantic does not support PIE-based aggregation: use buckets (RunAggregation)"
    config: AtlanticConfig

    def __init__(
        self,
        config: AtlanticConfig,
        *,
        fact_checker: FactChecker | None = None,
        client: httpx.AsyncClient | None = None,
        chain_id_source: Callable[[], Awaitable[str]] | None = None,
        fee_token_source: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        """``chain_id_source`` gives ``starknet_chainId`` (a hex felt) when ``config.chain_id`` is not set, and
        ``fee_token_source`` the chain's STRK fee token (the feeder gateway's ``get_contract_addresses``) when
        ``config.fee_token_address`` is not: both are only known once the sequencer answers, so they are
        asked at the first bucket, then kept."""
        self.config = config
        self._chain_id_source = chain_id_source
        self._chain_id_hex: str | None = None
        self._fee_token_source = fee_token_source
        self._fee_token: int | None = config.fee_token_address
        self._service_url = config.service_url.rstrip("/")
        self._artifacts_url = config.artifacts_base_url.rstrip("/")
        self._fact_checker = None if config.is_fact_mocked else fact_checker
        own = client or httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s), verify=default_tls())
        super().__init__(own, owns_client=client is None)

    # -- plumbing -------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, operation: str, *, allow_404: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One attempt: the API key header, the answer's status classified."""
        headers = {"api-key": self.config.api_key, "accept": "application/json"}
        response = await self._client.request(method, f"{self._service_url}/{path}", headers=headers, **kwargs)
        if not (allow_404 and response.status_code == 404):
            raise_for_status(response, SERVICE, operation, _is_retryable_status)
        return response

    def _form(self, fields: list[tuple[str, str]]) -> dict[str, list[str]]:
        """Multipart text fields in order, repeated names kept, plus the default ``mockFactHash``."""
        form: dict[str, list[str]] = {}
        for name, value in [*fields, ("mockFactHash", self.config.mock_fact_hash)]:
            form.setdefault(name, []).append(value)
        return form

    # -- queries --------------------------------------------------------------------------------

    async def find_query_by_dedup_id(self, dedup_id: str) -> AtlanticQuery | None:
        result: AtlanticQuery | None = await self._retry("dedup lookup", lambda: self._lookup_once(dedup_id))
        return result

    async def get_query(self, query_id: str) -> AtlanticQuery:
        async def call() -> AtlanticQuery:
            response = await self._request("GET", f"atlantic-query/{query_id}", "query status")
            body = json_object(response, SERVICE, "query status")
            return AtlanticQuery.from_json(body.get("atlanticQuery"), "query status")

        result: AtlanticQuery = await self._retry("query status", call)
        return result

    async def _submit_query(self, task: CreateJob) -> str:
        """Dedup lookup, then submission; retried as a whole so a lost answer is not a second query."""
        n_steps = task.num_steps if task.num_steps is not None else _pie_n_steps(task.cairo_pie_zip)

        async def call() -> str:
            existing = await self._lookup_once(task.dedup_id)
            if existing is not None and existing.status is not AtlanticQueryStatus.FAILED:
                if existing.bucket_id != task.bucket_id or existing.bucket_job_index != task.bucket_job_index:
                    raise TaskInvalid(
                        f"Atlantic query {existing.id} with dedupId {task.dedup_id} is in bucket "
                        f"{existing.bucket_id} at index {existing.bucket_job_index}, but this task asks for "
                        f"bucket {task.bucket_id} at index {task.bucket_job_index}"
                    )
                log.info("Atlantic: dedupId %s already submitted as query %s", task.dedup_id, existing.id)
                return existing.id
            fields = [
                ("declaredJobSize", declared_job_size(n_steps).value),
                ("result", self.config.result.value),
                ("network", self.config.network.value),
                ("cairoVersion", "cairo0"),
                ("cairoVm", self.config.cairo_vm),
                ("sharpProver", self.config.sharp_prover),
                ("dedupId", task.dedup_id),
            ]
            if task.bucket_id is not None:
                fields.append(("bucketId", task.bucket_id))
            if task.bucket_job_index is not None:
                fields.append(("bucketJobIndex", str(task.bucket_job_index)))
            if self.config.settlement_layer.lower() == "starknet":
                fields += [
                    ("result", AtlanticQueryStep.PROOF_GENERATION.value),
                    ("layout", self.config.prover_layout),
                ]
            response = await self._request(
                "POST",
                "atlantic-query",
                "submit query",
                data=self._form(fields),
                files={"pieFile": ("pie.zip", task.cairo_pie_zip, "application/zip")},
            )
            return _query_id(json_object(response, SERVICE, "submit query"), "submit query")

        query_id: str = await self._retry("submit query", call)
        log.info("Atlantic: submitted dedupId %s as query %s", task.dedup_id, query_id)
        return query_id

    async def _lookup_once(self, dedup_id: str) -> AtlanticQuery | None:
        """One dedup lookup (404 means "no such query")."""
        response = await self._request(
            "GET", "atlantic-query-by-dedup-id", "dedup lookup", params={"dedupId": dedup_id}, allow_404=True
        )
        if response.status_code == 404:
            return None
        body = json_object(response, SERVICE, "dedup lookup")
        return AtlanticQuery.from_json(body.get("atlanticQuery"), "dedup lookup")

    # -- buckets --------------------------------------------------------------------------------

    async def create_bucket(self) -> AtlanticBucket:
        params: dict[str, Any] = {"use_kzg_da": True, "full_output": False}
        chain_id_hex = await self.chain_id_hex()
        if chain_id_hex is not None:
            params["chain_id_hex"] = chain_id_hex
        fee_token = await self.fee_token_address()
        if fee_token is not None:
            params["fee_token_address"] = hex(fee_token)
        if self.config.da_public_keys:
            params["public_keys"] = [hex(key) for key in self.config.da_public_keys]
        payload = {
            "externalId": None,
            "nodeWidth": None,
            "aggregatorVersion": self.config.aggregator_version,
            "aggregatorParams": params,
            "mockProof": self.config.is_fact_mocked,
        }

        async def call() -> AtlanticBucket:
            response = await self._request("POST", "buckets", "create bucket", json=payload)
            body = json_object(response, SERVICE, "create bucket")
            return AtlanticBucket.from_json(body.get("atlanticBucket"), "create bucket")

        bucket: AtlanticBucket = await self._retry("create bucket", call)
        log.info("Atlantic: created bucket %s", bucket.id)
        return bucket

    async def chain_id_hex(self) -> str | None:
        """``0x`` + hex of the chain id's ASCII bytes (SPEC §7.3), which is ``starknet_chainId`` as the node
        gives it (``0x534e5f5345504f4c4941`` for SN_SEPOLIA); None when no chain id is known."""
        if self.config.chain_id is not None:
            return "0x" + self.config.chain_id.encode("ascii").hex()
        if self._chain_id_hex is None and self._chain_id_source is not None:
            raw = await self._chain_id_source()
            try:
                value = int(raw, 16)
            except ValueError:
                raise InvalidInput(f"the chain id {raw!r:.80} is not a hex felt") from None
            self._chain_id_hex = "0x" + value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big").hex()
        return self._chain_id_hex

    async def fee_token_address(self) -> int | None:
        """The chain's STRK fee token (it enters the OS config hash the aggregator checks); None when unknown."""
        if self._fee_token is None and self._fee_token_source is not None:
            self._fee_token = await self._fee_token_source()
        return self._fee_token

    async def get_bucket(self, bucket_id: str) -> AtlanticBucket:
        async def call() -> AtlanticBucket:
            response = await self._request("GET", f"buckets/{bucket_id}", "get bucket")
            body = json_object(response, SERVICE, "get bucket")
            return AtlanticBucket.from_json(body.get("bucket"), "get bucket", body.get("queries", []))

        bucket: AtlanticBucket = await self._retry("get bucket", call)
        return bucket

    async def close_bucket(self, bucket_id: str) -> AtlanticBucket:
        async def call() -> AtlanticBucket:
            response = await self._request("POST", "buckets/close", "close bucket", params={"bucketId": bucket_id})
            body = json_object(response, SERVICE, "close bucket")
            return AtlanticBucket.from_json(body.get("atlanticBucket"), "close bucket")

        bucket: AtlanticBucket = await self._retry("close bucket", call)
        log.info("Atlantic: closed bucket %s (status %s)", bucket_id, bucket.status)
        return bucket

    # -- artifacts ------------------------------------------------------------------------------

    async def download_artifact(self, query_id: str, file: str) -> bytes:
        url = f"{self._artifacts_url}/queries/{query_id}/{file}"
        operation = f"download {file}"

        async def call() -> bytes:
            response = await self._client.get(url, timeout=httpx.Timeout(self.config.timeout_s * 4))
            raise_for_status(response, SERVICE, operation, _is_retryable_status)
            return response.content

        content: bytes = await self._retry(operation, call)
        return content

    # -- ProverClient ---------------------------------------------------------------------------

    async def _submit_job(self, task: CreateJob) -> str:
        return await self._submit_query(task)

    async def _submit_bucket(self, task: CreateBucket) -> str:
        return (await self.create_bucket()).id

    async def _submit_aggregation(self, task: RunAggregation) -> str:
        bucket = await self.get_bucket(task.bucket_id)
        if bucket.status is AtlanticBucketStatus.OPEN:
            await self.close_bucket(task.bucket_id)
        return task.bucket_id

    async def get_task_status(self, task_type: TaskType, job_key: str, fact: str | None = None) -> TaskStatus:
        if task_type is TaskType.AGGREGATION:
            bucket = await self.get_bucket(job_key)
            if bucket.status is AtlanticBucketStatus.DONE:
                return TaskStatus.succeeded()
            if bucket.status is AtlanticBucketStatus.FAILED:
                reasons = [q.error_reason for q in bucket.queries if q.error_reason]
                return TaskStatus.failed(_failure_message(reasons[0] if reasons else None))
            return TaskStatus.processing()
        query = await self.get_query(job_key)
        if query.status is AtlanticQueryStatus.FAILED:
            return TaskStatus.failed(_failure_message(query.error_reason))
        if query.status is not AtlanticQueryStatus.DONE:
            return TaskStatus.processing()
        if self._fact_checker is None or fact is None:
            return TaskStatus.succeeded()
        normalised = fact_hex(fact)
        if await self._fact_checker.is_valid(normalised):
            return TaskStatus.succeeded()
        return TaskStatus.failed(f"Fact {normalised} is not valid or not registered")

    async def get_proof(self, task_id: str) -> str:
        raw = await self.download_artifact(task_id, PROOF_FILE)
        return validate_proof(raw)

    async def submit_l2_query(
        self, task_id: str, proof: str, n_steps: int | None, *, dedup_id: str | None = None
    ) -> str:
        """The L2 verification query of SPEC §7.3. Unlike the original, which sends no ``dedupId`` (a crash
        between submission and recording submits the proof again), ``dedup_id`` is sent and looked up first."""
        if not self.config.cairo_verifier_program_hash:
            raise MissingCairoVerifierProgramHash()
        fields = [
            ("programHash", self.config.cairo_verifier_program_hash),
            ("layout", L2_VERIFICATION_LAYOUT),
            ("declaredJobSize", declared_job_size(n_steps).value),
            ("network", self.config.network.value),
            ("result", AtlanticQueryStep.PROOF_VERIFICATION_ON_L2.value),
            ("cairoVm", "python"),
            ("cairoVersion", "cairo0"),
            ("sharpProver", self.config.sharp_prover),
        ]

        if dedup_id is not None:
            fields.append(("dedupId", dedup_id))

        async def call() -> str:
            if dedup_id is not None:
                existing = await self._lookup_once(dedup_id)
                if existing is not None and existing.status is not AtlanticQueryStatus.FAILED:
                    log.info("Atlantic: L2 verification %s already submitted as query %s", dedup_id, existing.id)
                    return existing.id
            response = await self._request(
                "POST",
                "atlantic-query",
                "submit L2 verification",
                data=self._form(fields),
                files={"inputFile": ("proof.json", proof.encode(), "application/json")},
            )
            return _query_id(json_object(response, SERVICE, "submit L2 verification"), "submit L2 verification")

        query_id: str = await self._retry("submit L2 verification", call)
        log.info("Atlantic: L2 verification of task %s submitted as query %s", task_id, query_id)
        return query_id

    async def get_aggregation_artifacts(self, external_id: str, include_proof: bool) -> AggregationArtifacts:
        bucket = await self.get_bucket(external_id)
        aggregator = next((q for q in bucket.queries if q.step in AGGREGATOR_STEPS), None)
        if aggregator is None:
            raise AggregatorQueryNotFound(
                f"Atlantic bucket {external_id} has no aggregator query (step FACT_HASH_REGISTRATION or "
                "PROOF_GENERATION_AND_VERIFICATION) yet; is the bucket closed and done?"
            )
        pie = await self.download_artifact(aggregator.id, PIE_FILE)
        da_segment = await self.download_artifact(aggregator.id, DA_BLOB_FILE)
        proof = await self.download_artifact(aggregator.id, PROOF_FILE) if include_proof else None
        return AggregationArtifacts(cairo_pie=pie, da_segment=da_segment, proof=proof)


def validate_proof(raw: bytes) -> str:
    """A Stark proof (Stone prover JSON): an object with ``proof_parameters`` and ``public_input``."""
    try:
        text = raw.decode()
        parse_proof(text)
    except UnicodeDecodeError as exc:
        raise InvalidProofFormat(f"the proof is not JSON: {exc}") from exc
    except InvalidProof as exc:
        raise InvalidProofFormat(str(exc)) from exc
    return text


def _failure_message(reason: str | None) -> str:
    message = "Task failed while processing on Atlantic side"
    return f"{message}: {reason}" if reason else message


def _query_id(body: dict[str, Any], operation: str) -> str:
    query_id = body.get("atlanticQueryId")
    if not isinstance(query_id, str) or not query_id:
        raise MalformedResponse(f"{SERVICE} {operation}: the answer has no atlanticQueryId: {str(body)[:200]!r}")
    return query_id


def _pie_n_steps(cairo_pie_zip: bytes) -> int | None:
    """The PIE's ``n_steps`` for the job size; None (→ the default size) when it cannot be read."""
    try:
        with zipfile.ZipFile(io.BytesIO(cairo_pie_zip)) as archive:
            steps = json.loads(archive.read("execution_resources.json")).get("n_steps")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, AttributeError):
        return None
    return steps if isinstance(steps, int) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


__all__ = [
    "ATLANTIC_SIGNATURE_HEADER",
    "AtlanticBucket",
    "AtlanticBucketStatus",
    "AtlanticClient",
    "AtlanticConfig",
    "AtlanticJobSize",
    "AtlanticNetwork",
    "AtlanticQuery",
    "AtlanticQueryStatus",
    "AtlanticQueryStep",
    "ProverApiError",
    "atlantic_webhook_signature",
    "declared_job_size",
    "parse_atlantic_webhook",
]
