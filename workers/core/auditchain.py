"""Hash chain of audit records per object, its heads and signed checkpoints, with no I/O.

A record's hash covers every field of the stored record (its place ``seq``, its time, the
previous hash: all but ``hash`` itself) in canonical JSON, so editing, removing or reordering
any record breaks every later link. Each chain's head (last ``seq`` and ``hash``) is kept
apart; comparing a chain with its head catches records cut off its end, or a whole chain
deleted. A checkpoint signs a Merkle root over every head at one moment, with a key the
database does not hold, and names the checkpoint before it, so a chain rewritten and
re-hashed by someone with write access to the database no longer extends the head signed
(``extension_problem``), and the log of checkpoints cannot be cut or rolled back unseen.
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


def checkpoint_digest(number: int, at: datetime, prev: str, root: str, size: int) -> str:
    """The SHA-256 a checkpoint signs: its number, time, the previous checkpoint's digest
    (``GENESIS`` for the first) and the Merkle root over ``size`` signed heads."""
    body = canonical({"number": number, "at": at, "prev": prev, "root": root, "size": size})
    return hashlib.sha256(f"movingdata-checkpoint/1\n{body}".encode()).hexdigest()


def extension_problem(
    signed: tuple[int, str] | None,
    records: Sequence[Mapping[str, Any]],
    head: tuple[int, str],
) -> str | None:
    """Why the chain as it stands does not extend the head signed before (None: it does).

    ``signed``: the (seq, hash) a checkpoint signed (None: none yet, so the chain must start
    at the genesis); ``records``: the chain's records from the signed seq (or the first) to
    the current ``head``, in seq order. Each must link to the one before and hash right.
    """
    seq, prev = signed if signed is not None else (0, GENESIS)
    head_seq, head_hash = head
    if head_seq < seq:
        return f"the head moved back from seq {seq} to {head_seq}"
    at = records[0] if records else None
    if signed is not None:
        if at is None or at.get("seq") != seq:
            return f"record at seq {seq} (checkpointed) is gone"
        if at.get("hash") != prev:
            return f"record {at.get('event_id')} was rewritten after a checkpoint"
        records = records[1:]
    for record in records:
        seq += 1
        if (
            record.get("seq") != seq
            or record.get("prev_hash") != prev
            or record.get("hash") != record_hash(prev, record)
        ):
            return f"first bad record {record.get('event_id')}"
        prev = str(record["hash"])
    if seq != head_seq or prev != head_hash:
        return f"records after seq {seq} do not reach the head (seq {head_seq})"
    return None


def signed_problem(
    records: Sequence[Mapping[str, Any]], signed: Mapping[str, Any] | None
) -> str | None:
    """What a chain (records in any order) lost of the head a checkpoint signed (None:
    nothing, or no head signed yet)."""
    if signed is None:
        return None
    at = next((r for r in records if r["seq"] == signed["seq"]), None)
    if at is None:
        return f"record at seq {signed['seq']} (checkpointed) is gone"
    if at["hash"] != signed["hash"]:
        return f"record {at['event_id']} was rewritten after a checkpoint"
    return None
