"""``login``, ``logout`` and ``profiles``: the user's own credential for the API, kept in a
profile (mode 600) so the data commands need nothing else."""

import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from workers.cli.base import DATA, Code, api_failed, app, console, emit_json, fail
from workers.client.profiles import TOKEN_VARIABLE, Profile, ProfileError, config_file, read
from workers.client.profiles import remove as remove_profile
from workers.client.profiles import save as save_profile
from workers.client.remote import ApiError, Remote


@app.command(rich_help_panel=DATA)
def login(
    url: str = typer.Argument(..., help="The API's address, e.g. https://movingdata.example"),
    profile: str = typer.Option("default", "--as", help="The profile's name."),
    token_file: Path | None = typer.Option(
        None, help="Read the token from this file (else MOVINGDATA_TOKEN, else a prompt)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Who you are, as one object."),
) -> None:
    """Check a token against the API and keep it as a profile (the current one), under
    $XDG_CONFIG_HOME/movingdata/profiles.json, readable by you only."""
    if not url.startswith(("http://", "https://")):
        fail(f"{url!r}: the API's address starts with http:// or https://", Code.USAGE)
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            fail(f"{token_file}: {exc.strerror}", Code.USAGE)
    elif os.environ.get(TOKEN_VARIABLE):
        token = os.environ[TOKEN_VARIABLE].strip()
    elif sys.stdin.isatty():
        token = typer.prompt("Token", hide_input=True).strip()
    else:
        token = sys.stdin.readline().strip()
    if not token:
        fail("no token given", Code.USAGE)
    chosen = Profile(profile, url.rstrip("/"), token)
    with Remote(chosen) as api:
        try:
            who = api.whoami()
        except ApiError as exc:
            api_failed(exc)
    try:
        save_profile(config_file(), chosen)
    except ProfileError as exc:
        fail(str(exc), Code.USAGE)
    if as_json:
        emit_json({"profile": profile, "url": chosen.url} | who)
        return
    console.print(
        f"logged in to {chosen.url} as {who['actor']} (tenant {who['tenant']}; "
        f"{', '.join(who['scopes'])}); profile {profile!r} saved to {config_file()}",
        highlight=False,
    )


@app.command(rich_help_panel=DATA)
def logout(profile: str = typer.Option("default", "--as", help="The profile to forget.")) -> None:
    """Forget a profile's token (the token itself stays valid until revoked or expired)."""
    try:
        remove_profile(config_file(), profile)
    except ProfileError as exc:
        fail(str(exc), Code.NOT_FOUND)
    console.print(f"profile {profile!r} removed")


@app.command(rich_help_panel=DATA)
def profiles(as_json: bool = typer.Option(False, "--json", help="One profile per line.")) -> None:
    """The profiles you are logged in with (never their tokens); * marks the current one."""
    try:
        doc = read(config_file())
    except ProfileError as exc:
        fail(str(exc), Code.USAGE)
    rows = [
        {"profile": name, "url": p["url"], "current": name == doc["current"]}
        for name, p in sorted(doc["profiles"].items())
    ]
    if as_json:
        for row in rows:
            emit_json(row)
        return
    table = Table("", "profile", "url")
    for row in rows:
        table.add_row("*" if row["current"] else "", row["profile"], row["url"])
    console.print(table)
