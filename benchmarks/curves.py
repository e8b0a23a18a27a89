"""Curve checks by simulation: how often identical curves are called parted, and how often a real parting is found.

    python benchmarks/curves.py                 # 1000 simulated suites per case (3 CPU minutes)
    python benchmarks/curves.py --reps 500      # quicker, rougher

Each seed's curve is a random walk around a mean curve shared by both variants: value(epoch) = mean(epoch) +
walk(epoch), the walk's steps normal with sd `step`, plus fresh per-epoch noise of sd `noise`, so neighbouring
epochs are strongly correlated, as learning curves are. The reference and the variant draw independent seeds
(Welch), or share each seed's walk up to a variant-specific part (paired). Every simulated suite is judged by
`normreg.judge.curves.compare_curves`, the function `normreg run` uses, at alpha 0.05 with min_effect 0.5:

* false "parted": both variants' curves have the same distribution (with min_effect 0.5, and with min_effect 0,
  where any significant epoch parts), or a true difference of 0.9 x min_effect at every epoch, inside the margin;
  the rate of a curve check reporting any parted epoch must be <= alpha.
* power: from epoch `start` on the variant's mean is lower by 2 x min_effect; the rate of reporting a parting,
  and how often the first parted epoch reported is within 2 epochs of `start`.
* independent epochs (white-noise curves): the case where the estimated correlation matters most.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from normreg.choices import SIGNIFICANT  # noqa: E402
from normreg.judge.curves import array_epoch_verdicts, simultaneous_level  # noqa: E402
from normreg.judge.stats import VERDICT_CODES  # noqa: E402
from normreg.suite.model import MetricSpec  # noqa: E402

ALPHA = 0.05
MIN_EFFECT = 0.5


def walks(rng: np.random.Generator, seeds: int, epochs: int, step: float, noise: float) -> np.ndarray:
    """(seeds, epochs): a random walk per seed (sd `step` per epoch) plus independent noise of sd `noise`."""
    return np.cumsum(rng.normal(0.0, step, (seeds, epochs)), axis=1) + rng.normal(0.0, noise, (seeds, epochs))


def simulate(rng: np.random.Generator, *, seeds: int, epochs: int, design: str, shift: np.ndarray, step: float,
             noise: float, min_effect: float, reps: int) -> tuple[float, float, float, float]:
    """(rate of a parting reported, rate of it reported first within 2 epochs of the true start, mean level, rate of
    a parting reported by one test per epoch at alpha, uncorrected)."""
    spec = MetricSpec("val_acc", "max", min_effect)
    parted = near = naive = 0
    levels = []
    start = int(np.argmax(shift != 0)) + 1 if np.any(shift != 0) else None
    for _ in range(reps):
        a = walks(rng, seeds, epochs, step, noise)
        if design == "paired":  # the same seed's walk on both sides, plus a smaller part of each variant's own
            b = 0.8 * a + 0.6 * walks(rng, seeds, epochs, step, noise) + shift
        else:
            b = walks(rng, seeds, epochs, step, noise) + shift
        level = simultaneous_level(a, b, ALPHA, design)
        levels.append(level)
        codes = array_epoch_verdicts(a.T, b.T, spec, level, design)  # (epochs,) from (epochs, seeds)
        hits = [e + 1 for e, k in enumerate(codes) if VERDICT_CODES[k] in SIGNIFICANT]
        if hits:
            parted += 1
            near += start is not None and abs(hits[0] - start) <= 2
        naive += any(VERDICT_CODES[k] in SIGNIFICANT for k in array_epoch_verdicts(a.T, b.T, spec, ALPHA, design))
    return parted / reps, near / reps, float(np.mean(levels)), naive / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    epochs = 20
    # the seed-to-seed sd grows from sqrt(2) * 0.25 ~ 0.35 at epoch 1 to sqrt(21) * 0.25 ~ 1.15 at epoch 20
    step, noise = 0.25, 0.25
    se = 2 * np.sqrt(args.reps * ALPHA * (1 - ALPHA)) / args.reps
    print(f"alpha {ALPHA}, {epochs} epochs, random-walk step sd {step}, noise sd {noise}; {args.reps} simulated "
          f"suites a row (a rate of {ALPHA} is measured within +-{se:.3f}, 2 SE)")
    print(f"{'case':<52} {'min_effect':>10} {'design':<7} {'seeds':>5} {'parted':>7} {'found':>6} {'level':>7} "
          f"{'per-epoch alpha':>15}")
    zero, m = np.zeros(epochs), MIN_EFFECT
    inside = ("true difference -0.9 x min_effect at every epoch", np.full(epochs, -0.9 * m), step, noise, m)
    parts = ("parts by -2 x min_effect from epoch 8", np.where(np.arange(epochs) >= 7, -2 * m, 0.0), step, noise, m)
    same = ("identical distributions", zero, step, noise, 0.0)
    same_m = ("identical distributions", zero, step, noise, m)
    white = ("white-noise curves (independent epochs), identical", zero, 0.0, 1.0, 0.0)
    rows = [("welch", 5, [same_m, same, white, inside, parts]), ("welch", 10, [same, inside, parts]),
            ("paired", 5, [same, inside, parts])]
    for design, seeds, cases in rows:
        for name, shift, st, no, min_effect in cases:
            parted, near, level, naive = simulate(rng, seeds=seeds, epochs=epochs, design=design, shift=shift,
                                                  step=st, noise=no, min_effect=min_effect, reps=args.reps)
            found = f"{near:.3f}" if np.any(shift != 0) and abs(shift).max() > min_effect else "-"
            print(f"{name:<52} {min_effect:>10g} {design:<7} {seeds:>5} {parted:>7.3f} {found:>6} {level:>7.4f} "
                  f"{naive:>15.3f}", flush=True)
    print(f"(parted: share of suites reporting any parted epoch; found: share whose first parted epoch is within 2 of "
          f"the true start; level: mean per-epoch level; per-epoch alpha: share reporting any parted epoch with one "
          f"test per epoch at alpha, uncorrected; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
