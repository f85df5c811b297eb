"""Hash chain of audit records per object, its heads and signed checkpoints, with no I/O.

A record's hash covers every field of the stored record (its place ``seq``, its time, the
previous hash: all but ``hash`` itself) in canonical JSON, so editing, removing or reordering
any record breaks every later link. Each chain's head (last ``seq`` and ``hash``) is kept
apart; comparing a chain with its head catches records cut off its end, or a whole chain
deleted. A checkpoint lists every head at one moment, signed by a key the database does not
hold, so a chain rewritten and re-hashed by someone with write access to the database no
longer matches the latest checkpoint.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def canonical(value: Any) -> str:
    """JSON with sorted keys and no whitespace; times as UTC to the millisecond (what MongoDB
    stores), so a record hashes the same before and after a round trip through it."""

    def default(item: Any) -> str:
        if isinstance(item, datetime):
            aware = item.replace(tzinfo=UTC) if item.tzinfo is None else item.astimezone(UTC)
            return aware.isoformat(timespec="milliseconds")
        return str(item)

    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=default)


def record_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    body = {name: value for name, value in record.items() if name != "hash"}
    return hashlib.sha256(f"{prev_hash}\n{canonical(body)}".encode()).hexdigest()


def first_broken_link(records: Iterable[Mapping[str, Any]]) -> str | None:
    """The ``event_id`` of the first record whose chain does not hold, or None if all hold."""
    prev = GENESIS
    for seq, record in enumerate(records, start=1):
        if (
            record.get("seq") != seq
            or record.get("prev_hash") != prev
            or record.get("hash") != record_hash(prev, record)
        ):
            return str(record.get("event_id"))
        prev = str(record["hash"])
    return None


def chain_problem(
    records: Sequence[Mapping[str, Any]], head: Mapping[str, Any] | None
) -> str | None:
    """What is wrong with one object's chain (records in ``seq`` order) against its head.

    A head may lag its chain by one batch (the sink writes records, then heads); a chain
    shorter than its head, or ending in another record than the head names, lost records.
    """
    if (broken := first_broken_link(records)) is not None:
        return f"first bad record {broken}"
    if head is None:
        return "no head for this chain" if records else None
    if not records:
        return f"chain deleted: its head names seq {head['seq']}"
    by_seq = {r["seq"]: r for r in records}
    at_head = by_seq.get(head["seq"])
    if at_head is None:
        last = records[-1]
        return f"records after seq {last['seq']} deleted (last record {last['event_id']})"
    if at_head["hash"] != head["hash"]:
        return f"record {at_head['event_id']} differs from the head's hash"
    return None


def checkpoint_digest(heads: Iterable[tuple[str, int, str]]) -> str:
    """The SHA-256 a checkpoint signs: every (object id, seq, hash), sorted."""
    lines = "\n".join(f"{o}:{s}:{h}" for o, s, h in sorted(heads))
    return hashlib.sha256(lines.encode()).hexdigest()


def checkpoint_problems(
    heads: Iterable[tuple[str, int, str]], chains: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, str]:
    """Objects whose chain no longer holds the record a checkpoint's head names."""
    problems = {}
    for object_id, seq, digest in heads:
        by_seq = {r["seq"]: r for r in chains.get(object_id, ())}
        record = by_seq.get(seq)
        if record is None:
            problems[object_id] = f"record at seq {seq} (checkpointed) is gone"
        elif record["hash"] != digest:
            problems[object_id] = f"record {record['event_id']} was rewritten after a checkpoint"
    return problems
