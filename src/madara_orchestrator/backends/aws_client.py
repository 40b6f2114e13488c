"""What every AWS backend shares: the clients, the thread pool their blocking calls run on, and the one
translation of AWS failures into the orchestrator's errors.

Credentials, region and endpoint come from the standard AWS sources: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared config files, instance and
container roles; the region from ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` or the profile's (an ARN's
region wins for the resource it names); the endpoint from ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_<SERVICE>``), e.g. for moto or LocalStack.

Failures: an unreachable endpoint, a 5xx, throttling → ``BackendUnavailable`` (the engine waits it out);
a missing resource, denied access, rejected or missing credentials → ``ConfigError`` with one line that
names the resource and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError, InvalidInput, OrchestratorError

BotoClient = Any
"""A boto3 client. boto3 ships no type information: every response is read into typed values where it is
received."""

T = TypeVar("T")

READ_TIMEOUT_S = 30.0
"""Longer than the longest SQS long poll (20 s)."""
CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_WORKERS = 32

SETUP_HINT = "run `orchestrator setup --aws` with the same --aws-prefix and identifiers, or check AWS_REGION"

MISSING_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NoSuchBucket",
        "NotFound",
        "NoSuchEntity",
        "ResourceNotFoundException",
    }
)
DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "AuthorizationError", "Forbidden", "403", "AllAccessDisabled"}
)
CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "InvalidSecurity",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "AuthFailure",
        "MissingAuthenticationToken",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "KMS.ThrottlingException",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call (``NoSuchKey``, ``404`` for a HEAD, ...)."""
    error = exc.response.get("Error") or {}
    return str(error.get("Code") or "")


def _error_message(exc: ClientError) -> str:
    error = exc.response.get("Error") or {}
    return str(error.get("Message") or "").strip()


def _http_status(exc: ClientError) -> int:
    meta = exc.response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode")
    return int(status) if isinstance(status, int) else 0


def translate(exc: BotoCoreError | ClientError, *, action: str, resource: str) -> OrchestratorError:
    """The orchestrator error for a failed AWS call: ``action`` is the API operation, ``resource`` names the
    thing, e.g. ``SQS queue 'mo_worker_trigger_queue'``."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        detail = _error_message(exc) or code
        status = _http_status(exc)
        if code in TRANSIENT_CODES or status >= 500:
            return BackendUnavailable(f"AWS unavailable ({action} on {resource}): {code or status} {detail}".rstrip())
        if code in MISSING_CODES or (code == "404" and status == 404):
            bucket = (exc.response.get("Error") or {}).get("BucketName")
            if code == "NoSuchBucket" and bucket:
                resource = f"S3 bucket {str(bucket)!r}"
            return ConfigError([f"{resource} does not exist: {SETUP_HINT}"])
        if code in DENIED_CODES or (status == 403 and code not in CREDENTIAL_CODES):
            return ConfigError(
                [f"access denied to {resource} ({action}): give the orchestrator's AWS identity that permission"]
            )
        if code in CREDENTIAL_CODES:
            return ConfigError(
                [
                    f"AWS rejected the credentials ({code}) on {action}: check AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or AWS_PROFILE"
                ]
            )
        return OrchestratorError(f"{action} on {resource} failed: {code}: {detail}")
    if isinstance(exc, ConnectionError | HTTPClientError):
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        where = f" at {endpoint}" if endpoint else ""
        return BackendUnavailable(f"AWS unreachable{where} ({action} on {resource}): {exc}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return ConfigError(
            [
                f"no usable AWS credentials ({type(exc).__name__}): set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance or container role"
            ]
        )
    if isinstance(exc, NoRegionError):
        return ConfigError([_NO_REGION])
    if isinstance(exc, ParamValidationError):
        return InvalidInput(f"{action} on {resource}: {exc}")
    return OrchestratorError(f"{action} on {resource} failed: {exc}")


_NO_REGION = "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a region in the AWS profile)"


@contextlib.contextmanager
def aws_errors(action: str, resource: str) -> Iterator[None]:
    """Re-raise a failed AWS call as the orchestrator's error (``translate``)."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise translate(exc, action=action, resource=resource) from exc


def raise_translated(exc: BotoCoreError | ClientError, *, action: str, resource: str) -> NoReturn:
    raise translate(exc, action=action, resource=resource) from exc


@functools.cache
def _data_loader() -> botocore.loaders.Loader:
    """The SDK's data files (the endpoints, each service's model), read once a process: a new session reads
    them again (the endpoints file alone is about a megabyte of JSON). They are the installed SDK's, the same
    for every session; credentials, region and configuration stay each session's own."""
    return botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))


def new_session() -> boto3.session.Session:
    """A boto3 session that reads the SDK's data files through the process's one loader."""
    core = botocore.session.get_session()
    loader = _data_loader()
    core.register_component("data_loader", loader)
    session = boto3.session.Session(botocore_session=core)
    loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))  # boto3 adds its folder at each session
    return session


def configured_region(override: str | None = None) -> str | None:
    """``override`` (an ARN's region), else ``AWS_REGION``, else the SDK's (``AWS_DEFAULT_REGION``, profile)."""
    if override:
        return override
    region = os.environ.get("AWS_REGION")
    if region:
        return region
    session_region: str | None = new_session().region_name
    return session_region


def custom_endpoint() -> str | None:
    """The endpoint set with ``AWS_ENDPOINT_URL`` (moto, LocalStack), None on AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL") or None


class Aws:
    """One boto3 session, one client per (service, region), and one thread pool for the blocking calls.

    boto3 clients are thread-safe; the session is not, so clients are made under a lock. ``call`` runs a
    blocking function on the pool (never on the event loop) and translates its AWS failures."""

    def __init__(self, *, region: str | None = None, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        self.region = configured_region(region)
        self._session = new_session()
        self._clients: dict[tuple[str, str], BotoClient] = {}
        self._lock = threading.Lock()
        self._max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aws")

    def client(self, service: str, *, region: str | None = None) -> BotoClient:
        """The client of ``service`` in ``region`` (default: the configured region), made once."""
        chosen = region or self.region
        if not chosen:
            raise ConfigError([_NO_REGION])
        key = (service, chosen)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                config = Config(
                    region_name=chosen,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    read_timeout=READ_TIMEOUT_S,
                    retries={"mode": "standard"},
                    max_pool_connections=self._max_workers,
                )
                try:
                    client = self._session.client(service, region_name=chosen, config=config)
                except (BotoCoreError, ClientError) as exc:
                    raise translate(exc, action="create client", resource=f"AWS {service}") from exc
                self._clients[key] = client
            return client

    async def call(self, action: str, resource: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (blocking boto3 calls) on the pool; AWS failures become the orchestrator's errors."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except (BotoCoreError, ClientError) as exc:
            raise translate(exc, action=action, resource=resource) from exc

    def close(self) -> None:
        """Stop the pool (calls in flight finish) and close the clients' connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    client.close()
            self._clients.clear()
