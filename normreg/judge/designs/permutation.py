"""The permutation test: no assumption of normality, for skewed or bimodal metrics (RL returns, collapsed seeds).

The difference of means is compared with its distribution over every way of splitting the pooled values into
groups of the two sizes (252 splits for 5 and 5), or over 9,999 random splits when there are more than 20,000.
P-values follow scipy's `permutation_test`: one-sided tail shares, two-sided twice the smaller tail. The test
against the margin shifts the candidate by ±min_effect and takes twice the smaller of the one-sided tails beyond
it (as `stats.margin_p` does with t); equivalence uses the same rule as TOST: shifting the candidate by
∓min_effect, both one-sided tests must reject. No seed-to-seed variance on either side makes the difference
exact, as for Welch's test. Intervals
come from inverting the one-sided tests over shifts, at the level the verdict used (after a correction or a
staged boundary). Power, `plan`'s seeds and the advice on seeds are found by simulation: a smoothed bootstrap of
each side's own values, the candidate shifted by the true difference assumed, every draw judged by this test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from normreg.judge.designs.base import StatTest, register
from normreg.judge.designs.welch import WelchPower
from normreg.judge.stats import Comparison, PowerModel, _decide, _describe, bisect, design_effect, smoothed_draws
from normreg.suite.model import MetricSpec

EXACT_LIMIT = 20000  # all splits up to this many, else Monte Carlo
MC_SPLITS = 9999
SIM_SPLITS = 199  # per simulated sample in the array form
POWER_REPS = 400


@lru_cache(maxsize=64)
def splits(n_a: int, n_b: int, limit: int = EXACT_LIMIT, random: int = MC_SPLITS) -> tuple[np.ndarray, bool]:
    """(splits, exact): a (splits, n_a + n_b) 0/1 matrix marking the candidate's group in each split."""
    n = n_a + n_b
    if math.comb(n, n_b) <= limit:
        idx = np.array(list(combinations(range(n), n_b)), dtype=np.intp)
        mask = np.zeros((len(idx), n))
        np.put_along_axis(mask, idx, 1.0, axis=1)
        return mask, True
    rng = np.random.default_rng(n_a * 1000 + n_b)
    order = np.argsort(rng.random((random, n)), axis=1)
    mask = (order < n_b).astype(float)
    return mask, False


def _diffs(x: np.ndarray, mask: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    """Difference of means (candidate minus reference) of pooled values `x` (..., N) under every split."""
    s_b = x @ mask.T
    return s_b / n_b - (x.sum(-1, keepdims=True) - s_b) / n_a


def _tails(d: np.ndarray, obs: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shares of the permutation distribution at or above, and at or below, the observed difference."""
    tol = 1e-12 * np.maximum(1.0, np.abs(obs))
    up, down = (d >= obs - tol).sum(-1), (d <= obs + tol).sum(-1)
    k = d.shape[-1]
    if exact:
        return up / k, down / k
    return (up + 1) / (k + 1), (down + 1) / (k + 1)


def _p_values(xa: np.ndarray, xb: np.ndarray, delta: float, mask: np.ndarray,
              exact: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(diff, two-sided p of no difference, p of the test against the margin ±delta, TOST p) per sample."""
    n_a, n_b = xa.shape[-1], xb.shape[-1]
    diff = xb.mean(-1) - xa.mean(-1)
    obs = diff[..., None]
    d = _diffs(np.concatenate([xa, xb], -1), mask, n_a, n_b)
    up, down = _tails(d, obs, exact)
    p = np.minimum(1.0, 2.0 * np.minimum(up, down))
    if delta > 0:
        # Shifting the candidate's values by s moves each split's difference by s times the split's share of
        # them in the candidate's group less their share in the reference's: one product serves every shift.
        in_b = mask[:, n_a:].sum(-1)
        w = in_b / n_b - (n_b - in_b) / n_a
        low, below = _tails(d + delta * w, obs + delta, exact)  # the candidate shifted by +delta
        above, high = _tails(d - delta * w, obs - delta, exact)  # and by -delta
        p_margin = np.minimum(1.0, 2.0 * np.minimum(below, above))
        p_eq = np.maximum(low, high)
    else:
        p_margin, p_eq = p, np.ones_like(p)
    return diff, p, p_margin, p_eq


def _bound(tail: Callable[[float], float], a: float, start: float, step: float, upward: bool) -> float:
    """The shift where a one-sided permutation p-value crosses `a`, searched from the estimate outwards; infinite
    when no shift reaches it (with 252 splits, one-sided levels below 1/252 reject nothing)."""
    far = start + (step if upward else -step)
    for _ in range(60):
        if tail(far) <= a:
            break
        far = start + 2.0 * (far - start)
    else:
        return math.inf if upward else -math.inf
    return bisect(lambda s: tail(s) - a - 1e-15, min(start, far), max(start, far), xtol=step * 1e-6)


@register("permutation")
class Permutation(StatTest):
    summary = "permutation test: exact over all splits when few, Monte Carlo beyond; no normality assumed"
    # Each look's p-value is a permutation test's, valid by itself whatever the distribution; against the nominal
    # levels it keeps the false alarms of staged seeding at about alpha (see the README), so nothing is lowered:
    # `null_looks` stays None.
    staged_power_reps = 500  # 199 splits a draw: 40 times a t-test's time; the staged power's error is 0.022

    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        base, done = _describe(a, b, spec, alpha, a_name, b_name, self.name)
        if done is not None:
            return done
        xa = np.array([float(a[s]) for s in sorted(a)])
        xb = np.array([float(b[s]) for s in sorted(b)])
        mask, exact = splits(len(xa), len(xb))
        delta = spec.min_effect
        _, p, p_margin, p_eq = _p_values(xa[None], xb[None], delta, mask, exact)
        how = f"exact over all {len(mask)} splits" if exact else f"{len(mask)} random splits"
        c = Comparison(**{**base, "p_value": float(p[0]), "p_margin": float(p_margin[0]),
                          "p_equivalence": float(p_eq[0]) if delta > 0 else None},
                       verdict="", reason="", power=self.power(xa, xb, spec, alpha) if delta > 0 else None,
                       method=f"permutation test, {how}", retest=_Values(self, xa, xb, mask, exact))
        return _decide(c)

    def power_model(self, sd_a: float, sd_b: float, n_a: float, n_b: float,
                    sd_diff: float | None = None) -> PowerModel:
        """Welch's t-based model: the guide to seeds without a pilot to simulate (close on normal values)."""
        return WelchPower(sd_a, sd_b, n_a, n_b)

    def smallest_p(self, n_a: int, n_b: int, *, two_sided: bool = True) -> float:
        """One split in all of them (1 in 56 for 3 and 5 seeds), or one in the random splits plus one; twice that
        two-sided: the p-values `compare` gives can go no lower."""
        count = math.comb(n_a + n_b, n_b)
        one = 1.0 / count if count <= EXACT_LIMIT else 1.0 / (MC_SPLITS + 1)
        return min(1.0, 2.0 * one) if two_sided else one

    def array_test(self, a: np.ndarray, b: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mask, exact = splits(a.shape[-1], b.shape[-1], limit=SIM_SPLITS, random=SIM_SPLITS)
        out = [_p_values(a[i:i + 1000], b[i:i + 1000], delta, mask, exact) for i in range(0, len(a), 1000)]
        diff, _, p_margin, p_eq = (np.concatenate(parts) for parts in zip(*out))
        return diff, p_margin, p_eq

    def seeds_for(self, effect: float, sd_a: float, sd_b: float, alpha: float, target: float, *,
                  sd_diff: float | None = None, goal: str = "difference", delta: float = 0.0,
                  limit: int = 1000, pilot: tuple[np.ndarray, np.ndarray] | None = None, start: int = 2) -> int | None:
        """Seeds per side for probability `target` of the verdict (a difference beyond `delta` in the direction of a
        true difference `effect`, or equivalence within ±`delta`), by simulating this test from the pilot's own
        values (without a pilot of two values a side: the t-based answer, a close guide on normal values)."""
        if pilot is None or len(pilot[0]) < 2 or len(pilot[1]) < 2:
            return super().seeds_for(effect, sd_a, sd_b, alpha, target, sd_diff=sd_diff, goal=goal, delta=delta,
                                     limit=limit, start=start)
        if goal != "equivalence" and abs(effect) <= delta:
            return None
        cap = min(limit, 256)

        def reached(n: int) -> bool:
            return self.chance(pilot[0], pilot[1], alpha, n, effect, delta, goal) >= target

        lo = hi = max(start, 2)
        if reached(lo):
            return lo
        while not reached(hi):
            if hi >= cap:
                return None
            lo, hi = hi, min(2 * hi, cap)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if reached(mid) else (mid, hi)
        return hi

    def power(self, xa: np.ndarray, xb: np.ndarray, spec: MetricSpec, alpha: float, n: int | None = None,
              effect: float | None = None, reps: int = POWER_REPS) -> float:
        """Chance of `regressed` for a true regression of `effect` (default twice min_effect) at `n` seeds per
        side (default: as observed), by simulation from a smoothed bootstrap of each side's values."""
        effect = design_effect(spec.min_effect) if effect is None else abs(effect)
        return self.chance(xa, xb, alpha, n, -effect if spec.goal == "max" else effect, spec.min_effect,
                           "difference", reps)

    def chance(self, xa: np.ndarray, xb: np.ndarray, alpha: float, n: int | None, effect: float, delta: float,
               goal: str, reps: int = POWER_REPS) -> float:
        """Chance of the verdict at `n` seeds per side (default: as observed) when the true difference is `effect`:
        a difference beyond `delta` on its side (goal "difference") or equivalence within ±`delta`. Draws come
        from a smoothed bootstrap of each side's values, the candidate's centred on the reference's mean plus
        `effect`; every draw is judged by this test (the same random numbers for every `n` of one pilot)."""
        rng = np.random.default_rng(len(xa) * 7919 + len(xb))
        da = smoothed_draws(xa, (reps, n or len(xa)), rng)
        db = smoothed_draws(xb - xb.mean() + xa.mean(), (reps, n or len(xb)), rng) + effect
        diff, p, p_eq = self.array_test(da, db, delta)
        if goal == "equivalence":
            return float(np.mean(p_eq < alpha))
        beyond = diff < -delta if effect < 0 else diff > delta
        return float(np.mean((p < alpha) & beyond))


@dataclass(frozen=True, eq=False)
class _Values:
    """A permutation comparison's values: its interval and seed advice at whatever level the verdict ends up using
    (`stats.Retest`), after a correction or a staged boundary."""

    test: Permutation
    xa: np.ndarray
    xb: np.ndarray
    mask: np.ndarray
    exact: bool

    def interval(self, a: float) -> tuple[float, float]:
        """Inverts the one-sided permutation tests over shifts of the candidate: the shifts neither rejects at `a`."""
        diff = float(self.xb.mean() - self.xa.mean())

        def tail(shift: float, upper: bool) -> float:
            up, down = _tails(_diffs(np.concatenate([self.xa, self.xb - shift])[None], self.mask, len(self.xa),
                                     len(self.xb)), np.array([[diff - shift]]), self.exact)
            return float(up[0] if upper else down[0])

        step = float(np.ptp(np.concatenate([self.xa, self.xb]))) or 1.0
        low = _bound(lambda s: tail(s, True), a, diff, step, upward=False)
        high = _bound(lambda s: tail(s, False), a, diff, step, upward=True)
        return low, high

    def seeds_for(self, effect: float, alpha: float, goal: str, delta: float, start: int) -> int | None:
        return self.test.seeds_for(effect, float(self.xa.std(ddof=1)), float(self.xb.std(ddof=1)), alpha, 0.8,
                                   goal=goal, delta=delta, pilot=(self.xa, self.xb), start=start)
