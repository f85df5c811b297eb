"""How the GCS store signs: not at all for the emulator, else a Bearer token from a
service-account key (named in settings, or found as application default credentials)."""

import json
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.stores.recording import Recorder, Seen, recording
from workers.errors import Fatal
from workers.settings import Settings
from workers.stores.gcs import GCSStore

CLIENT_EMAIL = "mover@project.iam.gserviceaccount.com"
OBJECT = {"name": "key", "size": "3", "storageClass": "STANDARD", "metadata": {"a": "b"}}


async def gcs(seen: Seen) -> web.Response:
    if seen.path == "/token":
        return web.json_response(
            {"access_token": "tok-123", "expires_in": 3600, "token_type": "Bearer"}
        )
    if seen.path == "/storage/v1/b/bucket":
        return web.json_response({"name": "bucket"})
    if seen.path == "/storage/v1/b/bucket/o/key":
        return web.json_response(OBJECT)
    return web.Response(status=404)


async def check_and_stat(settings: Settings) -> None:
    """Two calls: one the store makes itself (bucket check), one through gcloud-aio (stat)."""
    store = GCSStore("bucket", settings)
    try:
        await store.check()
        assert (await store.stat("key")).metadata == {"a": "b"}
    finally:
        await store.close()


def service_account(folder: Path, token_uri: str) -> tuple[Path, rsa.RSAPublicKey]:
    """A service-account key file with a fresh RSA key, whose tokens come from ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "project",
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = folder / "service-account.json"
    path.write_text(json.dumps(info))
    return path, key.public_key()


def assert_signed_with_a_token(recorder: Recorder, public_key: rsa.RSAPublicKey) -> None:
    (token_request,) = recorder.to("/token")  # one token, cached for both calls
    form = {k: v for k, (v,) in parse_qs(token_request.body.decode()).items()}
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(
        form["assertion"], public_key, algorithms=["RS256"], audience=f"{recorder.url}/token"
    )
    assert claims["iss"] == CLIENT_EMAIL
    assert claims["scope"] == "https://www.googleapis.com/auth/devstorage.read_write"
    storage = recorder.to("/storage/")
    assert [s.path for s in storage] == ["/storage/v1/b/bucket", "/storage/v1/b/bucket/o/key"]
    assert all(s.headers["Authorization"] == "Bearer tok-123" for s in storage)


async def test_the_emulator_gets_no_authorization(tmp_path: Path) -> None:
    async with recording(gcs) as recorder:
        await check_and_stat(Settings(home=tmp_path, gcs_url=recorder.url))
    assert [s.path for s in recorder.seen] == ["/storage/v1/b/bucket", "/storage/v1/b/bucket/o/key"]
    assert all("Authorization" not in s.headers for s in recorder.seen)


async def test_service_account_file(tmp_path: Path) -> None:
    async with recording(gcs) as recorder:
        path, public_key = service_account(tmp_path, f"{recorder.url}/token")
        settings = Settings(
            home=tmp_path, gcs_url=recorder.url, gcs_credential="file", gcs_credentials_file=path
        )
        await check_and_stat(settings)
    assert_signed_with_a_token(recorder, public_key)


async def test_application_default_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with recording(gcs) as recorder:
        path, public_key = service_account(tmp_path, f"{recorder.url}/token")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
        await check_and_stat(
            Settings(home=tmp_path, gcs_url=recorder.url, gcs_credential="default")
        )
    assert_signed_with_a_token(recorder, public_key)


@pytest.mark.parametrize("content", [None, "not json"])
async def test_an_unusable_credentials_file_is_fatal(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "service-account.json"
    if content is not None:
        path.write_text(content)
    settings = Settings(
        home=tmp_path,
        gcs_url="http://127.0.0.1:9",
        gcs_credential="file",
        gcs_credentials_file=path,
    )
    with pytest.raises(Fatal, match=r"(?i)gcs.credentials"):
        await check_and_stat(settings)


async def test_file_without_a_file_is_fatal(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, gcs_url="http://127.0.0.1:9", gcs_credential="file")
    with pytest.raises(Fatal, match="GCS_CREDENTIALS_FILE"):
        await check_and_stat(settings)
