"""ingest: ``ingest`` -> ``accepted``.

Checks what the schema cannot: a path source is a regular file under an allowed root, a URL
source names an allowed store and bucket, every target is configured.
Idempotency key: the request's ``event_id``; the accepted event's id derives from it.
"""

from collections.abc import Sequence
from pathlib import Path

from schemas.events import IngestRequest, ObjectAccepted, Source
from topics import ACCEPTED
from workers.deps import STORE_SCHEMES, Deps
from workers.dispatch import Emit, stamp
from workers.errors import Permanent
from workers.settings import Settings

STAGE = "ingest"


def check_source(source: Source, settings: Settings) -> None:
    """Raise ``Permanent`` with a clear reason unless the source may be read."""
    if source.path is not None:
        path = Path(source.path)
        if not path.is_absolute():
            raise Permanent("source path must be absolute")
        resolved = path.resolve()
        roots = [root.resolve() for root in settings.source_roots]
        if not any(resolved.is_relative_to(root) for root in roots):
            raise Permanent("source path is outside the allowed source roots")
        if not resolved.is_file():
            raise Permanent("source path is not a regular file")
    if source.url is not None:
        scheme, rest = source.url.split("://", 1)
        bucket = rest.split("/", 1)[0]
        if scheme not in STORE_SCHEMES.values() or bucket not in settings.source_buckets:
            raise Permanent("source url points outside the allowed stores")


async def handle(event: IngestRequest, deps: Deps) -> Sequence[Emit]:
    check_source(event.source, deps.settings)
    unknown = set(event.placement.targets) - set(deps.stores)
    if unknown:
        raise Permanent(f"targets not configured here: {sorted(unknown)}")
    accepted = stamp(
        ObjectAccepted, event, event.event_id, source=event.source, placement=event.placement
    )
    return [Emit(ACCEPTED, accepted)]
