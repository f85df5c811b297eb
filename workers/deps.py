"""What handlers need, built once per worker process and passed in (never global)."""

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from topics import create_topics
from workers.broker import kafka_options
from workers.catalog import Catalog, MongoCatalog
from workers.kms.keyregistry import DataKeys, KeyRegistry, MongoKeyRegistry
from workers.kms.keys import KeyEncryptionKey, Role, open_kek
from workers.metrics import measured
from workers.settings import Settings
from workers.stores import open_store
from workers.stores.base import ObjectStore
from workers.sync.jobs import SyncBook

STORE_SCHEMES = {"s3": "s3", "azure": "azure", "gcs": "gs"}


@dataclass
class Deps:
    """Stores by target name, the staging store, the KEK, the key registry, the version
    catalog, settings, and the sources of randomness and time."""

    settings: Settings
    stores: Mapping[str, ObjectStore]
    staging: ObjectStore
    kek: KeyEncryptionKey
    registry: KeyRegistry
    catalog: Catalog
    syncs: SyncBook | None = None  # sync jobs (the scan stage's)
    rng: Callable[[int], bytes] = os.urandom
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    clock: Callable[[], float] = time.monotonic  # for durations

    def store(self, target: str) -> ObjectStore:
        return self.stores[target]

    @property
    def data_keys(self) -> DataKeys:
        return DataKeys(self.registry, self.kek)

    async def close(self) -> None:
        for store in {id(s): s for s in (*self.stores.values(), self.staging)}.values():
            await store.close()
        await self.registry.close()
        await self.catalog.close()
        if self.syncs is not None:
            await self.syncs.close()
        close = getattr(self.kek, "close", None)
        if close is not None:
            await close()


def target_url(target: str, settings: Settings) -> str:
    return f"{STORE_SCHEMES[target]}://{settings.bucket}"


def build_deps(settings: Settings, role: Role = "worker") -> Deps:
    """What a process needs; ``role`` picks the OpenBao token its KEK calls use."""
    stores: dict[str, ObjectStore] = {
        t: measured(open_store(target_url(t, settings), settings)) for t in settings.targets
    }
    staging = stores.get(settings.staging_target) or measured(
        open_store(target_url(settings.staging_target, settings), settings)
    )
    url, database = settings.mongo_url, settings.mongo_database
    return Deps(
        settings=settings,
        stores=stores,
        staging=staging,
        kek=open_kek(settings, role),
        registry=MongoKeyRegistry(url, database),
        catalog=MongoCatalog(url, database),
        syncs=SyncBook(url, database),
    )


def version_prefix(tenant: str, object_id: str, version: int) -> str:
    """Where one object version's ciphertext lives in every store (never the user's name).

    Each encrypt attempt writes a key of its own below it (``<prefix><writer>``); the key
    registry records which one counts, so two encrypts of one version never overwrite each
    other, and removing a version removes everything below its prefix.
    """
    return f"{tenant}/{object_id}/v{version}/"


async def prepare(settings: Settings) -> None:
    """Start-up work of a worker: declare every topic, create every target container."""
    await create_topics(
        kafka_options(settings),
        settings.topic_prefix,
        settings.topic_partitions,
        settings.topic_replication,
        settings.topic_min_insync,
    )
    for target in {*settings.targets, settings.staging_target}:
        store = open_store(target_url(target, settings), settings)
        try:
            await store.ensure_container()
        finally:
            await store.close()
