"""Madara's feeder gateway over HTTP: the block bouncer weights batching needs (SPEC §5.3), and the
chain's fee tokens (``get_contract_addresses``, SPEC §17: the STRK one enters the OS config hash).

``GET <base>/feeder_gateway/get_block_bouncer_weights?blockNumber=N`` answers blockifier's
``BouncerWeights`` as JSON, or HTTP 400 with ``{"code": "StarknetErrorCode...", "message": ...}``.
Transport failures, timeouts and 5xx/429 are retried a limited number of times, then become
``BackendUnavailable``; a block the gateway does not know yet is ``BlockNotKnownYet``; an answer that
is not a feeder gateway's (404, 405, 401, 403 without a Starknet error code) is ``FeederGatewayUnusable``,
an outage to wait out until the URL is fixed (one line in the log, no traceback).

The base URL is split properly: its path gets ``/feeder_gateway/...`` appended, and its query (an API key
of a provider that takes it there) is sent as the query of every request, next to ``blockNumber``; its
credentials go in the ``Authorization`` header (httpx). Messages name only ``scheme://host[:port]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from madara_orchestrator.domain.batches import BouncerWeights
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, Retryable
from madara_orchestrator.domain.redaction import url_origin
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.retried_http import RetriedHttpClient

log = logging.getLogger(__name__)

BOUNCER_WEIGHTS_PATH = "feeder_gateway/get_block_bouncer_weights"
CONTRACT_ADDRESSES_PATH = "feeder_gateway/get_contract_addresses"
BLOCK_NOT_FOUND_CODE = "StarknetErrorCode.BLOCK_NOT_FOUND"


class FeederGatewayError(InvalidInput):
    """The gateway refused the request (HTTP 4xx); ``code`` is its ``StarknetErrorCode`` if it gave one."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class BlockNotKnownYet(FeederGatewayError, Retryable):
    """The gateway has no closed block with that number (yet): ask again once the block exists."""


class FeederGatewayUnusable(FeederGatewayError, BackendUnavailable):
    """What answered is not a feeder gateway that serves us (no such route, method not allowed, not
    authorised): wrong URL or key. Waited out like an outage until the configuration is fixed."""


UNUSABLE_STATUSES = frozenset({401, 403, 404, 405})


class FeederGatewayClient(RetriedHttpClient):
    """Implements ``FeederGateway``. ``base_url`` is the gateway's root (Madara's gateway address, its
    ``--gateway-port``; a URL already ending in ``/feeder_gateway`` is accepted too), optionally with a
    query sent with every request."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        attempts: int = 3,
        retry_pause_s: float = 2.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        parts = urlsplit(base_url.strip())
        path = parts.path.rstrip("/").removesuffix("/feeder_gateway")
        self.base_url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        """Scheme, credentials, host, port and path: what ``/feeder_gateway/...`` is appended to."""
        self.query = parse_qsl(parts.query, keep_blank_values=True)
        """The base URL's query, sent with every request (a provider's API key)."""
        self.shown_url = url_origin(base_url) + ("/…" if path else "")
        """How messages name the gateway: no credentials, path or query (they may hold a key)."""
        super().__init__(timeout_s=timeout_s, attempts=attempts, retry_pause_s=retry_pause_s, client=client)

    @property
    def bouncer_weights_url(self) -> str:
        """The route's URL, without the query (``query`` and ``blockNumber`` are sent as parameters)."""
        return f"{self.base_url}/{BOUNCER_WEIGHTS_PATH}"

    async def get_block_bouncer_weights(self, block_number: int) -> BouncerWeights:
        url = self.bouncer_weights_url
        where = f"bouncer weights of block {block_number} from {self.shown_url}/{BOUNCER_WEIGHTS_PATH}"
        params = httpx.QueryParams([*self.query, ("blockNumber", str(block_number))])
        data = _answer(await self._get(url, params, where), block_number, where)
        return BouncerWeights.from_json(data, where=where)

    async def get_fee_tokens(self) -> FeeTokens:
        """``GET /feeder_gateway/get_contract_addresses``: ``strk_l2_token_address`` and ``eth_l2_token_address``."""
        where = f"contract addresses from {self.shown_url}/{CONTRACT_ADDRESSES_PATH}"
        response = await self._get(
            f"{self.base_url}/{CONTRACT_ADDRESSES_PATH}", httpx.QueryParams([*self.query]), where
        )
        data = _answer(response, None, where)
        tokens = []
        for name in ("strk_l2_token_address", "eth_l2_token_address"):
            value = data.get(name) if isinstance(data, dict) else None
            try:
                tokens.append(int(value, 16) if isinstance(value, str) else -1)
            except ValueError:
                tokens.append(-1)
            if not 0 <= tokens[-1] < STARKNET_PRIME:
                raise InvalidInput(f"{where}: {name} is missing or not a felt: {str(value)[:80]!r}")
        return FeeTokens(strk=tokens[0], eth=tokens[1])

    async def _get(self, url: str, params: httpx.QueryParams, where: str) -> httpx.Response:
        """The response once it is not a transport failure, 429 or 5xx; those are retried, then raised."""

        async def attempt() -> httpx.Response:
            response = await self._client.get(url, params=params)
            if response.status_code == 429 or response.status_code >= 500:
                raise _Overloaded(response)
            return response

        def unavailable(exc: BaseException) -> BackendUnavailable:
            return BackendUnavailable(
                f"feeder gateway unavailable: {where} failed after {self._attempts} attempts: {self.cause(exc)}"
            )

        return await self.retried(
            attempt,
            is_retryable=lambda exc: isinstance(exc, httpx.TransportError | _Overloaded),
            service="feeder gateway",
            subject=where,
            log=log,
            warning="feeder gateway: %s, attempt %d/%d failed: %s",
            unavailable=unavailable,
        )

    def cause(self, exc: BaseException) -> str:
        return str(exc) if isinstance(exc, _Overloaded) else super().cause(exc)


class _Overloaded(Exception):
    """HTTP 429 or 5xx from the gateway: asked again."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code} {response.text[:200]!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeTokens:
    """The chain's fee token contracts on L2, as its feeder gateway names them."""

    strk: int
    eth: int


def _answer(response: httpx.Response, block_number: int | None, where: str) -> Any:
    """The JSON of a 2xx or 3xx answer; a refusal (4xx) raised as ``_refusal`` says."""
    if response.status_code >= 400:
        raise _refusal(response, block_number, where)
    try:
        return response.json()
    except ValueError:
        raise InvalidInput(f"{where}: the answer is not JSON: {response.text[:200]!r}") from None


def _refusal(response: httpx.Response, block_number: int | None, where: str) -> FeederGatewayError:
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        pass
    code = body.get("code") if isinstance(body, dict) and isinstance(body.get("code"), str) else None
    message = body.get("message") if isinstance(body, dict) else None
    detail = f"{code}: {message}" if code else f"HTTP {response.status_code} {response.text[:200]!r}"
    if code == BLOCK_NOT_FOUND_CODE:
        return BlockNotKnownYet(
            f"{where}: the gateway does not know block {block_number} yet ({detail})",
            code=code,
            status=response.status_code,
        )
    if code is None and response.status_code in UNUSABLE_STATUSES:
        return FeederGatewayUnusable(
            f"{where}: HTTP {response.status_code}, not a feeder gateway's answer (wrong URL or key): check "
            "--madara-feeder-gateway-url (Madara serves its gateway on --gateway-port, 8080 by default, "
            "not on its RPC port)",
            status=response.status_code,
        )
    return FeederGatewayError(f"{where}: refused ({detail})", code=code, status=response.status_code)
