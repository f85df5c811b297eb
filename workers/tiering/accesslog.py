"""Access logs for the backtest: what was put, read and deleted, and when.

JSON Lines (one object a line) or CSV with a header, by the file's suffix (``.csv``), with the
fields ``time`` (ISO-8601 with a zone, e.g. ``2025-01-01T09:30:00Z``), ``object`` (a name),
``size`` (bytes) and ``operation`` (``put``, ``get`` or ``delete``)::

    {"time": "2025-01-01T09:30:00Z", "object": "data/000017", "size": 52133, "operation": "put"}
    {"time": "2025-01-02T14:02:11Z", "object": "data/000017", "size": 52133, "operation": "get"}

A get reads the whole object. Lines need not be in time order.
"""

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

OPERATIONS = ("put", "get", "delete")
FIELDS = ("time", "object", "size", "operation")


class AccessLogError(ValueError):
    """A line that can't be read; the message is ``file:line: what``."""


@dataclass(frozen=True, slots=True, order=True)
class Access:
    time: datetime
    object: str
    size: int
    operation: str


def _access(row: dict[str, object], where: str) -> Access:
    missing = [f for f in FIELDS if f not in row]
    if missing:
        raise AccessLogError(f"{where}: missing {', '.join(missing)}")
    try:
        time = datetime.fromisoformat(str(row["time"]).replace("Z", "+00:00"))
        size = int(str(row["size"]))
    except ValueError as exc:
        raise AccessLogError(f"{where}: {exc}") from None
    if time.tzinfo is None:
        raise AccessLogError(f"{where}: time {row['time']} has no zone")
    if row["operation"] not in OPERATIONS or size < 0:
        raise AccessLogError(f"{where}: operation must be put, get or delete and size >= 0")
    return Access(time, str(row["object"]), size, str(row["operation"]))


def read_log(path: Path) -> list[Access]:
    """Every access in the file, in time order."""
    with path.open(newline="") as lines:
        if path.suffix == ".csv":
            rows = ((n + 2, dict(r)) for n, r in enumerate(csv.DictReader(lines)))
            accesses = [_access(r, f"{path.name}:{n}") for n, r in rows]
        else:
            accesses = []
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise AccessLogError(f"{path.name}:{n}: not JSON: {exc.msg}") from None
                accesses.append(_access(row, f"{path.name}:{n}"))
    return sorted(accesses)


def write_log(path: Path, accesses: Iterable[Access]) -> None:
    """Write ``accesses`` as JSON Lines (or CSV for a ``.csv`` path)."""
    rows = (
        {
            "time": a.time.isoformat().replace("+00:00", "Z"),
            "object": a.object,
            "size": a.size,
            "operation": a.operation,
        }
        for a in accesses
    )
    with path.open("w", newline="") as out:
        if path.suffix == ".csv":
            writer = csv.DictWriter(out, FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        else:
            out.writelines(json.dumps(r) + "\n" for r in rows)
