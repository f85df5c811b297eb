"""Ingest's decisions: versions, unchanged puts, replays, races, retention, minimal requests."""

import asyncio
import base64
from pathlib import Path

import orjson
import pytest

from schemas.events import AuditRecord, IngestRequest, ObjectAccepted, Source
from tests.unit.agents.conftest import content, inline_request
from workers.agents import encrypt, ingest
from workers.catalog import MemoryCatalog
from workers.core.versions import VersionView
from workers.deps import Deps, version_prefix
from workers.dispatch import MessageRef
from workers.errors import Permanent
from workers.staging import staged_key


async def put(deps: Deps, request: IngestRequest) -> list:
    return [out.event for out in await ingest.handle(request, deps)]


def settle(deps: Deps, event: ObjectAccepted, state: str) -> None:
    """Play the sink: record a version's state as ``objects`` would hold it."""
    assert isinstance(deps.catalog, MemoryCatalog)
    view = VersionView(
        event.version, state, content(base64.b64decode(event.source.inline_b64 or ""))
    )
    deps.catalog.stored[event.object_id, event.version] = view


async def test_changed_content_is_a_new_version_unchanged_content_moves_nothing(deps: Deps) -> None:
    (v1,) = await put(deps, inline_request(b"first"))
    (v2,) = await put(deps, inline_request(b"second"))
    assert (v1.version, v2.version) == (1, 2)
    assert v1.event_id != v2.event_id  # every put is its own step of the trail
    (again,) = await put(deps, inline_request(b"second"))
    assert isinstance(again, AuditRecord) and again.action == "put.unchanged"
    assert again.version == 2
    (forced,) = await put(deps, inline_request(b"second").model_copy(update={"force": True}))
    assert isinstance(forced, ObjectAccepted) and forced.version == 3


async def test_a_replayed_request_gets_the_same_version_and_events(deps: Deps) -> None:
    request = inline_request(b"once")
    (first,) = await put(deps, request)
    await put(deps, inline_request(b"twice"))
    (replayed,) = await put(deps, request)
    assert replayed.version == first.version == 1
    assert replayed.event_id == first.event_id


async def test_racing_puts_of_one_name_get_distinct_versions(deps: Deps) -> None:
    outs = await asyncio.gather(*(put(deps, inline_request(bytes([n]) * 10)) for n in range(5)))
    assert sorted(event.version for (event,) in outs) == [1, 2, 3, 4, 5]


async def test_unchanged_never_points_at_a_failed_or_deleted_version(deps: Deps) -> None:
    (v1,) = await put(deps, inline_request(b"same"))
    settle(deps, v1, "failed")
    (v2,) = await put(deps, inline_request(b"same"))
    assert isinstance(v2, ObjectAccepted) and v2.version == 2
    settle(deps, v2, "deleted")
    (v3,) = await put(deps, inline_request(b"same"))
    assert isinstance(v3, ObjectAccepted) and v3.version == 3


async def test_a_digest_only_request_for_changed_content_is_refused(deps: Deps) -> None:
    await put(deps, inline_request(b"old"))
    digest_only = inline_request(b"new").model_copy(update={"source": None})
    with pytest.raises(Permanent, match="carries no bytes"):
        await put(deps, digest_only)
    same = inline_request(b"old").model_copy(update={"source": None})
    (unchanged,) = await put(deps, same)
    assert unchanged.action == "put.unchanged"


async def test_an_object_id_not_derived_from_tenant_and_name_is_refused(deps: Deps) -> None:
    relabelled = inline_request(b"x").model_copy(update={"object_id": "0" * 24})
    with pytest.raises(Permanent, match="does not match the tenant and name"):
        await put(deps, relabelled)


async def test_a_put_never_retires_older_versions(deps: Deps) -> None:
    """Retention waits until newer versions are verified (``workers.jobs.retention``)."""
    deps.settings = deps.settings.model_copy(update={"retain_versions": 1})
    for n in range(3):
        (accepted,) = await put(deps, inline_request(f"edit {n}".encode()))
        assert isinstance(accepted, ObjectAccepted) and accepted.version == n + 1
        settle(deps, accepted, "verified")


async def test_encrypt_refuses_a_source_that_changed_since_put(deps: Deps) -> None:
    request = inline_request(b"what the client measured")
    changed = request.model_copy(
        update={"source": Source(inline_b64=base64.b64encode(b"what is there now").decode())}
    )
    (accepted,) = await put(deps, changed)
    with pytest.raises(Permanent, match="source changed since put"):
        await encrypt.handle(accepted, deps)
    prefix = version_prefix("default", accepted.object_id, accepted.version)
    assert [i async for i in deps.store("s3").list(prefix)] == []  # nothing committed


async def test_a_staged_upload_is_encrypted_then_deleted(deps: Deps) -> None:
    data = b"uploaded from elsewhere" * 100

    async def body():
        yield data

    request = inline_request(data)
    key = staged_key("_staging/", "default", request.correlation_id)
    await deps.staging.write(key, body())
    request = request.model_copy(update={"source": Source(staged=key)})
    (accepted,) = await put(deps, request)
    encrypted, *_ = await encrypt.handle(accepted, deps)
    assert encrypted.event.plaintext_size == len(data)
    assert [i async for i in deps.staging.list("_staging/")] == []


@pytest.mark.parametrize(
    "staged",
    [
        "tenant/other",  # outside the staging area
        "_staging/abc",  # no tenant: not bound to one
        "_staging/other-tenant/{request}",  # another tenant's key for this request id
        "_staging/default/another-request",  # this tenant's upload of another request
    ],
)
async def test_a_staged_source_must_be_its_own_requests_upload(deps: Deps, staged: str) -> None:
    request = inline_request(b"x")
    source = Source(staged=staged.format(request=request.correlation_id))
    with pytest.raises(Permanent, match="not this request's upload"):
        await put(deps, request.model_copy(update={"source": source}))


async def test_encrypt_checks_a_staged_source_again(deps: Deps) -> None:
    """An accepted event naming another request's upload (replayed, or forged on the topic)
    reads nothing."""
    request = inline_request(b"mine")
    (accepted,) = await put(deps, request)
    theirs = staged_key("_staging/", "default", "their-request")
    forged = accepted.model_copy(update={"source": Source(staged=theirs)})
    with pytest.raises(Permanent, match="not this request's upload"):
        await encrypt.handle(forged, deps)


def test_a_minimal_request_gets_its_ids_from_the_record() -> None:
    raw = orjson.dumps(
        {
            "kind": "ingest.request",
            "v": 1,
            "source": {"inline_b64": "aGk="},
            "placement": {"name": "from-kcat.txt", "targets": ["s3"]},
        }
    )
    ref = MessageRef("movingdata.ingest", 3, 17, None, 1_764_590_400.0)
    request = ingest.complete(raw, ref)
    assert request.correlation_id == "movingdata.ingest:3:17"
    assert request == ingest.complete(raw, ref)  # a redelivered record: the same request
    keyed = ingest.complete(raw, MessageRef("movingdata.ingest", 0, 1, b"req-42", 1.0))
    assert keyed.correlation_id == "req-42"
    assert keyed.object_id == request.object_id != ""
    assert request.produced_at.timestamp() == 1_764_590_400.0
    with pytest.raises(Permanent, match="placement: Field required"):
        ingest.complete(orjson.dumps({"kind": "ingest.request", "v": 1}), ref)


async def test_encrypt_checks_a_path_again_when_it_opens_it(deps: Deps, tmp_path: Path) -> None:
    """A file swapped for a link after ingest accepted it (to a file outside the roots, with
    the same bytes) is not read."""
    path = tmp_path / "report.txt"
    path.write_bytes(b"mine")
    request = inline_request(b"mine").model_copy(update={"source": Source(path=str(path))})
    (accepted,) = await put(deps, request)
    elsewhere = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    elsewhere.write_bytes(b"mine")
    path.unlink()
    path.symlink_to(elsewhere)
    try:
        with pytest.raises(Permanent, match="symbolic link"):
            await encrypt.handle(accepted, deps)
    finally:
        elsewhere.unlink()
