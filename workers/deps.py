"""What handlers need, built once per worker process and passed in (never global)."""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from topics import create_topics
from workers.keyregistry import DataKeys, KeyRegistry, MongoKeyRegistry
from workers.keys import KeyEncryptionKey, open_kek
from workers.settings import Settings
from workers.stores import open_store
from workers.stores.base import ObjectStore

STORE_SCHEMES = {"s3": "s3", "azure": "azure", "gcs": "gs"}


@dataclass
class Deps:
    """Stores by target name, the KEK, settings, and the sources of randomness and time."""

    settings: Settings
    stores: Mapping[str, ObjectStore]
    kek: KeyEncryptionKey
    registry: KeyRegistry
    rng: Callable[[int], bytes] = os.urandom
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def store(self, target: str) -> ObjectStore:
        return self.stores[target]

    @property
    def data_keys(self) -> DataKeys:
        return DataKeys(self.registry, self.kek)

    async def close(self) -> None:
        for store in self.stores.values():
            await store.close()
        await self.registry.close()
        close = getattr(self.kek, "close", None)
        if close is not None:
            await close()


def target_url(target: str, settings: Settings) -> str:
    return f"{STORE_SCHEMES[target]}://{settings.bucket}"


def build_deps(settings: Settings) -> Deps:
    stores = {t: open_store(target_url(t, settings), settings) for t in settings.targets}
    registry = MongoKeyRegistry(settings.mongo_url, settings.mongo_database)
    return Deps(settings=settings, stores=stores, kek=open_kek(settings), registry=registry)


def object_key(tenant: str, object_id: str, version: int) -> str:
    """Store key of one object version: derived, so a redelivered write overwrites itself."""
    return f"{tenant}/{object_id}/v{version}"


async def prepare(settings: Settings) -> None:
    """Start-up work of a worker: declare every topic, create every target container."""
    await create_topics(settings.kafka_bootstrap, settings.topic_prefix, settings.topic_partitions)
    for target in settings.targets:
        store = open_store(target_url(target, settings), settings)
        try:
            await store.ensure_container()
        finally:
            await store.close()
