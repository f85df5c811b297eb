"""Prometheus metrics of a worker, and the small HTTP server every worker runs for them.

Names follow Prometheus conventions: ``_total`` counters, ``_seconds`` and ``_bytes``.
``/healthz`` answers while the process runs, ``/readyz`` checks the broker, the database,
every store and the KMS (``workers.health``), ``/metrics`` is the text exposition.
"""

import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, cast

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from schemas.events import Event, ObjectAccepted, ObjectEncrypted, ReplicaWritten
from workers.errors import MovingDataError
from workers.stores.base import ObjectInfo, ObjectStore, ReportsDigest, Tier, WriteResult

log = logging.getLogger("movingdata.metrics")

EVENTS = Counter(
    "movingdata_events_total", "Events handled, by stage and outcome", ["stage", "outcome"]
)
STAGE_SECONDS = Histogram(
    "movingdata_stage_seconds", "Time one event takes in a stage", ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)  # fmt: skip
BYTES = Counter("movingdata_stage_bytes_total", "Object bytes a stage moved", ["stage"])
RETRIES = Counter("movingdata_retries_total", "Events sent to the retry topic", ["stage"])
DEADLETTERS = Counter("movingdata_deadletters_total", "Events dead-lettered", ["stage"])
VERIFY_FAILURES = Counter(
    "movingdata_verification_failures_total", "Replicas that differed from their digest", ["store"]
)
REPAIRS = Counter("movingdata_repairs_total", "Replicas repaired from another", ["store"])
SCRUB_UNPROVEN = Counter(
    "movingdata_scrub_unproven_total",
    "Scrubs of an archived replica with no store digest to prove it by (left for later)",
    ["store"],
)
SCRUB_REHYDRATIONS = Counter(
    "movingdata_scrub_rehydrations_total",
    "Rehydrations the scheduled scrub started, to read back an archived replica",
    ["store"],
)
SCRUB_REHYDRATIONS_DEFERRED = Counter(
    "movingdata_scrub_rehydrations_deferred_total",
    "Archived replicas the scrub would rehydrate that the day's budget had no room for",
    ["store"],
)
VERSIONS = Gauge(
    "movingdata_versions", "Stored versions by state (the scheduled scrub's count)", ["state"]
)
OLDEST_PROOF = Gauge(
    "movingdata_oldest_proof_age_seconds",
    "Age of the oldest good verdict among the live replicas of a store",
    ["store"],
)
CHECKPOINT_REFUSED = Gauge(
    "movingdata_audit_checkpoint_refused",
    "Chains whose head the sink refused to sign in its last round (1 more if the log itself)",
)
JOB_FAILURES = Counter(
    "movingdata_job_failures_total",
    "Rounds of a sink leader's job that failed (tried again next round): checkpoint, scrub, "
    "reconcile, retention",
    ["task"],
)
JOB_SUCCEEDED = Gauge(
    "movingdata_job_last_success_timestamp_seconds",
    "When a sink leader's job last finished a round without failing (Unix time)",
    ["task"],
)
SCRUB_BEHIND = Gauge(
    "movingdata_scrub_behind_seconds",
    "How far past the scrub window the least recently attempted replica is (0: on time)",
)
STORE_SECONDS = Histogram(
    "movingdata_store_request_seconds", "Store requests, by store and operation", ["store", "op"]
)
STORE_ERRORS = Counter(
    "movingdata_store_errors_total", "Failed store requests", ["store", "op", "error"]
)
SINK_WRITES = Counter(
    "movingdata_sink_writes_total",
    "Documents the sink wrote (an insert or an update each), by collection",
    ["collection"],
)
SINK_REQUESTS = Counter(
    "movingdata_sink_requests_total", "Write commands the sink sent, by collection", ["collection"]
)
KMS_REQUESTS = Counter(
    "movingdata_kms_requests_total", "Requests to the KMS (OpenBao transit), by operation", ["op"]
)
DEPENDENCY_UP = Gauge(
    "movingdata_dependency_up",
    "Whether a dependency answered this process's last readiness check (1) or not (0)",
    ["dependency"],
)
LAG = Gauge(
    "movingdata_consumer_lag", "Messages not yet consumed, per partition", ["topic", "partition"]
)


def bytes_of(event: Event) -> int:
    """The object bytes an output event stands for (0 for bookkeeping events)."""
    match event:
        case ObjectEncrypted(only_targets=()):
            return event.plaintext_size
        case ReplicaWritten():
            return event.ciphertext_size
        case ObjectAccepted(plaintext_size=size):
            return size or 0
    return 0


class MeasuredStore:
    """An ``ObjectStore`` whose requests are timed and whose failures are counted."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.name, self.url = inner.name, inner.url

    def _done(self, op: str, began: float, exc: BaseException | None) -> None:
        STORE_SECONDS.labels(self.name, op).observe(time.monotonic() - began)
        if exc is not None:
            STORE_ERRORS.labels(self.name, op, type(exc).__name__).inc()

    async def _call(self, op: str, call: Any) -> Any:
        began = time.monotonic()
        try:
            result = await call
        except MovingDataError as exc:
            self._done(op, began, exc)
            raise
        self._done(op, began, None)
        return result

    async def _stream(self, op: str, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
        began = time.monotonic()
        try:
            async for item in items:
                yield item
        except MovingDataError as exc:
            self._done(op, began, exc)
            raise
        self._done(op, began, None)

    async def ensure_container(self) -> None:
        await self._call("ensure_container", self.inner.ensure_container())

    async def check(self) -> None:
        await self._call("check", self.inner.check())

    async def stat(self, key: str) -> ObjectInfo:
        return await self._call("stat", self.inner.stat(key))  # type: ignore[no-any-return]

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self._stream("read", self.inner.read(key, start, end))

    async def write(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        tier: Tier | None = None,
    ) -> WriteResult:
        call = self.inner.write(key, chunks, metadata=metadata, tier=tier)
        return await self._call("write", call)  # type: ignore[no-any-return]

    async def delete(self, key: str) -> None:
        await self._call("delete", self.inner.delete(key))

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        return self._stream("list", self.inner.list(prefix))

    async def set_tier(self, key: str, tier: Tier) -> None:
        await self._call("set_tier", self.inner.set_tier(key, tier))

    async def rehydrate(self, key: str) -> Tier | None:
        return await self._call("rehydrate", self.inner.rehydrate(key))

    async def abort_uploads(self, prefix: str, older_than: datetime) -> int:
        return await self._call("abort_uploads", self.inner.abort_uploads(prefix, older_than))  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.inner.close()


class MeasuredDigestStore(MeasuredStore):
    """A ``MeasuredStore`` of a store that reports its own digest (``ReportsDigest``)."""

    async def stored_digest(self, key: str) -> str | None:
        inner = cast(ReportsDigest, self.inner)  # measured() checked it
        return await self._call("stored_digest", inner.stored_digest(key))  # type: ignore[no-any-return]


def measured(inner: ObjectStore) -> MeasuredStore:
    """``inner`` with its requests timed and failures counted, claiming an optional
    capability (``ReportsDigest``) only when ``inner`` has it: verify trusts a store's digest
    only where the store computes one."""
    if isinstance(inner, ReportsDigest):
        return MeasuredDigestStore(inner)
    return MeasuredStore(inner)


async def serve(
    host: str, port: int, ready: Callable[[], Any], lag: Callable[[], Mapping[tuple[str, int], int]]
) -> web.AppRunner:
    """Start ``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` (0: a free port)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        body = await ready()
        return web.json_response(body, status=200 if body["ready"] else 503)

    async def metrics(_: web.Request) -> web.Response:
        LAG.clear()  # a partition revoked since the last scrape is no longer this worker's
        for (topic, partition), behind in lag().items():
            LAG.labels(topic, str(partition)).set(behind)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log.info("worker endpoints", extra={"url": f"http://{host}:{bound}"})
    return runner
