"""Long operations hold a lease, and what a losing attempt wrote is collected.

An encrypt renews its version's lease while its bytes move (so the reconcile leaves a large
object being encrypted alone); an encrypt that wins a contended version, or a redelivery of a
recorded one, deletes every key under the version's prefix but the recorded one (an attempt
that died half-way leaves its ciphertext there)."""

import itertools
import os
from datetime import timedelta
from pathlib import Path

from schemas.events import IngestRequest, ObjectAccepted, ObjectEncrypted, Placement, Source
from tests.unit.agents.conftest import inline_request
from workers.agents import encrypt, ingest
from workers.catalog import MemoryCatalog
from workers.client.identity import cli_actor
from workers.client.puts import put_request
from workers.core.reconcile import stalled
from workers.deps import Deps, version_prefix
from workers.kms.keyregistry import DataKeyRecord


async def accepted(deps: Deps, data: bytes, request: IngestRequest | None = None) -> ObjectAccepted:
    (out,) = await ingest.handle(request or inline_request(data), deps)
    assert isinstance(out.event, ObjectAccepted)
    return out.event


async def keys_under(deps: Deps, prefix: str) -> dict[str, list[str]]:
    return {t: sorted([i.key async for i in s.list(prefix)]) for t, s in deps.stores.items()}


async def test_an_encrypt_renews_its_lease_while_its_bytes_move(deps: Deps, tmp_path: Path) -> None:
    ticks = itertools.count()
    deps.clock = lambda: float(next(ticks))  # a second passes at every look at the clock
    deps.settings = deps.settings.model_copy(update={"reconcile_after_s": 40.0})  # every 10 s
    (tmp_path / "big.bin").write_bytes(os.urandom(200_000))  # about 50 chunks of 4 KiB
    placement = Placement(name="big.bin", targets=("s3", "azure", "gcs"))
    request = put_request(
        placement, Source(path=str(tmp_path / "big.bin")), None, actor=cli_actor()
    )
    event = await accepted(deps, b"", request)
    assert isinstance(deps.catalog, MemoryCatalog)
    accepted_at = event.produced_at - timedelta(hours=1)  # accepted long ago
    doc = {"state": "pending", "accepted_at": accepted_at}
    deps.catalog.documents[(event.object_id, event.version)] = doc
    await encrypt.handle(event, deps)
    renewed = doc.get("encrypt_progress_at")
    assert renewed is not None and renewed >= event.produced_at
    # the lease keeps the reconcile off while the encrypt moves, not after
    after = timedelta(seconds=40)
    assert not stalled(doc, renewed + after / 2, after)
    assert stalled(doc, renewed + after, after)


async def test_a_quick_encrypt_writes_no_lease(deps: Deps) -> None:
    event = await accepted(deps, b"small")
    assert isinstance(deps.catalog, MemoryCatalog)
    doc: dict[str, object] = {"state": "pending"}
    deps.catalog.documents[(event.object_id, event.version)] = doc
    await encrypt.handle(event, deps)
    assert "encrypt_progress_at" not in doc


async def test_a_redelivery_collects_what_an_attempt_that_died_wrote(deps: Deps) -> None:
    event = await accepted(deps, os.urandom(10_000))
    encrypted, *_ = await encrypt.handle(event, deps)
    assert isinstance(encrypted.event, ObjectEncrypted)
    winner = encrypted.event.key
    prefix = version_prefix("default", event.object_id, event.version)
    loser = prefix + "0123456789ab"  # a second attempt's key: it died before its clean-up
    for store in deps.stores.values():
        await store.write(loser, aiter_of(b"ciphertext of a losing attempt"))
    again = await encrypt.handle(event, deps)  # a redelivery, or the reconcile's re-drive
    assert again[0].event.event_id == encrypted.event.event_id
    assert await keys_under(deps, prefix) == {t: [winner] for t in deps.stores}


async def test_a_contended_winner_collects_the_keys_of_the_attempt_before_it(
    deps: Deps,
) -> None:
    event = await accepted(deps, os.urandom(10_000))
    # an earlier attempt registered the data key, wrote its ciphertext, and stopped there
    data_key = os.urandom(32)
    kek_key_id, wrapped = await deps.kek.wrap(data_key)
    await deps.registry.insert(
        DataKeyRecord(event.object_id, event.version, kek_key_id, wrapped, deps.now())
    )
    prefix = version_prefix("default", event.object_id, event.version)
    stuck = prefix + "ba9876543210"
    for store in deps.stores.values():
        await store.write(stuck, aiter_of(b"ciphertext of the attempt that stopped"))
    encrypted, *_ = await encrypt.handle(event, deps)  # the re-driven attempt wins
    assert isinstance(encrypted.event, ObjectEncrypted)
    assert await keys_under(deps, prefix) == {t: [encrypted.event.key] for t in deps.stores}


async def test_an_uncontended_encrypt_lists_nothing(deps: Deps) -> None:
    listed: list[str] = []
    for store in deps.stores.values():
        original = store.list

        def spy(prefix: str, original=original):  # type: ignore[no-untyped-def]
            listed.append(prefix)
            return original(prefix)

        store.list = spy  # type: ignore[method-assign]
    event = await accepted(deps, os.urandom(10_000))
    await encrypt.handle(event, deps)
    assert listed == []  # one attempt: no store is listed


async def aiter_of(data: bytes):  # type: ignore[no-untyped-def]
    yield data
