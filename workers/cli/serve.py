"""Operator commands that run the fleet here: workers, the API, the dashboard, the demo."""

import sys

import typer
from rich.table import Table

from workers.cli.base import OPERATOR, app, console, fail, run, settings
from workers.logs import logging_config
from workers.settings import load_settings


@app.command("settings", rich_help_panel=OPERATOR)
def settings_doc() -> None:
    """Print every MOVINGDATA_* variable as a Markdown table: name, meaning, default."""
    from workers.settings import settings_table

    sys.stdout.write(settings_table())


@app.command(rich_help_panel=OPERATOR)
def worker(
    agents: str = typer.Option("all", help="Stages to run: all, or e.g. encrypt,replicate."),
) -> None:
    """Run pipeline agents in this process (scale by starting more)."""
    import faust

    from workers.app import build_app, parse_stages
    from workers.deps import build_deps, prepare
    from workers.errors import Fatal

    s = load_settings(kafka_role="worker")  # never the operators' tokens
    try:
        stages = parse_stages(agents)
    except ValueError as exc:
        fail(str(exc))
    run(prepare(s))
    try:  # a missing token (the sink's own, for one) stops it here, in one line
        faust_app = build_app(s, stages, build_deps(s))
    except Fatal as exc:
        fail(str(exc))
    faust.Worker(
        faust_app,
        loglevel=s.log_level,
        logging_config=logging_config(s.log_level),
        redirect_stdouts=False,
    ).execute_from_commandline()


@app.command(rich_help_panel=OPERATOR)
def api(
    host: str | None = typer.Option(None, help="Default: MOVINGDATA_API_HOST (127.0.0.1)."),
    port: int | None = typer.Option(None, help="Default: MOVINGDATA_API_PORT (8001)."),
) -> None:
    """Serve the HTTP API (docs at /docs, the OpenAPI document at /openapi.json)."""
    import uvicorn

    from workers.api.app import create_app

    s = settings(kafka_role="api")
    uvicorn.run(
        create_app(s),
        host=host or s.api_host,
        port=port or s.api_port,
        log_config=logging_config(s.log_level),
        access_log=False,
    )


@app.command(rich_help_panel=OPERATOR)
def dashboard(
    port: int | None = typer.Option(None, help="Default: MOVINGDATA_DASHBOARD_PORT (8501)."),
) -> None:
    """Serve the dashboard (Streamlit); it needs a reader token."""
    import subprocess

    from workers.dashboard import PAGE

    s = settings()
    argv = [
        sys.executable, "-m", "streamlit", "run", str(PAGE),
        "--server.address", s.dashboard_host, "--server.port", str(port or s.dashboard_port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",  # an operator's page: no Deploy, no developer menu
    ]  # fmt: skip
    raise typer.Exit(subprocess.call(argv))


@app.command(rich_help_panel=OPERATOR)
def demo() -> None:
    """The local stack's health, then the whole chain on sample data, with a summary."""
    from workers.cli.stack import stack_status_table
    from workers.demo import run_demo, start_surface

    stack_status_table()
    result = run(run_demo(settings()))
    mib = result.bytes / 2**20
    table = Table("pipeline on sample data", "value")
    table.add_row("objects", str(result.objects))
    table.add_row("MiB", f"{mib:.1f}")
    table.add_row("seconds, first put to last verified", f"{result.seconds:.1f}")
    table.add_row("MiB/s", f"{mib / result.seconds:.1f}")
    for target, count in result.verified.items():
        table.add_row(f"replicas verified in {target}", f"{count}/{result.objects}")
    for target, ok in result.restored.items():
        table.add_row(f"restore from {target}", "bit for bit" if ok else "[red]MISMATCH[/red]")
    console.print(table)
    for object_id, reason in result.failures.items():
        console.print(f"[red]failed[/red] {object_id}: {reason}")
    if result.failures or not all(result.restored.values()):
        raise typer.Exit(1)
    for what, where in run(start_surface(settings())).items():
        console.print(f"{what}: {where}")
    console.print("running until `make down` (a worker, the API, the dashboard)")
