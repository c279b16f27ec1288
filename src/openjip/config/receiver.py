"""The receiver section of the settings: the DIMSE service, its limits, known AEs and TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class MoveDestination(BaseModel):
    """A DICOM node that C-MOVE may send to, known by its AE title."""

    host: str
    port: int = Field(ge=1, le=65535)


DimseAction = Literal["echo", "store", "find", "get", "move"]
"""What a calling AE may ask of the receiver."""


def _echo_and_store() -> list[DimseAction]:
    return ["echo", "store"]


class KnownAE(BaseModel):
    """A DICOM node the site knows by its AE title: what it may do, which projects it serves,
    and (for a C-MOVE destination) where it listens."""

    host: str = Field("", description="Address of the AE's own SCP (C-MOVE destinations).")
    port: int | None = Field(None, ge=1, le=65535, description="Port of the AE's own SCP.")
    allow: list[DimseAction] = Field(
        default_factory=_echo_and_store, description="Services the AE may use."
    )
    projects: list[str] = Field(
        default_factory=lambda: ["default"],
        min_length=1,
        description="Projects of the AE: what it stores goes to the first, its queries and "
        "retrievals see all of them.",
    )
    tls: bool = Field(False, description="C-MOVE to this AE speaks DICOM TLS.")


class ReceiverSettings(BaseModel):
    """The DIMSE service (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET)."""

    host: str = Field("127.0.0.1", description="Address the DICOM port binds to.")
    port: int = Field(11112, ge=0, le=65535, description="DICOM port (0 picks a free one).")
    ae_title: str = Field("OPENJIP", min_length=1, max_length=16, description="Our AE title.")
    allowed_calling_aes: list[str] = Field(
        default_factory=list,
        description="Calling AE titles accepted at association; empty accepts any caller.",
    )
    require_called_ae: bool = Field(
        False,
        description="Reject associations whose called AE title is not `ae_title` "
        "(off by default, as in Orthanc: many modalities are configured loosely).",
    )
    max_pdu: int = Field(
        0, ge=0, description="Maximum PDU length we receive, in bytes; 0 means unlimited."
    )
    max_associations: int = Field(
        64,
        ge=1,
        description="Associations open at once on the whole receiver (all its processes).",
    )
    reserved_for_known_aes: int = Field(
        8,
        ge=0,
        description="Of `max_associations`, how many only known AEs (the calling-AE allow-list "
        "and the C-MOVE destinations) may use, so unknown callers never starve them.",
    )
    max_associations_per_ae: int = Field(
        32, ge=1, description="Associations open at once from one calling AE title."
    )
    max_connections_per_address: int = Field(
        32,
        ge=1,
        description="Connections open at once from one source address (negotiating or "
        "established).",
    )
    max_negotiating: int = Field(
        64,
        ge=1,
        description="Connections whose A-ASSOCIATE-RQ has not fully arrived, kept at once; at "
        "the cap a new connection pushes out the oldest one of the busiest address.",
    )
    association_request_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a new connection has to send its whole A-ASSOCIATE-RQ.",
    )
    idle_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds an association may stay silent, between PDUs or inside one, "
        "before it is aborted.",
    )
    pdu_timeout: float = Field(
        120.0, gt=0, description="Seconds one whole PDU may take to arrive once it began."
    )
    message_timeout: float = Field(
        900.0,
        gt=0,
        description="Seconds one whole DIMSE message (command and dataset) may take to arrive, "
        "and the longest wait for a peer's response during C-MOVE/C-GET.",
    )
    release_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds the peer has to close the connection after the association was "
        "released or aborted.",
    )
    pdata_reader: Literal["openjip", "pynetdicom"] = Field(
        "openjip",
        description="Who reads P-DATA of established associations: openjip's own reader "
        "(streams C-STORE datasets to disk, ~3 ms less CPU per instance) or pynetdicom's "
        "(the fallback, should openjip's reader misbehave with a peer).",
    )
    workers: int = Field(
        0,
        ge=0,
        description="Receiver processes behind the port (the first accepts, each connection "
        "goes to the least busy one); 0 sizes them to the load: two, and another whenever a "
        "new association finds all busy, up to two per CPU core; 1 runs all in one process.",
    )
    series_idle_seconds: float = Field(
        5.0,
        gt=0,
        description="A series with no new instance for this long is marked complete.",
    )
    event_log_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Size at which the series-complete event log is rotated "
        "(`series_complete.jsonl` becomes `.1`; the three newest old files are kept).",
    )
    sweep_interval_seconds: float = Field(
        1.0, gt=0, description="How often the receiver looks for series that became complete."
    )
    move_destinations: dict[str, MoveDestination] = Field(
        default_factory=dict,
        description="Deprecated alias of `known_aes` for C-MOVE destinations, JSON: "
        '{"AE": {"host": "...", "port": 104}}; such AEs get no other permission.',
    )
    known_aes: dict[str, KnownAE] = Field(
        default_factory=dict,
        description='AEs the site knows, JSON: {"AE": {"host": "...", "port": 104, "allow": '
        '["store", "find", "get", "move"], "projects": ["p1"]}}.',
    )
    unknown_ae_allow: list[DimseAction] = Field(
        default_factory=_echo_and_store,
        description="Services any other calling AE may use (what it stores goes to `default`).",
    )
    unknown_ae_reads_on_network: bool = Field(
        False,
        description="Start although `unknown_ae_allow` lets unknown AEs find, get or move and "
        "`host` is not a loopback address (otherwise the receiver refuses to start).",
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate of the receiver; with `tls_key` its port speaks DICOM TLS "
        "only (PS3.15 Annex B), and C-MOVE to AEs marked `tls` presents it.",
    )
    tls_key: Path | None = Field(None, description="PEM private key of `tls_cert`.")
    tls_listen: bool = Field(
        True,
        description="With `tls_cert`, the DICOM port speaks TLS only; false keeps it plain and "
        "uses the certificate for C-MOVE to AEs marked `tls` only.",
    )
    tls_ca: Path | None = Field(
        None,
        description="PEM file of CAs trusted for peers' certificates: clients of the TLS port "
        "must present one signed by them, and C-MOVE destinations are verified against them.",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the receiver's own /metrics endpoint on `host`; 0 disables it.",
    )
