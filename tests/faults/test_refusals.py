"""A store refusing one object stops that object, never the worker: workers whose S3 identity
is confined to their own buckets are asked to read one elsewhere."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.pipeline import Pipeline
from tests.stores import drop_container
from workers.client.state import State
from workers.settings import Settings, load_settings
from workers.stack.services import CONFINED_PREFIX, SeaweedFS
from workers.stores.s3 import S3Store


@pytest.fixture
async def outside(unique: str) -> AsyncIterator[str]:
    """A bucket, and an object in it, the confined identity may not read."""
    settings = load_settings()
    bucket = f"outside-{unique}"
    store = S3Store(bucket, settings)
    await store.ensure_container()

    async def body() -> AsyncIterator[bytes]:
        yield b"somebody else's data"

    await store.write("private.bin", body())
    yield bucket
    await store.delete("private.bin")
    await store.close()
    await drop_container("s3", bucket, settings)


@pytest.fixture
def pipeline_overrides(unique: str, outside: str, settings: Settings) -> dict[str, object]:
    access, secret = SeaweedFS(settings).confined_credentials()
    return {
        "bucket": f"{CONFINED_PREFIX}{unique}",
        "source_buckets": (outside,),
        "s3_access_key": SecretStr(access),
        "s3_secret_key": SecretStr(secret),
    }


async def test_an_unreadable_url_source_is_dead_lettered_and_the_worker_runs_on(
    pipeline: Pipeline, worker_all, state: State, outside: str, tmp_path: Path
) -> None:
    refused = pipeline.cli("put", "--url", f"s3://{outside}/private.bin", "--wait")
    assert refused.returncode == 1
    assert "AccessDenied" in refused.stdout, refused.stdout + refused.stderr
    letter = await state.db["deadletters"].find_one({"stage": "encrypt"})
    assert letter is not None and "s3 read private.bin: AccessDenied" in letter["reason"]
    assert worker_all.poll() is None  # the worker runs on
    (tmp_path / "mine.txt").write_bytes(b"my own data")
    mine = pipeline.cli("put", str(tmp_path / "mine.txt"), "--wait")
    assert mine.returncode == 0 and "mine.txt v1 verified" in mine.stdout, mine.stdout
