"""How often a pair check fails (`regressed` or `improved`) when the true difference is within min_effect, and how
often it reports `regressed` when the true difference is beyond it: issue 18, item 2.

    python benchmarks/margin_rates.py                 # 20,000 simulated pair checks a case
    python benchmarks/margin_rates.py --reps 5000 --designs welch,paired

Per-seed values are normal with sd 1 on both sides, the sides independent, and min_effect is 1 (one seed-sd, so
the margin is as large as the seed noise, as in the issue's figures). The candidate's true difference is 0, 0.5,
0.9 and 1.0 x min_effect in the bad direction (a failure there is a false alarm: the user declared such a
difference not to matter) and 2 and 3 x min_effect (a `regressed` there is power), at 10 seeds per side and at
50. Each simulated check is judged by the library's own array form of the design's test and verdict rule
(`normreg.judge.sequential.simulate`, the code `calibrate` uses; the permutation test with 199 random splits a
sample); a sample of the welch and paired cases is also judged one by one by `compare_values` (the pair check
itself) and must give the same verdicts. Staged seeding (3 to 20 seeds, Pocock) is printed last: the staged
procedure's simulated power against the power a staged check row reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from normreg.judge.designs import compare_values, get  # noqa: E402
from normreg.judge.sequential import simulate, staged_power  # noqa: E402
from normreg.judge.stats import VERDICT_CODES  # noqa: E402
from normreg.suite.model import MetricSpec, stage_sizes  # noqa: E402

WITHIN = (0.0, 0.5, 0.9, 1.0)  # x min_effect: any failing verdict is an error
BEYOND = (2.0, 3.0)  # x min_effect: `regressed` is what a user wants
SEEDS = (10, 50)
MIN_EFFECT = 1.0


def rates(design: str, n: int, effects: tuple[float, ...], reps: int, alpha: float, seed: int,
          stages: tuple[int, ...] | None = None) -> list[tuple[float, float]]:
    """(failure rate, regressed rate) at each true difference -effect x min_effect (goal max)."""
    spec = MetricSpec("m", "max", MIN_EFFECT)
    out = []
    for k, e in enumerate(effects):
        rng = np.random.default_rng([seed, n, k])
        a = rng.standard_normal((reps, n))
        b = rng.standard_normal((reps, n)) - e * MIN_EFFECT
        codes, _ = simulate(a, b, spec, alpha=alpha, design=design, stages=stages)
        out.append((float(np.mean(codes < 2)), float(np.mean(codes == 0))))
    return out


def one_by_one(design: str, n: int, effect: float, reps: int, alpha: float, seed: int) -> tuple[int, int]:
    """(agreeing, total): verdicts of `compare_values` against the array form on the same samples."""
    spec = MetricSpec("m", "max", MIN_EFFECT)
    rng = np.random.default_rng([seed, n, 99])
    a = rng.standard_normal((reps, n))
    b = rng.standard_normal((reps, n)) - effect * MIN_EFFECT
    codes, _ = simulate(a, b, spec, alpha=alpha, design=design)
    same = 0
    for i in range(reps):
        c = compare_values(dict(enumerate(a[i])), dict(enumerate(b[i])), spec, alpha=alpha, design=design)
        same += c.verdict == VERDICT_CODES[codes[i]]
    return same, reps


def staged_rows(reps: int, alpha: float) -> list[str]:
    """The issue's staged case: stages 3..20, Pocock, sd 1, min_effect 0.5, true difference -1."""
    spec = MetricSpec("m", "max", 0.5)
    stages = stage_sizes(3, 20)
    lines = [f"staged seeding, stages {', '.join(map(str, stages))}, Pocock, sd 1, min_effect 0.5, "
             f"{reps} simulated checks a case",
             "design       true diff  simulated regressed  reported power (staged)  fixed-sample power at 20"]
    for design in ("welch", "paired"):
        rng = np.random.default_rng([7, len(design)])
        a = rng.standard_normal((reps, 20))
        b = rng.standard_normal((reps, 20)) - 1.0
        if design == "paired":
            a, b = np.zeros_like(a), b - a  # per-seed differences carry both sides' noise
        codes, _ = simulate(a, b, spec, alpha=alpha, design=design, stages=stages)
        sd_diff = np.sqrt(2.0) if design == "paired" else None
        staged = staged_power(1.0, 1.0, stages, stages, spec, alpha=alpha, design=design, effect=1.0,
                              sd_diff=sd_diff)
        fixed = compare_fixed_power(design, 20, alpha)
        lines.append(f"{design:<12} {-1.0:>9}  {np.mean(codes == 0):>19.3f}  {staged:>23.3f}  {fixed:>26.3f}")
    return lines


def compare_fixed_power(design: str, n: int, alpha: float) -> float:
    test = get(design)
    d = test.power_model(1.0, 1.0, n, n, np.sqrt(2.0) if test.pairs_by_seed else None)
    return d.verdict_power(1.0, 0.5, alpha)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20000)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--designs", default="welch,paired,permutation")
    parser.add_argument("--check", type=int, default=300, help="simulated checks judged one by one per case")
    parser.add_argument("--no-staged", action="store_true")
    args = parser.parse_args()
    designs = args.designs.split(",")
    se = np.sqrt(args.alpha * (1 - args.alpha) / args.reps)
    print(f"sd 1 per seed on each side, min_effect {MIN_EFFECT:g}, alpha {args.alpha:g}, {args.reps} simulated "
          f"pair checks a case (standard error of a rate near alpha: {se:.4f})")
    head = ["design", "seeds"] + [f"fail@{e:g}" for e in WITHIN] + [f"power@{e:g}" for e in BEYOND]
    print("  ".join(f"{h:>11}" for h in head))
    for design in designs:
        for n in SEEDS:
            r = rates(design, n, WITHIN + BEYOND, args.reps, args.alpha, seed=20261206)
            cells = [f"{f:.4f}" for f, _ in r[: len(WITHIN)]] + [f"{g:.4f}" for _, g in r[len(WITHIN):]]
            print("  ".join(f"{x:>11}" for x in [design, str(n), *cells]))
    if args.check:
        for design in (d for d in designs if d != "permutation"):
            for effect in (0.9, 2.0):
                same, total = one_by_one(design, 10, effect, args.check, args.alpha, seed=5)
                print(f"{design}: compare_values gives the array form's verdict on {same} of {total} samples "
                      f"(10 seeds, true difference -{effect:g} x min_effect)")
    if not args.no_staged:
        print("\n".join(staged_rows(min(args.reps, 20000), args.alpha)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
