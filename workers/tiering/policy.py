"""Read a tiering policy from YAML; every error names the file and line.

The format (``deploy/policies/default.yaml`` is a full example)::

    readable_replicas: 1          # replicas readable without rehydration (0 allowed)
    decide_on_read: true          # a read decides that object again at once (false: sweeps only)
    forecast: {half_life_days: 14, period_days: 30, horizon_days: 180, min_saving: 0.05}
    residency: {cold: 90, archive: 180}      # min days in a tier before leaving it
    providers: {s3: [hot, warm, cold, archive]}  # tiers each provider may hold (absent: all)
    pinned: [{prefix: legal/}, {tags: {hold: "yes"}}]
    rules:                         # first match wins
      - name: scratch
        match: {prefix: tmp/, max_size: 1MiB}
        tier: hot                  # or tiers: [cold, archive], chosen by cost
    default: any                   # tiers when no rule matches: any, a tier or a list

Match keys: min/max_age_days, min/max_idle_days (days since the last read), min/max_size
(bytes or 128KiB, 5MiB, 1GiB, 1GB), prefix, tenant, tags (all must be equal).
"""

import re
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from workers.core.policy import Forecast, Match, Pin, Policy, Rule
from workers.core.prices import TIERS

POLICIES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "policies"
UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
UNITS |= {"KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}
SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


class PolicyError(ValueError):
    """A policy that can't be used; the message is ``file:line: what``."""


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.loader = yaml.SafeLoader(text)

    def fail(self, node: yaml.Node, message: str) -> PolicyError:
        return PolicyError(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, what: str, keys: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        found: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = self.value(key)
            if name not in keys:
                raise self.fail(key, f"unknown key {name!r} in {what} ({', '.join(sorted(keys))})")
            if name in found:
                raise self.fail(key, f"{name!r} given twice in {what}")
            found[name] = value
        return found

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def number(self, node: yaml.Node, what: str) -> float:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(node, f"{what} must be a number >= 0, not {value!r}")
        return float(value)

    def flag(self, node: yaml.Node, what: str) -> bool:
        value = self.value(node)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false, not {value!r}")
        return value

    def whole(self, node: yaml.Node, what: str) -> int:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(node, f"{what} must be a whole number >= 0, not {value!r}")
        return value

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.value(node)
        if not isinstance(value, str) or not value:
            raise self.fail(node, f"{what} must be a non-empty string")
        return value

    def size(self, node: yaml.Node, what: str) -> int:
        value = self.value(node)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        found = SIZE.fullmatch(value) if isinstance(value, str) else None
        if found is None or found[2].upper() not in UNITS:
            raise self.fail(node, f"{what} must be bytes or like 128KiB, 5MiB, 1GB: {value!r}")
        return int(float(found[1]) * UNITS[found[2].upper()])

    def tags(self, node: yaml.Node, what: str) -> dict[str, str]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        return {str(self.value(k)): str(self.value(v)) for k, v in node.value}

    def tier(self, node: yaml.Node) -> str:
        value = self.value(node)
        if value not in TIERS:
            raise self.fail(node, f"unknown tier {value!r} (the tiers are {', '.join(TIERS)})")
        return str(value)

    def tiers(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        if isinstance(node, yaml.ScalarNode):
            return TIERS if self.value(node) == "any" else (self.tier(node),)
        tiers = tuple(self.tier(n) for n in self.sequence(node, what))
        if not tiers:
            raise self.fail(node, f"{what} names no tier")
        return tiers


MATCH_SIZES = {"min_size", "max_size"}
MATCH_DAYS = {"min_age_days", "max_age_days", "min_idle_days", "max_idle_days"}


def _match(r: _Reader, node: yaml.Node) -> Match:
    given = r.mapping(node, "match", MATCH_DAYS | MATCH_SIZES | {"prefix", "tenant", "tags"})
    kwargs: dict[str, Any] = {}
    for key, value in given.items():
        read: Callable[[yaml.Node, str], Any] = (
            r.number if key in MATCH_DAYS else r.size if key in MATCH_SIZES else r.text
        )
        kwargs[key] = r.tags(value, "tags") if key == "tags" else read(value, key)
    return Match(**kwargs)


def _rule(r: _Reader, node: yaml.Node) -> Rule:
    given = r.mapping(node, "a rule", {"name", "match", "tier", "tiers"})
    if ("tier" in given) == ("tiers" in given):
        raise r.fail(node, "a rule needs exactly one of tier or tiers")
    if "name" not in given:
        raise r.fail(node, "a rule needs a name")
    return Rule(
        name=r.text(given["name"], "name"),
        match=_match(r, given["match"]) if "match" in given else Match(),
        tiers=r.tiers(given.get("tier") or given["tiers"], "tiers"),
        line=node.start_mark.line + 1,
    )


def _pin(r: _Reader, node: yaml.Node) -> Pin:
    given = r.mapping(node, "a pin", {"prefix", "tags"})
    if not given:
        raise r.fail(node, "a pin needs a prefix or tags")
    return Pin(
        prefix=r.text(given["prefix"], "prefix") if "prefix" in given else None,
        tags=r.tags(given["tags"], "tags") if "tags" in given else {},
        line=node.start_mark.line + 1,
    )


def _forecast(r: _Reader, node: yaml.Node) -> Forecast:
    given = r.mapping(node, "forecast", {f.name for f in fields(Forecast)})
    values = {k: r.number(v, k) for k, v in given.items()}
    for key in ("half_life_days", "period_days", "horizon_days"):
        if values.get(key) == 0:
            raise r.fail(given[key], f"{key} must be > 0")
    return Forecast(**values)


def parse_policy(text: str, source: str) -> Policy:
    """A policy from YAML text; ``source`` (the file name) heads every error."""
    r = _Reader(text, source)
    try:
        root = r.loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise PolicyError(f"{source}:{line}: not valid YAML: {exc.problem}") from None
    if root is None:
        raise PolicyError(f"{source}:1: empty policy")
    keys = {"version", "readable_replicas", "forecast", "residency", "providers", "pinned"}
    keys |= {"decide_on_read"}
    given = r.mapping(root, "the policy", keys | {"rules", "default"})
    if "version" in given and r.value(given["version"]) != 1:
        raise r.fail(given["version"], "only version 1 is known")
    residency = (
        r.mapping(given["residency"], "residency", set(TIERS)) if "residency" in given else {}
    )
    providers = (
        r.mapping(given["providers"], "providers", {"s3", "azure", "gcs"})
        if "providers" in given
        else {}
    )
    return Policy(
        rules=tuple(_rule(r, n) for n in r.sequence(given["rules"], "rules"))
        if "rules" in given
        else (),
        default=r.tiers(given["default"], "default") if "default" in given else TIERS,
        pinned=tuple(_pin(r, n) for n in r.sequence(given["pinned"], "pinned"))
        if "pinned" in given
        else (),
        residency={k: r.number(v, f"residency of {k}") for k, v in residency.items()},
        providers={k: r.tiers(v, f"tiers of {k}") for k, v in providers.items()},
        readable_replicas=r.whole(given["readable_replicas"], "readable_replicas")
        if "readable_replicas" in given
        else 1,
        forecast=_forecast(r, given["forecast"]) if "forecast" in given else Forecast(),
        decide_on_read=r.flag(given["decide_on_read"], "decide_on_read")
        if "decide_on_read" in given
        else True,
    )


def load_policy(path: Path) -> Policy:
    """A policy file; ``default`` or ``lifecycle`` name the shipped ones."""
    if not path.exists() and (POLICIES_DIR / f"{path}.yaml").exists():
        path = POLICIES_DIR / f"{path}.yaml"
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror}") from None
    return parse_policy(text, path.name)
