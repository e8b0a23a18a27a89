"""`normreg history`'s change points: how often a series without a real change reports one, and how soon a real
step is found.

    python benchmarks/history_alarms.py                 # 400 series a regime
    python benchmarks/history_alarms.py --series 2000

Each series is 30 nights of 5 seeds of one metric (higher is better) whose seed-to-seed sd is 1 and whose
`min_effect` is 1 (so seed sd = min_effect), judged at alpha 0.05 by the library function `normreg history` uses
(`normreg.judge.changepoints.detect_changes`). Three regimes have no real change:

- fresh: every night draws fresh seed noise (non-deterministic training, or new seeds each night);
- deterministic: nights 0-14 repeat the same 5 values, nights 15-29 repeat 5 other values drawn from the same
  distribution (one harmless numerical change, as a new torch build gives);
- night effect: fresh seed noise plus a random effect per night with sd 0.5 (the data, the machine, the load);
- same seeds: as deterministic, plus a fresh jitter of sd 0.1 per value each night (the same seeds rerun by
  nondeterministic kernels: the nights differ, but each seed's own effect persists).

A last line gives the deterministic regime at the flagship's scale: the twin's stored spread in
baselines/domain_adapt.json (sd 0.020) and its suite's min_effect (0.01), which --min-effect does not change.

The false change rate is the share of series in which any change is reported. Detection: in the fresh regime the
metric drops by 2 (2 x min_effect) from night 20 on; the detector is run on the nights up to 1, 2 and 3 nights after
the step, as a nightly job would, and a series counts as found by then when a regression is reported at night 20
(one night either side allowed). The figures are quoted in docs/history-evidence.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from normreg.judge.changepoints import detect_changes  # noqa: E402
from normreg.suite.model import MetricSpec  # noqa: E402

NIGHTS, SEEDS, STEP_AT, ALPHA = 30, 5, 20, 0.05
FLAGSHIP = Path(__file__).resolve().parent.parent / "baselines" / "domain_adapt.json"


def fresh(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 1.0, (NIGHTS, SEEDS))


def deterministic(rng: np.random.Generator) -> np.ndarray:
    first, second = rng.normal(0.0, 1.0, (2, SEEDS))
    return np.vstack([np.tile(first, (NIGHTS // 2, 1)), np.tile(second, (NIGHTS - NIGHTS // 2, 1))])


def night_effect(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 1.0, (NIGHTS, SEEDS)) + rng.normal(0.0, 0.5, (NIGHTS, 1))


def same_seeds(rng: np.random.Generator) -> np.ndarray:
    return deterministic(rng) + rng.normal(0.0, 0.1, (NIGHTS, SEEDS))


REGIMES: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "fresh seed noise every night": fresh,
    "deterministic nights, one harmless change": deterministic,
    "night effect 0.5 seed-sd on top of seed noise": night_effect,
    "same seeds, 0.1 sd jitter, one harmless change": same_seeds,
}


def false_change_rate(make: Callable[[np.random.Generator], np.ndarray], spec: MetricSpec, series: int,
                      seed: int) -> float:
    rng = np.random.default_rng(seed)
    alarms = sum(bool(detect_changes(make(rng).tolist(), spec, ALPHA).changes) for _ in range(series))
    return alarms / series


def detection(spec: MetricSpec, series: int, seed: int, within: int = 3) -> list[float]:
    """Share of series in which the step at STEP_AT is reported as a regression with 1..`within` nights after it."""
    rng = np.random.default_rng(seed)
    found = np.zeros(within)
    for _ in range(series):
        values = fresh(rng)
        values[STEP_AT:] -= 2.0
        for k in range(1, within + 1):
            changes = detect_changes(values[:STEP_AT + k].tolist(), spec, ALPHA).changes
            if any(c.verdict == "regressed" and abs(c.night - STEP_AT) <= 1 for c in changes):
                found[k - 1:] += 1
                break
    return list(found / series)


# The README's example: 4 nights x 3 identical values, then 4 nights x 3 other identical values (the means and sds
# it prints: 0.9225 ± 0.0045 and 0.4714 ± 0.089; Welch's p depends on the values only through these).
README_BEFORE = (0.9225 - 0.0045, 0.9225, 0.9225 + 0.0045)
README_AFTER = (0.4714 - 0.089, 0.4714, 0.4714 + 0.089)


def readme_example() -> str:
    nights = [list(README_BEFORE)] * 4 + [list(README_AFTER)] * 4
    changes = detect_changes(nights, MetricSpec("test_acc", "max", 0.0), ALPHA).changes
    return "; ".join(f"change at night {c.night}: n={c.comparison.n_a} vs {c.comparison.n_b}, "
                     f"p={c.comparison.p_value:.2g}, {c.verdict}" for c in changes) or "no change"


def flagship(series: int, seed: int) -> tuple[str, float]:
    """The deterministic regime at the flagship twin's scale: its stored test_acc values' mean and sd, and the
    suite's min_effect (sd 0.020 against min_effect 0.01)."""
    data = json.loads(FLAGSHIP.read_text(encoding="utf-8"))
    values = data["variants"]["twin"]["test_acc"]["values"]
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    spec = MetricSpec("test_acc", "max", float(data["metrics"]["test_acc"]["min_effect"]))
    rate = false_change_rate(lambda rng: mean + sd * deterministic(rng), spec, series, seed)
    return f"flagship twin (mean {mean:.4f}, sd {sd:.4f}, min_effect {spec.min_effect:g}), deterministic", rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=400, help="series per regime (default 400)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    parser.add_argument("--min-effect", type=float, default=1.0, help="the metric's min_effect (default 1, the "
                        "seed sd; the step stays 2)")
    args = parser.parse_args()
    spec = MetricSpec("acc", "max", args.min_effect)
    print(f"{args.series} series a regime of {NIGHTS} nights x {SEEDS} seeds; seed sd 1, min_effect "
          f"{spec.min_effect:g}, alpha {ALPHA}")
    print(f"{'regime':<48} false change rate")
    for i, (name, make) in enumerate(REGIMES.items()):
        rate = false_change_rate(make, spec, args.series, args.seed + i)
        se = (rate * (1 - rate) / args.series) ** 0.5
        print(f"{name:<48} {rate:.3f} (± {se:.3f})")
    name, rate = flagship(args.series, args.seed + 20)
    print(f"{name:<48} {rate:.3f} (± {(rate * (1 - rate) / args.series) ** 0.5:.3f})")
    found = detection(spec, args.series, args.seed + 10)
    print(f"step of 2 (2 seed sd) at night {STEP_AT}, fresh seed noise: found as a regression with "
          + ", ".join(f"{k} night{'s' * (k > 1)} after it {f:.3f}" for k, f in enumerate(found, 1)))
    print(f"README example (4 nights x 3 identical values a side): {readme_example()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
