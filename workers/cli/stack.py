"""Operator commands: the local stack of services and its staging area."""

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from workers.cli.base import (
    JSON,
    OPERATOR,
    Code,
    app,
    console,
    emit_json,
    fail,
    run,
    said,
    settings,
)
from workers.stack import control
from workers.stack.process import ServiceError

stack_app = typer.Typer(no_args_is_help=True, help="The local stack of services.")
app.add_typer(stack_app, name="stack", rich_help_panel=OPERATOR)


@stack_app.command("up")
def stack_up(as_json: bool = typer.Option(False, "--json", help="One service per line.")) -> None:
    """Install what is missing, start every service, wait until healthy."""
    try:
        timings = control.up(settings())
    except ServiceError as exc:
        fail(str(exc), Code.RETRY)
    for name, seconds in timings.items():
        said(
            as_json,
            {"service": name, "seconds": round(seconds, 1)},
            f"{name:10} up in {seconds:5.1f} s",
        )


@stack_app.command("down")
def stack_down(as_json: bool = typer.Option(False, "--json", help="One line per stop.")) -> None:
    """Stop what the demo left running, then the services this stack started (by PID)."""
    from workers.demo import stop_surface

    for name in [*stop_surface(settings()), *control.down(settings())]:
        said(as_json, {"stopped": name}, f"{name:10} stopped")


@stack_app.command("status")
def stack_status(
    as_json: bool = typer.Option(False, "--json", help="One service per line."),
) -> None:
    """A table of services, versions, ports, PIDs, health and memory; exit 1 unless every
    service is healthy."""
    if as_json:
        rows = list(control.status(settings()))
        for row in rows:
            emit_json(
                {"service": row.name, "version": row.version, "port": row.port, "pid": row.pid}
                | {"state": row.state, "rss_mib": row.rss_mib}
            )
        healthy = all(row.state == "healthy" for row in rows)
    else:
        healthy = stack_status_table()
    if not healthy:
        raise typer.Exit(1)


def stack_status_table() -> bool:
    """Print the services table; True when every service is healthy."""
    rows = list(control.status(settings()))
    table = Table("service", "version", "port", "pid", "state", "RSS MiB")
    for row in rows:
        colour = {"healthy": "green", "unhealthy": "yellow"}.get(row.state, "red")
        table.add_row(
            row.name,
            row.version,
            str(row.port),
            str(row.pid or "-"),
            f"[{colour}]{row.state}[/{colour}]",
            f"{row.rss_mib:.0f}" if row.rss_mib else "-",
        )
    console.print(table)
    return all(row.state == "healthy" for row in rows)


@stack_app.command("logs")
def stack_logs(service: str, lines: int = typer.Option(50, "-n")) -> None:
    """Print the last lines of a service's log."""
    try:
        path = Path(control.log_path(settings(), service))
    except ServiceError as exc:
        fail(str(exc))
    if path.exists():
        sys.stdout.write("".join(path.read_text(errors="replace").splitlines(True)[-lines:]))


staging_app = typer.Typer(no_args_is_help=True, help="The staging area of uploads.")
app.add_typer(staging_app, name="staging", rich_help_panel=OPERATOR)


@staging_app.command("sweep")
def staging_sweep(
    older_than: float = typer.Option(None, help="Seconds; default the staging TTL setting."),
    as_json: bool = JSON,
) -> None:
    """Remove staged uploads older than the TTL that nothing needs: settled requests' and
    those no request references (workers also do this on a timer)."""

    from workers import staging
    from workers.catalog import MongoCatalog
    from workers.deps import target_url
    from workers.kms.keyregistry import MongoKeyRegistry
    from workers.stores import open_store

    s = settings()

    async def go() -> int:
        store = open_store(target_url(s.staging_target, s), s)
        catalog = MongoCatalog(s.mongo_url, s.mongo_database)
        registry = MongoKeyRegistry(s.mongo_url, s.mongo_database)
        try:
            ttl = s.staging_ttl_s if older_than is None else older_than
            cutoff = staging.cutoff(datetime.now(UTC), ttl)
            return await staging.sweep(store, s.staging_prefix, cutoff, catalog, registry)
        finally:
            await store.close()
            await catalog.close()
            await registry.close()

    removed = run(go())
    said(as_json, {"removed": removed}, f"{removed} staged uploads removed")
