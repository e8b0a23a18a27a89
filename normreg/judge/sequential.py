"""Group-sequential seeding: run seeds in stages, stop a comparison as soon as its verdict is decisive.

Boundaries come from Lan–DeMets error spending: a spending function alpha(t) says how much of the false-alarm
rate may be used up by information fraction t (seeds so far / seeds at most), and each look's critical value is
found so that the chance, under no difference, of first crossing at that look is exactly what the spending
function allots to it. The crossing probabilities of the z-statistics at successive looks (correlated like a
Brownian motion observed at the information fractions) are computed by numerical integration on a grid
(Armitage, McPherson and Rowe). Each look then tests at the nominal level those boundaries imply, using the
t distribution with the look's own degrees of freedom. With few seeds that alone lets too many false alarms
through (t statistics are not z statistics), so the overall level is lowered by a factor found by simulation
for the planned looks (`t_correction`), from the test's own statistics (`StatTest.null_looks`). A test whose
p-values need no such correction (the permutation test's) is used against the nominal levels as they are. The
tests check the overall rate by simulation.

A difference verdict rests on the test against the margin (`stats.margin_p`) at every look, so the boundaries
hold its error at alpha for every true difference within ±min_effect, as for fixed seeds. A staged check's
`power` and `mde` are the staged procedure's own, over its planned looks (`staged_power`, by simulation), not
the fixed-sample figures of its last look.

Pure functions; nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

import numpy as np
from scipy import special as _sp

from normreg.choices import DEFAULT_DESIGN, SPENDING
from normreg.judge.designs import compare_values, get
from normreg.judge.stats import Comparison, _decide, array_verdicts, bisect, design_effect
from normreg.suite.model import MetricSpec

_SQRT2PI = math.sqrt(2.0 * math.pi)


def spent(kind: str, t: float, alpha: float) -> float:
    """The false-alarm rate a spending function allows by information fraction `t` (0 < t <= 1)."""
    t = min(max(t, 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if kind == "pocock":
        return alpha * math.log(1.0 + (math.e - 1.0) * t)
    if kind == "obrien-fleming":
        return float(2.0 * _sp.ndtr(_sp.ndtri(alpha / 2.0) / math.sqrt(t)))
    raise ValueError(f"expected spending one of {', '.join(SPENDING)}, got {kind!r}")


def boundaries(info: Sequence[float], alpha: float, kind: str = "pocock", two_sided: bool = True,
               grid: int = 401) -> tuple[float, ...]:
    """z critical values at looks with information fractions `info` (increasing, the last may be < 1).

    Two-sided: reject at look k when |Z_k| >= c_k; one-sided: when Z_k >= c_k. The chance of a first crossing
    at look k under the null is spent(t_k) - spent(t_{k-1}).
    """
    return _boundaries(tuple(round(float(t), 12) for t in info), float(alpha), kind, two_sided, grid)


@lru_cache(maxsize=4096)
def _boundaries(info: tuple[float, ...], alpha: float, kind: str, two_sided: bool,
                grid: int) -> tuple[float, ...]:
    if not info or any(b <= a for a, b in zip(info, info[1:])) or info[0] <= 0:
        raise ValueError(f"information fractions must increase from above 0, got {info}")
    out: list[float] = []
    # Density of the score S_k = Z_k * sqrt(t_k) on the continuation region, as values on a grid with weights.
    xs: np.ndarray | None = None
    dens: np.ndarray | None = None
    prev_t, prev_spent = 0.0, 0.0
    for t in info:
        target = spent(kind, t, alpha) - prev_spent
        dt = t - prev_t
        sd = math.sqrt(dt)

        def exit_prob(c: float, xs: np.ndarray | None = xs, dens: np.ndarray | None = dens, t: float = t,
                      sd: float = sd) -> float:
            b = c * math.sqrt(t)
            if xs is None:
                return float(_sp.ndtr(-b / sd) * (2 if two_sided else 1))
            upper = _sp.ndtr((xs - b) / sd)
            lower = _sp.ndtr((-b - xs) / sd) if two_sided else 0.0
            return float(np.sum(dens * (upper + lower)))

        if target <= 1e-15:
            c = 40.0
        else:
            total = exit_prob(0.0) if two_sided else exit_prob(-40.0)
            if target >= total:
                c = 0.0 if two_sided else -40.0
            else:
                low = -40.0 if not two_sided else 0.0
                c = bisect(lambda c, target=target: exit_prob(c) - target, low, 40.0, xtol=1e-9)
        out.append(c)
        # Propagate the density inside the continuation region to the next look.
        b = c * math.sqrt(t)
        lo = -b if two_sided else min(-8.0 * math.sqrt(t), b - 1.0)
        if b <= lo:
            break
        new_x = np.linspace(lo, b, grid)
        w = np.full(grid, (b - lo) / (grid - 1))
        w[0] = w[-1] = w[0] / 2
        if xs is None:
            f = np.exp(-0.5 * (new_x / sd) ** 2) / (sd * _SQRT2PI)
        else:
            f = (np.exp(-0.5 * ((new_x[:, None] - xs[None, :]) / sd) ** 2) / (sd * _SQRT2PI)) @ dens
        xs, dens = new_x, f * w
        prev_t, prev_spent = t, spent(kind, t, alpha)
    return tuple(out)


def nominal_levels(info: Sequence[float], alpha: float, kind: str = "pocock",
                   two_sided: bool = True) -> tuple[float, ...]:
    """The p-value each look must beat: the tail probability of its z boundary."""
    cs = boundaries(info, alpha, kind, two_sided)
    return tuple(float(_sp.ndtr(-c) * (2 if two_sided else 1)) for c in cs)


def repeated_p(p_values: Sequence[float], info: Sequence[float], kind: str = "pocock",
               two_sided: bool = True) -> float:
    """The smallest alpha at which some look's p-value would have crossed its boundary (a repeated p-value).

    It is valid whenever the comparison stops, so corrections such as Holm can be applied to it as to an
    ordinary p-value.
    """
    ps = [float(p) for p in p_values]
    if not ps:
        return 1.0
    if len(ps) == 1 and info[0] >= 1.0:
        return ps[0]

    def crosses(a: float) -> bool:
        levels = nominal_levels(info[: len(ps)], a, kind, two_sided)
        return any(p <= lv for p, lv in zip(ps, levels))

    # Nominal levels never exceed the overall level, so the answer is at least the smallest p-value.
    lo, hi = max(min(ps) * 0.999, 1e-12), min(0.999, max(min(ps), 1e-12) * 4 * len(ps))
    if not crosses(hi):
        lo, hi = hi, 0.999
        if not crosses(hi):
            return 1.0
    for _ in range(40):
        if hi / lo < 1.005:
            break
        mid = math.sqrt(lo * hi)
        if crosses(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _harmonic(n_a: float, n_b: float) -> float:
    return 1.0 / (1.0 / n_a + 1.0 / n_b)


def _info(sizes_a: Sequence[int], sizes_b: Sequence[int], n_max: tuple[int, int], final: bool) -> list[float]:
    h_max = _harmonic(*n_max)
    info = [min(_harmonic(na, nb) / h_max, 1.0) for na, nb in zip(sizes_a, sizes_b)]
    if final:
        info[-1] = 1.0
    return _increasing(info)


def _increasing(info: list[float]) -> list[float]:
    """Information fractions kept strictly increasing below the last one (equal looks nudged down)."""
    for i in range(len(info) - 2, -1, -1):
        if info[i] >= info[i + 1]:
            info[i] = info[i + 1] * (1 - 1e-9)
    return info


CALIBRATION_REPS = 20000


def t_correction(sizes_a: tuple[int, ...], sizes_b: tuple[int, ...], design: str, spending: str, alpha: float,
                 two_sided: bool = True) -> float:
    """The factor r by which a staged design's overall level is lowered (boundaries at alpha * r) so that its
    false-alarm rate is at most alpha with t statistics, not only with the z statistics the boundaries assume.

    With 2 to 10 degrees of freedom at the first looks, t statistics at successive looks are less correlated
    than z statistics (each look re-estimates the variance), and Welch's degrees of freedom are themselves
    estimated, so nominal levels mapped through each look's t distribution still let 0.056 to 0.061 through at
    alpha 0.05 (paired design; spread ratios 3 and 10). The rate is simulated under no difference for the
    planned looks (`sizes_a`, `sizes_b`: seeds per side at each look, the last one final), with fixed random
    seeds, at every spread ratio the test's statistic depends on (`StatTest.null_looks`: Welch's five, one for the
    paired test, whose t is pivotal), and r is chosen so that the worst of them is alpha. Cached: one simulation
    per plan. A test whose p-values are not t-based (`null_looks` None: the permutation test) keeps the nominal
    levels: r is 1.
    """
    return _t_correction(tuple(sizes_a), tuple(sizes_b), design, spending, round(float(alpha), 12), two_sided)


@lru_cache(maxsize=256)
def _t_correction(sizes_a: tuple[int, ...], sizes_b: tuple[int, ...], design: str, spending: str, alpha: float,
                  two_sided: bool) -> float:
    if len(sizes_a) < 2 or min(min(sizes_a), min(sizes_b)) < 2:
        return 1.0
    info = _info(sizes_a, sizes_b, (sizes_a[-1], sizes_b[-1]), True)
    rng = np.random.default_rng(20261128)
    a = rng.standard_normal((CALIBRATION_REPS, sizes_a[-1]))
    b = rng.standard_normal((CALIBRATION_REPS, sizes_b[-1]))
    by_ratio = get(design).null_looks(a, b, sizes_a, sizes_b)
    if by_ratio is None:
        return 1.0
    ps = []
    for looks in by_ratio:
        p_looks = []
        for diff, se, df in looks:
            with np.errstate(invalid="ignore", divide="ignore"):
                t = diff / se
            p_looks.append(2.0 * _sp.stdtr(df, -np.abs(t)) if two_sided else _sp.stdtr(df, -t))
        ps.append(np.stack(p_looks, axis=1))

    def rate(r: float) -> float:
        levels = np.array(nominal_levels(info, alpha * r, spending, two_sided))
        return max(float(np.mean((p <= levels).any(axis=1))) for p in ps)

    r = 1.0
    for _ in range(8):  # the rate is nearly proportional to the level: a few proportional steps settle it
        found = rate(r)
        if found <= alpha * 1.005 and (found >= alpha * 0.98 or r >= 1.0):
            break
        r = min(1.0, r * alpha / max(found, 1e-9))
    return r


def sequential_compare(a_looks: Sequence[Mapping[int, float]], b_looks: Sequence[Mapping[int, float]],
                       spec: MetricSpec, *, n_max: tuple[int, int], final: bool, alpha: float = 0.05,
                       design: str = DEFAULT_DESIGN, spending: str = "pocock", a_name: str = "a",
                       b_name: str = "b", fixed_reference: bool = False) -> Comparison:
    """The comparison after the looks so far: {seed: value} on each side at each look (growing; the reference's
    stays the same at every look when `fixed_reference`, as a stored baseline's does).

    The verdict rests on repeated p-values: a difference counts once some look's p-value of the test against the
    margin (`stats.margin_p`) crossed that look's two-sided boundary; equivalence once some look's TOST
    p-value crossed its one-sided boundary. Means, spreads and the CI shown are those of the latest look;
    `power` and `mde` are the staged procedure's over its planned looks, with the latest look's spreads taken as
    the truth (`staged_power`). `final` spends what is left of alpha at the latest look (the seed plan's maximum
    was reached).
    """
    comparisons = [compare_values(xa, xb, spec, alpha=alpha, design=design, a_name=a_name, b_name=b_name)
                   for xa, xb in zip(a_looks, b_looks)]
    # Seeds per side at each look are the candidate's when the reference side is fixed (a stored baseline), so a
    # row's n, its stages and its reason ("after 2 stages (5 seeds)") count the same seeds.
    sizes = tuple(len(xb) if fixed_reference else max(len(xa), len(xb)) for xa, xb in zip(a_looks, b_looks))
    last = comparisons[-1]
    h_max = _harmonic(*n_max)
    info: list[float] = []
    p_diff: list[float] = []
    p_eq: list[float] = []
    tested: list[Comparison] = []
    for c in comparisons:
        if c.p_value is None:
            continue
        t = min(_harmonic(c.n_a, c.n_b) / h_max, 1.0)
        if info and t <= info[-1] + 1e-12:  # nothing new arrived: same data, same look
            info.pop(), p_diff.pop(), p_eq.pop(), tested.pop()
        info.append(t)
        tested.append(c)
        assert c.diff is not None
        p_diff.append(c.p_margin_or_plain if abs(c.diff) > spec.min_effect else 1.0)
        p_eq.append(c.p_equivalence if c.p_equivalence is not None else 1.0)
    if not info or last.p_value is None:
        return replace(last, stages=sizes, spending=spending)
    if final:
        info[-1] = 1.0
        _increasing(info)
    plan_a, plan_b = planned_looks(tested[0].n_a, tested[0].n_b, n_max, design)
    r2 = t_correction(plan_a, plan_b, design, spending, alpha, two_sided=True)
    r1 = t_correction(plan_a, plan_b, design, spending, alpha, two_sided=False)
    seq = replace(last, stages=sizes, spending=spending,
                  p_sequential=min(1.0, repeated_p(p_diff, info, spending, two_sided=True) / r2),
                  p_equivalence_sequential=min(1.0, repeated_p(p_eq, info, spending, two_sided=False) / r1)
                  if spec.min_effect > 0 else None,
                  **_staged_power_fields(last, plan_a, plan_b, spec, alpha, design, spending))
    return _decide(seq)


def _staged_power_fields(c: Comparison, looks_a: tuple[int, ...], looks_b: tuple[int, ...], spec: MetricSpec,
                         alpha: float, design: str, spending: str) -> dict[str, float | None]:
    """`power` and `mde` of the staged procedure, from the latest look's spreads; the last look's fixed-sample
    figures where the plan has a single look (then they are the same thing) or the spreads are unknown."""
    test = get(design)
    sd_diff = c.sd_diff if test.pairs_by_seed else None
    if len(looks_b) < 2 or c.sd_a is None or c.sd_b is None or (test.pairs_by_seed and not sd_diff):
        return {}
    kw = dict(alpha=alpha, design=design, spending=spending, sd_diff=sd_diff, reps=test.staged_power_reps)
    power = staged_power(c.sd_a, c.sd_b, looks_a, looks_b, spec, **kw) if spec.min_effect > 0 else None
    out = dict(power=power, mde=staged_mde(c.sd_a, c.sd_b, looks_a, looks_b, spec, **kw))
    if test.unpaired is not None and power is not None:  # what the unpaired staged procedure would have found
        out["power_unpaired"] = staged_power(c.sd_a, c.sd_b, looks_a, looks_b, spec, alpha=alpha,
                                             design=test.unpaired, spending=spending)
    return out


def _staged_levels(looks_a: tuple[int, ...], looks_b: tuple[int, ...], alpha: float, design: str,
                   spending: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Two- and one-sided nominal levels at each planned look (the last final), as `sequential_compare` sets
    them: the spending function's boundaries at the harmonic information, lowered by `t_correction`."""
    if len(looks_b) < 2:
        return (alpha,), (alpha,)
    info = _info(looks_a, looks_b, (looks_a[-1], looks_b[-1]), True)
    return tuple(nominal_levels(info, alpha * t_correction(looks_a, looks_b, design, spending, alpha, two),
                                spending, two) for two in (True, False))  # type: ignore[return-value]


def _staged_draws(sd_a: float, sd_b: float, looks_a: tuple[int, ...], looks_b: tuple[int, ...], design: str,
                  sd_diff: float | None, reps: int) -> tuple[np.ndarray, np.ndarray]:
    """Normal per-seed values with the given spreads and no difference, fixed random seeds (the same draws for
    every true difference tried: the MDE search moves smoothly)."""
    rng = np.random.default_rng(20261206)
    return get(design).null_draws(sd_a, sd_b, sd_diff, looks_a[-1], looks_b[-1], reps, rng)


def staged_power(sd_a: float, sd_b: float, looks_a: Sequence[int], looks_b: Sequence[int], spec: MetricSpec, *,
                 alpha: float = 0.05, design: str = DEFAULT_DESIGN, spending: str = "pocock",
                 effect: float | None = None, sd_diff: float | None = None, reps: int = 2000) -> float:
    """Chance that the staged procedure (seeds per side at each planned look `looks_a`, `looks_b`; the last
    final) ends `regressed` when the true regression is `effect` (default twice min_effect): by simulation of
    the procedure itself, with normal per-seed values of spreads `sd_a`, `sd_b` (paired: differences of spread
    `sd_diff`), each look judged by the design's test at its boundary."""
    la, lb = tuple(looks_a), tuple(looks_b)
    effect = design_effect(spec.min_effect) if effect is None else abs(effect)
    a, b = _staged_draws(sd_a, sd_b, la, lb, design, sd_diff, reps)
    return _regressed_share(a, b, la, lb, spec, alpha, design, spending, effect)


def _regressed_share(a: np.ndarray, b: np.ndarray, looks_a: tuple[int, ...], looks_b: tuple[int, ...],
                     spec: MetricSpec, alpha: float, design: str, spending: str, effect: float) -> float:
    levels2, levels1 = _staged_levels(looks_a, looks_b, alpha, design, spending)
    shifted = b - effect if spec.goal == "max" else b + effect
    codes, _ = _staged_codes(a, shifted, looks_a, looks_b, spec, design, levels2, levels1)
    return float(np.mean(codes == 0))


def staged_mde(sd_a: float, sd_b: float, looks_a: Sequence[int], looks_b: Sequence[int], spec: MetricSpec, *,
               alpha: float = 0.05, design: str = DEFAULT_DESIGN, spending: str = "pocock",
               sd_diff: float | None = None, target: float = 0.8, reps: int = 2000) -> float | None:
    """The smallest true regression the staged procedure reports `regressed` with chance `target` (see
    `staged_power`); None when no difference reaches it (a test whose p-values cannot pass the boundaries)."""
    la, lb = tuple(looks_a), tuple(looks_b)
    a, b = _staged_draws(sd_a, sd_b, la, lb, design, sd_diff, reps)
    delta = spec.min_effect
    se = get(design).power_model(sd_a, sd_b, la[-1], lb[-1], sd_diff or None).se
    if se <= 0:
        return delta

    def short(e: float) -> float:
        return _regressed_share(a, b, la, lb, spec, alpha, design, spending, e) - target

    hi = delta + 4.0 * se
    for _ in range(20):
        if short(hi) >= 0:
            break
        hi = delta + 2.0 * (hi - delta)
    else:
        return None
    return bisect(short, delta, hi, xtol=se * 1e-2)  # 1% of a standard error: finer than the simulation


def final_levels(n_a: int, n_b: int, n_max: int, alpha: float, design: str, spending: str) -> tuple[float, float]:
    """Two- and one-sided nominal levels at the last planned look of a staged check against a fixed side of
    `n_a` values, the other side growing from `n_b` to `n_max` seeds."""
    plan_a, plan_b = planned_looks(n_a, n_b, (n_a, n_max), design)
    if len(plan_b) < 2:
        return alpha, alpha
    info = _info(plan_a, plan_b, (n_a, n_max), True)
    return tuple(nominal_levels(info, alpha * t_correction(plan_a, plan_b, design, spending, alpha, two),
                                spending, two)[-1] for two in (True, False))  # type: ignore[return-value]


def planned_looks(n_a: int, n_b: int, n_max: tuple[int, int], design: str) -> tuple[tuple[int, ...], ...]:
    """Seeds per side at each look a staged comparison plans, from its first look to the maximum: the stages
    `run` takes (see `stage_sizes`); a side already at its maximum (a stored baseline) stays there."""
    from normreg.suite.model import stage_sizes

    lo, hi = min(n_a, n_b), max(n_max)
    planned = stage_sizes(lo, hi)
    if get(design).pairs_by_seed:
        planned = tuple(sorted({min(n, *n_max) for n in planned}))
        return planned, planned
    return tuple(min(max(n, n_a), n_max[0]) for n in planned), tuple(min(max(n, n_b), n_max[1]) for n in planned)


def simulate(a: np.ndarray, b: np.ndarray, spec: MetricSpec, *, alpha: float = 0.05, design: str = DEFAULT_DESIGN,
             stages: Sequence[int] | None = None, spending: str = "pocock") -> tuple[np.ndarray, np.ndarray]:
    """Verdicts (indices into VERDICT_CODES) and seeds per side used, for many simulated comparisons at once.

    `a` and `b` are (replicates, seeds) arrays; with `stages` (seeds per side after each stage, the last
    being the column count) seeds are staged as `run` stages them, else all are used at once.
    """
    reps, n_max = a.shape
    stages = tuple(stages) if stages else (n_max,)
    if stages[-1] != n_max or b.shape != a.shape:
        raise ValueError("a and b must be (replicates, max seeds) arrays, the last stage using every column")
    levels2, levels1 = _staged_levels(stages, stages, alpha, design, spending)
    return _staged_codes(a, b, stages, stages, spec, design, levels2, levels1)


def _staged_codes(a: np.ndarray, b: np.ndarray, looks_a: Sequence[int], looks_b: Sequence[int], spec: MetricSpec,
                  design: str, levels2: Sequence[float], levels1: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Verdict codes and the candidate's seeds used: each look k judges the first looks_a[k] and looks_b[k]
    columns of the comparisons still open against that look's levels; the last look decides the rest."""
    test = get(design)
    reps = len(a)
    codes = np.full(reps, 3, dtype=np.int8)
    used = np.full(reps, looks_b[-1], dtype=np.int16)
    open_ = np.ones(reps, dtype=bool)
    for k, (na, nb) in enumerate(zip(looks_a, looks_b)):
        diff, p, p_eq = test.array_test(a[open_, :na], b[open_, :nb], spec.min_effect)
        # `<=` at the boundary, `<` for a single look: the same rule as the repeated p-value and as welch().
        eps = 0.0 if len(looks_b) == 1 else 1e-12
        v = array_verdicts(diff, p, p_eq, spec.min_effect, spec.goal, levels2[k] + eps, levels1[k] + eps)
        rows = np.flatnonzero(open_)
        done = v != 3 if k < len(looks_b) - 1 else np.ones(len(rows), dtype=bool)
        codes[rows[done]] = v[done]
        used[rows[done]] = nb
        open_[rows[done]] = False
        if not open_.any():
            break
    return codes, used
