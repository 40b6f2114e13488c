"""A remote signer holds the L1 key; the orchestrator asks it to sign each transaction with JSON-RPC
``eth_signTransaction`` (Web3Signer's protocol; OP's op-signer speaks the same), over HTTPS with a CA, a
client certificate and custom headers as OP's signer client has them (``--ethereum-signer-*``).

The request is the transaction object of the execution APIs: ``from``, ``to``, ``gas``, ``nonce``, ``value``,
``data`` (and ``input``), ``chainId``, ``maxFeePerGas``, ``maxPriorityFeePerGas`` and, for a blob transaction,
``maxFeePerBlobGas`` and ``blobVersionedHashes`` (never the blobs: the sidecar is added here). The answer is
the signed transaction's bytes; it is checked (``signing.check_signed``: same fields, low-s, signed by
``--ethereum-signer-address``) before it is stored and broadcast. A signer that ignores the blob fields (as
Web3Signer's ``eth_signTransaction`` does: it signs legacy and EIP-1559 transactions only) returns a type-2
transaction, which is refused with a line saying so.
"""

from __future__ import annotations

import itertools
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput
from madara_orchestrator.domain.eth_tx import BLOB_TX_TYPE, SignedBody, UnsignedTx
from madara_orchestrator.domain.redaction import url_origin
from madara_orchestrator.settlement.signing import check_signed


def parse_headers(text: str | None) -> tuple[tuple[str, str], ...]:
    """``K: V`` lines (one per ``--ethereum-signer-header``) → pairs; ``InvalidInput`` naming the bad line's
    position (never its value: it may be a token)."""
    pairs: list[tuple[str, str]] = []
    for position, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or any(c.isspace() for c in name.strip()):
            raise InvalidInput(f"--ethereum-signer-header #{position} is not 'Name: value'")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteSignerConfig:
    url: str = field(repr=False)
    """--ethereum-signer-url (shown by its origin only: it may carry credentials)"""
    address: str
    """--ethereum-signer-address: the account the signer signs for"""
    tls_ca: str | None = None
    """--ethereum-signer-tls-ca: CA bundle that signed the signer's certificate (default: the system's)"""
    tls_cert: str | None = None
    """--ethereum-signer-tls-cert: client certificate (mutual TLS), with ``tls_key``"""
    tls_key: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """--ethereum-signer-header 'Name: value' (repeatable); values never shown"""
    timeout_s: float = 10.0

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not (self.tls_ca or self.tls_cert):
            return True
        try:
            context = ssl.create_default_context(cafile=self.tls_ca)
            if self.tls_cert:
                context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidInput(
                f"--ethereum-signer-tls-ca/-cert/-key: cannot load ({exc}); give PEM files this process can read"
            ) from exc
        return context


def _quantity(value: int) -> str:
    return hex(value)


def request_object(tx: UnsignedTx, sender: str) -> dict[str, Any]:
    """The ``eth_signTransaction`` parameter for ``tx`` from ``sender``."""
    data = "0x" + tx.data.hex()
    obj: dict[str, Any] = {
        "from": sender,
        "to": tx.to,
        "gas": _quantity(tx.gas_limit),
        "nonce": _quantity(tx.nonce),
        "value": _quantity(tx.value),
        "data": data,
        "input": data,
        "chainId": _quantity(tx.chain_id),
        "type": _quantity(tx.tx_type),
        "maxFeePerGas": _quantity(tx.max_fee_per_gas),
        "maxPriorityFeePerGas": _quantity(tx.max_priority_fee_per_gas),
    }
    if tx.tx_type == BLOB_TX_TYPE:
        assert tx.max_fee_per_blob_gas is not None
        obj["maxFeePerBlobGas"] = _quantity(tx.max_fee_per_blob_gas)
        obj["blobVersionedHashes"] = ["0x" + h.hex() for h in tx.blob_versioned_hashes]
    return obj


class RemoteSigner:
    """``TxSigner`` through a remote signer's ``eth_signTransaction``."""

    def __init__(self, config: RemoteSignerConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._address = config.address
        self._where = url_origin(config.url)
        self._ids = itertools.count(1)
        self._client = client or httpx.AsyncClient(
            timeout=config.timeout_s, verify=config.ssl_context(), headers=dict(config.headers)
        )

    def __repr__(self) -> str:
        return f"RemoteSigner(address={self._address}, at={self._where})"

    @property
    def address(self) -> str:
        return self._address

    @property
    def description(self) -> str:
        return f"the remote signer at {self._where}"

    async def _call(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            response = await self._client.post(self.config.url, json=body)
        except (httpx.HTTPError, TimeoutError, ssl.SSLError) as exc:
            raise BackendUnavailable(f"{self.description} did not answer {method}: {type(exc).__name__} {exc}") from exc
        if response.status_code in (401, 403):
            raise InvalidInput(
                f"{self.description} refused {method} (HTTP {response.status_code}): check --ethereum-signer-header "
                "and the TLS client certificate"
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise BackendUnavailable(f"{self.description} answered {method} with HTTP {response.status_code}")
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise InvalidInput(
                f"{self.description} answered {method} with HTTP {response.status_code} and no JSON-RPC response: "
                "check --ethereum-signer-url"
            )
        error = doc.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or "")[:300]
            raise InvalidInput(f"{self.description} refused {method}: {error.get('code')} {message}".rstrip())
        return doc.get("result")

    async def sign(self, tx: UnsignedTx) -> SignedBody:
        result = await self._call("eth_signTransaction", [request_object(tx, self._address)])
        if not isinstance(result, str) or not result.startswith("0x"):
            raise InvalidInput(f"{self.description} answered eth_signTransaction without a signed transaction (0x…)")
        try:
            raw = bytes.fromhex(result[2:])
        except ValueError as exc:
            raise InvalidInput(f"{self.description} answered eth_signTransaction with malformed hex") from exc
        return check_signed(tx, raw, address=self._address, who=self.description)

    async def aclose(self) -> None:
        await self._client.aclose()
