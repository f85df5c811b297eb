"""ingest: ``ingest`` -> ``accepted``.

Completes what a producer left out (ids, time, the request id from the record's key or
coordinates), checks what the schema cannot (the object id is the tenant's and name's, the
source may be read, every target is configured), then decides the request's version in the
catalog: a new one, or none when the content equals the newest live version ("unchanged":
audited, nothing moves, a staged copy is dropped). A put retires nothing: retention waits until
newer versions are verified (``workers.jobs.retention``).
Idempotency key: the request id (``correlation_id``); its decision is recorded once, and a
redelivered or replayed request is answered from the record with the same events.
"""

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from schemas.codec import decode
from schemas.events import (
    AuditRecord,
    IngestRequest,
    ObjectAccepted,
    Outcome,
    event_id,
    object_id_for,
    safe_key,
)
from topics import ACCEPTED, AUDIT
from workers.catalog import Decision, recent_versions
from workers.core.versions import Content, unchanged_version
from workers.deps import Deps
from workers.dispatch import Emit, MessageRef, stamp
from workers.errors import Permanent
from workers.sources import check_source

STAGE = "ingest"
REQUEST_ID = re.compile(r"^[!-~]{1,128}$")  # printable ASCII: a producer's record key


def request_id_of(ref: MessageRef) -> str:
    """A request id for a producer that sent none: its record key, else where the record is."""
    try:
        key = (ref.key or b"").decode()
    except UnicodeDecodeError:
        key = ""
    return key if REQUEST_ID.match(key) else f"{ref.topic}:{ref.partition}:{ref.offset}"


def complete(raw: bytes | None, ref: MessageRef) -> IngestRequest:
    """Decode an ingest request, filling in the envelope fields a producer may leave out.

    A producer in any language writes ``kind``, ``v``, ``source`` and ``placement``; the ids
    and time are derived from the record itself, so a redelivered record gets the same ones.
    """
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or (doc.get("kind"), doc.get("v")) != (IngestRequest.KIND, 1):
        return decode(raw, IngestRequest)  # raises the codec's own reason
    placement = doc.get("placement") if isinstance(doc.get("placement"), dict) else {}
    request_id = doc.setdefault("correlation_id", request_id_of(ref))
    try:
        name = safe_key(str(placement.get("name", "")))
        object_id = doc.setdefault(
            "object_id", object_id_for(placement.get("tenant", "default"), name)
        )
    except ValueError:
        object_id = str(doc.get("object_id", ""))  # the name's own error is reported below
    doc.setdefault("event_id", event_id(IngestRequest.KIND, object_id, 0, str(request_id)))
    at = datetime.fromtimestamp(ref.timestamp, UTC) if ref.timestamp else datetime.now(UTC)
    doc.setdefault("produced_at", at.isoformat())
    return decode(orjson.dumps(doc), IngestRequest)


async def handle(event: IngestRequest, deps: Deps) -> Sequence[Emit]:
    placement = event.placement
    if event.object_id != object_id_for(placement.tenant, placement.name):
        raise Permanent("object_id does not match the tenant and name it is derived from")
    if event.source is not None:
        check_source(event.source, placement.tenant, event.correlation_id, deps.settings)
    unknown = set(placement.targets) - set(deps.stores)
    if unknown:
        raise Permanent(f"targets not configured here: {sorted(unknown)}")
    decision = await deps.catalog.decision(event.correlation_id) or await decide(event, deps)
    if decision.unchanged:
        if event.source is not None and event.source.staged is not None:
            await deps.staging.delete(event.source.staged)  # nothing moves: drop the upload
        return [Emit(AUDIT, unchanged_record(event, decision))]
    assert event.source is not None  # decide() refuses a new version without a source
    accepted = stamp(
        ObjectAccepted,
        event,
        event.event_id,
        version=decision.version,
        source=event.source,
        placement=placement,
        plaintext_size=event.plaintext_size,
        plaintext_sha256=event.plaintext_sha256,
        requested_by=event.actor,
    )
    return [Emit(ACCEPTED, accepted)]


async def decide(event: IngestRequest, deps: Deps) -> Decision:
    """A new version, or the live version whose content the request repeats; recorded."""
    object_id, placement = event.object_id, event.placement
    content = None
    if event.plaintext_size is not None and event.plaintext_sha256 is not None:
        content = Content(event.plaintext_size, event.plaintext_sha256)
    views = await recent_versions(deps.catalog, object_id)
    now = deps.now()
    same = unchanged_version(views, content, event.force)
    if same is not None:
        return await deps.catalog.record(Decision(event.correlation_id, object_id, same, True, now))
    if event.source is None:
        raise Permanent(
            "content differs from the latest version and the request carries no bytes: put it again"
        )
    version = await deps.catalog.allocate(
        object_id, placement.tenant, placement.name, content, event.correlation_id
    )
    return await deps.catalog.record(Decision(event.correlation_id, object_id, version, False, now))


def unchanged_record(event: IngestRequest, decision: Decision) -> AuditRecord:
    """The trail's record of a put that repeated version ``decision.version``."""
    return stamp(  # type: ignore[return-value]
        AuditRecord,
        event,
        "unchanged",
        event.event_id,
        version=decision.version,
        stage=STAGE,
        action="put.unchanged",
        outcome=Outcome.OK,
        detail={
            "request_id": event.correlation_id,
            "size": event.plaintext_size,
            "requested_by": event.actor,
        },
    )
