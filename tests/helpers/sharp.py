"""A fake SHARP over HTTPS with mutual TLS, and the certificates it needs (made per test run).

The certificate code follows tests/integration/provers/test_sharp_client.py: a test CA signs the
server certificate (for 127.0.0.1) and the client certificate; the client trusts the CA as the
"server certificate" of ``--sharp-server-crt-file``; a stranger's certificate, from another CA, is refused.
The fake answers the endpoints ``SharpClient`` uses; jobs go IN_PROGRESS → PROCESSED after ``processing_s``
(or stay as the test sets them), and an applicative job's fact is first registered on ``fact_registry`` (what
SHARP's GPS verifier does on L1), so a core contract accepts it.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from madara_orchestrator.interfaces import FactRegistry
from tests.integration.provers.conftest import UvicornApp

CUSTOMER_ID = "cust-1"


@dataclass(frozen=True)
class Pki:
    ca_crt: str
    server_crt: str
    server_key: str
    client_crt: str
    client_key: str
    stranger_crt: str
    """A client certificate signed by another CA (refused by the server)."""
    stranger_key: str


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    is_ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        assert issuer is not None
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def write_pem(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    crt_file, key_file = path.with_suffix(".crt"), path.with_suffix(".key")
    crt_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(crt_file), str(key_file)


def make_pki(root: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1, a client certificate and a stranger's (signed by another CA),
    as PEM files under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    ca_key = new_key()
    ca = make_cert("test SHARP CA", ca_key, None, ca_key, is_ca=True)
    ca_crt, _ = write_pem(root / "ca", ca, ca_key)
    server_key = new_key()
    server_crt, server_key_file = write_pem(
        root / "server", make_cert("127.0.0.1", server_key, ca, ca_key, server=True), server_key
    )
    client_key = new_key()
    client_crt, client_key_file = write_pem(root / "client", make_cert("customer", client_key, ca, ca_key), client_key)
    other_ca_key = new_key()
    other_ca = make_cert("someone else", other_ca_key, None, other_ca_key, is_ca=True)
    stranger_key = new_key()
    stranger_crt, stranger_key_file = write_pem(
        root / "stranger", make_cert("stranger", stranger_key, other_ca, other_ca_key), stranger_key
    )
    return Pki(ca_crt, server_crt, server_key_file, client_crt, client_key_file, stranger_crt, stranger_key_file)


@dataclass
class FakeSharp:
    """SHARP's job API in memory. ``calls``: ``(path, query parameters, scheme)`` of every request; ``bodies``:
    the JSON body of every job submitted; ``fail_next``: ``(status code, body)`` answers given first, in turn,
    whatever the request."""

    fact_registry: FactRegistry | None = None
    processing_s: float | None = 0.3
    """How long a submitted job stays IN_PROGRESS; ``None``: until the test changes ``jobs``."""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    """Applicative job key → its children's keys."""
    calls: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, str]] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _complete(self, key: str, processing_s: float, *, register: bool) -> None:
        await asyncio.sleep(processing_s)
        if register and self.fact_registry is not None:
            try:
                await self.fact_registry.register(key)
            except Exception as exc:  # the job fails the way SHARP reports it
                self.errors.append(f"{key}: {exc}")
                self.jobs[key] = {"status": "FAILED", "error_log": f"fact registration failed: {exc}"}
                return
            self.registered.append(key)
        self.jobs[key] = {"status": "PROCESSED", "validation_done": True}

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            path = request.url.path.strip("/")
            params = dict(request.query_params)
            self.calls.append((path, params, request.url.scheme))
            if self.fail_next:
                code, text = self.fail_next.pop(0)
                return PlainTextResponse(text, status_code=code)
            if params.get("customer_id") != CUSTOMER_ID:
                return JSONResponse({"message": "unknown customer"}, status_code=403)
            key = params.get("cairo_job_key", "")
            if path in ("add_job", "add_applicative_job"):
                body = await request.json()
                self.bodies.append(body)
                if not body.get("cairo_pie_encoded"):
                    return JSONResponse({"message": "cairo_pie_encoded is required"}, status_code=400)
                is_applicative = path == "add_applicative_job"
                if is_applicative:
                    self.children[key] = list(body.get("children_cairo_job_keys", []))
                self.jobs[key] = {"status": "IN_PROGRESS", "validation_done": False}
                if self.processing_s is not None:
                    task = asyncio.create_task(self._complete(key, self.processing_s, register=is_applicative))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                return JSONResponse({"code": "JOB_RECEIVED_SUCCESSFULLY"})
            if path == "get_status":
                return JSONResponse(self.jobs.get(key, {"status": "UNKNOWN"}))
            if path == "get_proof":
                return PlainTextResponse('{"proof_parameters": {}, "public_input": {}}')
            return PlainTextResponse("ok")

        return Starlette(
            routes=[
                Route(f"/{name}", endpoint, methods=["GET", "POST"])
                for name in ("add_job", "add_applicative_job", "get_status", "get_proof", "is_alive")
            ]
        )


@asynccontextmanager
async def serve_fake_sharp(fake: FakeSharp, pki: Pki) -> AsyncIterator[str]:
    """Serve ``fake`` on 127.0.0.1 over TLS, requiring a client certificate signed by the test CA; yields the URL."""
    tls = {
        "ssl_certfile": pki.server_crt,
        "ssl_keyfile": pki.server_key,
        "ssl_ca_certs": pki.ca_crt,
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    async with UvicornApp(fake.app(), **tls) as server:
        try:
            yield f"https://127.0.0.1:{server.port}"
        finally:
            for task in list(fake.tasks):
                task.cancel()
            await asyncio.gather(*fake.tasks, return_exceptions=True)
