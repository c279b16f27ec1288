"""DICOM TLS (PS3.15 Annex B, the BCP 195 profile): the receiver's server context and the
client contexts openjip uses as SCU (``openjip send``, C-MOVE sub-operations).

TLS 1.2 at least. The server asks for a client certificate, and requires one signed by the
configured CAs, only when CAs are configured (``receiver.tls_ca``). Handshakes run in the
receiver's gate, non-blocking and within the deadline of the association request, so a silent
or plain-DICOM client holds up nobody; a failed handshake is logged and the connection closed.
"""

from __future__ import annotations

import logging
import socket
import ssl
from enum import Enum
from pathlib import Path

from openjip.config.settings import ReceiverSettings

LOGGER = logging.getLogger(__name__)


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


class Handshake(Enum):
    """Where the server side of a TLS handshake stands."""

    DONE = "done"
    WAITING = "waiting"
    FAILED = "failed"


def processes(settings: ReceiverSettings, workers: int) -> int:
    """Receiver processes for ``workers`` wanted: one when the port speaks TLS, since a TLS
    session cannot be handed to another process once the gate has read its first request."""
    if workers > 1 and server_context(settings) is not None:
        LOGGER.info("DICOM TLS: the receiver runs in one process (%d asked for)", workers)
        return 1
    return workers


def wrap_accepted(context: ssl.SSLContext, client: socket.socket) -> ssl.SSLSocket:
    """An accepted non-blocking connection as the server side of TLS, handshake not begun."""
    return context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)


def handshake_step(client: socket.socket, peer: tuple[str, int]) -> Handshake:
    """Go on with the handshake of a non-blocking connection as far as its bytes allow
    (``DONE`` at once for a plain one); a failure is logged."""
    if not isinstance(client, ssl.SSLSocket) or client.version() is not None:
        return Handshake.DONE
    try:
        client.do_handshake()
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return Handshake.WAITING
    except (ssl.SSLError, OSError) as exc:
        LOGGER.warning("DICOM TLS handshake with %s:%d failed: %s", *peer[:2], exc)
        return Handshake.FAILED
    return Handshake.DONE


def receive_available(client: socket.socket, size: int) -> bytes:
    """Up to ``size`` bytes: one read, plus what TLS already decrypted (which ``select``
    cannot see)."""
    data = client.recv(size)
    if isinstance(client, ssl.SSLSocket):
        while data and len(data) < size and client.pending():
            data += client.recv(min(client.pending(), size - len(data)))
    return data


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
