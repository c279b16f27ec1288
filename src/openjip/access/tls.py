"""DICOM TLS (PS3.15 Annex B, the BCP 195 profile): the receiver's server context and the
client contexts openjip uses as SCU (``openjip send``, C-MOVE sub-operations).

TLS 1.2 at least. The server asks for a client certificate, and requires one signed by the
configured CAs, only when CAs are configured (``receiver.tls_ca``). Handshakes run in the
connection's own thread with a deadline, so a silent or plain-DICOM client never holds up
the accepting thread; a failed handshake is logged and the connection closed.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path

from openjip.config.settings import ReceiverSettings

LOGGER = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 30.0


class TLSConfigError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names it."""


def server_context(settings: ReceiverSettings) -> ssl.SSLContext | None:
    """The receiver port's TLS context, or ``None`` when it speaks plain DICOM."""
    chain = _receiver_chain(settings)
    if chain is None or not settings.tls_listen:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, *chain)
    if settings.tls_ca is not None:
        _load_ca(context, settings.tls_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A context for openjip as SCU: the peer's certificate verified against ``ca`` (the
    system's CAs without it), its host name checked, ``cert``/``key`` presented if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        _load_ca(context, ca)
    if (cert is None) != (key is None):
        raise TLSConfigError("a client certificate needs its key and the other way round")
    if cert is not None and key is not None:
        _load_chain(context, cert, key)
    return context


def receiver_client_context(settings: ReceiverSettings) -> ssl.SSLContext:
    """The context of the receiver's own C-MOVE sub-operations to AEs marked ``tls``: its
    CAs verify the destination, its certificate identifies the site."""
    chain = _receiver_chain(settings)
    return client_context(settings.tls_ca, *(chain or (None, None)))


def _receiver_chain(settings: ReceiverSettings) -> tuple[Path, Path] | None:
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise TLSConfigError(
            "OPENJIP_RECEIVER__TLS_CERT and OPENJIP_RECEIVER__TLS_KEY must be set together"
        )
    return settings.tls_cert, settings.tls_key


def accept(context: ssl.SSLContext, client: socket.socket) -> ssl.SSLSocket | None:
    """Run the server side of the handshake on an accepted connection; ``None`` (connection
    closed) when it fails."""
    peer = _peer(client)
    client.settimeout(HANDSHAKE_SECONDS)
    try:
        wrapped = context.wrap_socket(client, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        LOGGER.warning("DICOM TLS handshake with %s failed: %s", peer, exc)
        client.close()
        return None
    wrapped.settimeout(None)
    return wrapped


def _peer(client: socket.socket) -> str:
    try:
        host, port = client.getpeername()[:2]
    except OSError:
        return "a closed connection"
    return f"{host}:{port}"


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot use certificate {cert} with key {key}: {exc}") from exc


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot read CA file {ca}: {exc}") from exc
