"""TLS for ``amq broker serve``: the server's ``ssl.SSLContext`` from its certificate, key
and CA files, as RabbitMQ's ``ssl_options`` (certfile, keyfile, cacertfile, verify).

Without ``verify_peer`` a client certificate is neither asked for nor checked (RabbitMQ's
``verify_none``); with it, a client must present one signed by the CA (RabbitMQ's
``verify_peer`` with ``fail_if_no_peer_cert = true``). TLS 1.2 is the oldest accepted.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from .. import errors


@dataclass(frozen=True)
class TlsListener:
    """Where TLS is served (``port`` 0: a free one) and with what."""

    port: int
    context: ssl.SSLContext


def server_context(cert: str, key: str | None, ca: str | None = None,
                   verify_peer: bool = False) -> ssl.SSLContext:
    """The context, or ``errors.UsageError`` naming the file that would not load."""
    if verify_peer and not ca:
        raise errors.UsageError("--tls-verify-peer needs --tls-ca FILE: the CA that signs "
                                "the clients' certificates")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise errors.UsageError(
            f"cannot load the TLS certificate {cert}" + (f" and key {key}" if key else "")
            + f": {_reason(err)}") from err
    if ca:
        try:
            context.load_verify_locations(ca)
        except (OSError, ssl.SSLError) as err:
            raise errors.UsageError(f"cannot load the TLS CA {ca}: {_reason(err)}") from err
    context.verify_mode = ssl.CERT_REQUIRED if verify_peer else ssl.CERT_NONE
    return context


def _reason(err: OSError | ssl.SSLError) -> str:
    if isinstance(err, ssl.SSLError):
        return str(err.reason or err).lower().replace("_", " ")
    return str(err.strerror or err)
