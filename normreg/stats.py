"""Statistics as pure functions: two samples of per-seed values in, a frozen `Comparison` out.

Welch's t-test decides whether the difference is real; two one-sided tests (TOST) decide whether it is
within `min_effect`. Not enough data is a stated verdict with its reason, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.special import stdtr, stdtrit  # Student t CDF and its inverse: scipy.stats costs ~0.5 s to import

from normreg.suite import MetricSpec


@dataclass(frozen=True)
class Comparison:
    """Side `a` is the reference (or the baseline), side `b` the candidate; `diff` is mean_b - mean_a."""

    metric: str
    a: str
    b: str
    goal: str
    min_effect: float
    alpha: float
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    sd_a: float | None
    sd_b: float | None
    diff: float | None
    rel_diff: float | None
    t: float | None
    df: float | None
    p_value: float | None
    p_equivalence: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str
    reason: str

    @property
    def ci_level(self) -> float:
        return 1.0 - self.alpha


def _mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def welch(a: Sequence[float], b: Sequence[float], spec: MetricSpec, *, alpha: float = 0.05,
          a_name: str = "a", b_name: str = "b") -> Comparison:
    """Compare candidate values `b` with reference values `a` on one metric and give a verdict.

    regressed / improved: Welch p < alpha and |diff| > min_effect, in the bad / good direction of `goal`;
    equivalent: TOST at alpha puts the difference inside ±min_effect; inconclusive: anything else.
    """
    a = [float(x) for x in a]
    b = [float(x) for x in b]
    n_a, n_b = len(a), len(b)
    mean_a, sd_a = _mean_sd(a)
    mean_b, sd_b = _mean_sd(b)
    diff = mean_b - mean_a if mean_a is not None and mean_b is not None else None
    rel = diff / abs(mean_a) if diff is not None and mean_a else None
    base = dict(metric=spec.name, a=a_name, b=b_name, goal=spec.goal, min_effect=spec.min_effect, alpha=alpha,
                n_a=n_a, n_b=n_b, mean_a=mean_a, mean_b=mean_b, sd_a=sd_a, sd_b=sd_b, diff=diff, rel_diff=rel)
    none = dict(t=None, df=None, p_value=None, p_equivalence=None, ci_low=None, ci_high=None)

    bad = [f"{name} (n={n})" for name, n in ((a_name, n_a), (b_name, n_b)) if n < 2]
    if bad:
        return Comparison(**base, **none, verdict="inconclusive",
                          reason=f"fewer than two values on {' and '.join(bad)}: no test is possible; "
                                 "run more seeds")
    assert sd_a is not None and sd_b is not None and diff is not None
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se2 = va + vb
    if se2 == 0.0:
        return Comparison(**base, **none, verdict="inconclusive",
                          reason=f"no seed-to-seed variance on either side: the t-test is undefined "
                                 f"(the difference is exactly {diff:+.6g})")
    se = math.sqrt(se2)
    df = se2**2 / ((va**2 / (n_a - 1) if va else 0.0) + (vb**2 / (n_b - 1) if vb else 0.0))
    t = diff / se
    p = float(2.0 * stdtr(df, -abs(t)))
    half = float(stdtrit(df, 1.0 - alpha / 2.0)) * se
    delta = spec.min_effect
    if delta > 0:
        p_low = float(stdtr(df, -(diff + delta) / se))   # H0: diff <= -delta
        p_high = float(stdtr(df, (diff - delta) / se))   # H0: diff >= +delta
        p_eq: float | None = max(p_low, p_high)
    else:
        p_eq = None
    stats = dict(t=t, df=df, p_value=p, p_equivalence=p_eq, ci_low=diff - half, ci_high=diff + half)

    if p < alpha and abs(diff) > delta:
        worse = spec.worse(diff)
        verdict = "regressed" if worse else "improved"
        reason = (f"{b_name} is {'worse' if worse else 'better'} by {abs(diff):.4g} "
                  f"(p={p:.2g} < {alpha:g}, beyond min_effect {delta:g})")
    elif p_eq is not None and p_eq < alpha:
        verdict = "equivalent"
        reason = f"difference {diff:+.4g} lies within ±{delta:g} (TOST p={p_eq:.2g} < {alpha:g})"
    elif p < alpha:
        verdict = "inconclusive"
        reason = (f"a real but small difference {diff:+.4g} (p={p:.2g}): within min_effect {delta:g}, "
                  "yet not shown equivalent")
    else:
        verdict = "inconclusive"
        what = f"TOST p={p_eq:.2g}" if p_eq is not None else "min_effect is 0, so equivalence cannot be shown"
        reason = f"neither a difference (p={p:.2g}) nor equivalence ({what}) is shown"
    return Comparison(**base, **stats, verdict=verdict, reason=reason)
