"""Statistics as pure functions: two samples of per-seed values in, a frozen `Comparison` out.

What every statistical test (a suite's `design`, one file each in `judge/designs/`) shares lives here: the verdict
rule, intervals, TOST and the test against the margin, power models' common part, seed advice and Holm's correction.
Each test computes its statistic, standard error and p-values; the verdict rule is the same for all. A test tests
the difference against the margin: `regressed` (or `improved`) needs the interval the verdict uses (two-sided, at 1
- alpha after any correction or staged boundary) to lie wholly beyond -min_effect (or +min_effect). That is a
minimum-effect test, one-sided at alpha / 2 on each side, so a failing verdict's error is at most alpha for every
true difference within ±min_effect, however many seeds run; with min_effect 0 it is the plain two-sided test. A
difference that is significant but not shown beyond the margin is `inconclusive`, and says so. Two one-sided tests
(TOST) decide whether the difference is within `min_effect`. Every comparison also carries the chance of `regressed`
for a true difference of twice `min_effect` (`power`), the smallest true difference reported with 80% chance
(`mde`), and, when inconclusive, about how many seeds per side would decide it. `adjust` applies Holm's (or
Bonferroni's) correction across a family of comparisons. Not enough data is a stated verdict with its reason, never
an exception. The array functions at the end give the same verdicts for many simulated samples at once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from scipy import special as _sp  # scipy.special only: scipy.stats would double `compare`'s start-up time

from normreg.choices import CORRECTIONS, DEFAULT_DESIGN, VERDICTS, check_choice
from normreg.suite.model import MetricSpec


class Retest(Protocol):
    """What the test that made a comparison keeps of its values (`StatTest.compare` attaches it), so that what
    depends on the level the verdict uses can be found again when a correction or a staged boundary changes that
    level: the interval (for a test without a standard error, such as the permutation test) and seed advice."""

    def interval(self, a: float) -> tuple[float, float]:
        """The shifts of the candidate that neither one-sided test at level `a` rejects (±inf: none is)."""

    def seeds_for(self, effect: float, alpha: float, goal: str, delta: float, start: int) -> int | None:
        """Seeds per side for an 80% chance of the verdict (see `seeds_for`), found with this test."""


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
    p_value: float | None  # two-sided p of "no difference"
    p_equivalence: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str
    reason: str
    design: str = DEFAULT_DESIGN  # the statistical test that made it (`judge.designs`)
    power: float | None = None  # chance of `regressed` for a true regression of twice min_effect (staged: of the
    # staged procedure, over its planned looks)
    mde: float | None = None  # smallest true difference reported `regressed` with 80% chance (staged: likewise)
    power_unpaired: float | None = None  # paired design: the power Welch's test would have had on these data
    seeds_needed: int | None = None  # inconclusive: seeds per side for an 80% chance of a decisive verdict
    seeds_needed_for: str | None = None  # the verdict those seeds would most likely reach
    p_sequential: float | None = None  # staged seeding: repeated p-value of the margin test, over all looks
    p_equivalence_sequential: float | None = None  # staged seeding: repeated p-value of TOST
    stages: tuple[int, ...] = ()  # staged seeding: seeds per side at each look taken
    spending: str | None = None  # staged seeding: the error-spending function
    p_adjusted: float | None = None  # the margin test's p-value after the correction for multiple comparisons
    correction: str = "none"
    sd_diff: float | None = None  # paired design: spread of the per-seed differences
    se: float | None = None  # standard error of `diff` (None where there is no test)
    ci_level: float | None = None  # level of [ci_low, ci_high]: the interval the verdict used (see `_interval`)
    p_equivalence_adjusted: float | None = None  # the TOST p-value after the correction across the family
    stopped: str | None = None  # staged seeding: why no more seeds were run for it although it is undecided
    method: str = ""  # how the test was made, when the design needs saying (e.g. "exact over all 252 splits")
    seed_correlation: float | None = None  # per-seed correlation of the sides over shared seeds (see that function)
    shared_seeds: int = 0  # seeds both sides hold
    # two-sided p of the test against the margin (H0: |true difference| <= min_effect; each side one-sided at
    # half the level); p_value itself when min_effect is 0. `regressed` and `improved` rest on it.
    p_margin: float | None = None
    # inconclusive: "worse" or "better" when the difference is significant (the interval clears 0) but is not
    # shown beyond min_effect
    short_of_margin: str | None = None
    # the test's values: the interval (tests without a standard error) and seed advice at any level (not stored
    # in reports)
    retest: Retest | None = field(default=None, repr=False, compare=False)

    @property
    def p_decision(self) -> float | None:
        """The unadjusted p-value a failing verdict rests on: sequential when seeds were staged, else the margin
        test's."""
        return self.p_sequential if self.stages else self.p_margin_or_plain

    @property
    def p_margin_or_plain(self) -> float | None:
        """The margin test's p-value (records from before the margin test have only the plain p-value)."""
        return self.p_margin if self.p_margin is not None else self.p_value

    @property
    def p_equivalence_decision(self) -> float | None:
        return self.p_equivalence_sequential if self.stages else self.p_equivalence

    @property
    def p_used(self) -> float | None:
        """The margin test's p-value the verdict rests on, after correction when one was applied."""
        return self.p_adjusted if self.p_adjusted is not None else self.p_decision

    @property
    def p_equivalence_used(self) -> float | None:
        return self.p_equivalence_adjusted if self.p_equivalence_adjusted is not None else \
            self.p_equivalence_decision

    @property
    def tested(self) -> bool:
        """False where no test was made: too few values, or an exact (or identical) comparison."""
        return self.p_value is not None


def as_record(c: Comparison) -> dict:
    """The comparison's fields as reports store them: all but `retest`, which holds the test's values."""
    record = asdict(replace(c, retest=None))
    del record["retest"]
    return record


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


def seed_correlation(a: Mapping[int, float], b: Mapping[int, float]) -> float | None:
    """Pearson correlation of the two sides' values over the seeds they share: runs that share a seed share
    initial weights and data order, so their values may move together (or against each other). None with fewer
    than three shared seeds (two points always correlate fully) or no spread on a side."""
    common = sorted(set(a) & set(b))
    if len(common) < 3:
        return None
    x = np.array([float(a[s]) for s in common])
    y = np.array([float(b[s]) for s in common])
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    if den == 0 or _flat(math.sqrt(float(np.dot(x, x)) / len(x)), list(a.values())) or \
            _flat(math.sqrt(float(np.dot(y, y)) / len(y)), list(b.values())):
        return None
    return max(-1.0, min(1.0, float(np.dot(x, y)) / den))


CORRELATION_LEVEL = 0.05  # two-sided level at which a per-seed correlation is taken as clearly not zero


def clear_correlation(r: float | None, n: int, level: float = CORRELATION_LEVEL) -> tuple[int, float]:
    """(+1, p) or (-1, p) when the per-seed correlation `r` of `n` shared seeds is clearly positive or negative
    (two-sided p < level), else (0, p); (0, 1) without a correlation."""
    if r is None:
        return 0, 1.0
    p_pos, p_neg = correlation_p(r, n)
    p = min(1.0, 2.0 * min(p_pos, p_neg))
    return (0 if p >= level else (1 if r > 0 else -1)), p


def correlation_p(r: float, n: int) -> tuple[float, float]:
    """One-sided p-values of a correlation `r` of `n` pairs against zero (positive, negative): the t-test of
    r with n - 2 degrees of freedom (as scipy.stats.pearsonr's). (1, 1) with fewer than three pairs."""
    if n < 3:
        return 1.0, 1.0
    if abs(r) >= 1.0:
        return (0.0, 1.0) if r > 0 else (1.0, 0.0)
    t = r * math.sqrt((n - 2) / (1.0 - r * r))
    return float(_sp.stdtr(n - 2, -t)), float(_sp.stdtr(n - 2, t))


def t_half_width(sd: float | None, n: int, alpha: float) -> float | None:
    """Half-width of the (1 - alpha) t interval of a mean of n values; None with fewer than two."""
    if sd is None or n < 2:
        return None
    return float(_sp.stdtrit(n - 1, 1.0 - alpha / 2.0)) * sd / math.sqrt(n)



# ---------------------------------------------------------------------------------------------- power


def satterthwaite_df(variances: Sequence[Any], dfs: Sequence[Any]) -> Any:
    """Welch–Satterthwaite degrees of freedom of a sum of independent variance estimates, `variances[i]` on
    `dfs[i]` degrees of freedom: (sum v)^2 / sum(v^2 / df). Each a number, or numpy arrays for many samples at once
    (element-wise; where every variance is 0 the result is nan, left to the caller). The one home of the formula:
    Welch's test, its power and its simulations, the planner's spread uncertainty and the nights' t-test."""
    total, den = variances[0], variances[0] ** 2 / dfs[0]
    for v, df in zip(variances[1:], dfs[1:]):
        total, den = total + v, den + v**2 / df
    return total**2 / den


def welch_se_df(sd_a: float, sd_b: float, n_a: float, n_b: float) -> tuple[float, float]:
    """Standard error of the difference of means and Welch–Satterthwaite degrees of freedom (n_a + n_b - 2 when
    both spreads are 0)."""
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    shown = [(v, n - 1) for v, n in ((va, n_a), (vb, n_b)) if v**2]  # a spread of 0 adds nothing
    df = satterthwaite_df(*zip(*shown)) if shown else float(n_a + n_b - 2)
    return math.sqrt(va + vb), df


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


_K = 64
_Q = (np.arange(_K) + 0.5) / _K  # quantile midpoints: a simple quadrature over the sampling distribution


@lru_cache(maxsize=256)
def _chi2_nodes(df: float) -> np.ndarray:
    """chi-square(df) / df at the quadrature nodes."""
    return _sp.chdtri(df, 1.0 - _Q) / df


_U = np.linspace(0.0, 1.0, 4097)  # 1 / df from infinity down to 1: t quantiles are smooth in it


@lru_cache(maxsize=64)
def _t_quantile_table(level: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        df = np.where(_U > 0, 1.0 / _U, np.inf)
    return np.where(np.isinf(df), _sp.ndtri(level), _sp.stdtrit(np.minimum(df, 1e300), level))


def _t_quantile(df: np.ndarray, level: float) -> np.ndarray:
    """The t quantile at `level` for many degrees of freedom (>= 1) at once, interpolated in 1/df: a power
    search evaluates thousands of quadrature nodes per step, and exact quantiles would dominate its time."""
    u = 1.0 / np.maximum(df, 1.0)
    return np.interp(u, _U, _t_quantile_table(level))


@dataclass(frozen=True)
class PowerModel(ABC):
    """What the power of a t-based test depends on: the true spreads and the counts (seeds per side), and how the
    test estimates its standard error (`draws`, which each design's model defines: `StatTest.power_model`).

    Power integrates over the sampling distribution of the estimated standard error and its degrees of freedom at
    quadrature nodes, which small samples need: at 3 seeds per side the plug-in noncentral t overstates Welch's
    power by up to 0.1. The rest (power, the verdict's power, TOST's, the MDE) is the same for every test.
    """

    sd_a: float
    sd_b: float
    n_a: float
    n_b: float

    @abstractmethod
    def draws(self) -> tuple[float, np.ndarray, np.ndarray]:
        """True standard error, and estimated standard errors with their degrees of freedom at quadrature nodes."""

    @property
    def se(self) -> float:
        """The true standard error of the difference."""
        return self.draws()[0]

    def _crit(self, level: float) -> tuple[float, np.ndarray, np.ndarray]:
        """(se, estimated se, critical t at `level`) at the nodes, memoised: a power search reuses them."""
        memo = self.__dict__.setdefault("_memo", {})  # frozen, so write the instance dict directly
        if level not in memo:
            se, s, df = self.draws()
            memo[level] = (se, s, _t_quantile(df, level))
        return memo[level]

    def power(self, effect: float, alpha: float) -> float:
        """Chance the two-sided test at `alpha` finds a true difference `effect` significant."""
        se, s, crit = self._crit(1.0 - alpha / 2.0)
        if se <= 0:
            return 1.0 if effect else alpha
        e = abs(effect)
        return float(np.mean(_sp.ndtr((e - crit * s) / se) + _sp.ndtr((-e - crit * s) / se)))

    def verdict_power(self, effect: float, delta: float, alpha: float) -> float:
        """Chance the verdict is a difference in the direction of a true difference `effect` (`regressed` for a
        true regression): the rule needs the (1 - alpha) interval beyond `delta` on that side, so given the
        estimated standard error s the estimate must pass delta + c s. Within ±delta it is at most alpha / 2."""
        se, s, crit = self._crit(1.0 - alpha / 2.0)
        e = abs(effect)
        bar = delta + crit * s
        if se <= 0:
            return 1.0 if e > delta else 0.0
        return float(np.mean(_sp.ndtr((e - bar) / se)))

    def tost_power(self, effect: float, delta: float, alpha: float) -> float:
        """Chance TOST at `alpha` shows equivalence within ±`delta` when the true difference is `effect`: given
        the estimated standard error s it passes when the estimate lies in (-delta + c s, delta - c s)."""
        se, s, crit = self._crit(1.0 - alpha)
        if delta <= 0 or se <= 0:
            return 0.0
        hi, lo = (delta - crit * s - effect) / se, (-delta + crit * s - effect) / se
        return float(np.mean(np.clip(_sp.ndtr(hi) - _sp.ndtr(lo), 0.0, 1.0)))

    def mde(self, alpha: float, target: float = 0.8, delta: float = 0.0) -> float:
        """The smallest true difference the verdict reports (its interval beyond `delta`) with probability
        `target`: always above `delta`, since a true difference within it is reported at most alpha / 2 of the
        time."""
        se = self._crit(1.0 - alpha / 2.0)[0]
        if se <= 0:
            return delta
        hi = delta + se * 4.0
        while self.verdict_power(hi, delta, alpha) < target:
            hi = delta + 2.0 * (hi - delta)
        return bisect(lambda d: self.verdict_power(d, delta, alpha) - target, delta, hi, xtol=se * 1e-6)


DESIGN_EFFECT = 2.0  # power, `plan` and `calibrate` are for a true difference of twice min_effect


def design_effect(min_effect: float) -> float:
    """The true difference that power is quoted for. A true difference of exactly min_effect is reported
    `regressed` at most alpha / 2 of the time however many seeds run (the verdict needs it shown beyond
    min_effect), so the promise is made for twice min_effect, which enough seeds do find nearly every time."""
    return DESIGN_EFFECT * min_effect


def seeds_for(model: Callable[[int], PowerModel], effect: float, alpha: float, target: float = 0.8, *,
              goal: str = "difference", delta: float = 0.0, start: int = 2, limit: int = 1000) -> int | None:
    """Seeds per side (pairs, for a paired test) for probability `target` of the verdict, `model(n)` being the
    test's power model at n seeds per side (`StatTest.seeds_for` supplies it): a difference shown beyond `delta`
    in the direction of a true difference `effect` (goal "difference"), or equivalence within ±`delta` (goal
    "equivalence"); None when more than `limit` would be needed (or no number would do: a true difference within
    `delta` is reported as one at most alpha / 2 of the time)."""
    if goal != "equivalence" and abs(effect) <= delta:
        return None

    def achieved(n: int) -> float:
        d = model(n)
        if goal == "equivalence":
            return d.tost_power(effect, delta, alpha)
        return d.verdict_power(effect, delta, alpha)

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

ULPS = 16  # a spread (or a gap) within this many units in the last place of the values is rounding, not noise
_EPS = float(np.finfo(float).eps)


def _flat(spread: float, values: Sequence[float]) -> bool:
    """True when `spread` is within a few ulps of the values' magnitude: rounding, not seed-to-seed variance."""
    scale = max((abs(x) for x in values), default=0.0)
    return spread <= ULPS * _EPS * scale


def same_values(a: Mapping[int, float], b: Mapping[int, float]) -> bool:
    """Both sides hold the same seeds with equal values (to a few ulps): deterministic reruns of one thing."""
    if not a or set(a) != set(b):
        return False
    return all(abs(a[s] - b[s]) <= ULPS * _EPS * max(abs(a[s]), abs(b[s])) for s in a)


def margin_p(diff: float, se: float, df: float, delta: float) -> float:
    """Two-sided p of the minimum-effect test: twice the smaller of the one-sided p-values of "the difference is
    at least -delta" and "at most +delta", capped at 1 (the plain two-sided p when delta is 0). Below alpha
    exactly when the (1 - alpha) interval lies beyond -delta or beyond +delta."""
    below = float(_sp.stdtr(df, (diff + delta) / se))   # H0: diff >= -delta, against a difference beyond it
    above = float(_sp.stdtr(df, -(diff - delta) / se))  # H0: diff <= +delta
    return min(1.0, 2.0 * min(below, above))


def _test(diff: float, se: float, df: float, delta: float) -> dict[str, float | None]:
    t = diff / se
    p = float(2.0 * _sp.stdtr(df, -abs(t)))
    if delta > 0:
        p_low = float(_sp.stdtr(df, -(diff + delta) / se))   # H0: diff <= -delta
        p_high = float(_sp.stdtr(df, (diff - delta) / se))   # H0: diff >= +delta
        p_eq: float | None = max(p_low, p_high)
    else:
        p_eq = None
    return dict(t=t, df=df, p_value=p, p_equivalence=p_eq, se=se,
                p_margin=margin_p(diff, se, df, delta) if delta > 0 else p)


def _level(alpha: float, raw: float | None, used: float | None) -> float:
    """The per-comparison level at which the raw p-value was effectively tested: alpha when nothing adjusted it,
    alpha * raw / used after a correction or sequential boundary (so raw < level exactly when used < alpha)."""
    if raw is None or used is None or used <= 0 or raw <= 0 or used <= raw:
        return alpha
    return alpha * raw / used


def _interval(c: Comparison, equivalence: bool) -> dict[str, float | None]:
    """The interval the verdict used. Difference verdicts: the two-sided interval at 1 - a, which lies beyond
    ±min_effect exactly when the (adjusted, sequential) margin p is below alpha. Equivalence: the 1 - 2a
    interval of TOST, which lies inside ±min_effect exactly when the (adjusted) TOST p is below alpha. A test
    without a standard error inverts its one-sided tests at that level (`Comparison.retest`)."""
    if c.diff is None or (c.retest is None and (c.se is None or c.df is None)):
        return {}
    if equivalence:
        a = _level(c.alpha, c.p_equivalence, c.p_equivalence_used)
        level = 1.0 - 2.0 * a
    else:
        a = _level(c.alpha, c.p_margin_or_plain, c.p_used) / 2.0
        level = 1.0 - 2.0 * a
    if c.retest is not None:
        low, high = c.retest.interval(a)
        return dict(ci_low=low, ci_high=high, ci_level=level)
    assert c.se is not None and c.df is not None
    half = float(_sp.stdtrit(c.df, 1.0 - a)) * c.se
    return dict(ci_low=c.diff - half, ci_high=c.diff + half, ci_level=level)


def _decide(c: Comparison) -> Comparison:
    """Set verdict, reason, interval and (when inconclusive) seeds_needed from the p-values the comparison uses
    (adjusted, sequential or plain).

    `regressed` / `improved`: the margin test's p (as used) below alpha, i.e. the interval beyond ∓min_effect;
    `equivalent`: the TOST p below alpha; else `inconclusive`, which names a difference that is significant at
    the verdict's level but not shown beyond min_effect (`short_of_margin`)."""
    if c.diff is None or c.p_value is None:
        return c
    diff, delta, alpha = c.diff, c.min_effect, c.alpha
    p, p_eq = c.p_used, c.p_equivalence_used
    assert p is not None
    label = "adjusted p" if c.p_adjusted is not None and c.correction != "none" else \
        ("sequential p" if c.stages else "p")
    if delta > 0:  # the p-value of the test against the margin, not of "no difference"
        label = label[:-1] + "margin p"
    looks = f" after {len(c.stages)} stage{'s' * (len(c.stages) > 1)} ({c.stages[-1]} seeds)" if c.stages else ""
    needed: int | None = None
    needed_for: str | None = None
    short: str | None = None
    worse = MetricSpec(c.metric, c.goal).worse(diff)  # type: ignore[arg-type]
    # the per-comparison level the margin test was held to: alpha, or lower after a correction or a boundary
    level = _level(alpha, c.p_margin_or_plain, p)
    if p < alpha and abs(diff) > delta:
        verdict = "regressed" if worse else "improved"
        if delta > 0:
            reason = (f"{c.b} is {'worse' if worse else 'better'} by {abs(diff):.4g}, shown beyond min_effect "
                      f"{delta:g} ({label}={p:.2g} < {alpha:g}){looks}")
        else:
            reason = (f"{c.b} is {'worse' if worse else 'better'} by {abs(diff):.4g} "
                      f"({label}={p:.2g} < {alpha:g}, beyond min_effect {delta:g}){looks}")
    elif p_eq is not None and p_eq < alpha:
        verdict = "equivalent"
        what = ("adjusted " if c.p_equivalence_adjusted is not None and c.correction != "none" else "") + \
            ("sequential TOST p" if c.stages else "TOST p")
        reason = f"difference {diff:+.4g} lies within ±{delta:g} ({what}={p_eq:.2g} < {alpha:g}){looks}"
    else:
        verdict = "inconclusive"
        significant = c.p_value < level and diff != 0
        if significant and abs(diff) > delta:
            short = "worse" if worse else "better"
            reason = (f"{short} by {abs(diff):.4g}, p={c.p_value:.2g}, but not shown beyond min_effect {delta:g} "
                      f"({label}={p:.2g}){looks}")
        elif significant or p < alpha:
            reason = (f"a real but small difference {diff:+.4g} (p={c.p_value:.2g}): within min_effect {delta:g}, "
                      f"yet not shown equivalent{looks}")
        else:
            what = f"TOST p={p_eq:.2g}" if p_eq is not None else "min_effect is 0, so equivalence cannot be shown"
            reason = f"neither a difference ({label}={p:.2g}) nor equivalence ({what}) is shown{looks}"
        needed, needed_for = _seeds_needed(c)
        if needed is not None:
            reason += (f"; about {needed} seeds per side would decide" if short else
                       f"; about {needed} seeds per side would likely (80%) show it {needed_for}")
    equivalence = verdict == "equivalent" or (verdict == "inconclusive" and 0 < delta and abs(diff) <= delta)
    if c.method:
        reason += f" [{c.method}]"
    return replace(c, verdict=verdict, reason=reason, seeds_needed=needed, seeds_needed_for=needed_for,
                   short_of_margin=short, **_interval(c, equivalence))


def _seeds_needed(c: Comparison) -> tuple[int | None, str | None]:
    """Seeds per side that would most likely decide an inconclusive comparison, taking the observed difference
    and spreads as the truth (a rough guide: with few seeds both are uncertain)."""
    retest = c.retest
    if c.diff is None or c.sd_a is None or c.sd_b is None or retest is None:
        return None, None
    diff = c.diff
    start = max(c.n_a, c.n_b)

    def find(goal: str, level: float) -> int | None:
        # the test's own answer: a t-test's power model, or a simulation of itself (the permutation test)
        return retest.seeds_for(diff, level, goal, c.min_effect, start)

    if abs(c.diff) > c.min_effect:
        worse = MetricSpec(c.metric, c.goal).worse(c.diff)  # type: ignore[arg-type]
        n = find("difference", _level(c.alpha, c.p_margin_or_plain, c.p_used))
        return n, ("regressed" if worse else "improved") if n else None
    if c.min_effect > 0:
        n = find("equivalence", _level(c.alpha, c.p_equivalence, c.p_equivalence_used))
        return n, "equivalent" if n else None
    return None, None


def _power_fields(d: PowerModel, delta: float, alpha: float) -> dict[str, float | None]:
    return dict(power=d.verdict_power(design_effect(delta), delta, alpha) if delta > 0 else None,
                mde=d.mde(alpha, delta=delta))


_NONE = dict(t=None, df=None, p_value=None, p_equivalence=None, ci_low=None, ci_high=None)


def _describe(a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, alpha: float, a_name: str,
              b_name: str, design: str, *, flat_sides_exact: bool = True) -> tuple[dict, Comparison | None]:
    """Counts, means and spreads; and the finished comparison when no test is needed or possible: identical
    values, fewer than two values on a side, or no seed-to-seed variance (then the difference is exact; not
    decided here with `flat_sides_exact` False, for a test whose per-seed differences decide instead)."""
    xa = [float(a[s]) for s in sorted(a)]
    xb = [float(b[s]) for s in sorted(b)]
    n_a, n_b = len(xa), len(xb)
    mean_a, sd_a = mean_sd(xa)
    mean_b, sd_b = mean_sd(xb)
    diff = mean_b - mean_a if mean_a is not None and mean_b is not None else None
    rel = diff / abs(mean_a) if diff is not None and mean_a else None
    base = dict(metric=spec.name, a=a_name, b=b_name, goal=spec.goal, min_effect=spec.min_effect, alpha=alpha,
                n_a=n_a, n_b=n_b, mean_a=mean_a, mean_b=mean_b, sd_a=sd_a, sd_b=sd_b, diff=diff, rel_diff=rel,
                design=design, seed_correlation=seed_correlation(a, b), shared_seeds=len(set(a) & set(b)), **_NONE)
    if same_values(a, b):
        return base, Comparison(**{**base, "diff": 0.0, "rel_diff": 0.0 if rel is not None else None},
                                verdict="identical",
                                reason=f"both sides hold the same {n_a} seed{'s' * (n_a != 1)} with the same values: "
                                       "nothing to test")
    bad = [f"{name} (n={n})" for name, n in ((a_name, n_a), (b_name, n_b)) if n < 2]
    if bad:
        return base, Comparison(**base, verdict="inconclusive",
                                reason=f"fewer than two values on {' and '.join(bad)}: no test is possible; "
                                       "run more seeds")
    assert sd_a is not None and sd_b is not None and diff is not None
    if flat_sides_exact and _flat(sd_a, xa) and _flat(sd_b, xb):
        return base, exact(base, spec, diff, xa + xb)
    return base, None


def exact(base: dict, spec: MetricSpec, diff: float, values: Sequence[float],
          what: str = "the difference") -> Comparison:
    """The verdict of a comparison without seed-to-seed variance: the difference is exact, so it decides alone.
    Beyond min_effect is regressed or improved; within it (or zero, to a few ulps) is equivalent. A difference
    within a few ulps of min_effect is at min_effect, so within it: 0.91 -> 0.90 at min_effect 0.01 computes as
    -0.010000000000000009, and float rounding must not decide the verdict."""
    if _flat(abs(diff), values):
        diff = 0.0
    c = {**base, "diff": diff, "ci_low": diff, "ci_high": diff, "ci_level": 1.0}
    delta = spec.min_effect
    if not _flat(abs(diff) - delta, [*values, delta]):
        worse = spec.worse(diff)
        verdict = "regressed" if worse else "improved"
        why = f"{c['b']} is {'worse' if worse else 'better'} by {abs(diff):.6g}, beyond min_effect {delta:g}"
    else:
        verdict = "equivalent"
        why = f"{what} {diff:+.6g} lies within ±{delta:g}"
    return Comparison(**c, verdict=verdict, reason=f"no seed-to-seed variance: the difference is exact ({why})")


# ------------------------------------------------------------------------------------------ corrections


def array_adjust(ps: np.ndarray, method: str = "holm") -> np.ndarray:
    """Holm- or Bonferroni-adjusted p-values of families along the last axis (many families at once)."""
    ps = np.asarray(ps, dtype=float)
    m = ps.shape[-1]
    if method == "bonferroni":
        return np.minimum(1.0, ps * m)
    if method == "holm":
        order = np.argsort(ps, axis=-1, kind="stable")
        stepped = np.maximum.accumulate(np.minimum(1.0, np.take_along_axis(ps, order, -1) * (m - np.arange(m))),
                                        axis=-1)
        adj = np.empty_like(ps)
        np.put_along_axis(adj, order, stepped, -1)
        return adj
    return ps


def adjust(comparisons: Sequence[Comparison], method: str = "holm") -> list[Comparison]:
    """Adjust the p-values of one family of comparisons and re-derive their verdicts.

    Holm's step-down (the default) and Bonferroni keep the chance of any false alarm in the family at alpha.
    Equivalence is adjusted the same way, per metric across the family: verdicts (and `expect`) act on each
    comparison alone, so each `equivalent` must hold with the family's error rate, not only the joint claim
    "all are equivalent". Comparisons without a test (too few values, an exact difference, identical values)
    keep their verdict and do not count in the family.
    """
    check_choice("correction", method, CORRECTIONS)
    out = list(comparisons)
    idx = [i for i, c in enumerate(comparisons) if c.tested and c.p_decision is not None]
    if not idx:
        return out
    adj = array_adjust(np.array([comparisons[i].p_decision for i in idx], dtype=float), method)
    eq_idx = [i for i in idx if comparisons[i].p_equivalence_decision is not None]
    eq_adj = dict(zip(eq_idx, array_adjust(np.array([comparisons[i].p_equivalence_decision for i in eq_idx],
                                                 dtype=float), method))) if eq_idx else {}
    for i, pa in zip(idx, adj):
        pe = eq_adj.get(i)
        c = replace(comparisons[i], p_adjusted=float(pa), correction=method,
                    p_equivalence_adjusted=None if pe is None else float(pe))
        out[i] = _decide(c)
    return out


# ------------------------------------------------------------------------------- many samples at once

# A simulated verdict's code is its index here. Simulated values are continuous, so "identical" (no spread and
# equal values) is never reached and has no code.
VERDICT_CODES = tuple(v for v in VERDICTS if v != "identical")


def smoothed_draws(x: np.ndarray, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A smoothed, variance-corrected bootstrap of `x`: resampled values plus Gaussian kernel noise (Silverman's
    bandwidth), rescaled to the sample's mean and variance. A plain bootstrap's variance is only (n - 1)/n of
    the sample's, which overstates power, and with a handful of values it draws ties: spreads of zero."""
    n = len(x)
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    h = 1.06 * n ** -0.2
    dev = x[rng.integers(0, n, size)] - mean + h * sd * rng.standard_normal(size)
    return mean + dev / math.sqrt((n - 1) / n + h * h)


def cumulative_moments(x: np.ndarray) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """For (replicates, seeds) draws: a function giving the mean and sample variance of the first n seeds of every
    replicate, from running sums (one pass over the draws, O(replicates) per n: staged looks reuse it)."""
    s1, s2 = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)

    def moments(n: int) -> tuple[np.ndarray, np.ndarray]:
        mean = s1[:, n - 1] / n
        return mean, np.maximum(s2[:, n - 1] - n * mean * mean, 0.0) / (n - 1)

    return moments


def array_p(diff: np.ndarray, se: np.ndarray, df: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """P-values of the test against the margin (`margin_p`: the plain two-sided t-test's when delta is 0) and
    TOST p-values (1 when delta is 0) for many samples at once."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if delta > 0:
            p = np.minimum(1.0, 2.0 * np.minimum(_sp.stdtr(df, (diff + delta) / se),
                                                 _sp.stdtr(df, -(diff - delta) / se)))
            p_eq = np.maximum(_sp.stdtr(df, -(diff + delta) / se), _sp.stdtr(df, (diff - delta) / se))
        else:
            p = 2.0 * _sp.stdtr(df, -np.abs(diff / se))
            p_eq = np.ones_like(p)
    return p, p_eq


def array_verdicts(diff: np.ndarray, p: np.ndarray, p_eq: np.ndarray, delta: float, goal: str,
                   level: float, eq_level: float) -> np.ndarray:
    """Indices into VERDICT_CODES, by the same rule as `_decide`: a difference when the margin test's p (`array_p`)
    < level, equivalence when the TOST p-value < eq_level, inconclusive otherwise (and when p is undefined)."""
    significant = (p < level) & (np.abs(diff) > delta)
    worse = diff < 0 if goal == "max" else diff > 0
    codes = np.full(diff.shape, 3, dtype=np.int8)
    codes[(p_eq < eq_level) & ~significant] = 2
    codes[significant & worse] = 0
    codes[significant & ~worse] = 1
    return codes
