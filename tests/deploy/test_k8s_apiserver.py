"""deploy/k8s/ against a real Kubernetes API server: ``kube-apiserver`` and an embedded etcd,
built from the Go module proxy (the wrapper module deploy/k8s/apiserver/, one binary for both,
cached under .movingdata/tools/), started on free loopback ports with their data under
.movingdata/. KEDA's CRDs and the namespace are created for real; then both overlays are sent
with ``kubectl apply --dry-run=server``: every object is admitted (defaulted, validated with
strict field validation, as a cluster would), and a manifest with a misspelt field is refused.
"""

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.deploy.manifests import K8S, ROOT, Doc, kustomize, render
from workers.settings import Settings

MODULE = ROOT / "deploy" / "k8s" / "apiserver"
VERSION = "v1.34.2"  # k8s.io/kubernetes in MODULE's go.mod
LDFLAGS = " ".join(
    [
        "-s -w",
        f"-X k8s.io/component-base/version.gitVersion={VERSION}",
        "-X k8s.io/component-base/version.gitMajor=1",
        f"-X k8s.io/component-base/version.gitMinor={VERSION.split('.')[1]}",
    ]
)
READY_S = 120.0
KEDA_CRDS = sorted((K8S / "schemas").glob("keda.sh_*.yaml"))

# A cold build (both commands, one binary) takes minutes; a warm run, seconds.
pytestmark = pytest.mark.timeout(2400)


def binary() -> Path:
    """The wrapper module's binary, built once and kept while its sources are unchanged."""
    tools = Settings().home.resolve() / "tools" / "bin"
    built = tools / "k8s-apiserver"
    stamp = built.with_name("k8s-apiserver.sources")
    sources = hashlib.sha256(LDFLAGS.encode())
    for name in ("go.mod", "go.sum", "main.go"):
        sources.update((MODULE / name).read_bytes())
    if built.exists() and stamp.exists() and stamp.read_text() == sources.hexdigest():
        return built
    go = shutil.which("go")
    if go is None:
        pytest.fail("building kube-apiserver needs Go (https://go.dev/dl/) on PATH")
    tools.mkdir(parents=True, exist_ok=True)
    argv = [go, "build", "-trimpath", "-ldflags", LDFLAGS, "-o", str(built), "."]
    nice = shutil.which("nice")  # the machine stays usable while it compiles
    done = subprocess.run(
        [nice, "-n", "10", *argv] if nice else argv,
        cwd=MODULE,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"go build in {MODULE.relative_to(ROOT)} failed:\n{done.stderr[-4000:]}")
    stamp.write_text(sources.hexdigest())
    return built


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    """An API server and its etcd; ``kubectl`` runs against it."""

    folder: Path
    env: dict[str, str]
    logs: list[Path]

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def tails(self) -> str:
        return "\n".join(f"{p.name}:\n{p.read_text(errors='replace')[-2000:]}" for p in self.logs)


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def service_account_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if shutil.which("kubectl") is None:
        pytest.fail("these tests drive the API server with kubectl: install it (apt, or dl.k8s.io)")
    program = binary()
    folder = Settings().home.resolve() / "k8s-apiserver" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    token = secrets.token_hex(24)
    (folder / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
    (folder / "tokens.csv").chmod(0o600)
    service_account_key(folder / "service-account.key")
    etcd_port, peer_port, port = free_port(), free_port(), free_port()
    logs = [folder / "etcd.log", folder / "kube-apiserver.log"]
    etcd = start(
        [
            str(program), "etcd", "--data-dir", str(folder / "etcd"),
            "--client-url", f"http://127.0.0.1:{etcd_port}",
            "--peer-url", f"http://127.0.0.1:{peer_port}",
        ],
        logs[0],
    )  # fmt: skip
    apiserver = start(
        [
            str(program), "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={port}", f"--cert-dir={folder / 'certs'}",
            f"--token-auth-file={folder / 'tokens.csv'}", "--authorization-mode=AlwaysAllow",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={folder / 'service-account.key'}",
            f"--service-account-signing-key-file={folder / 'service-account.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # Nothing but requests from this test: no fairness queues, no endpoints to keep.
            "--enable-priority-and-fairness=false", "--endpoint-reconciler-type=none",
        ],
        logs[1],
    )  # fmt: skip
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    # the self-signed serving certificate and the CA that signed it
                    "certificate-authority": str(folder / "certs" / "apiserver.crt"),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }
    (folder / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    (folder / "kubeconfig").chmod(0o600)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(folder),  # kubectl's discovery cache
        "KUBECONFIG": str(folder / "kubeconfig"),
    }
    running = Cluster(folder, env, logs)
    try:
        deadline = time.monotonic() + READY_S
        while running.kubectl("get", "--raw", "/readyz").stdout != "ok":
            assert etcd.poll() is None and apiserver.poll() is None, running.tails()
            assert time.monotonic() < deadline, f"not ready in {READY_S} s\n{running.tails()}"
            time.sleep(1)
        yield running
    finally:
        stop(apiserver)
        stop(etcd)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    """Both overlays, their Secrets filled with placeholders (values are not checked)."""
    work = tmp_path_factory.mktemp("deploy")
    return render(kustomize(), work, lambda _overlay, _secret, key: f"test-{key.lower()}")


@pytest.fixture(scope="module")
def prepared(cluster: Cluster, rendered: dict[str, list[Doc]]) -> Cluster:
    """KEDA's CRDs served and the namespace created, as in a cluster the overlays go to."""
    for crd in KEDA_CRDS:  # too large for client-side apply's annotation
        done = cluster.kubectl("apply", "--server-side", "-f", str(crd))
        assert done.returncode == 0, done.stderr
    names = [f"crd/{yaml.safe_load(crd.read_text())['metadata']['name']}" for crd in KEDA_CRDS]
    done = cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", *names)
    assert done.returncode == 0, done.stderr
    namespace = next(d for d in rendered["prod"] if d["kind"] == "Namespace")
    done = cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(namespace))
    assert done.returncode == 0, done.stderr
    return cluster


def dry_run(cluster: Cluster, docs: list[Doc]) -> subprocess.CompletedProcess[str]:
    """``kubectl apply --dry-run=server`` of these objects (strict field validation, the
    default of kubectl's --validate)."""
    return cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        stdin=yaml.safe_dump_all(docs),
    )  # fmt: skip


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_api_server_admits_every_object_of_the_overlay(
    prepared: Cluster, rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    done = dry_run(prepared, docs)
    assert done.returncode == 0, done.stderr
    admitted = done.stdout.split()
    assert len(admitted) == len(docs), done.stdout
    kinds = {name.split("/")[0].split(".")[0] for name in admitted}
    assert {"deployment", "scaledobject", "triggerauthentication", "secret", "job"} <= kinds


@pytest.mark.parametrize(
    ("kind", "field", "misspelt"),
    [
        ("ScaledObject", "minReplicaCount", "minReplicasCount"),  # KEDA's CRD
        ("Deployment", "replicas", "replica"),  # a built-in type
    ],
)
def test_a_misspelt_field_is_refused(
    prepared: Cluster, rendered: dict[str, list[Doc]], kind: str, field: str, misspelt: str
) -> None:
    """A copy of a manifest with one field misspelt: the server refuses it, naming it."""
    docs = [dict(d) for d in rendered["prod"]]
    target = next(d for d in docs if d["kind"] == kind and field in d["spec"])
    target["spec"] = {misspelt if k == field else k: v for k, v in target["spec"].items()}
    done = dry_run(prepared, docs)
    assert done.returncode != 0, done.stdout
    assert "strict decoding error" in done.stderr and f'unknown field "spec.{misspelt}"' in (
        done.stderr
    ), done.stderr
