"""Retention and legal hold, pure: which holds cover a version, whether one refuses its
removal, and how a retention may change.

A hold is a document of the ``holds`` collection: a version's (``version`` set: that version
of ``object_id``) or a prefix's (``prefix`` set: every version of every name of ``tenant``
starting with it, those put later included). It carries a retention (``retain_until``: no
removal before then, COMPLIANCE semantics: set or extended, never shortened until it
passes) and a legal hold (``legal_hold``: no removal until an admin releases it). While
either is in force, ``rm`` and ``forget`` are refused, whoever asks.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from workers.core.versions import doc_id, utc

Doc = Mapping[str, Any]
# How the delete stage's refusal of a held version begins (its dead letter's reason): the
# sink records it, and the reconcile does not re-drive that removal.
REMOVAL_REFUSED = "removal refused: "


def version_hold_id(object_id: str, version: int) -> str:
    """The ``_id`` of a version's hold (its version document's own)."""
    return doc_id(object_id, version)


def prefix_hold_id(tenant: str, prefix: str) -> str:
    """The ``_id`` of a prefix's hold."""
    return f"{tenant}/{prefix}"


def covers(hold: Doc, version: Doc) -> bool:
    """The hold is on this version, or on a prefix of its tenant its name starts with."""
    if "prefix" in hold:
        name = str(version.get("name", ""))
        return hold.get("tenant") == version.get("tenant") and name.startswith(hold["prefix"])
    return bool(hold["_id"] == version_hold_id(version["object_id"], version["version"]))


def in_force(hold: Doc, now: datetime) -> bool:
    """A legal hold, or a retention not yet passed."""
    until = hold.get("retain_until")
    return bool(hold.get("legal_hold")) or (until is not None and utc(until) > now)


def describe(hold: Doc, now: datetime) -> str:
    """What holds, for a refusal: the legal hold and the retention in force, the scope, why."""
    what = []
    if hold.get("legal_hold"):
        what.append("a legal hold")
    if (until := hold.get("retain_until")) is not None and utc(until) > now:
        what.append(f"retention until {utc(until).isoformat()}")
    scope = f"prefix {hold['prefix']!r}" if "prefix" in hold else f"v{hold['version']}"
    reason = f" ({hold['reason']})" if hold.get("reason") else ""
    return f"{' and '.join(what)} on {scope}{reason}"


def refusal(version: Doc, holds: Iterable[Doc], now: datetime) -> str | None:
    """Why the version may not be removed now (the holds in force that cover it), or None."""
    held = [describe(h, now) for h in holds if covers(h, version) and in_force(h, now)]
    if not held:
        return None
    return f"{version.get('name', version['object_id'])} v{version['version']} is held: " + (
        "; ".join(held)
    )


def hold_state(version: Doc, holds: Iterable[Doc], now: datetime) -> tuple[datetime | None, bool]:
    """What holds the version now: the latest retention in force (None: none), and whether a
    legal hold does."""
    held = [h for h in holds if covers(h, version) and in_force(h, now)]
    retained = [utc(h["retain_until"]) for h in held if h.get("retain_until")]
    until = max((t for t in retained if t > now), default=None)
    return until, any(h.get("legal_hold") for h in held)


def retention_refusal(current: datetime | None, asked: datetime, now: datetime) -> str | None:
    """Why a retention may not become ``asked`` (one in force is never shortened; the past is
    no retention), or None."""
    if asked <= now:
        return f"retention until {asked.isoformat()} has passed already"
    if current is not None and utc(current) > now and asked < utc(current):
        return f"retention until {utc(current).isoformat()} cannot be shortened until it passes"
    return None
