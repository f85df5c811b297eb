"""Every topic, declared once: name, partitions, retention, compaction, value schema.

Names carry a prefix (``movingdata`` by default) so a test or a second deployment can run a
whole isolated chain on one broker. Topics are created explicitly at start-up
(``create_topics``), never by broker auto-creation.
"""

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.events import (
    AuditRecord,
    DeadLetter,
    DeleteRequest,
    Event,
    IngestRequest,
    ObjectAccepted,
    ObjectAccessed,
    ObjectEncrypted,
    ReplicaRemoval,
    ReplicaRemoved,
    ReplicaTiered,
    ReplicaVerified,
    ReplicaWritten,
    RetryRequest,
    SyncPage,
    TierChange,
)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of the chain; ``suffix`` is appended to the deployment's prefix."""

    suffix: str
    value: type[Event]
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False

    def name(self, prefix: str) -> str:
        return f"{prefix}.{self.suffix}"


INGEST = TopicSpec("ingest", IngestRequest)
ACCEPTED = TopicSpec("accepted", ObjectAccepted)
ENCRYPTED = TopicSpec("encrypted", ObjectEncrypted)
# Replication and verification get one topic per target: a slow or absent store then holds
# back only its own partitions, never the other stores' (no head-of-line blocking).
TARGETS = ("s3", "azure", "gcs")
REPLICATE = {t: TopicSpec(f"replicate.{t}", ObjectEncrypted) for t in TARGETS}
REPLICATED = {t: TopicSpec(f"replicated.{t}", ReplicaWritten) for t in TARGETS}
VERIFIED = TopicSpec("verified", ReplicaVerified)
TIERED = TopicSpec("tiered", ReplicaTiered)
ACCESS = TopicSpec("access", ObjectAccessed)
RETIER = TopicSpec("retier", TierChange)
DELETE = TopicSpec("delete", DeleteRequest)
REMOVE = TopicSpec("remove", ReplicaRemoval)
REMOVED = TopicSpec("removed", ReplicaRemoved)
AUDIT = TopicSpec("audit", AuditRecord, retention_ms=30 * DAY_MS)
RETRY = TopicSpec("retry", RetryRequest)
DEADLETTER = TopicSpec("deadletter", DeadLetter, retention_ms=30 * DAY_MS)
SYNC = TopicSpec("sync", SyncPage)  # sync jobs, one page of a listing per event

ALL: tuple[TopicSpec, ...] = (
    INGEST,
    ACCEPTED,
    ENCRYPTED,
    *REPLICATE.values(),
    *REPLICATED.values(),
    VERIFIED,
    TIERED,
    ACCESS,
    RETIER,
    DELETE,
    REMOVE,
    REMOVED,
    AUDIT,
    RETRY,
    DEADLETTER,
    SYNC,
)


async def create_topics(
    options: Mapping[str, Any],
    prefix: str,
    partitions: int,
    replication: int = 1,
    min_insync: int = 1,
) -> list[str]:
    """Create every topic that does not exist yet; return the names created. ``options`` are
    the aiokafka client's (servers, TLS, SASL: ``workers.broker.kafka_options``)."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                spec.name(prefix),
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs={
                    "retention.ms": str(spec.retention_ms),
                    "cleanup.policy": "compact" if spec.compacted else "delete",
                    "min.insync.replicas": str(min_insync),
                },
            )
            for spec in ALL
            if spec.name(prefix) not in existing
        ]
        if missing:
            # another worker may create them between list and create
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def delete_topics(options: Mapping[str, Any], prefix: str) -> None:
    """Delete every topic of one deployment prefix (tests and benchmarks clean up with it)."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [spec.name(prefix) for spec in ALL if spec.name(prefix) in existing]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
