"""Fixtures of the store credential tests: a clean environment, a local CA for https."""

import os
import ssl
from pathlib import Path

import pytest

from tests.unit.stores.recording import LocalTLS
from workers.stack.tls import ensure_server_tls


@pytest.fixture
def local_tls(tmp_path: Path) -> LocalTLS:
    ca_file, server_file = ensure_server_tls(tmp_path / "tls")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(server_file)
    return LocalTLS(server, ssl.create_default_context(cafile=ca_file))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials from the machine: every cloud variable cleared, the AWS and gcloud
    files pointed away, the EC2 metadata service off; each test sees only what it sets."""
    for name in list(os.environ):
        if name.startswith(("MOVINGDATA_", "AWS_", "AZURE_", "GOOGLE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
