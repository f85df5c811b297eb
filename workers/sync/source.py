"""A sync's source: a bucket of an allowed store, listed one page at a time."""

from collections.abc import Sequence

from schemas.events import safe_key
from workers.core.sync import Listed, folder_prefix
from workers.errors import Permanent
from workers.settings import Settings
from workers.sources import check_url
from workers.stores import open_store
from workers.stores.base import ListsAfter, ObjectInfo, ObjectStore


def source_parts(url: str) -> tuple[str, str, str]:
    """``s3://bucket/photos`` -> (``s3``, ``bucket``, ``photos/``): the folder it names."""
    scheme, rest = url.split("://", 1)
    bucket, _, path = rest.partition("/")
    return scheme, bucket, folder_prefix(path)


def check_source(url: str, settings: Settings) -> None:
    """``Permanent`` unless a put could read keys of ``url``'s bucket (the allow-list) below
    its folder, a path each of whose segments could be a name's."""
    scheme, bucket, prefix = source_parts(url)
    try:
        safe_key(f"{prefix}x")
    except ValueError as exc:
        raise Permanent(f"source folder: {exc}") from None
    check_url(f"{scheme}://{bucket}/{prefix}x", settings)


def open_source(url: str, settings: Settings) -> tuple[ObjectStore, str]:
    """The store of ``url``'s bucket, if allowed, and the folder it names."""
    check_source(url, settings)
    scheme, bucket, prefix = source_parts(url)
    return open_store(f"{scheme}://{bucket}", settings), prefix


async def list_page(
    store: ObjectStore, prefix: str, after: str, limit: int
) -> Sequence[ObjectInfo]:
    """Up to ``limit`` objects under ``prefix`` past the key ``after``, in key order. A store
    that cannot start past a key is listed from its start, the keys up to ``after`` skipped."""
    if isinstance(store, ListsAfter):
        return await store.list_after(prefix, after, limit)
    page: list[ObjectInfo] = []
    async for info in store.list(prefix):
        if info.key > after:
            page.append(info)
            if len(page) == limit:
                break
    return page


def listed(info: ObjectInfo) -> Listed:
    """What the plan knows of a listed object; ``Permanent`` for a store that gives no
    fingerprint (a sync could never tell it unchanged)."""
    if info.fingerprint is None:
        raise Permanent(f"the source lists {info.key!r} without a fingerprint")
    return Listed(info.key, info.size, info.fingerprint, info.digests)
