"""One frozen settings object, read from ``MOVINGDATA_*`` environment variables.

It is loaded once (``load_settings``) and passed down; nothing else reads the environment.
The local stack writes the credentials it generates to ``<home>/local.env`` (mode 600), which
is read as a lower-priority source, so a user's environment always wins.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The local broker's SASL users, one per role, each with its own ACLs
# (``workers.stack.principals``).
KafkaRole = Literal["worker", "api", "dashboard", "operator"]

# Azurite's documented development account: public, identical in every Azurite install.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Settings(BaseSettings):
    """Every knob of MovingData. Secrets are ``SecretStr`` and never printed."""

    # Each field's docstring is its description: the README's settings table is generated
    # from them (`movingdata settings`).
    model_config = SettingsConfigDict(
        env_prefix="MOVINGDATA_", frozen=True, extra="ignore", use_attribute_docstrings=True
    )

    # The pipeline.
    topic_prefix: str = "movingdata"
    """Prefix of every topic name (`<prefix>.ingest`, ...)."""
    topic_partitions: int = 4
    """Partitions per topic: the ceiling of replicas per stage."""
    bucket: str = "movingdata"
    """Bucket (S3, GCS) or container (Azure) replicas are written to."""
    targets: tuple[str, ...] = ("s3", "azure", "gcs")
    """Stores every object is replicated to, by default (a put can name its own)."""
    source_roots: tuple[Path, ...] = ()
    """Folders `put --by-path` may read from, for workers sharing the clients' filesystem;
    none unless set. Clients elsewhere upload to the staging area."""
    source_buckets: tuple[str, ...] = ()
    """Buckets `put --url s3://...` may read from (none unless set); never the bucket of
    replicas and staged uploads, nor a key under the staging prefix."""
    sync_page: int = Field(default=1000, ge=1, le=1000)
    """Keys of a sync job's source the scan stage lists and plans at a time (one listing
    request): each page is a checkpoint a stopped scanner resumes after."""
    staging_target: Literal["s3", "azure", "gcs"] = "s3"
    """Store of the staging area clients upload plaintext to (SSE-KMS at rest on S3)."""
    staging_prefix: str = "_staging/"
    """Key prefix of staged uploads; encrypt deletes each once its ciphertext is recorded."""
    staging_ttl_s: float = 24 * 3600.0
    """Staged uploads older than this (interrupted or refused) are swept."""
    staging_sweep_s: float = 600.0
    """How often every encrypt worker sweeps the staging area."""
    retain_versions: int = 0
    """Verified versions of each object to keep (0: all): the sink's leader deletes what is
    older than them through the chain, so a version goes only once that many newer ones are
    verified."""
    retention_interval_s: float = 300.0
    """How often the sink's leader retires the versions `RETAIN_VERSIONS` no longer keeps."""
    initial_tier: Literal["hot", "warm", "cold", "archive"] = "hot"
    """Tier a replica gets once it is verified."""
    tier_policy: Path = Path("default")
    """Tiering policy file (YAML), or `default` / `lifecycle` for a shipped one."""
    tier_prices: Path | None = None
    """Folder of the providers' price files (`*.toml`); unset: the shipped `deploy/prices`."""
    tier_sweep_s: float = 3600.0
    """How often the tier worker's leader decides every verified version's tiers (0: never;
    `movingdata tier sweep` runs one)."""
    chunk_size: int = 1024 * 1024
    """Bytes read and encrypted at a time."""
    stage_batch: int = 32
    """Events one stage agent takes at once (different objects run at once, within
    `stage_bytes`)."""
    stage_bytes: int = Field(default=96 * 1024**2, gt=0)
    """Bytes the events a worker handles at once (every stage of it) may hold in memory: an
    event counts its object's size (encrypt: once per store) up to the upload parts per store
    in flight and the fan-out queue (80 MiB in all), plus a chunk; one larger than the budget
    runs alone."""
    producer_linger_s: float = Field(default=0.005, ge=0.0)
    """How long a worker's producer waits to batch messages of events handled at once."""
    fanout_depth: int = Field(default=8, ge=1)
    """Chunks encrypt queues per target ahead of its upload (`CHUNK_SIZE` each): encryption
    overlaps the uploads, and every target uploads at its own pace."""
    fanout_stall_s: float = Field(default=5.0, gt=0)
    """How long in all (per object) a target may hold the other targets back, beyond the time
    the object's bytes take at `FANOUT_MIN_RATE`, before encrypt detaches it and hands it to
    replicate, which copies it from a written replica."""
    fanout_min_rate: float = Field(default=4e6, gt=0)
    """Bytes per second a target may be held to without counting as slow (a store slower than
    the others but faster than this is waited for)."""
    verify_mode: Literal["store-digest", "read-back"] = "store-digest"
    """How verify counts a replica: `store-digest`, when the store's own digest of the bytes it
    received equals ours (stores that cannot confirm one are read back); `read-back`, by
    reading every replica back and recomputing its SHA-256. A scrub always reads back."""
    scrub_interval_s: float = 3600.0
    """How often the sink's leader sends a share of the replicas to be read back (0: never)."""
    scrub_share: float = Field(default=0.01, ge=0.0, le=1.0)
    """Share of the stored replicas each scheduled scrub reads back at least, least recently
    attempted first (``workers.core.scrub``)."""
    scrub_window_days: float = Field(default=30.0, gt=0.0)
    """Every readable replica is read back within this window: each scheduled scrub takes at
    least what that needs (``movingdata_scrub_behind_seconds`` says how far past it is)."""
    scrub_rehydrate_bytes_per_day: int = Field(default=0, ge=0)
    """Ciphertext bytes a UTC day the scheduled scrub may rehydrate (0: never) to read back the
    archived replicas no store digest proves, shared by every sink worker; each such
    rehydration is billed (Azure about $0.02/GB, S3 Glacier's restore too), so none unless
    an operator sets what they will pay for."""
    reconcile_interval_s: float = 300.0
    """How often the sink's leader looks for pending versions that stopped moving (0: never)."""
    reconcile_after_s: float = 900.0
    """A pending version with no step for this long is re-driven: the recorded events before
    its next steps are sent again through the retry agent (every stage is idempotent)."""
    max_attempts: int = 10
    """Attempts of one event before it is dead-lettered."""
    retry_cap_s: float = 60.0
    """Longest wait between two retries of one event."""
    broker_session_timeout_s: float = 30.0
    """How long the broker waits before giving a silent worker's partitions to another."""
    log_level: str = "INFO"
    """Level of the JSON log lines every process writes to stderr."""

    # The HTTP API, the dashboard, the workers' endpoints.
    api_host: str = "127.0.0.1"
    """Address the API listens on (0.0.0.0 in a container)."""
    api_port: int = 8001
    """Port of the API."""
    api_public_url: str | None = None
    """Base URL of share links (`https://data.example.com`); unset, the URL a request reached
    the API at (`movingdata share` without the API: `http://<api_host>:<api_port>`)."""
    link_key: SecretStr | None = None
    """Key of the HMAC-SHA256 signing share links; unset, no link is made or served. Changing
    it invalidates every link. The local stack generates one."""
    link_max_expiry_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    """Longest a share link may live (7 days, as long as an S3 presigned URL)."""
    api_max_upload_bytes: int = 5 * 1024**3
    """Largest body `POST /v1/objects` takes."""
    api_rate_per_minute: int = 600
    """Requests per minute per token (and per address without a valid one), shared by every
    API replica."""
    oidc_issuer: str | None = None
    """Issuer whose OIDC bearer tokens (JWTs) the API accepts besides its own tokens, verified
    against the keys its discovery document (`<issuer>/.well-known/openid-configuration`)
    names; unset: none."""
    oidc_audience: str | None = None
    """The `aud` an OIDC token must carry: MovingData's client id at the issuer (required with
    `OIDC_ISSUER`)."""
    oidc_tenant_claim: str = "tenant"
    """Claim naming an OIDC token's tenant (a dotted path reads a nested claim)."""
    oidc_scopes_claim: str = "scopes"
    """Claim holding an OIDC token's scopes (read, write, delete, forget, admin) or roles
    (reader, writer, admin), a list or a space- or comma-separated string; other values are
    ignored (a dotted path reads a nested claim: `realm_access.roles`)."""
    oidc_leeway_s: float = Field(default=30.0, ge=0.0, le=300.0)
    """Clock skew allowed when checking an OIDC token's `exp`, `nbf` and `iat`."""
    dashboard_host: str = "127.0.0.1"
    """Address the dashboard listens on (0.0.0.0 in a container)."""
    dashboard_port: int = 8501
    """Port of the dashboard."""
    dashboard_token: SecretStr | None = None
    """A reader token the dashboard uses; unset, the page asks for one."""
    worker_host: str = "127.0.0.1"
    """Address of every worker's /healthz, /readyz and /metrics (0.0.0.0 where probes and
    scrapers come from outside)."""
    worker_port: int = 0
    """Port of the worker's endpoints (0: a free port, logged)."""
    worker_heartbeat_s: float = Field(default=30.0, ge=0.0)
    """How often a worker records itself in MongoDB's `workers` (its stages, readiness and
    rates, for the dashboard's Fleet tab); 0: never."""

    # Endpoints of services elsewhere (a deployment); unset, the local stack's ports are used.
    kafka_servers: str | None = None
    """Bootstrap servers (`host:port,...`); unset, the local broker."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every Kafka client of the project connects."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    """SASL mechanism, with a SASL protocol."""
    kafka_sasl_username: str | None = None
    """SASL user."""
    kafka_sasl_password: SecretStr | None = None
    """SASL password."""
    kafka_role: KafkaRole | None = None
    """Which of the local stack's per-role SASL users (`<home>/kafka-<role>.env`, one per
    role, with ACLs) a process connects as; unset, its own: `worker`, `api`, `dashboard`, and
    `operator` for every other command. `KAFKA_SASL_USERNAME`/`PASSWORD` set in the
    environment win."""
    kafka_ssl_cafile: Path | None = None
    """CA bundle the broker's certificate is checked against (unset: the system's)."""
    kafka_ssl_certfile: Path | None = None
    """Client certificate, for mutual TLS."""
    kafka_ssl_keyfile: Path | None = None
    """Client certificate's key, for mutual TLS."""
    topic_replication: int = 1
    """Replication factor topics are created with (1 on the local broker; 3 in production)."""
    topic_min_insync: int = 1
    """`min.insync.replicas` of every topic (2 in production)."""
    mongo_uri: str | None = None
    """MongoDB connection string; unset, the local FerretDB."""
    openbao_url: str | None = None
    """OpenBao address; unset, the local one."""
    s3_url: str | None = None
    """S3 endpoint; unset, the local SeaweedFS gateway."""
    azure_url: str | None = None
    """Blob endpoint with the account (`https://ACCOUNT.blob.core.windows.net`); unset,
    the local Azurite."""
    gcs_url: str | None = None
    """GCS endpoint (`https://storage.googleapis.com`); unset, the local fake-gcs-server."""

    # Local state: one folder per service, PID files, logs, generated secrets.
    home: Path = Path(".movingdata")
    """Folder of all local state: the stack's data, logs, generated credentials."""
    stack_timeout_s: float = 120.0
    """How long `stack up` waits for one service."""

    # The local stack's broker.
    kafka_host: str = "127.0.0.1"
    """Address of the local broker."""
    kafka_port: int = 19092
    """Port of the local broker (PLAINTEXT)."""
    kafka_controller_port: int = 19093
    """Port of the local broker's KRaft controller."""
    kafka_sasl_port: int = 19094
    """Port of the local broker's SASL_SSL listener."""
    kafka_heap: str = "512m"
    """Java heap of the local broker."""

    # MongoDB-protocol database (FerretDB locally).
    mongo_port: int = 27117
    """Port of the local FerretDB."""
    mongo_database: str = "movingdata"
    """Database of state, key registry and audit trail."""

    # OpenBao: the KMS behind SSE-KMS and the envelope encryption's key-encryption key.
    openbao_port: int = 18200
    """Port of the local OpenBao."""
    openbao_cluster_port: int = 18201
    """Cluster port of the local OpenBao."""
    openbao_token: SecretStr | None = None
    """Workers' token: the KEK's encrypt/decrypt."""
    openbao_sink_token: SecretStr | None = None
    """The sink's own token: signs (and verifies) audit checkpoints; no other worker holds it."""
    openbao_reader_token: SecretStr | None = None
    """Operators' reader token (restore, audit verify): decrypt, verify."""
    openbao_admin_token: SecretStr | None = None
    """Operators' admin token (keys rotate): rewrap, rotate, disable."""
    kek_provider: Literal["openbao", "local"] = "openbao"
    """Where the key-encryption key lives (`local`: a file, for tests only)."""
    kek_name: str = "movingdata"
    """Transit key wrapping every data key."""
    audit_signing_key: str = "movingdata-audit"
    """Transit key signing audit checkpoints."""
    audit_checkpoint_s: float = 30.0
    """How often the sink signs the next checkpoint of the audit log (heads that moved)."""
    audit_lock_bucket: str | None = None
    """An S3 bucket with Object Lock (created with it where missing) where the sink also
    writes each checkpoint, locked in COMPLIANCE mode: `audit verify` checks the log against
    it (unset: no such copy)."""
    audit_lock_days: float = Field(default=365.0, gt=0.0)
    """How long each checkpoint's copy in `MOVINGDATA_AUDIT_LOCK_BUCKET` cannot be deleted."""
    audit_sweep_segments: int = Field(default=128, ge=1, le=4096)
    """Segments of the signed heads (of 4,096) each checkpoint round re-checks besides the
    heads the sink moved: a head changed behind its back is found within 4,096 / this rounds
    (16 minutes at the defaults; about 31,000 heads a round at a million objects)."""

    # S3 (SeaweedFS locally).
    s3_port: int = 18333
    """Port of the local S3 gateway."""
    s3_region: str = "us-east-1"
    """S3 region."""
    s3_access_key: SecretStr | None = None
    """S3 access key, with the secret key. Neither set: the local stack's keys while `s3_url`
    is unset, else the AWS default chain (environment, shared files, instance role, IRSA)."""
    s3_secret_key: SecretStr | None = None
    """S3 secret key."""
    s3_profile: str | None = None
    """A profile of the shared AWS config and credentials files."""
    s3_kms_key_id: str = "movingdata-sse"
    """KMS key of SSE-KMS at rest."""
    seaweed_master_port: int = 19333
    """Port of the local SeaweedFS master."""
    seaweed_volume_port: int = 18080
    """Port of the local SeaweedFS volume server."""
    seaweed_filer_port: int = 18888
    """Port of the local SeaweedFS filer."""

    # Azure Blob (Azurite locally).
    azure_port: int = 10000
    """Port of the local Azurite."""
    azure_account: str = AZURITE_ACCOUNT
    """Storage account (default: Azurite's public development account)."""
    azure_credential: Literal["key", "sas", "default"] = "key"
    """How requests are signed: the account key, the SAS token, or azure-identity's
    DefaultAzureCredential (environment, workload or managed identity; https only)."""
    azure_key: SecretStr = SecretStr(AZURITE_KEY)
    """Account key (default: Azurite's public development key)."""
    azure_sas_token: SecretStr | None = None
    """SAS token, with `azure_credential=sas`."""

    # GCS (fake-gcs-server locally).
    gcs_port: int = 14443
    """Port of the local fake-gcs-server."""
    gcs_project: str = "movingdata"
    """GCS project buckets are created in."""
    gcs_credential: Literal["anonymous", "file", "default"] = "anonymous"
    """How requests are signed: not at all (the emulator), with the service-account JSON at
    `gcs_credentials_file`, or with application default credentials (workload identity)."""
    gcs_credentials_file: Path | None = None
    """Service-account key file, with `gcs_credential=file`."""

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_servers or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return self.mongo_uri or f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def openbao_addr(self) -> str:
        return self.openbao_url or f"http://127.0.0.1:{self.openbao_port}"

    @property
    def s3_endpoint(self) -> str:
        return self.s3_url or f"http://127.0.0.1:{self.s3_port}"

    @property
    def azure_endpoint(self) -> str:
        return self.azure_url or f"http://127.0.0.1:{self.azure_port}/{self.azure_account}"

    @property
    def azure_connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.azure_account};"
            f"AccountKey={self.azure_key.get_secret_value()};BlobEndpoint={self.azure_endpoint};"
        )

    @property
    def gcs_endpoint(self) -> str:
        return self.gcs_url or f"http://127.0.0.1:{self.gcs_port}"


def settings_table() -> str:
    """Every setting as a Markdown table row: variable, meaning, default (the README's)."""
    rows = ["| Variable | Meaning | Default |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            shown = "(a public development value)"
        elif default is None or default == ():
            shown = ""
        elif isinstance(default, tuple):  # given as JSON, like the environment takes it
            shown = "`[" + ",".join(f'"{v}"' for v in default) + "]`"
        else:
            shown = f"`{default}`"
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `MOVINGDATA_{name.upper()}` | {meaning} | {shown} |")
    return "\n".join(rows) + "\n"


OPERATOR_ENV = "operator.env"


def kafka_role_env(role: KafkaRole) -> str:
    """The file under ``home`` holding the local broker's SASL user of ``role``."""
    return f"kafka-{role}.env"


def load_settings(operator: bool = False, kafka_role: KafkaRole | None = None) -> Settings:
    """Read the environment once, then the stack's generated ``local.env`` under ``home``;
    an operator's command (not a worker) also reads ``operator.env``: the reader's and the
    admin's OpenBao tokens, which workers never hold. A process of a role (``kafka_role``,
    or ``MOVINGDATA_KAFKA_ROLE``) then reads that role's SASL user, ``kafka-<role>.env``,
    over ``local.env``'s."""
    base = Settings()
    home = base.home.resolve()
    role = base.kafka_role or kafka_role
    files = (
        home / "local.env",
        *((home / OPERATOR_ENV,) if operator else ()),
        *((home / kafka_role_env(role),) if role else ()),
    )
    return Settings(_env_file=files, home=home, kafka_role=role)  # type: ignore[call-arg]
