"""Where the CLI finds the API and its own credential: ``MOVINGDATA_API_URL`` with
``MOVINGDATA_TOKEN``, else a profile written by ``movingdata login`` to
``$XDG_CONFIG_HOME/movingdata/profiles.json`` (default ``~/.config``; mode 600).

A profile is a name, the API's URL and the user's token. ``MOVINGDATA_PROFILE`` (or the
CLI's ``--profile``) picks one; otherwise the one logged in last. With neither an API URL
nor a profile, the data commands run in direct mode (the fleet's own credentials)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from workers.stack.localenv import write_secret

URL_VARIABLE = "MOVINGDATA_API_URL"
TOKEN_VARIABLE = "MOVINGDATA_TOKEN"
PROFILE_VARIABLE = "MOVINGDATA_PROFILE"


class ProfileError(ValueError):
    """A profile that cannot be used, said in one line."""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    url: str
    token: str


def config_file(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "movingdata" / "profiles.json"


def read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"current": None, "profiles": {}}
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ProfileError(f"{path} is not JSON ({exc}); log in again to rewrite it") from None
    return {"current": doc.get("current"), "profiles": dict(doc.get("profiles") or {})}


def save(path: Path, profile: Profile) -> None:
    """Add or replace ``profile`` and make it the current one (the file stays mode 600)."""
    doc = read(path)
    doc["profiles"][profile.name] = {"url": profile.url, "token": profile.token}
    doc["current"] = profile.name
    write_secret(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def remove(path: Path, name: str) -> None:
    doc = read(path)
    if doc["profiles"].pop(name, None) is None:
        raise ProfileError(f"no profile {name!r}")
    if doc["current"] == name:
        doc["current"] = next(iter(doc["profiles"]), None)
    write_secret(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def active(env: Mapping[str, str] = os.environ, wanted: str | None = None) -> Profile | None:
    """The API the CLI speaks to, or None for direct mode.

    ``MOVINGDATA_API_URL`` wins (its token from ``MOVINGDATA_TOKEN``, else the named or
    current profile's when that profile is for the same URL); then the profile asked for
    (``wanted``, ``MOVINGDATA_PROFILE``), then the current one."""
    url = env.get(URL_VARIABLE, "").strip()
    name = wanted or env.get(PROFILE_VARIABLE) or None
    doc = read(config_file(env))
    if name is not None and name not in doc["profiles"]:
        raise ProfileError(f"no profile {name!r}; `movingdata login URL --profile {name}`")
    name = name or doc["current"]
    stored = doc["profiles"].get(name) if name else None
    if url:
        token = env.get(TOKEN_VARIABLE, "").strip()
        if not token and stored and stored["url"] == url:
            token = stored["token"]
        if not token:
            raise ProfileError(f"{URL_VARIABLE} is set: give {TOKEN_VARIABLE} or log in to it")
        return Profile("environment", url.rstrip("/"), token)
    if stored is None:
        return None
    return Profile(str(name), stored["url"], env.get(TOKEN_VARIABLE, "").strip() or stored["token"])
