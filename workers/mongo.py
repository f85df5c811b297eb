"""Which MongoDB errors are transient: the same operation may succeed once the server is back.

Connectivity failures, and the server answering while it shuts down, restarts or steps down.
FerretDB answers a request still in flight at shutdown with ``InternalError`` (code 1,
"context canceled"), so code 1 counts as the server's failure, not a refusal of the request.
Anything else (bad input, validation, authorisation) is the request's fault.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from workers.errors import Permanent, Retryable

TRANSIENT_CODES = frozenset(
    {
        1,  # InternalError
        6,  # HostUnreachable
        7,  # HostNotFound
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError")
# ``_id``s per ``$in`` query: each is one bound SQL variable in FerretDB's SQLite backend.
IDS_PER_QUERY = 500


def transient(exc: PyMongoError) -> bool:
    """True if retrying ``exc``'s operation later may succeed."""
    if isinstance(exc, ConnectionFailure):
        return True
    if not isinstance(exc, OperationFailure):
        return False
    if exc.code in TRANSIENT_CODES or any(exc.has_error_label(x) for x in TRANSIENT_LABELS):
        return True
    if isinstance(exc, BulkWriteError):
        errors = (exc.details or {}).get("writeErrors", [])
        return any(e.get("code") in TRANSIENT_CODES for e in errors)
    return False


@contextmanager
def translated_errors(what: str) -> Iterator[None]:
    """A transient MongoDB error is ``Retryable``; any other is the request's fault."""
    try:
        yield
    except PyMongoError as exc:
        if transient(exc):
            raise Retryable(f"{what} unavailable: {type(exc).__name__}") from None
        raise Permanent(f"{what} refused: {type(exc).__name__}") from None


async def by_ids(
    collection: AsyncCollection[dict[str, Any]], ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The documents with these ``_id``s, by ``_id`` (absent: none), in one ``$in`` query per
    ``IDS_PER_QUERY``: answered from the ``_id`` index, the local FerretDB build's included."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = list(ids[start : start + IDS_PER_QUERY])
        async for doc in collection.find({"_id": {"$in": chunk}}):
            found[doc["_id"]] = doc
    return found
