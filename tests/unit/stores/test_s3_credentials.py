"""Which keys the S3 store signs with: explicit settings, else the AWS default chain."""

import traceback
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from tests.unit.stores.recording import Recorder, Seen, recording
from workers.errors import Fatal
from workers.settings import Settings
from workers.stores.s3 import S3Store

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


async def bucket_exists(seen: Seen) -> web.Response:
    return web.Response(status=200, headers={"x-amz-bucket-region": "us-east-1"})


async def access_denied(seen: Seen) -> web.Response:
    return web.Response(status=403)


def signed_by(recorder: Recorder) -> str:
    """The access key id in the SigV4 Authorization of the one HeadBucket sent."""
    (head,) = recorder.to("/bucket")
    assert head.method == "HEAD"
    authorization = head.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential="), authorization
    assert SECRET not in str(head.headers)
    return authorization.removeprefix("AWS4-HMAC-SHA256 Credential=").split("/")[0]


async def check(settings: Settings) -> None:
    store = S3Store("bucket", settings)
    try:
        await store.check()
    finally:
        await store.close()


async def test_explicit_keys_from_settings(tmp_path: Path) -> None:
    async with recording(bucket_exists) as recorder:
        await check(
            Settings(
                home=tmp_path,
                s3_url=recorder.url,
                s3_access_key=SecretStr("AKIDSETTINGS"),
                s3_secret_key=SecretStr(SECRET),
            )
        )
    assert signed_by(recorder) == "AKIDSETTINGS"


async def test_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    async with recording(bucket_exists) as recorder:
        await check(Settings(home=tmp_path, s3_url=recorder.url))
    assert signed_by(recorder) == "AKIDENVIRONMENT"


@pytest.mark.parametrize(("profile", "access_key"), [(None, "AKIDDEFAULT"), ("etl", "AKIDETL")])
async def test_keys_from_the_shared_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str | None, access_key: str
) -> None:
    credentials, config = tmp_path / "credentials", tmp_path / "config"
    credentials.write_text(
        f"[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = {SECRET}\n"
        f"[etl]\naws_access_key_id = AKIDETL\naws_secret_access_key = {SECRET}\n"
    )
    config.write_text("[default]\nregion = us-east-1\n[profile etl]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    async with recording(bucket_exists) as recorder:
        await check(Settings(home=tmp_path, s3_url=recorder.url, s3_profile=profile))
    assert signed_by(recorder) == access_key


async def test_settings_keys_win_over_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    async with recording(bucket_exists) as recorder:
        await check(
            Settings(
                home=tmp_path,
                s3_url=recorder.url,
                s3_access_key=SecretStr("AKIDSETTINGS"),
                s3_secret_key=SecretStr(SECRET),
            )
        )
    assert signed_by(recorder) == "AKIDSETTINGS"


async def test_no_credentials_anywhere_is_fatal(tmp_path: Path) -> None:
    async with recording(bucket_exists) as recorder:
        with pytest.raises(Fatal, match="NoCredentialsError"):
            await check(Settings(home=tmp_path, s3_url=recorder.url))
    assert recorder.seen == []


async def test_an_unknown_profile_is_fatal(tmp_path: Path) -> None:
    async with recording(bucket_exists) as recorder:
        with pytest.raises(Fatal, match="ProfileNotFound"):
            await check(Settings(home=tmp_path, s3_url=recorder.url, s3_profile="nope"))


async def test_half_the_keys_is_fatal(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, s3_url="http://127.0.0.1:9", s3_secret_key=SecretStr(SECRET))
    with pytest.raises(Fatal, match="both") as caught:
        await check(settings)
    assert SECRET not in "".join(traceback.format_exception(caught.value))


async def test_refused_keys_stay_out_of_the_error(tmp_path: Path) -> None:
    async with recording(access_denied) as recorder:
        with pytest.raises(Fatal, match="refuses") as caught:
            await check(
                Settings(
                    home=tmp_path,
                    s3_url=recorder.url,
                    s3_access_key=SecretStr("AKIDSETTINGS"),
                    s3_secret_key=SecretStr(SECRET),
                )
            )
    assert SECRET not in "".join(traceback.format_exception(caught.value))
