"""Welch's t-test: unpaired, unequal spreads; TOST for equivalence; power by quadrature over both variances."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from normreg.judge.designs.base import Look, TTest, register
from normreg.judge.stats import (
    Comparison,
    PowerModel,
    _chi2_nodes,
    cumulative_moments,
    satterthwaite_df,
    welch_se_df,
)
from normreg.suite.model import MetricSpec

SD_RATIOS = (0.1, 0.3, 1.0, 3.0, 10.0)  # the spreads staged seeding is calibrated over (sd_b / sd_a)


@dataclass(frozen=True)
class WelchPower(PowerModel):
    """Welch's test estimates two variances, and its degrees of freedom are themselves random; power integrates
    over both sample variances (a 64 x 64 quadrature)."""

    def draws(self) -> tuple[float, np.ndarray, np.ndarray]:
        va, vb = self.sd_a**2 / self.n_a, self.sd_b**2 / self.n_b
        xa = va * _chi2_nodes(self.n_a - 1)[:, None]
        xb = vb * _chi2_nodes(self.n_b - 1)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            df = satterthwaite_df([xa, xb], [self.n_a - 1, self.n_b - 1])
        return math.sqrt(va + vb), np.sqrt(xa + xb).ravel(), np.nan_to_num(df, nan=1.0).ravel()


def welch(a: Sequence[float], b: Sequence[float], spec: MetricSpec, *, alpha: float = 0.05,
          a_name: str = "a", b_name: str = "b") -> Comparison:
    """Compare candidate values `b` with reference values `a` (listed in seed order) on one metric.

    regressed / improved: the Welch interval beyond ∓min_effect, in the bad / good direction of `goal`;
    equivalent: TOST at alpha puts the difference inside ±min_effect; inconclusive: anything else. Without
    seed-to-seed variance the exact difference decides; the same values for the same seeds are `identical`.
    """
    return welch_values(dict(enumerate(a)), dict(enumerate(b)), spec, alpha=alpha, a_name=a_name, b_name=b_name)


def welch_values(a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float = 0.05,
                 a_name: str = "a", b_name: str = "b") -> Comparison:
    """`welch` on per-seed values {seed: value}: equal values for the same seeds are `identical`."""
    test = Welch()
    base, done = test.describe(a, b, spec, alpha, a_name, b_name)
    if done is not None:
        return done
    sd_a, sd_b = base["sd_a"], base["sd_b"]
    se, df = welch_se_df(sd_a, sd_b, base["n_a"], base["n_b"])
    return test.t_comparison(base, se, df, spec, alpha, WelchPower(sd_a, sd_b, base["n_a"], base["n_b"]))


@register("welch")
class Welch(TTest):
    label = "Welch"
    summary = "Welch's t-test: unpaired, unequal spreads (the default)"

    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        return welch_values(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)

    def power_model(self, sd_a: float, sd_b: float, n_a: float, n_b: float,
                    sd_diff: float | None = None) -> PowerModel:
        return WelchPower(sd_a, sd_b, n_a, n_b)

    def array_stats(self, a: np.ndarray, b: np.ndarray) -> Look:
        n_a, n_b = a.shape[-1], b.shape[-1]
        va, vb = a.var(-1, ddof=1) / n_a, b.var(-1, ddof=1) / n_b
        with np.errstate(invalid="ignore", divide="ignore"):
            df = satterthwaite_df([va, vb], [n_a - 1, n_b - 1])
        return b.mean(-1) - a.mean(-1), np.sqrt(va + vb), df

    def null_looks(self, a: np.ndarray, b: np.ndarray, sizes_a: Sequence[int],
                   sizes_b: Sequence[int]) -> list[list[Look]]:
        """Welch's degrees of freedom are themselves estimated and depend on the spreads' ratio: every ratio in
        `SD_RATIOS` (the candidate's draws scaled by it)."""
        moments_a, moments_b = cumulative_moments(a), cumulative_moments(b)
        out = []
        for ratio in SD_RATIOS:
            looks = []
            for na, nb in zip(sizes_a, sizes_b):
                mb, vb = moments_b(nb)
                ma, va = moments_a(na)
                va, vb = va / na, ratio * ratio * vb / nb
                diff, se = ratio * mb - ma, np.sqrt(va + vb)
                with np.errstate(invalid="ignore", divide="ignore"):
                    df = satterthwaite_df([va, vb], [na - 1, nb - 1])
                looks.append((diff, se, df))
            out.append(looks)
        return out

