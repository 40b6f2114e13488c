"""SHARP (StarkWare shared prover) client (SPEC §7.2): mutual TLS, child and applicative jobs.

Job keys are deterministic (the SNOS fact for a child, ``0x`` + aggregator fact for the applicative
job), so a resubmission first asks ``get_status``: anything but ``UNKNOWN`` means the job exists.
Retries: transport errors, 5xx and "infrastructure" answers (HTML pages, bare ``404 page not
found``, a string serialised as a char map) are retried with backoff; other 4xx fail at once.
"""

from __future__ import annotations

import base64
import enum
import json
import logging
import re
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx

from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.proving import (
    AggregationArtifacts,
    CreateJob,
    RunAggregationWithPie,
    TaskStatus,
    TaskType,
)
from madara_orchestrator.interfaces import FactChecker
from madara_orchestrator.provers.errors import MalformedResponse, ProverApiError, TaskInvalid
from madara_orchestrator.provers.http import HttpProver, RetryPolicy, json_object, raise_for_status
from madara_orchestrator.starknet.facts import fact_hex

log = logging.getLogger(__name__)

SERVICE = "SHARP"
_API_KEYWORDS = ("status", "error", "message", "code", "cairo_job_key", "invalid", "job")


class SharpStatus(enum.StrEnum):
    UNKNOWN = "UNKNOWN"
    NOT_CREATED = "NOT_CREATED"
    IN_PROGRESS = "IN_PROGRESS"
    PROCESSED = "PROCESSED"
    INVALID = "INVALID"
    FAILED = "FAILED"


class InvalidReason(enum.StrEnum):
    INVALID_CAIRO_PIE_FILE_FORMAT = "INVALID_CAIRO_PIE_FILE_FORMAT"
    UNKNOWN = "UNKNOWN"
    """Any other reason string."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SharpJobStatus:
    status: SharpStatus
    invalid_reason: InvalidReason | None = None
    error_log: str | None = None
    validation_done: bool | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SharpJobStatus:
        try:
            status = SharpStatus(str(body.get("status")))
        except ValueError:
            raise MalformedResponse(f"{SERVICE} get_status: unknown status {body.get('status')!r}") from None
        reason = body.get("invalid_reason")
        validation = body.get("validation_done")
        error_log = body.get("error_log")
        return cls(
            status=status,
            invalid_reason=None
            if reason is None
            else InvalidReason(reason)
            if reason in InvalidReason.__members__
            else InvalidReason.UNKNOWN,
            error_log=error_log if isinstance(error_log, str) else None,
            validation_done=validation if isinstance(validation, bool) else None,
        )


def map_sharp_status(
    task_type: TaskType, job: SharpJobStatus, job_key: str, *, is_fact_valid: bool | None = None
) -> TaskStatus:
    """SPEC §7.2's table. ``is_fact_valid`` is the GPS verifier's answer for a PROCESSED aggregation.

    ``None`` there means no fact checker is configured: the job's status alone decides.
    """
    is_job = task_type is TaskType.JOB
    match job.status:
        case SharpStatus.FAILED:
            return TaskStatus.failed(job.error_log or "")
        case SharpStatus.INVALID:
            what = "Job" if is_job else "Applicative job"
            reason = job.invalid_reason.value if job.invalid_reason else "UNKNOWN"
            return TaskStatus.failed(f"{what} is invalid: {reason}. error_log: {job.error_log or 'none'}")
        case SharpStatus.UNKNOWN:
            what = "Job" if is_job else "Applicative job"
            return TaskStatus.failed(f"{what} not found: {job_key}")
        case SharpStatus.PROCESSED:
            if is_job or is_fact_valid is None or is_fact_valid:
                return TaskStatus.succeeded()
            return TaskStatus.processing()
        case SharpStatus.IN_PROGRESS:
            return TaskStatus.succeeded() if is_job and job.validation_done else TaskStatus.processing()
        case SharpStatus.NOT_CREATED:
            return TaskStatus.processing()
    raise AssertionError(job.status)  # pragma: no cover - the match is exhaustive


def is_infrastructure_response(status_code: int, body: str) -> bool:
    """A proxy or load balancer answered, not the SHARP API: worth asking again."""
    text = body.strip()
    lowered = text.lower()
    if status_code in (502, 503, 504):
        return True
    if lowered.startswith(("<!doctype html", "<html")) or "<html" in lowered[:500]:
        return True
    if lowered == "404 page not found":
        return True
    if _is_char_map(text):
        return True
    if status_code == 404:
        try:
            json.loads(text)
        except ValueError:
            return not any(k in lowered for k in _API_KEYWORDS)
    return False


def _is_char_map(text: str) -> bool:
    """``{"0": "4", "1": "0", …}``: a string serialised character by character (nginx-style error)."""
    if not text.startswith("{"):
        return False
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(value, dict)
        and len(value) > 0
        and all(re.fullmatch(r"\d+", k) and isinstance(v, str) and len(v) == 1 for k, v in value.items())
    )


def is_retryable_status(status_code: int, body: str) -> bool:
    return status_code >= 500 or status_code == 429 or is_infrastructure_response(status_code, body)


def build_ssl_context(user_crt_file: str, user_key_file: str, server_crt_file: str) -> ssl.SSLContext:
    """Client identity from the user certificate and key; the server certificate as an extra trusted root."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=server_crt_file)
        context.load_cert_chain(certfile=user_crt_file, keyfile=user_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"SHARP TLS material cannot be loaded: {exc}"]) from exc
    return context


@dataclass(frozen=True, slots=True, kw_only=True)
class SharpConfig:
    url: str
    customer_id: str
    user_crt_file: str | None = None
    user_key_file: str | None = None
    server_crt_file: str | None = None
    """The three PEM files of mutual TLS; all or none (none only for tests over plain HTTP)."""
    timeout_s: float = 60.0
    attempt_timeout_s: float = 300.0
    """Bound on one whole attempt (a big PIE upload included), on top of httpx's per-phase timeouts."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class SharpClient(HttpProver):
    """Implements ``ProverClient`` for SHARP. ``fact_checker`` is the GPS verifier (``isValid``)."""

    service = SERVICE
    unsupported_message = "SHARP has no buckets: aggregate locally and submit RunAggregationWithPie"
    config: SharpConfig

    def __init__(
        self,
        config: SharpConfig,
        *,
        fact_checker: FactChecker | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self._base = config.url.rstrip("/") + "/"
        self._fact_checker = fact_checker
        self.idempotency_hits = 0
        owns_client = client is None
        if client is None:
            tls = [config.user_crt_file, config.user_key_file, config.server_crt_file]
            verify: ssl.SSLContext | bool = True
            if all(tls):
                verify = build_ssl_context(*(str(p) for p in tls))
            elif any(tls):
                raise ConfigError(["SHARP needs all three PEM files: user certificate, user key, server certificate"])
            client = httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(config.timeout_s))
        super().__init__(client, owns_client=owns_client)

    # -- plumbing -------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, operation: str, **kwargs: Any) -> httpx.Response:
        """One attempt; every request carries ``customer_id``."""
        params = {"customer_id": self.config.customer_id, **kwargs.pop("params", {})}
        response = await self._client.request(method, self._base + path, params=params, **kwargs)
        raise_for_status(response, SERVICE, operation, is_retryable_status)
        if response.is_success and is_infrastructure_response(response.status_code, response.text):
            raise ProverApiError(SERVICE, operation, response.status_code, response.text, retryable=True)
        return response

    # -- API ------------------------------------------------------------------------------------

    async def _status_once(self, job_key: str) -> SharpJobStatus:
        response = await self._request("GET", "get_status", "get_status", params={"cairo_job_key": job_key})
        return SharpJobStatus.from_json(json_object(response, SERVICE, "get_status"))

    async def get_status(self, job_key: str) -> SharpJobStatus:
        status: SharpJobStatus = await self._retry("get_status", lambda: self._status_once(job_key))
        return status

    async def is_alive(self) -> bool:
        try:
            await self._request("GET", "is_alive", "is_alive")
        except (httpx.HTTPError, ProverApiError):
            return False
        return True

    async def _submit_once(self, job_key: str, path: str, params: dict[str, str], body: dict[str, Any]) -> str:
        existing = await self._status_once(job_key)
        if existing.status is not SharpStatus.UNKNOWN:
            self.idempotency_hits += 1
            log.info("SHARP: job %s already exists (%s); not resubmitting", job_key, existing.status)
            return job_key
        await self._request("POST", path, path, params={"cairo_job_key": job_key, **params}, json=body)
        log.info("SHARP: submitted %s %s", path, job_key)
        return job_key

    async def add_job(self, job_key: str, cairo_pie_zip: bytes) -> str:
        params = {"offchain_proof": "true", "for_applicative": "true", "program_hash_function": "PEDERSEN"}
        body = {"cairo_pie_encoded": base64.b64encode(cairo_pie_zip).decode()}
        key: str = await self._retry("add_job", lambda: self._submit_once(job_key, "add_job", params, body))
        return key

    async def add_applicative_job(self, job_key: str, cairo_pie_zip: bytes, children: list[str]) -> str:
        params = {"offchain_proof": "false", "program_hash_function": "PEDERSEN"}
        body = {
            "cairo_pie_encoded": base64.b64encode(cairo_pie_zip).decode(),
            "children_cairo_job_keys": list(children),
        }
        key: str = await self._retry(
            "add_applicative_job", lambda: self._submit_once(job_key, "add_applicative_job", params, body)
        )
        return key

    # -- ProverClient ---------------------------------------------------------------------------

    async def _submit_job(self, task: CreateJob) -> str:
        return await self.add_job(task.dedup_id, task.cairo_pie_zip)

    async def _submit_aggregation_pie(self, task: RunAggregationWithPie) -> str:
        if task.fact_hash is None:
            raise TaskInvalid("fact_hash is required for SHARP applicative jobs")
        key = fact_hex(task.fact_hash)
        return await self.add_applicative_job(key, task.cairo_pie_zip, task.children_cairo_job_keys)

    async def get_task_status(self, task_type: TaskType, job_key: str, fact: str | None = None) -> TaskStatus:
        job = await self.get_status(job_key)
        is_fact_valid: bool | None = None
        if task_type is TaskType.AGGREGATION and job.status is SharpStatus.PROCESSED:
            if fact is None:
                raise TaskInvalid("Fact required for checking aggregator job status for SHARP prover")
            if self._fact_checker is not None:
                is_fact_valid = await self._fact_checker.is_valid(fact_hex(fact))
        return map_sharp_status(task_type, job, job_key, is_fact_valid=is_fact_valid)

    async def get_proof(self, task_id: str) -> str:
        async def call() -> str:
            response = await self._request("GET", "get_proof", "get_proof", params={"cairo_job_key": task_id})
            return response.text

        proof: str = await self._retry("get_proof", call)
        return proof

    async def submit_l2_query(
        self, task_id: str, proof: str, n_steps: int | None, *, dedup_id: str | None = None
    ) -> str:
        raise TaskInvalid("submit_l2_query is not supported by SHARP for L2")

    async def get_aggregation_artifacts(self, external_id: str, include_proof: bool) -> AggregationArtifacts:
        proof = (await self.get_proof(external_id)).encode() if include_proof else None
        return AggregationArtifacts(proof=proof)
