"""Tiering: sweeps, explanations, synthetic logs and backtests."""

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from workers.cli.base import (
    JSON,
    OPERATOR,
    app,
    console,
    emit_json,
    errors,
    fail,
    load_tiering,
    picked,
    run,
    said,
    settings,
)

tier_app = typer.Typer(
    no_args_is_help=True, help="Tiering: sweeps, explanations, synthetic logs and backtests."
)
app.add_typer(tier_app, name="tier", rich_help_panel=OPERATOR)


def moment(value: str | None) -> datetime:
    """``--now``: an ISO 8601 time (UTC unless it says otherwise), or now."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now {value!r}: not an ISO 8601 time (e.g. 2027-06-01 or 2027-06-01T12:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


NOW_HELP = "Decide as at this time (ISO 8601; default now): what-ifs and tests."


@tier_app.command("sweep")
def tier_sweep(
    now: str | None = typer.Option(None, help=NOW_HELP),
    dry_run: bool = typer.Option(False, help="Decide and show, change nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Decide every verified version's tiers with the settings' policy; the tier agent
    applies the changes (what the tier worker's leader does every MOVINGDATA_TIER_SWEEP_S)."""
    from workers.client.identity import cli_actor
    from workers.tiering.live import sweep

    s = settings()
    result = run(sweep(s, load_tiering(s), moment(now), cli_actor().name, dry_run=dry_run))
    rows = [
        {
            "object_id": c.object_id,
            "version": c.version,
            "replica": c.target,
            "from": c.previous,
            "to": c.tier,
            "reason": c.reason,
            "cost_delta": round(c.cost_after - c.cost_before, 9),
        }
        for c in result.changes
    ]
    if as_json:
        emit_json({"versions": result.versions, "dry_run": dry_run, "changes": rows})
        return
    for row in rows:
        console.print(
            f"{row['object_id']} v{row['version']} {row['replica']}: {row['from']} -> {row['to']}"
            f" ({row['reason']}; {row['cost_delta']:+.6f} USD per period)",
            highlight=False,
        )
    verb = "would change" if dry_run else "changes sent to the tier agent:"
    console.print(f"{result.versions} verified versions decided; {verb} {len(rows)} replicas")


@tier_app.command("explain")
def tier_explain(
    ref: str = typer.Argument(..., metavar="ID|NAME"),
    version: int | None = typer.Option(None, help="A version; default the newest verified."),
    tenant: str = "default",
    now: str | None = typer.Option(None, help=NOW_HELP),
) -> None:
    """Why each replica of a version sits where it is, with the costs of every tier."""
    from workers.core.tiering import explain
    from workers.tiering.live import stats_of

    s = settings()
    tiering = load_tiering(s)
    doc = picked(ref, version, tenant)
    stats = stats_of(doc)
    if stats is None:
        fail(f"v{doc['version']} of {ref} is {doc.get('state', 'pending')}: nothing is tiered")
    replicas = doc.get("replicas") or {}
    for target, replica in sorted(replicas.items()):
        if replica.get("tier_reason"):
            console.print(
                f"{target}: {replica.get('tier')} since the last change: {replica['tier_reason']}",
                highlight=False,
            )
    sys.stdout.write(explain(stats, tiering.policy, tiering.prices, moment(now)) + "\n")


@tier_app.command("synth")
def tier_synth(
    output: Path = typer.Option(..., "-o", "--output", help="The log to write (.jsonl or .csv)."),
    seed: int = typer.Option(1, help="The same seed gives the same log."),
    objects: int = typer.Option(500, min=1),
    days: int = typer.Option(365, min=1),
    as_json: bool = JSON,
) -> None:
    """Write a synthetic access log: Zipf popularity, a daily cycle, ageing, re-read bursts."""
    from workers.tiering.accesslog import write_log
    from workers.tiering.synth import synthesise

    log = synthesise(seed, objects, days)
    write_log(output, log)
    text = f"{len(log)} accesses to {objects} objects over {days} days: {output}"
    doc = {"accesses": len(log), "objects": objects, "days": days, "output": str(output)}
    said(as_json, doc, text)


@tier_app.command("backtest")
def tier_backtest(
    policy: list[Path] = typer.Option(
        ..., help="A policy file (or default, lifecycle); repeat to compare several."
    ),
    access_log: Path = typer.Option(..., help="JSON Lines or CSV: time, object, size, operation."),
    rules: Path = typer.Option(Path("lifecycle"), help="The rule-only baseline policy."),
    prices: Path | None = typer.Option(None, help="The prices folder (default deploy/prices)."),
    plots: Path | None = typer.Option(None, help="Write PNG charts into this folder."),
    review_days: int = typer.Option(7, min=1, help="Review every object this often."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay an access log against policies, everything-hot and Intelligent-Tiering."""
    from workers.core.prices import PriceError
    from workers.tiering.accesslog import AccessLogError, read_log
    from workers.tiering.backtest import compare
    from workers.tiering.policy import PolicyError, load_policy
    from workers.tiering.prices import PRICES_DIR, load_prices

    try:
        sheets = load_prices(prices or PRICES_DIR)
        policies = {"rules": load_policy(rules)}
        policies |= {path.stem: load_policy(path) for path in policy}
        log = read_log(access_log)
    except (PriceError, PolicyError, AccessLogError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}")
    reports = compare(log, policies, sheets, review_days)
    if plots is not None:
        from workers.tiering.plots import write_plots

        written = write_plots(reports, policy[-1].stem, plots)
        errors.print("plots: " + ", ".join(str(p) for p in written))
    baseline = reports[-1].total
    rows = [
        r.summary() | {"vs_intelligent_tiering": (r.total / baseline - 1) if baseline else 0.0}
        for r in reports
    ]
    if as_json:
        emit_json(rows)
        return
    # plain columns: a wide table still reads when piped (Rich would squeeze it to 80)
    head = f"{'policy':22} {'total $':>9} " + " ".join(f"{c:>11}" for c in COST_COLUMNS)
    lines = [head + f" {'moves':>6} {'early':>6} {'cold rd':>7} {'instant/min/h':>15} {'vs IT':>7}"]
    for row in rows:
        lines.append(
            f"{row['policy']:22} {row['total']:9.4f} "
            + " ".join(f"{row['costs'][part]:11.4f}" for part in COST_PARTS)
            + f" {row['transitions']:6d} {row['early_deletions']:6d}"
            f" {row['reads_from_cold_tiers']:7d}"
            f" {'/'.join(str(n) for n in row['latency'].values()):>15}"
            f" {row['vs_intelligent_tiering']:+7.1%}"
        )
    sys.stdout.write("\n".join(lines) + "\n")


COST_PARTS = ("storage", "retrieval", "operations", "transitions", "early_deletion", "monitoring")
COST_COLUMNS = ("storage", "retrieval", "operations", "transitions", "early del.", "monitoring")
