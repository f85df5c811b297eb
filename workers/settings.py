"""One frozen settings object, read from ``MOVINGDATA_*`` environment variables.

It is loaded once (``load_settings``) and passed down; nothing else reads the environment.
The local stack writes the credentials it generates to ``<home>/local.env`` (mode 600), which
is read as a lower-priority source, so a user's environment always wins.
"""

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Azurite's documented development account: public, identical in every Azurite install.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Settings(BaseSettings):
    """Every knob of MovingData. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(env_prefix="MOVINGDATA_", frozen=True, extra="ignore")

    # The pipeline.
    topic_prefix: str = "movingdata"
    topic_partitions: int = 4
    bucket: str = "movingdata"
    targets: tuple[str, ...] = ("s3", "azure", "gcs")
    # Path sources are for deployments where workers share the clients' filesystem: none is
    # allowed unless roots are set. Clients elsewhere upload to the staging area instead.
    source_roots: tuple[Path, ...] = ()
    source_buckets: tuple[str, ...] = ("movingdata",)
    # Staging: clients upload plaintext here (the S3 store's bucket, SSE-KMS at rest); encrypt
    # deletes each copy once its ciphertext is recorded, and a sweep removes what is older than
    # the TTL (interrupted or refused uploads).
    staging_target: Literal["s3", "azure", "gcs"] = "s3"
    staging_prefix: str = "_staging/"
    staging_ttl_s: float = 24 * 3600.0
    staging_sweep_s: float = 600.0
    # Versions of each object to keep (0: all); older ones are deleted through the chain.
    retain_versions: int = 0
    initial_tier: Literal["hot", "warm", "cold", "archive"] = "hot"
    chunk_size: int = 1024 * 1024
    # Events one stage agent handles at once (different objects). Each one in flight holds at
    # most one upload part (S3 8 MiB, GCS 32 MiB), whatever the object's size.
    stage_batch: int = 8
    max_attempts: int = 10
    retry_cap_s: float = 60.0  # longest wait between two retries of one event
    # How long the broker waits before giving a silent worker's partitions to another.
    broker_session_timeout_s: float = 30.0
    log_level: str = "INFO"

    # The HTTP API and the dashboard.
    api_host: str = "127.0.0.1"
    api_port: int = 8001
    api_max_upload_bytes: int = 5 * 1024**3
    api_rate_per_minute: int = 600  # per token
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8501
    dashboard_token: SecretStr | None = None  # a reader token; else the page asks for one
    # Every worker serves /healthz, /readyz and /metrics here (0: a free port, logged).
    worker_host: str = "127.0.0.1"  # 0.0.0.0 where probes and scrapers come from outside
    worker_port: int = 0

    # Endpoints of services elsewhere (a deployment); unset, the local stack's ports are used.
    kafka_servers: str | None = None
    # How Kafka clients connect (every client of the project: workers, CLI, tests, bench).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Topics are created with these (1 on the local one-node broker; 3 and 2 in production).
    topic_replication: int = 1
    topic_min_insync: int = 1
    mongo_uri: str | None = None
    openbao_url: str | None = None
    s3_url: str | None = None
    azure_url: str | None = None
    gcs_url: str | None = None

    # Local state: one folder per service, PID files, logs, generated secrets.
    home: Path = Path(".movingdata")
    stack_timeout_s: float = 120.0

    # Kafka-protocol broker.
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_sasl_port: int = 19094  # the local broker's SASL_SSL listener
    kafka_heap: str = "512m"

    # MongoDB-protocol database (FerretDB).
    mongo_port: int = 27117
    mongo_database: str = "movingdata"

    # OpenBao: the KMS behind SSE-KMS and the envelope encryption's key-encryption key.
    openbao_port: int = 18200
    openbao_cluster_port: int = 18201
    openbao_token: SecretStr | None = None  # workers: the KEK's encrypt/decrypt, signing
    openbao_reader_token: SecretStr | None = None  # restore, audit verify: decrypt, verify
    openbao_admin_token: SecretStr | None = None  # keys rotate: rewrap, rotate, disable
    kek_provider: Literal["openbao", "local"] = "openbao"
    kek_name: str = "movingdata"
    # Audit checkpoints: every chain head, signed by this transit key, this often.
    audit_signing_key: str = "movingdata-audit"
    audit_checkpoint_s: float = 30.0

    # SeaweedFS S3 gateway and its internal ports.
    s3_port: int = 18333
    s3_region: str = "us-east-1"
    # Both keys, or neither: then the keys the local stack generated while s3_url is unset,
    # else the AWS default chain (environment, shared files, container/instance role, IRSA).
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_profile: str | None = None  # a profile of the shared AWS config and credentials files
    s3_kms_key_id: str = "movingdata-sse"
    seaweed_master_port: int = 19333
    seaweed_volume_port: int = 18080
    seaweed_filer_port: int = 18888

    # Azurite (Azure Blob emulator). How requests are signed: the account key, the SAS token,
    # or azure-identity's DefaultAzureCredential (environment, workload or managed identity,
    # Azure CLI; over https only).
    azure_port: int = 10000
    azure_account: str = AZURITE_ACCOUNT
    azure_credential: Literal["key", "sas", "default"] = "key"
    azure_key: SecretStr = SecretStr(AZURITE_KEY)
    azure_sas_token: SecretStr | None = None

    # fake-gcs-server. How requests are signed: not at all (the emulator), with the credentials
    # JSON at gcs_credentials_file (a service-account key), or with application default
    # credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, workload identity).
    gcs_port: int = 14443
    gcs_project: str = "movingdata"
    gcs_credential: Literal["anonymous", "file", "default"] = "anonymous"
    gcs_credentials_file: Path | None = None

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


OPERATOR_ENV = "operator.env"


def load_settings(operator: bool = False) -> Settings:
    """Read the environment once, then the stack's generated ``local.env`` under ``home``;
    an operator's command (not a worker) also reads ``operator.env``: the reader's and the
    admin's OpenBao tokens, which workers never hold."""
    base = Settings()
    home = base.home.resolve()
    files = (home / "local.env", *((home / OPERATOR_ENV,) if operator else ()))
    return Settings(_env_file=files, home=home)  # type: ignore[call-arg]
