"""The process's one TLS context for the HTTP clients it makes (Ethereum and Starknet RPC, Atlantic, the
runners' services, alert webhooks, the operator's commands, the devnet's helpers).

httpx builds a new ``ssl.SSLContext`` for each client made without ``verify=``, reading the whole CA bundle
again: about 40 ms of CPU a client, which a process that makes clients as it goes (a settlement client per
start, a client per webhook delivery, a poll) pays each time. One context made at the first client, with
httpx's own default verification (certifi's CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as they are then),
serves them all: a context is safe to share between clients and threads. A client that verifies otherwise
(SHARP's mutual TLS, a remote signer's own CA) makes its own.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def default_tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()
