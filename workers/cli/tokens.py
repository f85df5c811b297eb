"""Operator commands: API tokens."""

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from workers.api.tokens import Role
from workers.cli.base import (
    JSON,
    OPERATOR,
    app,
    console,
    emit_json,
    fail,
    on_state,
    said,
)

tokens_app = typer.Typer(
    no_args_is_help=True, help="API tokens: a tenant, scopes and an expiry each."
)
app.add_typer(tokens_app, name="tokens", rich_help_panel=OPERATOR)


@tokens_app.command("create")
def tokens_create(
    name: str,
    role: Role | None = typer.Option(
        None,
        help="A preset of scopes: reader (read), writer (read, write, delete) or admin "
        "(every scope). Default: reader, unless --scope is given.",
    ),
    scope: list[str] = typer.Option(
        [],
        "--scope",
        help="read, write, delete, forget (crypto-shredding) or admin (every tenant); "
        "repeat it or separate with commas. Instead of --role.",
    ),
    tenant: str = "default",
    expires: str = typer.Option(
        "90d",
        help="A duration (30m, 12h, 90d), an ISO date (2027-06-01, UTC) or never. The default "
        "makes a token nobody remembers stop working on its own.",
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the token to this file (mode 600), not stdout."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="The token's record as one object (with the token unless -o)."
    ),
) -> None:
    """Create a token; it is shown once (the database keeps its hash only)."""
    from workers.api import tokens
    from workers.stack.localenv import write_secret

    if role is not None and scope:
        fail("give --role or --scope, not both")
    try:
        scopes = tokens.parse_scopes(scope) if scope else tokens.role_scopes(role or "reader")
        expires_at = tokens.parse_expiry(expires, datetime.now(UTC))
    except tokens.TokenError as exc:
        fail(str(exc))

    try:
        token = on_state(lambda state: tokens.create(state.db, name, tenant, scopes, expires_at))
    except tokens.TokenError as exc:
        fail(str(exc))
    doc: dict[str, object] = {"name": name, "tenant": tenant, "scopes": tokens.ordered(scopes)}
    doc["expires_at"] = expires_at.isoformat() if expires_at else None
    if output is None:
        said(as_json, doc | {"token": token}, token)
        return
    write_secret(output, token + "\n")
    until = f"until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never expiring"
    held = ", ".join(tokens.ordered(scopes))
    text = f"token {name!r} ({held}) for tenant {tenant}, {until}, written to {output}"
    said(as_json, doc | {"output": str(output)}, text)


@tokens_app.command("list")
def tokens_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every token: name, tenant, scopes, when created, expiring, last used and revoked
    (never the token)."""
    from workers.api import tokens

    docs = on_state(lambda state: tokens.listing(state.db))
    if as_json:
        for doc in docs:
            emit_json(doc)
        return

    def when(at: datetime | None, none: str = "-") -> str:
        return f"{at:%Y-%m-%d %H:%M}" if at else none

    table = Table("name", "tenant", "scopes", "created", "expires", "last used", "revoked")
    for doc in docs:
        table.add_row(
            doc["name"], doc["tenant"], ", ".join(doc["scopes"]), when(doc["created_at"]),
            when(doc["expires_at"], "never"), when(doc["last_used_at"]), when(doc["revoked_at"]),
        )  # fmt: skip
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: str, as_json: bool = JSON) -> None:
    """Revoke a token: the API refuses it from now on."""
    from workers.api import tokens

    try:
        on_state(lambda state: tokens.revoke(state.db, name))
    except tokens.TokenError as exc:
        fail(str(exc))
    said(as_json, {"name": name, "revoked": True}, f"token {name!r} revoked")
