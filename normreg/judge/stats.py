"""Statistics as pure functions: two samples of per-seed values in, a frozen `Comparison` out.

Welch's t-test (or, with `design: paired`, a paired t-test on per-seed differences) decides whether the
difference is real; two one-sided tests (TOST) decide whether it is within `min_effect`. Every comparison also
carries the power of its test to find a difference of `min_effect`, the smallest difference it finds with 80%
power, and, when inconclusive, about how many seeds per side would decide it. `adjust` applies Holm's (or
Bonferroni's) correction across a family of comparisons. Not enough data is a stated verdict with its reason,
never an exception. The array functions at the end give the same verdicts for many simulated samples at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import special as _sp  # scipy.special only: scipy.stats would double `compare`'s start-up time

from normreg.choices import CORRECTIONS, VERDICTS, check_choice
from normreg.suite.spec import MetricSpec


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
    design: str = "welch"  # "welch" or "paired"
    power: float | None = None  # chance the test finds a true difference of min_effect significant at alpha
    mde: float | None = None  # smallest true difference the test finds significant with 80% power
    power_unpaired: float | None = None  # paired design: the power Welch's test would have had on these data
    seeds_needed: int | None = None  # inconclusive: seeds per side for an 80% chance of a decisive verdict
    seeds_needed_for: str | None = None  # the verdict those seeds would most likely reach
    p_sequential: float | None = None  # staged seeding: repeated p-value of the difference, over all looks
    p_equivalence_sequential: float | None = None  # staged seeding: repeated p-value of TOST
    stages: tuple[int, ...] = ()  # staged seeding: seeds per side at each look taken
    spending: str | None = None  # staged seeding: the error-spending function
    p_adjusted: float | None = None  # the difference p-value after the correction for multiple comparisons
    correction: str = "none"
    sd_diff: float | None = None  # paired design: spread of the per-seed differences

    @property
    def ci_level(self) -> float:
        return 1.0 - self.alpha

    @property
    def p_decision(self) -> float | None:
        """The unadjusted p-value the verdict rests on: sequential when seeds were staged, else the plain one."""
        return self.p_sequential if self.stages else self.p_value

    @property
    def p_equivalence_decision(self) -> float | None:
        return self.p_equivalence_sequential if self.stages else self.p_equivalence


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); None where there are too few values for either."""
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def t_half_width(sd: float | None, n: int, alpha: float) -> float | None:
    """Half-width of the (1 - alpha) t interval of a mean of n values; None with fewer than two."""
    if sd is None or n < 2:
        return None
    return float(_sp.stdtrit(n - 1, 1.0 - alpha / 2.0)) * sd / math.sqrt(n)



# ---------------------------------------------------------------------------------------------- power


def welch_se_df(sd_a: float, sd_b: float, n_a: float, n_b: float) -> tuple[float, float]:
    """Standard error of the difference of means and Welch–Satterthwaite degrees of freedom."""
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se2 = va + vb
    den = (va**2 / (n_a - 1) if va else 0.0) + (vb**2 / (n_b - 1) if vb else 0.0)
    return math.sqrt(se2), (se2**2 / den if den else float(n_a + n_b - 2))


def bisect(f: Callable[[float], float], lo: float, hi: float, xtol: float) -> float:
    """A root of `f` between `lo` and `hi`, where it changes sign (f(lo) < 0 < f(hi) or the reverse)."""
    f_lo = f(lo)
    for _ in range(200):
        if hi - lo <= xtol:
            break
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        if (f_mid < 0) == (f_lo < 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def power(effect: float, se: float, df: float, alpha: float) -> float:
    """Chance that the two-sided t-test at `alpha` finds a true difference `effect` significant, for a test
    whose estimated standard error is a scaled chi with `df` degrees of freedom (noncentral t)."""
    if se <= 0:
        return 1.0 if effect else alpha
    crit = float(_sp.stdtrit(df, 1.0 - alpha / 2.0))
    ncp = abs(effect) / se
    far = float(_sp.nctdtr(df, ncp, -crit))  # significant in the wrong direction: tiny, NaN when ncp is large
    return min(1.0, 1.0 - float(_sp.nctdtr(df, ncp, crit)) + (far if far == far else 0.0))


_K = 64
_Q = (np.arange(_K) + 0.5) / _K  # quantile midpoints: a simple quadrature over the sampling distribution


@lru_cache(maxsize=256)
def _chi2_nodes(df: float) -> np.ndarray:
    """chi-square(df) / df at the quadrature nodes."""
    return _sp.chdtri(df, 1.0 - _Q) / df


@dataclass(frozen=True)
class Design:
    """What the power of a test depends on: the true spreads, the counts, and the design.

    Welch's test estimates two variances, and its degrees of freedom are themselves random; power integrates
    over both sample variances (a 64 x 64 quadrature), which small samples need: at 3 seeds per side the
    plug-in noncentral t overstates power by up to 0.1. The paired test has one variance and fixed n - 1.
    """

    sd_a: float
    sd_b: float
    n_a: float
    n_b: float
    design: str = "welch"
    sd_diff: float | None = None

    def _crit(self, level: float) -> tuple[float, np.ndarray, np.ndarray]:
        """(se, estimated se, critical t at `level`) at the nodes, memoised: a power search reuses them."""
        memo = self.__dict__.setdefault("_memo", {})  # frozen, so write the instance dict directly
        if level not in memo:
            se, s, df = self.draws()
            memo[level] = (se, s, _sp.stdtrit(df, level))
        return memo[level]

    def draws(self) -> tuple[float, np.ndarray, np.ndarray]:
        """True standard error, and estimated standard errors with their degrees of freedom at quadrature nodes."""
        if self.design == "paired":
            assert self.sd_diff is not None
            n = self.n_a
            se = self.sd_diff / math.sqrt(n)
            return se, se * np.sqrt(_chi2_nodes(n - 1)), np.full(_K, float(n - 1))
        va, vb = self.sd_a**2 / self.n_a, self.sd_b**2 / self.n_b
        xa = va * _chi2_nodes(self.n_a - 1)[:, None]
        xb = vb * _chi2_nodes(self.n_b - 1)[None, :]
        se2 = xa + xb
        with np.errstate(invalid="ignore", divide="ignore"):
            df = se2**2 / (xa**2 / (self.n_a - 1) + xb**2 / (self.n_b - 1))
        return math.sqrt(va + vb), np.sqrt(se2).ravel(), np.nan_to_num(df, nan=1.0).ravel()

    def power(self, effect: float, alpha: float) -> float:
        """Chance the two-sided test at `alpha` finds a true difference `effect` significant."""
        se, s, crit = self._crit(1.0 - alpha / 2.0)
        if se <= 0:
            return 1.0 if effect else alpha
        e = abs(effect)
        return float(np.mean(_sp.ndtr((e - crit * s) / se) + _sp.ndtr((-e - crit * s) / se)))

    def tost_power(self, effect: float, delta: float, alpha: float) -> float:
        """Chance TOST at `alpha` shows equivalence within ±`delta` when the true difference is `effect`: given
        the estimated standard error s it passes when the estimate lies in (-delta + c s, delta - c s)."""
        se, s, crit = self._crit(1.0 - alpha)
        if delta <= 0 or se <= 0:
            return 0.0
        hi, lo = (delta - crit * s - effect) / se, (-delta + crit * s - effect) / se
        return float(np.mean(np.clip(_sp.ndtr(hi) - _sp.ndtr(lo), 0.0, 1.0)))

    def mde(self, alpha: float, target: float = 0.8) -> float:
        """The smallest true difference the test finds significant with probability `target`."""
        se = self._crit(1.0 - alpha / 2.0)[0]
        if se <= 0:
            return 0.0
        hi = se * 4.0
        while self.power(hi, alpha) < target:
            hi *= 2.0
        return bisect(lambda d: self.power(d, alpha) - target, 0.0, hi, xtol=se * 1e-6)


def seeds_for(effect: float, sd_a: float, sd_b: float, alpha: float, target: float = 0.8, *,
              design: str = "welch", sd_diff: float | None = None, goal: str = "difference",
              delta: float = 0.0, start: int = 2, limit: int = 1000) -> int | None:
    """Seeds per side (pairs, for the paired design) for probability `target` of showing a difference of
    `effect` (goal "difference") or equivalence within ±`delta` when the true difference is `effect`
    (goal "equivalence"); None when more than `limit` would be needed."""

    def achieved(n: int) -> float:
        d = Design(sd_a, sd_b, n, n, design, sd_diff)
        return d.tost_power(effect, delta, alpha) if goal == "equivalence" else d.power(effect, alpha)

    lo = max(start, 2)
    if achieved(lo) >= target:
        return lo
    hi = lo
    while achieved(hi) < target:
        if hi >= limit:
            return None
        lo, hi = hi, min(hi * 2, limit)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if achieved(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


# ------------------------------------------------------------------------------------------ comparisons


def _test(diff: float, se: float, df: float, delta: float, alpha: float) -> dict[str, float | None]:
    t = diff / se
    p = float(2.0 * _sp.stdtr(df, -abs(t)))
    half = float(_sp.stdtrit(df, 1.0 - alpha / 2.0)) * se
    if delta > 0:
        p_low = float(_sp.stdtr(df, -(diff + delta) / se))   # H0: diff <= -delta
        p_high = float(_sp.stdtr(df, (diff - delta) / se))   # H0: diff >= +delta
        p_eq: float | None = max(p_low, p_high)
    else:
        p_eq = None
    return dict(t=t, df=df, p_value=p, p_equivalence=p_eq, ci_low=diff - half, ci_high=diff + half)


def _decide(c: Comparison, p: float | None) -> Comparison:
    """Set verdict, reason and (when inconclusive) seeds_needed from p (adjusted, sequential or plain)."""
    if c.diff is None or c.p_value is None:
        return c
    diff, delta, alpha = c.diff, c.min_effect, c.alpha
    p_eq = c.p_equivalence_decision
    assert p is not None
    label = "adjusted p" if c.correction != "none" else ("sequential p" if c.stages else "p")
    looks = f" after {len(c.stages)} stage{'s' * (len(c.stages) > 1)} ({c.stages[-1]} seeds)" if c.stages else ""
    needed: int | None = None
    needed_for: str | None = None
    if p < alpha and abs(diff) > delta:
        worse = MetricSpec(c.metric, c.goal).worse(diff)  # type: ignore[arg-type]
        verdict = "regressed" if worse else "improved"
        reason = (f"{c.b} is {'worse' if worse else 'better'} by {abs(diff):.4g} "
                  f"({label}={p:.2g} < {alpha:g}, beyond min_effect {delta:g}){looks}")
    elif p_eq is not None and p_eq < alpha:
        verdict = "equivalent"
        what = "sequential TOST p" if c.stages else "TOST p"
        reason = f"difference {diff:+.4g} lies within ±{delta:g} ({what}={p_eq:.2g} < {alpha:g}){looks}"
    else:
        verdict = "inconclusive"
        if p < alpha:
            reason = (f"a real but small difference {diff:+.4g} ({label}={p:.2g}): within min_effect {delta:g}, "
                      f"yet not shown equivalent{looks}")
        else:
            what = f"TOST p={p_eq:.2g}" if p_eq is not None else "min_effect is 0, so equivalence cannot be shown"
            reason = f"neither a difference ({label}={p:.2g}) nor equivalence ({what}) is shown{looks}"
        needed, needed_for = _seeds_needed(c)
        if needed is not None:
            reason += f"; about {needed} seeds per side would likely (80%) show it {needed_for}"
    return replace(c, verdict=verdict, reason=reason, seeds_needed=needed, seeds_needed_for=needed_for)


def _seeds_needed(c: Comparison) -> tuple[int | None, str | None]:
    """Seeds per side that would most likely decide an inconclusive comparison, taking the observed difference
    and spreads as the truth (a rough guide: with few seeds both are uncertain)."""
    if c.diff is None or c.sd_a is None or c.sd_b is None:
        return None, None
    sd_diff = c.sd_diff if c.design == "paired" else None
    start = max(c.n_a, c.n_b)
    if abs(c.diff) > c.min_effect:
        worse = MetricSpec(c.metric, c.goal).worse(c.diff)  # type: ignore[arg-type]
        n = seeds_for(c.diff, c.sd_a, c.sd_b, c.alpha, design=c.design, sd_diff=sd_diff, start=start)
        return n, ("regressed" if worse else "improved") if n else None
    if c.min_effect > 0:
        n = seeds_for(c.diff, c.sd_a, c.sd_b, c.alpha, design=c.design, sd_diff=sd_diff, goal="equivalence",
                      delta=c.min_effect, start=start)
        return n, "equivalent" if n else None
    return None, None


def _power_fields(d: Design, delta: float, alpha: float) -> dict[str, float | None]:
    return dict(power=d.power(delta, alpha) if delta > 0 else None, mde=d.mde(alpha))


def welch(a: Sequence[float], b: Sequence[float], spec: MetricSpec, *, alpha: float = 0.05,
          a_name: str = "a", b_name: str = "b") -> Comparison:
    """Compare candidate values `b` with reference values `a` on one metric and give a verdict.

    regressed / improved: Welch p < alpha and |diff| > min_effect, in the bad / good direction of `goal`;
    equivalent: TOST at alpha puts the difference inside ±min_effect; inconclusive: anything else.
    """
    base, reason = _describe(a, b, spec, alpha, a_name, b_name)
    if reason:
        return Comparison(**base, verdict="inconclusive", reason=reason)
    sd_a, sd_b, diff = base["sd_a"], base["sd_b"], base["diff"]
    se, df = welch_se_df(sd_a, sd_b, base["n_a"], base["n_b"])
    c = Comparison(**{**base, **_test(diff, se, df, spec.min_effect, alpha)}, verdict="", reason="",
                   **_power_fields(Design(sd_a, sd_b, base["n_a"], base["n_b"]), spec.min_effect, alpha))
    return _decide(c, c.p_value)


_NONE = dict(t=None, df=None, p_value=None, p_equivalence=None, ci_low=None, ci_high=None)


def _describe(a: Sequence[float], b: Sequence[float], spec: MetricSpec, alpha: float, a_name: str,
              b_name: str, design: str = "welch") -> tuple[dict, str | None]:
    """Counts, means and spreads, and the reason no test is possible, if there is one."""
    a = [float(x) for x in a]
    b = [float(x) for x in b]
    n_a, n_b = len(a), len(b)
    mean_a, sd_a = mean_sd(a)
    mean_b, sd_b = mean_sd(b)
    diff = mean_b - mean_a if mean_a is not None and mean_b is not None else None
    rel = diff / abs(mean_a) if diff is not None and mean_a else None
    base = dict(metric=spec.name, a=a_name, b=b_name, goal=spec.goal, min_effect=spec.min_effect, alpha=alpha,
                n_a=n_a, n_b=n_b, mean_a=mean_a, mean_b=mean_b, sd_a=sd_a, sd_b=sd_b, diff=diff, rel_diff=rel,
                design=design, **_NONE)
    bad = [f"{name} (n={n})" for name, n in ((a_name, n_a), (b_name, n_b)) if n < 2]
    if bad:
        return base, (f"fewer than two values on {' and '.join(bad)}: no test is possible; run more seeds")
    assert sd_a is not None and sd_b is not None and diff is not None
    if design == "welch" and sd_a == 0.0 and sd_b == 0.0:
        return base, (f"no seed-to-seed variance on either side: the t-test is undefined "
                      f"(the difference is exactly {diff:+.6g})")
    return base, None


def paired(a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float = 0.05,
           a_name: str = "a", b_name: str = "b") -> Comparison:
    """A paired t-test on per-seed differences b[s] - a[s], over the seeds both sides have.

    Runs that share a seed share initial weights and data order, so much of the seed-to-seed spread cancels in
    the differences. Means and spreads shown are those of the paired seeds; `power_unpaired` is the power
    Welch's test would have had on the same values, so the gain from pairing can be read off.
    """
    common = sorted(set(a) & set(b))
    xa, xb = [float(a[s]) for s in common], [float(b[s]) for s in common]
    base, reason = _describe(xa, xb, spec, alpha, a_name, b_name, design="paired")
    if reason:
        if len(common) < min(len(a), len(b)) or not common:
            reason = (f"only {len(common)} seed(s) in common to pair ({a_name} has {len(a)}, {b_name} {len(b)}); "
                      "a paired test needs two; run both with the same seeds, or use design: welch")
        return Comparison(**base, verdict="inconclusive", reason=reason)
    n = len(common)
    d = [y - x for x, y in zip(xa, xb)]
    _, sd_d = mean_sd(d)
    assert sd_d is not None
    diff = base["diff"]
    if sd_d == 0.0:
        return Comparison(**base, verdict="inconclusive", sd_diff=0.0,
                       reason=f"the per-seed differences do not vary: the paired t-test is undefined "
                              f"(every difference is {diff:+.6g})")
    se, df = sd_d / math.sqrt(n), float(n - 1)
    unpaired = Design(base["sd_a"], base["sd_b"], n, n)
    delta = spec.min_effect
    c = Comparison(**{**base, **_test(diff, se, df, delta, alpha)}, verdict="", reason="",
                **_power_fields(Design(base["sd_a"], base["sd_b"], n, n, "paired", sd_d), delta, alpha),
                power_unpaired=unpaired.power(delta, alpha) if delta > 0 else None, sd_diff=sd_d)
    return _decide(c, c.p_value)


def compare_values(a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float = 0.05,
                   design: str = "welch", a_name: str = "a", b_name: str = "b") -> Comparison:
    """Per-seed values {seed: value} on each side, compared with the design a suite asks for."""
    if design == "paired":
        return paired(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)
    return welch([a[s] for s in sorted(a)], [b[s] for s in sorted(b)], spec, alpha=alpha, a_name=a_name,
                 b_name=b_name)


# ------------------------------------------------------------------------------------------ corrections


def adjust(comparisons: Sequence[Comparison], method: str = "holm") -> list[Comparison]:
    """Adjust the difference p-values of one family of comparisons and re-derive their verdicts.

    Holm's step-down (the default) and Bonferroni keep the chance of any false alarm in the family at alpha.
    Equivalence p-values are left as they are: a family of equivalence claims all holding is an
    intersection-union test, already at level alpha without correction. Comparisons without a test keep
    their verdict.
    """
    check_choice("correction", method, CORRECTIONS)
    idx = [i for i, c in enumerate(comparisons) if c.p_decision is not None]
    ps = np.array([comparisons[i].p_decision for i in idx], dtype=float)
    m = len(ps)
    if method == "bonferroni":
        adj = np.minimum(1.0, ps * m)
    elif method == "holm":
        order = np.argsort(ps, kind="stable")
        stepped = np.maximum.accumulate(np.minimum(1.0, ps[order] * (m - np.arange(m))))
        adj = np.empty(m)
        adj[order] = stepped
    else:
        adj = ps
    out = list(comparisons)
    for i, pa in zip(idx, adj):
        c = replace(comparisons[i], p_adjusted=float(pa), correction=method)
        out[i] = _decide(c, float(pa))
    return out


# ------------------------------------------------------------------------------- many samples at once

VERDICT_CODES = VERDICTS  # a verdict's code is its index


def array_stats(a: np.ndarray, b: np.ndarray, design: str = "welch") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """diff, standard error and degrees of freedom for many samples at once (seeds along the last axis)."""
    if design == "paired":
        d = b - a
        n = d.shape[-1]
        return d.mean(-1), d.std(-1, ddof=1) / math.sqrt(n), np.full(d.shape[:-1], float(n - 1))
    n_a, n_b = a.shape[-1], b.shape[-1]
    va, vb = a.var(-1, ddof=1) / n_a, b.var(-1, ddof=1) / n_b
    se2 = va + vb
    with np.errstate(invalid="ignore", divide="ignore"):
        df = se2**2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return b.mean(-1) - a.mean(-1), np.sqrt(se2), df


def array_p(diff: np.ndarray, se: np.ndarray, df: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided t-test p-values and TOST p-values (1 when delta is 0) for many samples at once."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2.0 * _sp.stdtr(df, -np.abs(diff / se))
        if delta > 0:
            p_eq = np.maximum(_sp.stdtr(df, -(diff + delta) / se), _sp.stdtr(df, (diff - delta) / se))
        else:
            p_eq = np.ones_like(p)
    return p, p_eq


def array_verdicts(diff: np.ndarray, p: np.ndarray, p_eq: np.ndarray, delta: float, goal: str,
                   level: float, eq_level: float) -> np.ndarray:
    """Indices into VERDICT_CODES, by the same rule as `welch`: a difference when p < level and |diff| > delta,
    equivalence when the TOST p-value < eq_level, inconclusive otherwise (and when p is undefined)."""
    significant = (p < level) & (np.abs(diff) > delta)
    worse = diff < 0 if goal == "max" else diff > 0
    codes = np.full(diff.shape, 3, dtype=np.int8)
    codes[(p_eq < eq_level) & ~significant] = 2
    codes[significant & worse] = 0
    codes[significant & ~worse] = 1
    return codes
