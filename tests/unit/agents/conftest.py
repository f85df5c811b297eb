"""Handlers run over in-memory stores and a local keyring: real logic, no broker."""

import base64
import hashlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from schemas.events import IngestRequest, Placement, Source
from workers.catalog import MemoryCatalog
from workers.client.identity import cli_actor
from workers.client.puts import put_request
from workers.core.versions import Content
from workers.deps import Deps
from workers.dispatch import Message
from workers.kms.keyregistry import MemoryKeyRegistry
from workers.kms.keyring import LocalKeyring
from workers.settings import Settings
from workers.stores.memory import MemoryStore


class ListPublisher:
    """Collects what a dispatcher sends, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.sends: list[list[str]] = []  # the topics of each send, one list per call

    async def send(self, messages: Sequence[Message]) -> None:
        self.sent.extend((topic.suffix, key, value) for topic, key, value in messages)
        self.sends.append([topic.suffix for topic, _, _ in messages])

    def on(self, suffix: str) -> list[bytes]:
        return [value for topic, _, value in self.sent if topic == suffix]


@pytest.fixture
async def deps(tmp_path: Path, unique: str) -> AsyncIterator[Deps]:
    settings = Settings(
        home=tmp_path, source_roots=(tmp_path,), chunk_size=4096, kek_provider="local"
    )
    stores = {t: MemoryStore(f"{unique}-{t}", part_size=1000) for t in ("s3", "azure", "gcs")}
    for store in stores.values():
        await store.ensure_container()
    yield Deps(
        settings=settings,
        stores=stores,
        staging=stores["s3"],
        kek=LocalKeyring(tmp_path / "keyring.json"),
        registry=MemoryKeyRegistry(),
        catalog=MemoryCatalog(),
    )


def content(data: bytes) -> Content:
    return Content(len(data), hashlib.sha256(data).hexdigest())


def inline_request(data: bytes, name: str = "docs/a.bin", **placement: object) -> IngestRequest:
    """A put of ``data`` with its digest, as a client sends it."""
    return put_request(
        Placement(name=name, targets=("s3", "azure", "gcs"), **placement),  # type: ignore[arg-type]
        Source(inline_b64=base64.b64encode(data).decode()),
        content(data),
        actor=cli_actor(),
    )
