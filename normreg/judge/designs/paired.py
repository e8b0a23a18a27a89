"""The paired t-test on per-seed differences: runs sharing a seed share initial weights and data order."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from normreg.judge.designs.base import Look, TTest, register
from normreg.judge.designs.welch import Welch, WelchPower
from normreg.judge.stats import (
    _K,
    Comparison,
    PowerModel,
    _chi2_nodes,
    _flat,
    cumulative_moments,
    design_effect,
    exact,
    mean_sd,
)
from normreg.suite.model import MetricSpec


@dataclass(frozen=True)
class PairedPower(PowerModel):
    """The paired test has one variance, of the per-seed differences (`sd_diff`), and fixed n - 1 degrees of
    freedom (n: the pairs, `n_a`)."""

    sd_diff: float = 0.0

    def draws(self) -> tuple[float, np.ndarray, np.ndarray]:
        n = self.n_a
        se = self.sd_diff / math.sqrt(n)
        return se, se * np.sqrt(_chi2_nodes(n - 1)), np.full(_K, float(n - 1))


def paired(a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float = 0.05,
           a_name: str = "a", b_name: str = "b") -> Comparison:
    """A paired t-test on per-seed differences b[s] - a[s], over the seeds both sides have.

    Runs that share a seed share initial weights and data order, so much of the seed-to-seed spread cancels in
    the differences. Means and spreads shown are those of the paired seeds; `power_unpaired` is the power
    Welch's test would have had on the same values, so the gain from pairing can be read off. A constant
    per-seed shift (differences that vary only by rounding) is an exact difference.
    """
    common = sorted(set(a) & set(b))
    pa, pb = {s: float(a[s]) for s in common}, {s: float(b[s]) for s in common}
    test = Paired()
    base, done = test.describe(pa, pb, spec, alpha, a_name, b_name, flat_sides_exact=False)
    if done is not None:
        if done.verdict == "inconclusive" and (len(common) < min(len(a), len(b)) or not common):
            return replace(done, reason=f"only {len(common)} seed(s) in common to pair ({a_name} has {len(a)}, "
                                        f"{b_name} {len(b)}); a paired test needs two; run both with the same "
                                        f"seeds, or use design: {Paired.unpaired}")
        return done
    n = len(common)
    d = [pb[s] - pa[s] for s in common]
    _, sd_d = mean_sd(d)
    assert sd_d is not None
    diff = base["diff"]
    if _flat(sd_d, [*pa.values(), *pb.values()]):
        return replace(exact(base, spec, diff, [*pa.values(), *pb.values()], "every per-seed difference"),
                       sd_diff=0.0)
    se, df = sd_d / math.sqrt(n), float(n - 1)
    unpaired = WelchPower(base["sd_a"], base["sd_b"], n, n)
    delta = spec.min_effect
    return test.t_comparison(base, se, df, spec, alpha, PairedPower(base["sd_a"], base["sd_b"], n, n, sd_d),
                             sd_diff=sd_d, power_unpaired=unpaired.verdict_power(design_effect(delta), delta, alpha)
                             if delta > 0 else None)


@register("paired")
class Paired(TTest):
    summary = "paired t-test on per-seed differences (same seed = same initial weights and data order)"
    pairs_by_seed = True
    unpaired = Welch.name

    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        return paired(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)

    def power_model(self, sd_a: float, sd_b: float, n_a: float, n_b: float,
                    sd_diff: float | None = None) -> PowerModel:
        if sd_diff is None:  # no per-seed differences known: as the unpaired test
            return WelchPower(sd_a, sd_b, n_a, n_b)
        return PairedPower(sd_a, sd_b, n_a, n_b, sd_diff)

    def array_stats(self, a: np.ndarray, b: np.ndarray) -> Look:
        d = b - a
        n = d.shape[-1]
        return d.mean(-1), d.std(-1, ddof=1) / math.sqrt(n), np.full(d.shape[:-1], float(n - 1))

    def null_looks(self, a: np.ndarray, b: np.ndarray, sizes_a: Sequence[int],
                   sizes_b: Sequence[int]) -> list[list[Look]]:
        """The t of per-seed differences is pivotal: one spread ratio serves."""
        moments = cumulative_moments(b - a[:, : sizes_b[-1]])
        looks = []
        for _, nb in zip(sizes_a, sizes_b):
            mb, vb = moments(nb)
            looks.append((mb, np.sqrt(vb / nb), np.full(len(mb), nb - 1.0)))
        return [looks]

    def null_draws(self, sd_a: float, sd_b: float, sd_diff: float | None, n_a: int, n_b: int, reps: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per-seed differences of spread `sd_diff` on the candidate's side, zeros on the reference's."""
        assert sd_diff is not None
        return np.zeros((reps, n_a)), sd_diff * rng.standard_normal((reps, n_b))
