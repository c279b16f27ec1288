"""Settings sections of the services and backends: DICOM reading, web, storage, backups,
index, federation and Airflow."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


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
    s3_cache: bool = Field(
        False,
        description="S3 backend: acknowledge an object once it is fsynced in a local receive"
        " cache and upload it in the background (reads find it in the cache until then; a"
        " restart resumes the uploads). Only for processes whose cache is on a lasting volume"
        " (the receiver's).",
    )
    s3_cache_path: Path | None = Field(
        None, description="Directory of the S3 receive cache; default `$OPENJIP_HOME/s3-cache`."
    )
    s3_upload_workers: int = Field(
        4, ge=1, le=64, description="S3 receive cache: parallel uploads of each process."
    )
    s3_upload_defer_mib: int = Field(
        1024,
        ge=0,
        description="S3 receive cache: uploads wait while instances keep arriving (one in the"
        " last second) until this many MiB received by the process wait in the cache, so a burst"
        " is received at local-disk speed; `0` uploads at once.",
    )


class BackupSettings(BaseModel):
    """The S3 server of backups written to ``s3://BUCKET/PREFIX`` (``openjip site backup``);
    each empty field takes the object store's value."""

    s3_endpoint: str = Field("", description="S3 endpoint host:port; empty: `storage.s3_endpoint`.")
    s3_access_key: str = Field("", description="S3 access key; empty: `storage.s3_access_key`.")
    s3_secret_key: SecretStr = Field(
        SecretStr(""), description="S3 secret key; empty: `storage.s3_secret_key`."
    )
    s3_secure: bool | None = Field(None, description="Use HTTPS; unset: `storage.s3_secure`.")
    s3_region: str | None = Field(None, description="S3 region; unset: `storage.s3_region`.")


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
    step_confinement: Literal["landlock", "off"] = Field(
        "landlock",
        description="Local steps run confined by Linux Landlock to their staged inputs and "
        "output folder (no store, index, secret or TCP); `off` lets them reach all the site's "
        "files (for kernels without Landlock; a step then fails until this is set).",
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
        "ghcr.io/openjip/openjip:0.3.0",
        description="openjip image that fetches inputs and publishes outputs in analysis pods.",
    )
    step_web_url: str = Field(
        "http://openjip-web:8042",
        description="URL of the web service as analysis pods reach it (their inputs and outputs "
        "go through its `/steps` routes under a step grant).",
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
