"""PNG charts of a backtest (matplotlib, the ``plots`` extra; Agg: no display needed)."""

from collections.abc import Sequence
from pathlib import Path

from workers.core.prices import TIERS
from workers.tiering.backtest import Report


def write_plots(reports: Sequence[Report], occupancy_of: str, folder: Path) -> list[Path]:
    """Cost over time per policy, and the tier occupancy of ``occupancy_of``; the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    cost, ax = plt.subplots(figsize=(8, 4.5))
    for report in reports:
        ax.plot(range(1, len(report.daily_total) + 1), report.daily_total, label=report.name)
    ax.set(xlabel="day", ylabel="cumulative cost (USD)", title="Cost over time per policy")
    ax.legend()
    ax.grid(alpha=0.3)
    cost_path = folder / "cost-over-time.png"
    cost.savefig(cost_path, dpi=100, bbox_inches="tight")
    plt.close(cost)

    (chosen,) = [r for r in reports if r.name == occupancy_of]
    tiers, ax = plt.subplots(figsize=(8, 4.5))
    days = range(1, len(chosen.occupancy) + 1)
    ax.stackplot(days, *([day[t] for day in chosen.occupancy] for t in TIERS), labels=TIERS)
    ax.set(xlabel="day", ylabel="GB stored (all replicas)", title=f"Tier occupancy: {chosen.name}")
    ax.legend(loc="upper left")
    tiers_path = folder / f"occupancy-{chosen.name}.png"
    tiers.savefig(tiers_path, dpi=100, bbox_inches="tight")
    plt.close(tiers)
    return [cost_path, tiers_path]
