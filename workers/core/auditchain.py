"""Hash chain of audit records per object: each record carries the hash of the previous one.

A record's hash covers its canonical JSON (sorted keys, no whitespace) and the previous hash,
so editing, removing or reordering any record breaks every later link.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

GENESIS = "0" * 64
CHAINED_FIELDS = ("event_id", "object_id", "version", "stage", "action", "outcome", "detail")


def record_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    body = {name: record.get(name) for name in CHAINED_FIELDS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def first_broken_link(records: Iterable[Mapping[str, Any]]) -> str | None:
    """The ``event_id`` of the first record whose chain does not hold, or None if all hold."""
    prev = GENESIS
    for record in records:
        if record.get("prev_hash") != prev or record.get("hash") != record_hash(prev, record):
            return str(record.get("event_id"))
        prev = str(record["hash"])
    return None
