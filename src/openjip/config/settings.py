"""The settings model of a site and the sections it is made of."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        "goes to the least busy one); 0 means two per CPU core, 1 runs all in one process.",
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


class DicomSettings(BaseModel):
    """How DICOM headers are read, wherever instances arrive (C-STORE, STOW-RS, results)."""

    max_sequence_depth: int = Field(
        64,
        ge=1,
        le=128,
        description="Deepest nesting of sequences an instance may have; deeper ones are refused "
        "(0xC000 / STOW failure) instead of recursing without bound.",
    )


class WebSettings(BaseModel):
    """The HTTP service: DICOMweb, /healthz and /metrics."""

    host: str = Field("127.0.0.1", description="Address the HTTP port binds to.")
    port: int = Field(8042, ge=0, le=65535, description="HTTP port.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call DICOMweb from a browser (e.g. an OHIF viewer), "
        'JSON list such as ["https://viewer.example"]; ["*"] allows any; empty allows none.',
    )
    max_upload_bytes: int = Field(
        4 * 1024**3, gt=0, description="Largest STOW-RS request body accepted, in bytes."
    )
    metrics_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token that reads `/metrics` on the web port (admins may too); "
        "empty leaves it to admins and `metrics_port`.",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port serving only `/metrics`, without credentials, on `host` (for a "
        "scraper the network lets in); 0 disables it.",
    )
    public_url: str = Field(
        "",
        description="URL browsers reach the web service at, for the links of Airflow's UI to "
        "the Images page and the viewer; default `http://HOST:PORT`.",
    )
    viewer_path: Path | None = Field(
        None,
        description="Folder of the OHIF viewer served at /viewer/ (`make viewer` installs it "
        "there); default `$OPENJIP_HOME/viewer`.",
    )


class StorageSettings(BaseModel):
    """Where instances and step outputs are kept."""

    backend: Literal["local", "s3"] = Field("local", description="`local` directory or `s3`.")
    path: Path | None = Field(
        None, description="Root of the local object store; default `$OPENJIP_HOME/objects`."
    )
    fsync: bool = Field(
        True, description="fsync each object and its directory before acknowledging it."
    )
    temp_max_age_seconds: float = Field(
        3600.0,
        gt=0,
        description="Local store: age after which the temporary file of a write that never"
        " finished (a process killed during it) is removed; a write in progress keeps its file"
        " younger.",
    )
    s3_endpoint: str = Field("127.0.0.1:9000", description="S3 endpoint host:port.")
    s3_bucket: str = Field("openjip", description="Bucket holding the site's objects.")
    s3_access_key: str = Field("", description="S3 access key.")
    s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret key.")
    s3_secure: bool = Field(False, description="Use HTTPS to reach the S3 endpoint.")
    s3_region: str | None = Field(None, description="S3 region, when the server needs one.")


class IndexSettings(BaseModel):
    """The metadata index of studies, series and instances."""

    backend: Literal["sqlite", "opensearch"] = Field(
        "sqlite", description="`sqlite` file or `opensearch` cluster."
    )
    path: Path | None = Field(
        None, description="SQLite file of the index; default `$OPENJIP_HOME/index.sqlite3`."
    )
    opensearch_url: str = Field(
        "http://127.0.0.1:9200",
        description="OpenSearch URL (`https://` for TLS); user:password in it also work.",
    )
    opensearch_username: str = Field("", description="OpenSearch user (HTTP basic auth).")
    opensearch_password: SecretStr = Field(
        SecretStr(""), description="Password of `opensearch_username`."
    )
    opensearch_index_prefix: str = Field(
        "openjip",
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Indices are `<prefix>-studies`, `<prefix>-series`, `<prefix>-instances`"
        " and `<prefix>-runs` (run outputs).",
    )
    opensearch_verify_certs: bool = Field(True, description="Verify the server's TLS certificate.")
    opensearch_ca_certs: Path | None = Field(
        None, description="PEM file of CAs trusted for the server's certificate."
    )
    opensearch_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one request to OpenSearch."
    )
    opensearch_refresh: Literal["false", "wait_for", "true"] = Field(
        "false",
        description=(
            "When writes become searchable: `false` after the refresh interval (1 s), "
            "`wait_for` before each write returns, `true` at once (slow; tests)."
        ),
    )
    opensearch_shards: int = Field(1, ge=1, description="Primary shards of each new index.")
    opensearch_replicas: int = Field(
        0, ge=0, description="Replicas of each new index (0 suits a single-node cluster)."
    )


class FederationSettings(BaseModel):
    """The federation service: signed workflow bundles exchanged with trusted peer sites.

    It holds no object-store or index settings on purpose: it never touches images.
    """

    host: str = Field("127.0.0.1", description="Address the federation HTTP port binds to.")
    port: int = Field(8443, ge=0, le=65535, description="Federation HTTP(S) port.")
    tls_cert: Path | None = Field(
        None, description="PEM certificate; with `tls_key` the service speaks HTTPS."
    )
    tls_key: Path | None = Field(None, description="PEM private key of `tls_cert`.")
    ca_bundle: Path | None = Field(
        None, description="PEM file of CAs (or self-signed peer certificates) trusted when pulling."
    )
    max_payload_bytes: int = Field(
        256 * 1024, gt=0, description="Largest bundle or request body accepted, in bytes."
    )
    pull_interval_seconds: float = Field(
        300.0, ge=0, description="How often `serve` pulls from peers; 0 turns periodic pulls off."
    )
    request_max_age_seconds: int = Field(
        300, gt=0, description="Signed requests older than this are refused."
    )
    replay_cache_entries: int = Field(
        100_000,
        gt=0,
        description="Nonces of signed requests remembered within `request_max_age_seconds`; "
        "when full, further requests get 503 instead of risking a replay.",
    )
    refusal_audit_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="Refused requests are summed up in one audit entry per interval.",
    )
    refusals_per_address: int = Field(
        100,
        gt=0,
        description="Refused requests per address and interval before it gets 429 unread.",
    )
    site_web_url: str = Field(
        "http://127.0.0.1:8042",
        description="This site's own web service, which answers statistics questions and "
        "patient-data screens for the federation service (which never reads the index).",
    )
    loopback_secret_file: Path | None = Field(
        None,
        description="Token the federation service presents to the site's web service for "
        "internal routes; default `$OPENJIP_HOME/loopback.secret` (created 0600 when missing).",
    )
    question_min_cell: int = Field(
        5,
        ge=1,
        description="Statistics cells counting fewer series are withheld; a peer's question "
        "can raise this minimum, never lower it.",
    )
    allowed_operators: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Operators a federated workflow may use, JSON {"name@version": "sha256:<digest>"}; '
            "empty allows the operators of this site's operators/ folders at their pinned digests."
        ),
    )


class AirflowSettings(BaseModel):
    """The workflow engine (Airflow) and how analysis steps run."""

    enabled: bool = Field(
        True,
        description="The site has Airflow: the receiver starts the workflows a completed series "
        "matches (however it is started) and `openjip site up` starts a local Airflow.",
    )
    host: str = Field("127.0.0.1", description="Address the local Airflow api-server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the local Airflow api-server.")
    url: str = Field(
        "",
        description="Base URL of Airflow's REST API and UI; empty means http://`host`:`port`.",
    )
    username: str = Field("admin", description="Airflow user that triggers runs.")
    password: SecretStr = Field(
        SecretStr(""),
        description="Password of `username`; empty reads the local site's generated password.",
    )
    home: Path | None = Field(
        None, description="AIRFLOW_HOME of the local site; default `$OPENJIP_HOME/airflow`."
    )
    parallelism: int = Field(
        2, ge=1, description="Task instances running at once in the local site (each ~130 MB)."
    )
    step_runner: Literal["local", "kubernetes"] | None = Field(
        None,
        description="How analysis steps run: `local` subprocess or `kubernetes` pod; "
        "empty follows `mode`.",
    )
    namespace: str = Field("openjip", description="Kubernetes namespace of analysis pods.")
    deferrable_pods: bool = Field(
        True,
        description="Analysis pod tasks wait for their pod in Airflow's triggerer (deferrable) "
        "instead of holding a worker slot.",
    )
    step_timeout_minutes: float = Field(
        240.0,
        gt=0,
        description="An analysis step's task fails after this long (its pod is deleted).",
    )
    step_image: str = Field(
        "ghcr.io/openjip/openjip:0.1.0",
        description="openjip image that fetches inputs and publishes outputs in analysis pods.",
    )
    storage_secret: str = Field(
        "openjip-storage",
        description="Kubernetes Secret with the credentials of analysis pods: keys `access-key`, "
        "`secret-key` (S3) and `opensearch-password`.",
    )
    service_account: str = Field(
        "openjip-analysis", description="Kubernetes service account of analysis pods."
    )
    trigger_retry_seconds: float = Field(
        5.0, gt=0, description="How often queued series-arrival triggers are retried."
    )
    recover_completed_hours: float = Field(
        24.0,
        ge=0,
        description="On start the receiver queues again the series-arrival runs of series "
        "completed this many hours back (Airflow keeps one run per series version); 0: none.",
    )


class OidcGrant(BaseModel):
    """What members of one identity-provider group may do: roles on projects."""

    roles: list[Literal["admin", "researcher", "viewer", "uploader"]] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)


class AccessSettings(BaseModel):
    """Who may see and change what: local users, OpenID Connect, anonymous access, audit."""

    allow_anonymous: bool = Field(
        False,
        description="Serve callers without credentials (as `anonymous_role` on "
        "`anonymous_projects`); a service refuses to start with it unless bound to loopback.",
    )
    anonymous_role: Literal["admin", "researcher", "viewer", "uploader"] = Field(
        "viewer", description="Role of callers without credentials when `allow_anonymous`."
    )
    anonymous_projects: list[str] = Field(
        default_factory=lambda: ["default"],
        description='Projects of callers without credentials, JSON list; ["*"] is every project.',
    )
    oidc_issuer: str = Field(
        "",
        description="OpenID Connect issuer URL (e.g. a Keycloak realm); empty turns OIDC off. "
        "Its discovery document names the JWKS, authorization and token endpoints.",
    )
    oidc_client_id: str = Field("", description="OIDC client id of the web service.")
    oidc_client_secret: SecretStr = Field(
        SecretStr(""), description="OIDC client secret (browser login's code exchange)."
    )
    oidc_audience: str = Field(
        "", description="`aud` a bearer token must carry; empty means `oidc_client_id`."
    )
    oidc_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="Scopes asked for at browser login, JSON list.",
    )
    oidc_username_claim: str = Field(
        "preferred_username", description="Claim naming the user (falls back to `sub`)."
    )
    oidc_groups_claim: str = Field(
        "groups",
        description="Claim listing the user's groups (a list or a space-separated string).",
    )
    oidc_groups: dict[str, OidcGrant] = Field(
        default_factory=dict,
        description='Roles and projects per group, JSON: {"radiology": {"roles": ["viewer"], '
        '"projects": ["p1"]}}; a user gets the union over its groups.',
    )
    oidc_leeway_seconds: int = Field(
        30, ge=0, le=300, description="Clock skew tolerated on `exp`/`nbf`/`iat`."
    )
    session_seconds: int = Field(
        8 * 3600, gt=0, description="Lifetime of a login session (cookie) of the web service."
    )
    overwrite_instances: bool = Field(
        False,
        description="A re-sent SOP instance whose bytes differ replaces the stored one (audited); "
        "off keeps the first and refuses the copy, as Orthanc's `OverwriteInstances: false`.",
    )
    audit_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Size at which `audit/access.jsonl` is rotated (three old files are kept).",
    )


class Settings(BaseSettings):
    """All settings of one site."""

    model_config = SettingsConfigDict(
        env_prefix="OPENJIP_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    home: Path = Field(
        Path("~/.openjip"),
        description="State of the site: object store, index, Airflow home, keys, logs.",
    )
    mode: Literal["local", "kubernetes"] = Field(
        "local", description="`local` runs everything on this machine; `kubernetes` in a cluster."
    )
    log_level: str = Field("INFO", description="Log level of the services.")
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    dicom: DicomSettings = Field(default_factory=DicomSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    federation: FederationSettings = Field(default_factory=FederationSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)

    @property
    def home_dir(self) -> Path:
        """``home`` with ``~`` expanded."""
        return self.home.expanduser()

    @property
    def storage_path(self) -> Path:
        """Root of the local object store."""
        return (self.storage.path or self.home_dir / "objects").expanduser()

    @property
    def federation_dir(self) -> Path:
        """Keys, peers, bundles and the audit log of the federation service."""
        return self.home_dir / "federation"

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of the local site."""
        return (self.airflow.home or self.home_dir / "airflow").expanduser()

    @property
    def airflow_url(self) -> str:
        """Base URL of the Airflow API and UI, without a trailing slash."""
        return (self.airflow.url or f"http://{self.airflow.host}:{self.airflow.port}").rstrip("/")

    @property
    def access_dir(self) -> Path:
        """Local users and other access state (mode 0700)."""
        return self.home_dir / "access"

    @property
    def access_audit_path(self) -> Path:
        """The access audit log (JSON lines)."""
        return self.home_dir / "audit" / "access.jsonl"

    @property
    def web_url(self) -> str:
        """Base URL of the web service as browsers reach it, without a trailing slash."""
        return (self.web.public_url or f"http://{self.web.host}:{self.web.port}").rstrip("/")

    @property
    def viewer_path(self) -> Path:
        """Folder of the OHIF viewer the web service serves at ``/viewer/``."""
        return (self.web.viewer_path or self.home_dir / "viewer").expanduser()

    @property
    def index_path(self) -> Path:
        """File of the SQLite index."""
        return (self.index.path or self.home_dir / "index.sqlite3").expanduser()


def get_settings() -> Settings:
    """Read the settings from the environment (a new object each call, so tests can vary it)."""
    return Settings()
