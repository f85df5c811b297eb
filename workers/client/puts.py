"""Putting files: names, the unchanged check, staged uploads, requests, waiting for the answer.

A put names each file (a folder's files relative to the folder, a single file by its name,
``--name`` and ``--prefix`` otherwise) and refuses a bad name before anything is sent. Then,
for each file:
- content equal to the newest live version (same size and plaintext SHA-256): a request with
  the digest alone; ingest records it as "unchanged" and nothing moves;
- otherwise the client streams the file into the staging area, measuring it on the way (or,
  where the workers share the filesystem, names its path), and sends a request carrying the
  digest, which encrypt checks again ("source changed since put").
Each request has a fresh request id; waiting follows that request only: its version, its
dead letters, that version's state.
"""

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas.events import IngestRequest, Placement, Source, event_id, object_id_for, safe_key
from topics import INGEST
from workers import staging
from workers.catalog import MongoCatalog, recent_versions
from workers.client.identity import Actor
from workers.client.kafka import Producer
from workers.client.state import State
from workers.core.versions import Content, doc_id, latest_live, unchanged_version
from workers.deps import target_url
from workers.settings import Settings
from workers.stores import open_store

MAX_UPLOADS = 8  # files uploaded to the staging area at once


class BadNames(ValueError):
    """Names a put refuses; one line per file."""


@dataclass(frozen=True, slots=True)
class PutFile:
    """A file to put and the object name it gets."""

    path: Path
    name: str


def shown(path: Path) -> str:
    """A path as a user can read it, whatever bytes its name holds (escaped, never raw)."""
    text = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def files_to_put(
    paths: Sequence[Path], *, name: str | None = None, prefix: str = ""
) -> list[PutFile]:
    """Every regular file under ``paths``, named; ``BadNames`` lists every name refused."""
    if name is not None and (len(paths) != 1 or paths[0].is_dir()):
        raise BadNames("--name names one file; use --prefix for a folder")
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found += [
                (p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*")) if p.is_file()
            ]
        else:
            found.append((path, name or path.name))
    files, bad = [], []
    for path, relative in found:
        try:
            files.append(PutFile(path, safe_key(prefix + relative)))
        except ValueError as exc:
            bad.append(f"{shown(path)}: {exc}")
    if bad:
        raise BadNames("\n".join(bad))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise BadNames(
            "two files would get the same name: "
            + ", ".join(sorted({n for n in names if names.count(n) > 1}))
        )
    return files


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    """``key=value`` pairs; ``ValueError`` naming the first one without ``=``."""
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"tag {pair!r} is not key=value")
        tags[key] = value
    return tags


def file_content(path: Path) -> Content:
    """Size and SHA-256 of a file, read once."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(staging.CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Content(size, digest.hexdigest())


def put_request(
    placement: Placement,
    source: Source | None,
    content: Content | None,
    *,
    force: bool = False,
    request_id: str | None = None,
    actor: Actor,
) -> IngestRequest:
    """A put request by ``actor``, with a fresh request id unless given one (a redelivery
    of it keeps its version)."""
    request_id = request_id or uuid.uuid4().hex
    object_id = object_id_for(placement.tenant, placement.name)
    return IngestRequest(
        kind=IngestRequest.KIND,
        v=1,
        event_id=event_id(IngestRequest.KIND, object_id, 0, request_id),
        object_id=object_id,
        version=0,
        correlation_id=request_id,
        produced_at=datetime.now(UTC),
        source=source,
        placement=placement,
        plaintext_size=content.size if content else None,
        plaintext_sha256=content.sha256 if content else None,
        force=force,
        actor=actor.name,
    )


def requests_for_path(
    root: Path,
    targets: Sequence[str],
    tenant: str,
    tags: dict[str, str],
    mode: str = "stream",
    *,
    actor: Actor,
) -> list[IngestRequest]:
    """Path-source requests (workers that share the filesystem), one per file, digests included."""
    return [
        put_request(
            Placement(name=f.name, targets=tuple(targets), tenant=tenant, tags=tags, mode=mode),  # type: ignore[arg-type]
            Source(path=str(f.path.resolve())),
            file_content(f.path),
            actor=actor,
        )
        for f in files_to_put([root])
    ]


@dataclass(frozen=True, slots=True)
class Sent:
    """A request sent for one file, and how its bytes travel: staged, path, or digest alone."""

    file: PutFile
    request: IngestRequest
    how: str


async def put_files(
    settings: Settings,
    files: Sequence[PutFile],
    placement: Callable[[str], Placement],
    *,
    by_path: bool = False,
    force: bool = False,
    actor: Actor,
) -> list[Sent]:
    """Send one request per file by ``actor`` (uploading to the staging area unless
    ``by_path``); a file whose upload fails sends nothing. Returns what was sent, in the
    files' order."""
    catalog = MongoCatalog(settings.mongo_url, settings.mongo_database)
    store = open_store(target_url(settings.staging_target, settings), settings)
    gate = asyncio.Semaphore(MAX_UPLOADS)

    async def one(producer: Producer, file: PutFile) -> Sent:
        async with gate:
            where = placement(file.name)
            request_id = uuid.uuid4().hex
            content = None if force else await repeated_content(catalog, where, file.path)
            source, how = None, "digest"
            if content is None and by_path:
                content = await asyncio.to_thread(file_content, file.path)
                source, how = Source(path=str(file.path.resolve())), "path"
            elif content is None:
                key = staging.staged_key(settings.staging_prefix, where.tenant, request_id)
                staged = await staging.upload(store, key, staging.file_chunks(file.path))
                content = Content(staged.size, staged.sha256)
                source, how = Source(staged=key), "staged"
            request = put_request(
                where, source, content, force=force, request_id=request_id, actor=actor
            )
            await producer.send(INGEST, request)
            return Sent(file, request, how)

    try:
        async with Producer(settings) as producer:
            return list(await asyncio.gather(*(one(producer, f) for f in files)))
    finally:
        await store.close()
        await catalog.close()


async def repeated_content(catalog: MongoCatalog, where: Placement, path: Path) -> Content | None:
    """The file's content if it repeats the newest live version (hashed only if sizes match)."""
    views = await recent_versions(catalog, object_id_for(where.tenant, where.name))
    newest = latest_live(views)
    if newest is None or newest.content is None or newest.content.size != path.stat().st_size:
        return None
    content = await asyncio.to_thread(file_content, path)
    return content if unchanged_version(views, content, force=False) is not None else None


@dataclass(frozen=True, slots=True)
class PutResult:
    """How one put request ended: verified, unchanged, failed, or still waiting (timeout);
    ``accepted`` when only its version was waited for."""

    request: IngestRequest
    outcome: str
    version: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("verified", "unchanged", "accepted")


async def wait_puts(
    state: State,
    requests: Sequence[IngestRequest],
    timeout_s: float,
    on_progress: Callable[[int], None] = lambda _: None,
    *,
    decided_only: bool = False,
) -> list[PutResult]:
    """Follow each request to its end: the version ingest gave it (or the one it repeats),
    then that version verified everywhere, or a failure of this request (its own dead
    letters, its version's failures), never an older put's."""
    deadline = time.monotonic() + timeout_s
    done: dict[str, PutResult] = {}
    while True:
        pending = [r for r in requests if r.correlation_id not in done]
        ids = [r.correlation_id for r in pending]
        decisions = await state.decisions(ids)
        letters = await state.request_failures(ids)
        docs = await state.versions(
            [doc_id(d["object_id"], d["version"]) for d in decisions.values()]
        )
        for request in pending:
            decision = decisions.get(request.correlation_id)
            if decided_only and decision is not None:  # the version is known: enough
                outcome = "unchanged" if decision["unchanged"] else "accepted"
                done[request.correlation_id] = PutResult(request, outcome, decision["version"])
                continue
            result = settled(request, decision, letters, docs)
            if result is not None:
                done[request.correlation_id] = result
        on_progress(len(done))
        if len(done) == len(requests) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    timeout = f"not verified within {timeout_s:.0f} s"
    return [done.get(r.correlation_id) or PutResult(r, "timeout", reason=timeout) for r in requests]


def settled(
    request: IngestRequest,
    decision: dict[str, object] | None,
    letters: dict[str, str],
    docs: dict[str, dict[str, object]],
) -> PutResult | None:
    """The end of one request, if it has come (None: still on its way)."""
    if decision is None:
        reason = letters.get(request.correlation_id)
        return PutResult(request, "failed", reason=reason) if reason else None
    version = int(decision["version"])  # type: ignore[call-overload]
    doc = docs.get(doc_id(request.object_id, version)) or {}
    state = doc.get("state")
    if state == "verified":
        return PutResult(request, "unchanged" if decision["unchanged"] else "verified", version)
    if state == "failed":
        failures = doc.get("failures") or {}
        reason = next(iter(failures.values()), "failed")  # type: ignore[attr-defined]
        return PutResult(request, "failed", version, str(reason))
    if state in ("deleted", "shredded", "degraded", "lost"):
        return PutResult(request, "failed", version, f"v{version} was {state} meanwhile")
    return None


async def wait_verified(
    state: State, requests: Sequence[IngestRequest], timeout_s: float
) -> dict[str, str]:
    """Failures (object id -> reason) once every request has ended or the time is up."""
    results = await wait_puts(state, requests, timeout_s)
    return {r.request.object_id: r.reason for r in results if not r.ok}
