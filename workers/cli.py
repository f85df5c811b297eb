"""The ``movingdata`` command line."""

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from workers.settings import Settings, load_settings
from workers.stack import control
from workers.stack.process import ServiceError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Move data between clouds.")
stack_app = typer.Typer(no_args_is_help=True, help="The local stack of services.")
app.add_typer(stack_app, name="stack")
console = Console()


def settings() -> Settings:
    return load_settings()


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@stack_app.command("up")
def stack_up() -> None:
    """Install what is missing, start every service, wait until healthy."""
    try:
        timings = control.up(settings())
    except ServiceError as exc:
        fail(str(exc))
    for name, seconds in timings.items():
        console.print(f"{name:10} up in {seconds:5.1f} s")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services this stack started (by PID)."""
    for name in control.down(settings()):
        console.print(f"{name:10} stopped")


@stack_app.command("status")
def stack_status() -> None:
    """A table of services, versions, ports, PIDs, health and memory."""
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
    if any(row.state != "healthy" for row in rows):
        raise typer.Exit(1)


@stack_app.command("logs")
def stack_logs(service: str, lines: int = typer.Option(50, "-n")) -> None:
    """Print the last lines of a service's log."""
    try:
        path = Path(control.log_path(settings(), service))
    except ServiceError as exc:
        fail(str(exc))
    if path.exists():
        sys.stdout.write("".join(path.read_text(errors="replace").splitlines(True)[-lines:]))


def main() -> None:
    app()
