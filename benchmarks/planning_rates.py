"""`calibrate`, `plan` and shared seeds, simulated: are the rates they print the rates a user gets?

    python benchmarks/planning_rates.py                  # all three parts (a few minutes on one core)
    python benchmarks/planning_rates.py --part plan --pilots 200

calibrate: pilots of 5 normal values a side, the reference's spread 0.003 and the candidate's 0.020 (the
flagship's merged batch and twin towers), min_effect 0.01, 5 seeds per side, Welch. Each pilot is calibrated as
`normreg calibrate` does now (`calibrate_check`: the pair check, each side drawn from its own values, the power
bias-corrected, ± from normal pilots at the estimated spreads) and as it did before (the candidate's values on both
sides; ± from plainly resampled pilots). Printed: the true rates of
the pair check (simulated at the true spreads), the mean estimate over pilots with its standard error, the real
spread of the estimates over pilots, the root mean square and the median of the printed ±, and how often the
truth lies within one and two printed ± of the estimate (about 0.68 and 0.95 for a right ±).

plan: pilots of 3, 5 or 10 normal values a side, true spreads as above (and both 0.01), min_effect 0.01. Each
pilot is planned for 80% power at twice min_effect the old way (the pilot's spreads taken as true) and the new
way (power averaged over the spreads the pilot leaves possible); the power each plan delivers is the verdict's
power at the true spreads and the planned seeds. Printed: the delivered power's mean, the share of plans below 0.5
and at 0.8 or more, the median seeds, and what the new plan says of itself (its mean "sure" and "below 0.5").

pairing: per-seed values correlated between the sides (spread 0.02 each, 5 seeds, min_effect 0.01): the false
alarms of Welch's and the paired test at their own level (min_effect 0, so that no margin hides the level), their
power (the verdict's, at 2 x min_effect), and how often the note that reports a
correlation clearly different from zero (two-sided p < 0.05, `stats.clear_correlation`) is shown.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from normreg.judge.designs import get  # noqa: E402
from normreg.judge.planning import (  # noqa: E402
    _spread,
    assured_seeds,
    calibrate_check,
    resampled_rates,
    uncertainty,
)
from normreg.judge.stats import (  # noqa: E402
    array_p,
    array_verdicts,
    clear_correlation,
    design_effect,
)
from normreg.suite.model import MetricSpec  # noqa: E402

ACC = MetricSpec("acc", "max", 0.01)
ALPHA = 0.05


def true_rates(sd_a: float, sd_b: float, n: int, rng: np.random.Generator, reps: int = 400_000,
               rho: float = 0.0, design: str = "welch", delta: float = ACC.min_effect) -> tuple[float, float]:
    """False alarms and power (regressed at 2 x min_effect) of one check, simulated at the true spreads; `delta`:
    the margin the verdict uses (0: the test's significance alone)."""
    z1, z2 = rng.standard_normal((2, reps, n))
    a = sd_a * z1
    b = sd_b * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
    out = []
    for shift in (0.0, -design_effect(ACC.min_effect)):
        diff, se, df = get(design).array_stats(a, b + shift)
        p, p_eq = array_p(diff, se, df, delta)
        codes = array_verdicts(diff, p, p_eq, delta, ACC.goal, ALPHA, ALPHA)
        out.append(float(np.mean(codes < 2)) if shift == 0 else float(np.mean(codes == 0)))
    return out[0], out[1]


def old_spread(x: np.ndarray, rng: np.random.Generator, reps: int, **kw: object) -> tuple[float, float]:
    """The ± calibrate printed before: plain resampling of the one variant's values."""
    inner = max(reps // 4, 100)
    est = np.array([resampled_rates(x[rng.integers(0, len(x), len(x))], ACC, reps=inner, rng=rng, **kw)  # type: ignore[arg-type]
                    for _ in range(40)])
    return _spread(est[:, 0], inner), _spread(est[:, 1], inner)


def part_calibrate(pilots: int, rng: np.random.Generator) -> None:
    sd_a, sd_b, n, reps = 0.003, 0.020, 5, 2000
    fa, pw = true_rates(sd_a, sd_b, n, rng)
    print(f"\n== calibrate: pair check, spreads {sd_a} (reference) and {sd_b} (candidate), {n} seeds a side, "
          f"{pilots} pilots of {n} values a side, {reps} resamples each")
    print(f"true rates of the pair check (400,000 simulated pairs): false alarms {fa:.4f}, power {pw:.3f}")
    kw = dict(n_max=n, alpha=ALPHA)
    rows = {"new": [], "old": []}
    for _ in range(pilots):
        xa, xb = rng.normal(0.98, sd_a, n), rng.normal(0.90, sd_b, n)
        r = calibrate_check("new", "acc", "ref", xa, xb, ACC, rng=rng, reps=reps, **kw)  # type: ignore[arg-type]
        rows["new"].append((r.false_alarm, r.power, r.false_alarm_se, r.power_se))
        rows["old"].append((*resampled_rates(xb, ACC, reps=reps, rng=rng, **kw),  # type: ignore[arg-type]
                            *old_spread(xb, rng, reps, **kw)))
    print("method                            rate          truth   mean estimate (se)   real spread   printed ± "
          "(rms, median)   truth within ±  within 2 ±")
    for name, label in (("old", "before: candidate on both sides"), ("new", "now: each side its own values")):
        e = np.array(rows[name])
        for i, (what, truth) in enumerate((("false alarms", fa), ("power", pw))):
            est, pm = e[:, i], e[:, i + 2]
            miss = np.abs(est - truth)
            print(f"{label:32}  {what:12}  {truth:.4f}  {est.mean():.4f} ({est.std(ddof=1) / math.sqrt(len(est)):.4f})"
                  f"      {est.std(ddof=1):.4f}        {math.sqrt(float(np.mean(pm ** 2))):.4f}, "
                  f"{float(np.median(pm)):.4f}        {np.mean(miss <= pm):.2f}"
                  f"            {np.mean(miss <= 2 * pm):.2f}")


def part_plan(pilots: int, rng: np.random.Generator) -> None:
    effect, delta = design_effect(ACC.min_effect), ACC.min_effect
    print(f"\n== plan: 80% power at 2 x min_effect ({effect:g}), min_effect {delta:g}, Welch, alpha {ALPHA:g}; "
          f"{pilots} pilots a row")
    print("true sds        pilot  method  delivered mean (se)  below 0.5  at 0.8+  median seeds  says sure  "
          "says below 0.5")
    for (sd_a, sd_b), n_pilot in (((0.003, 0.020), 3), ((0.010, 0.010), 3), ((0.003, 0.020), 5),
                                  ((0.003, 0.020), 10)):
        old, new, sure, half = [], [], [], []
        for _ in range(pilots):
            xa, xb = rng.normal(0, sd_a, n_pilot), rng.normal(0, sd_b, n_pilot)
            sa, sb = float(xa.std(ddof=1)), float(xb.std(ddof=1))
            old.append(get("welch").seeds_for(effect, sa, sb, ALPHA, 0.8, delta=delta))
            got = assured_seeds(effect, sa, sb, ALPHA, 0.8, uncertainty([sa, sb], [n_pilot, n_pilot]), delta=delta)
            new.append(got.seeds)
            sure.append(got.sure)
            half.append(got.below_half)
        for label, seeds in (("before", old), ("now", new)):
            welch = get("welch")
            power = np.array([welch.power_model(sd_a, sd_b, n, n).verdict_power(effect, delta, ALPHA) if n else 1.0
                              for n in seeds])
            says = (f"{np.mean(sure):.3f}      {np.mean(half):.3f}" if label == "now" else "-          -")
            se = power.std(ddof=1) / math.sqrt(pilots)
            print(f"{sd_a:.3f}/{sd_b:.3f}   {n_pilot:5}  {label:6}  {power.mean():.3f} ({se:.3f})"
                  f"        {np.mean(power < 0.5):.3f}      {np.mean(power >= 0.8):.3f}    "
                  f"{int(np.median([s or 1000 for s in seeds])):5}         {says}")


def part_pairing(reps: int, rng: np.random.Generator) -> None:
    sd, n = 0.02, 5
    print(f"\n== shared seeds: both sides spread {sd}, {n} seeds, min_effect {ACC.min_effect}, alpha {ALPHA:g}")
    print("false alarms: the test's own level (min_effect 0, no margin); power: the verdict's, regressed at "
          "2 x min_effect")
    print("correlation  Welch false alarms  Welch power  paired false alarms  paired power  note shown (5 seeds)  "
          "(10 seeds)")
    for rho in (0.8, 0.5, 0.0, -0.5):
        w = (true_rates(sd, sd, n, rng, reps, rho, "welch", 0.0)[0], true_rates(sd, sd, n, rng, reps, rho, "welch")[1])
        p = (true_rates(sd, sd, n, rng, reps, rho, "paired", 0.0)[0],
             true_rates(sd, sd, n, rng, reps, rho, "paired")[1])
        shown = []
        for k in (5, 10):
            z1, z2 = rng.standard_normal((2, 20000, k))
            a, b = z1, rho * z1 + math.sqrt(1 - rho * rho) * z2
            ac, bc = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
            r = (ac * bc).sum(1) / np.sqrt((ac * ac).sum(1) * (bc * bc).sum(1))
            shown.append(float(np.mean([clear_correlation(float(x), k)[0] != 0 for x in r])))
        print(f"{rho:+.1f}         {w[0]:.4f}              {w[1]:.3f}        {p[0]:.4f}               {p[1]:.3f}"
              f"         {shown[0]:.3f}                 {shown[1]:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("calibrate", "plan", "pairing", "all"), default="all")
    parser.add_argument("--pilots", type=int, default=200)
    parser.add_argument("--reps", type=int, default=200_000, help="simulated pairs a case in the pairing part")
    args = parser.parse_args()
    rng = np.random.default_rng(20261206)
    start = time.perf_counter()
    if args.part in ("calibrate", "all"):
        part_calibrate(args.pilots, rng)
    if args.part in ("plan", "all"):
        part_plan(args.pilots, rng)
    if args.part in ("pairing", "all"):
        part_pairing(args.reps, rng)
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
