"""Which MongoDB errors are retried: the server's failures and lost connections."""

import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    InvalidDocument,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from workers.errors import Permanent, Retryable
from workers.mongo import transient, translated_errors

# What FerretDB answered a write in flight when it was stopped (seen in a CI run).
CANCELED = OperationFailure(
    "[msg_update.go:117 handler.(*Handler).updateDocument] context canceled",
    1,
    {"ok": 0.0, "code": 1, "codeName": "InternalError"},
)


def bulk(*codes: int) -> BulkWriteError:
    return BulkWriteError({"writeErrors": [{"index": i, "code": c} for i, c in enumerate(codes)]})


@pytest.mark.parametrize(
    "exc",
    [
        AutoReconnect("connection closed"),
        NetworkTimeout("timed out"),
        ServerSelectionTimeoutError("no servers"),
        CANCELED,
        OperationFailure("shutting down", 91),
        OperationFailure("interrupted at shutdown", 11600),
        OperationFailure("retry me", 999, {"errorLabels": ["RetryableWriteError"]}),
        bulk(11000, 1),
    ],
)
def test_server_side_and_connectivity_errors_are_transient(exc: PyMongoError) -> None:
    assert transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        DuplicateKeyError("E11000", 11000),
        OperationFailure("bad value", 2),
        OperationFailure("unauthorized", 13),
        OperationFailure("document failed validation", 121),
        InvalidDocument("key must not start with $"),
        bulk(11000, 11000),
    ],
)
def test_request_errors_are_not_transient(exc: PyMongoError) -> None:
    assert not transient(exc)


def test_key_registry_retries_a_shutdown_and_refuses_bad_input() -> None:
    with (
        pytest.raises(Retryable, match="unavailable: OperationFailure"),
        translated_errors("key registry"),
    ):
        raise CANCELED
    with (
        pytest.raises(Permanent, match="refused: DuplicateKeyError"),
        translated_errors("key registry"),
    ):
        raise DuplicateKeyError("E11000", 11000)
