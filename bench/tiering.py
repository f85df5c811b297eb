"""Tune the predictive tiering policy on one synthetic log, report on others.

    .venv/bin/python -m bench.tiering [--objects 500] [--days 365]

A small grid over the forecast's half-life, horizon and minimum saving, on the log of seed 1;
the cheapest setting is then replayed, with everything-hot, the rule-only policy
(deploy/policies/lifecycle.yaml) and the Intelligent-Tiering emulation, on seeds 2, 3 and 4.
No service is needed. Writes bench/results/tiering.json and the plots to bench/results/tiering/.
"""

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

from bench.report import RESULTS
from workers.core.policy import Policy
from workers.tiering.backtest import PolicyReplay, compare
from workers.tiering.plots import write_plots
from workers.tiering.policy import load_policy
from workers.tiering.prices import load_prices
from workers.tiering.synth import synthesise

TUNE_SEED = 1
REPORT_SEEDS = (2, 3, 4)
GRID = {
    "half_life_days": (3.0, 7.0, 14.0),
    "horizon_days": (30.0, 60.0, 90.0),
    "min_saving": (0.1, 0.3),
}


def tuned(policy: Policy, objects: int, days: int) -> tuple[Policy, list[dict[str, float]]]:
    """The grid point cheapest on the tuning log, and every point's total."""
    prices, log = load_prices(), synthesise(TUNE_SEED, objects, days)
    tried = []
    for values in itertools.product(*GRID.values()):
        knobs = dict(zip(GRID, values, strict=True))
        candidate = replace(policy, forecast=replace(policy.forecast, **knobs))
        total = PolicyReplay("predictive", candidate, prices).run(log).total
        tried.append(knobs | {"total": round(total, 4)})
        print(f"  {knobs} -> ${total:.4f}", flush=True)
    best = min(tried, key=lambda row: row["total"])
    knobs = {k: best[k] for k in GRID}
    return replace(policy, forecast=replace(policy.forecast, **knobs)), tried


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    print(f"tuning on seed {TUNE_SEED}: {args.objects} objects, {args.days} days")
    policy, grid = tuned(load_policy(Path("default")), args.objects, args.days)
    f = policy.forecast
    print(f"chosen: half-life {f.half_life_days}, horizon {f.horizon_days}, {f.min_saving}")
    prices, rules = load_prices(), load_policy(Path("lifecycle"))
    seeds = {}
    for seed in REPORT_SEEDS:
        log = synthesise(seed, args.objects, args.days)
        reports = compare(log, {"rules": rules, "predictive": policy}, prices)
        it = reports[-1].total
        seeds[seed] = [r.summary() | {"vs_intelligent_tiering": r.total / it - 1} for r in reports]
        write_plots(reports, "predictive", RESULTS / "tiering" / f"seed-{seed}")
        print(f"seed {seed}: " + ", ".join(f"{r.name} ${r.total:.3f}" for r in reports))
        print(f"  predictive vs IT: {reports[2].total / it - 1:+.1%}")
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "objects": args.objects,
        "days": args.days,
        "tuned_on_seed": TUNE_SEED,
        "grid": grid,
        "chosen": {k: getattr(f, k) for k in GRID},
        "seeds": seeds,
    }
    (RESULTS / "tiering.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS / 'tiering.json'} and {RESULTS / 'tiering'}/")


if __name__ == "__main__":
    main()
