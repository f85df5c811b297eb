"""How the Azure store signs: the account key, a SAS token, or DefaultAzureCredential."""

import base64
import time
import traceback
from pathlib import Path
from typing import Literal

import aiohttp.connector
import pytest
from aiohttp import web
from pydantic import SecretStr

from tests.unit.stores.recording import LocalTLS, Recorder, Seen, recording
from workers.errors import Fatal
from workers.settings import AZURITE_ACCOUNT, Settings
from workers.stores.azure import AzureBlobStore

KEY = base64.b64encode(b"a test account key, not Azurite's").decode()
SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS1zYXM%3D"
SAS = f"?sv=2024-08-04&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&sig={SIGNATURE}"
IDENTITY_HEADER = "identity-header-secret"


async def container_properties(seen: Seen) -> web.Response:
    if seen.path == "/msi/token":  # App Service's managed identity endpoint
        token = {
            "access_token": "azure-tok-123",
            "expires_on": str(int(time.time()) + 3600),
            "resource": seen.query["resource"],
            "token_type": "Bearer",
        }
        return web.json_response(token)
    headers = {
        "ETag": '"0x8D0000000000000"',
        "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT",
        "x-ms-version": "2025-01-05",
    }
    return web.Response(status=200, headers=headers)


async def auth_failed(seen: Seen) -> web.Response:
    headers = {"x-ms-error-code": "AuthenticationFailed"}
    return web.Response(status=403, headers=headers)


def properties_request(recorder: Recorder, account: str) -> Seen:
    (request,) = recorder.to(f"/{account}/box")
    assert (request.method, request.query.get("restype")) == ("GET", "container")
    return request


async def check(settings: Settings) -> None:
    store = AzureBlobStore("box", settings)
    try:
        await store.check()
    finally:
        await store.close()


async def test_zero_configuration_signs_with_azurites_key(tmp_path: Path) -> None:
    async with recording(container_properties) as recorder:
        await check(Settings(home=tmp_path, azure_url=f"{recorder.url}/{AZURITE_ACCOUNT}"))
    request = properties_request(recorder, AZURITE_ACCOUNT)
    assert request.headers["Authorization"].startswith(f"SharedKey {AZURITE_ACCOUNT}:")


async def test_account_key(tmp_path: Path) -> None:
    async with recording(container_properties) as recorder:
        settings = Settings(
            home=tmp_path,
            azure_url=f"{recorder.url}/acct",
            azure_account="acct",
            azure_key=SecretStr(KEY),
        )
        await check(settings)
    request = properties_request(recorder, "acct")
    authorization = request.headers["Authorization"]
    assert authorization.startswith("SharedKey acct:")
    assert KEY not in authorization


async def test_sas_token(tmp_path: Path) -> None:
    async with recording(container_properties) as recorder:
        settings = Settings(
            home=tmp_path,
            azure_url=f"{recorder.url}/acct",
            azure_credential="sas",
            azure_sas_token=SecretStr(SAS),
        )
        await check(settings)
    request = properties_request(recorder, "acct")
    assert request.query["sig"] == "c2lnbmF0dXJlLW9mLXRoZS1zYXM="  # decoded by the server
    assert (request.query["sv"], request.query["sp"]) == ("2024-08-04", "rwdlac")
    assert "Authorization" not in request.headers


async def test_sas_without_a_token_is_fatal(tmp_path: Path) -> None:
    with pytest.raises(Fatal, match="AZURE_SAS_TOKEN"):
        await check(Settings(home=tmp_path, azure_credential="sas"))


async def test_default_credential_sends_a_bearer_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_tls: LocalTLS
) -> None:
    """DefaultAzureCredential as shipped, resolved offline: App Service's managed identity
    (IDENTITY_ENDPOINT, IDENTITY_HEADER) served by the recorder, over https since the SDK
    sends Bearer tokens over TLS only. aiohttp's default verifying context is swapped for one
    trusting the test CA: neither SDK takes a CA bundle from the environment."""
    monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", local_tls.client)
    async with recording(container_properties, tls=local_tls.server) as recorder:
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{recorder.url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
        settings = Settings(
            home=tmp_path, azure_url=f"{recorder.url}/acct", azure_credential="default"
        )
        await check(settings)
    (token_request,) = recorder.to("/msi/token")
    assert token_request.headers["X-IDENTITY-HEADER"] == IDENTITY_HEADER
    assert token_request.query["resource"] == "https://storage.azure.com"
    request = properties_request(recorder, "acct")
    assert request.headers["Authorization"] == "Bearer azure-tok-123"


async def test_default_credential_over_http_is_fatal(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, azure_url="http://127.0.0.1:9/acct", azure_credential="default"
    )
    with pytest.raises(Fatal, match="https"):
        await check(settings)


@pytest.mark.parametrize("kind", ["key", "sas"])
async def test_refused_credentials_stay_out_of_the_error(
    tmp_path: Path, kind: Literal["key", "sas"]
) -> None:
    async with recording(auth_failed) as recorder:
        settings = Settings(
            home=tmp_path,
            azure_url=f"{recorder.url}/acct",
            azure_account="acct",
            azure_credential=kind,
            azure_key=SecretStr(KEY),
            azure_sas_token=SecretStr(SAS),
        )
        with pytest.raises(Fatal, match="refuses") as caught:
            await check(settings)
    text = "".join(traceback.format_exception(caught.value))
    assert KEY not in text
    assert "c2lnbmF0dXJl" not in text
