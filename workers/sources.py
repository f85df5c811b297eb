"""Where a put's bytes may come from: checked when ingest decides the request, and again
when encrypt opens them (a file or a store's listing may change in between).

- a staged upload: only the key of the request's own tenant and id (``staging.check_staged``);
- a store URL: a bucket on the allow-list (``source_buckets``, empty unless set), never the
  bucket replicas and staged uploads live in, never a key under the staging prefix (the key
  itself is checked like an object name by the schema);
- a path: a regular file below one of ``source_roots``, opened one segment at a time from the
  root without following a symbolic link (``O_NOFOLLOW``), so a link or a file swapped for one
  after the check leads nowhere.
"""

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from schemas.events import Source
from workers import staging
from workers.deps import STORE_SCHEMES
from workers.errors import Permanent
from workers.settings import Settings

NOT_REGULAR = "source path is not a regular file"
WHY = {
    errno.ENOENT: "no such file",
    errno.ELOOP: "a symbolic link",
    errno.ENOTDIR: "a symbolic link or a file on its way",
}


def check_source(source: Source, tenant: str, request_id: str, settings: Settings) -> None:
    """Raise ``Permanent`` with a clear reason unless this request may read ``source``."""
    if source.path is not None:
        open_path(source.path, settings.source_roots).close()
    if source.url is not None:
        check_url(source.url, settings)
    if source.staged is not None:
        staging.check_staged(source.staged, settings.staging_prefix, tenant, request_id)


def split_url(url: str) -> tuple[str, str, str]:
    """``s3://bucket/some/key`` -> (``s3``, ``bucket``, ``some/key``)."""
    scheme, rest = url.split("://", 1)
    bucket, key = rest.split("/", 1)
    return scheme, bucket, key


def check_url(url: str, settings: Settings) -> None:
    """Raise ``Permanent`` unless ``url`` is a key of an allowed bucket outside our own."""
    scheme, bucket, key = split_url(url)
    if scheme not in STORE_SCHEMES.values() or bucket not in settings.source_buckets:
        raise Permanent("source url points outside the allowed stores")
    if bucket == settings.bucket:
        raise Permanent("source url points into the bucket of replicas and staged uploads")
    if key.startswith(settings.staging_prefix):
        raise Permanent("source url points into a staging area")


def below_root(path: str, roots: Sequence[Path]) -> tuple[Path, tuple[str, ...]]:
    """The root ``path`` is below and the segments from it to the file; ``Permanent`` for a
    path that is relative, not in normal form ('.', '..', '//') or below no root."""
    pure = PurePosixPath(path)
    if not pure.is_absolute():
        raise Permanent("source path must be absolute")
    if str(pure) != path or ".." in pure.parts:
        raise Permanent("source path must be in normal form (no '.', '..' or '//')")
    for root in roots:
        if pure.is_relative_to(root) and pure != PurePosixPath(root):
            return root, pure.relative_to(root).parts
    raise Permanent("source path is outside the allowed source roots")


def open_path(path: str, roots: Sequence[Path]) -> BinaryIO:
    """``path`` open for reading, if it is a regular file below a root reached without
    following a symbolic link; ``Permanent`` otherwise. A root may itself be a link (the
    operator's setting), matched as written or resolved."""
    root, parts = below_root(path, [*roots, *(r.resolve() for r in roots)])
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise Permanent(f"{NOT_REGULAR}: its root cannot be opened") from exc
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        # Non-blocking: a FIFO would otherwise hold the open until a writer came.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(parts[-1], flags, dir_fd=folder)
    except OSError as exc:
        raise Permanent(f"{NOT_REGULAR}: {WHY.get(exc.errno or 0, exc.strerror)}") from None
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Permanent(NOT_REGULAR)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
