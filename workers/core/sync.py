"""What a sync moves, decided from listings alone (no I/O, no clock).

- ``Filter``: rclone's include/exclude rules. Globs match a key relative to the source prefix;
  rules are tried in order and the first match wins; a rule list holding any include excludes
  what no rule matched (rclone's implicit trailing ``- **``), otherwise it includes it.
- ``Names``: a source key's object name, its key relative to the source prefix with
  ``--prefix`` put before it (literally, as ``put --prefix`` does), checked like a put's name.
- ``decide``, ``plan_listed``, ``deletions``: per name new, changed, unchanged or to delete
  (a page at a time: ``workers.sync.plan``), comparing the size and
  the source's own fingerprint (an ETag, a generation, a file's mtime) with what the latest
  version recorded at its put, or, with ``checksum``, the content digests both sides know.
- ``request_id``: one request id per (job, key, fingerprint): a restarted scanner, a redelivered
  listing or two scanners put the same content of a key as the same version.
"""

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

RuleKind = Literal["include", "exclude"]


class FilterError(ValueError):
    """A glob that is not one (an unclosed ``[`` or ``{``, three stars in a row)."""


def glob_regex(glob: str) -> re.Pattern[str]:
    """rclone's glob as a regular expression over a relative key: ``*`` any run within a
    segment, ``**`` any run, ``?`` one character but ``/``, ``[...]`` a class, ``{a,b}`` either,
    ``\\`` escapes. A leading ``/`` anchors at the source prefix, otherwise the glob matches at
    the start or after any ``/``; a trailing ``/`` means everything below (``dir/**``)."""
    if glob.endswith("/"):
        glob += "**"
    anchored = glob.startswith("/")
    out = ["^" if anchored else "(?:^|/)"]
    stars, brackets, braces, escaped = 0, False, False, False

    def flush_stars() -> None:
        nonlocal stars
        if stars > 2:
            raise FilterError(f"too many stars in {glob!r}")
        out.append({0: "", 1: "[^/]*", 2: ".*"}[stars])
        stars = 0

    for char in glob[1:] if anchored else glob:
        if escaped:
            out.append(re.escape(char))
            escaped = False
            continue
        if char != "*":
            flush_stars()
        if brackets:
            out.append("\\[" if char == "[" else char)
            brackets = char != "]"
            continue
        match char:
            case "\\":
                escaped = True
            case "*":
                stars += 1
            case "?":
                out.append("[^/]")
            case "[":
                out.append("[")
                brackets = True
            case "]":
                raise FilterError(f"mismatched ']' in {glob!r}")
            case "{":
                if braces:
                    raise FilterError(f"nested '{{' in {glob!r}")
                out.append("(?:")
                braces = True
            case "}":
                if not braces:
                    raise FilterError(f"mismatched '}}' in {glob!r}")
                out.append(")")
                braces = False
            case ",":
                out.append("|" if braces else ",")
            case _:
                out.append(re.escape(char))
    flush_stars()
    if brackets or braces or escaped:
        raise FilterError(f"unclosed '[', '{{' or '\\' in {glob!r}")
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True, slots=True)
class Filter:
    """Include/exclude rules, in the order given."""

    rules: tuple[tuple[RuleKind, re.Pattern[str]], ...] = ()

    @classmethod
    def of(cls, rules: Sequence[tuple[RuleKind, str]]) -> "Filter":
        """Rules from (kind, glob) pairs; ``FilterError`` for a bad glob."""
        return cls(tuple((kind, glob_regex(glob)) for kind, glob in rules))

    def admits(self, relative: str) -> bool:
        """Whether the key ``relative`` to the source prefix is synced."""
        for kind, pattern in self.rules:
            if pattern.search(relative):
                return kind == "include"
        return not any(kind == "include" for kind, _ in self.rules)


@dataclass(frozen=True, slots=True)
class Names:
    """Source keys to object names and back. ``source_prefix`` is the folder the source URL
    names (``photos/`` for ``s3://bucket/photos``, empty for a whole bucket); ``check`` is the
    put's name check (``schemas.events.safe_key``), ``ValueError`` for a bad name."""

    source_prefix: str
    prefix: str
    check: Callable[[str], str]

    def relative(self, key: str) -> str:
        """``key`` relative to the source prefix; ``ValueError`` if it is not below it."""
        if not key.startswith(self.source_prefix) or key == self.source_prefix:
            raise ValueError(f"key {key!r} is not below {self.source_prefix!r}")
        return key[len(self.source_prefix) :]

    def name(self, relative: str) -> str:
        """The object name of a relative key; ``ValueError`` if no put could take it."""
        return self.check(self.prefix + relative)

    def unprefixed(self, name: str) -> str | None:
        """The relative key an object name came from, None for a name outside ``prefix``."""
        return name[len(self.prefix) :] if name.startswith(self.prefix) else None


def folder_prefix(path: str) -> str:
    """A source URL's path as a key prefix: a folder, so ``photos`` lists ``photos/...``."""
    path = path.strip("/")
    return f"{path}/" if path else ""


@dataclass(frozen=True, slots=True)
class Listed:
    """One object as its source lists it. ``fingerprint`` is the source's own change token
    (``etag:...``, ``generation:...``, ``mtime:<ns>``); ``digests`` the content digests it
    reports, by algorithm (``md5``, ``crc32c``: hex), which ``--checksum`` compares."""

    key: str
    size: int
    fingerprint: str
    digests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the latest live version of a name recorded at its put: its size (None: not known
    yet, encrypt has not read it), the source fingerprint it was put from (None: not put by a
    sync) and content digests by algorithm (``sha256`` of the plaintext)."""

    size: int | None
    fingerprint: str | None = None
    digests: Mapping[str, str] = field(default_factory=dict)


class Action(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    REFUSED = "refused"  # a key no put could take as a name: counted as an error


@dataclass(frozen=True, slots=True)
class Step:
    """What the plan does with one name. ``listed`` is None for a deletion; ``reason`` says
    why a key was refused."""

    name: str
    action: Action
    listed: Listed | None = None
    reason: str = ""


def decide(listed: Listed, recorded: Recorded | None, *, checksum: bool = False) -> Action:
    """New, changed or unchanged. Without ``checksum``: unchanged when the sizes and the
    fingerprints are equal. With it: when the sizes are equal and some content digest both
    sides know is, and none differs; with no digest in common nothing proves the content is
    the same, so it is moved (where rclone would fall back to the size alone)."""
    if recorded is None:
        return Action.NEW
    if recorded.size is not None and listed.size != recorded.size:
        return Action.CHANGED
    if checksum:
        common = listed.digests.keys() & recorded.digests.keys()
        same = bool(common) and all(listed.digests[a] == recorded.digests[a] for a in common)
    else:
        same = recorded.fingerprint is not None and listed.fingerprint == recorded.fingerprint
    return Action.UNCHANGED if same else Action.CHANGED


def plan_listed(
    listed: Iterable[Listed],
    recorded: Mapping[str, Recorded],
    names: Names,
    rules: Filter,
    *,
    checksum: bool = False,
) -> Iterator[Step]:
    """A step for every listed key the filter admits; folder markers (keys ending in ``/``,
    as consoles make them) are no objects and are skipped, as rclone does."""
    for item in listed:
        relative = names.relative(item.key)
        if relative.endswith("/") or not rules.admits(relative):
            continue
        try:
            name = names.name(relative)
        except ValueError as exc:
            yield Step(names.prefix + relative, Action.REFUSED, item, str(exc))
            continue
        yield Step(name, decide(item, recorded.get(name), checksum=checksum), item)


def deletions(
    recorded: Iterable[str], seen: Iterable[str], names: Names, rules: Filter
) -> Iterator[Step]:
    """The names to remove: recorded below ``prefix``, admitted by the filter (an excluded
    name is left alone, as rclone leaves it without ``--delete-excluded``) and not listed."""
    listed = set(seen)
    for name in recorded:
        relative = names.unprefixed(name)
        if relative is not None and name not in listed and rules.admits(relative):
            yield Step(name, Action.DELETE)


def request_id(job: str, key: str, fingerprint: str) -> str:
    """The request id of a sync's put of ``key`` as ``fingerprint``: the same triple, the same
    id, so the chain puts it as the version it put the first time. It starts with the job's
    id, so the job's versions are found by it."""
    text = "\x1f".join((job, key, fingerprint))
    return f"{job}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"
