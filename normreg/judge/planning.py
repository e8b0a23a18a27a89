"""How many seeds a suite needs (`plan`) and how its checks behave on their own data (`calibrate`).

`plan` takes per-seed spreads from a pilot (a report, a baseline, a run directory or a short run) and gives the
seeds per side for an 80% and a 90% chance that a true difference of twice `min_effect` is reported `regressed`
under the verdict's own rule (the interval wholly beyond `min_effect`: `stats.PowerModel`), integrating over the
sample variances with Welch's degrees of freedom (or n - 1 for the paired design) and, since a pilot's spreads are
themselves estimates, averaging that power over the true spreads the pilot leaves possible (`SpreadUncertainty`),
with how sure the plan is. `calibrate` resamples observed per-seed values: each pair check with each side drawn
from its own variant's values, and each variant against itself as its baseline check sees it, estimate the
false-alarm rate, and the same with the candidate shifted by twice `min_effect` the power of the verdict
(bias-corrected), at the suite's seeds and test, each with its spread over pilots. Imports neither torch nor
Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special as _sp

from normreg.choices import DEFAULT_DESIGN
from normreg.errors import InputError, ResultsError
from normreg.fileio import read_json
from normreg.judge.designs import get, pairing_design
from normreg.judge.resultset import ResultSet
from normreg.judge.sequential import simulate
from normreg.judge.stats import (
    DESIGN_EFFECT,
    bisect,
    clear_correlation,
    design_effect,
    mean_sd,
    satterthwaite_df,
    seed_correlation,
    smoothed_draws,
)
from normreg.suite.model import MetricSpec


@dataclass(frozen=True)
class PlanRow:
    variant: str
    metric: str
    min_effect: float
    n_pilot: int
    sd_a: float | None  # the reference's per-seed spread
    sd_b: float | None
    sd_diff: float | None  # paired design: spread of per-seed differences
    seeds_80: int | None  # seeds per side for an 80% chance of `regressed` at twice min_effect, on average over
    seeds_90: int | None  # the true spreads the pilot leaves possible; None: over the limit
    note: str = ""
    seeds_80_exact: int | None = None  # the same with the pilot's spreads taken as the true ones
    seeds_90_exact: int | None = None
    sure_80: float | None = None  # chance, given the pilot, that the power at seeds_80 is at least 0.8
    below_half_80: float | None = None  # chance, given the pilot, that it is below 0.5
    correlation: float | None = None  # per-seed correlation of the two sides over the seeds they share
    n_shared: int = 0  # seeds the two sides share in the pilot


@dataclass(frozen=True)
class Plan:
    suite: str
    source: str
    alpha: float
    design: str
    rows: tuple[PlanRow, ...]
    limit: int = 1000


# ---------------------------------------------------------------------------- what a pilot leaves uncertain

_GL_U, _GL_W = (lambda x, w: ((x + 1.0) / 2.0, w / 2.0))(*_sp.roots_legendre(16))  # Gauss-Legendre on (0, 1)


@dataclass(frozen=True)
class SpreadUncertainty:
    """How far a pilot's spreads may be from the true ones: the true variances are the pilot's times a factor G.

    With a pilot's sample variance s^2 on df degrees of freedom, the true variance is s^2 df / chi^2_df (the
    scale-invariant prior, under which the chance given the pilot and the chance over pilots agree). Two sides'
    variances add (Welch's standard error), and their sum is taken as one estimate on the Welch–Satterthwaite
    degrees of freedom: G = df / chi^2_df, both spreads scaled by sqrt(G). For a normal-theory test the average
    power over G is then the average, over pilots, of the power a plan delivers: the promise holds on average
    over pilots (`benchmarks/planning_rates.py` measures it).
    """

    df: float

    def cdf(self, g: np.ndarray) -> np.ndarray:
        """P(G <= g) for an array of g > 0."""
        return _sp.chdtrc(self.df, self.df / np.asarray(g, dtype=float))

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """G at probabilities `u`."""
        return self.df / _sp.chdtri(self.df, np.asarray(u, dtype=float))


def uncertainty(sds: Sequence[float], ns: Sequence[int]) -> SpreadUncertainty:
    """The uncertainty of the sum of the variances `sds`^2, each estimated from `ns` values (one entry: one spread
    for both sides), on Welch–Satterthwaite's degrees of freedom."""
    var = np.array(sds, dtype=float)[:, None] ** 2  # one array per spread: numpy's square, as element-wise
    dfs = [max(int(n) - 1, 1) for n in ns]
    if not np.any(var**2 > 0):
        return SpreadUncertainty(float(min(dfs)))
    return SpreadUncertainty(float(satterthwaite_df(list(var), dfs)[0]))


@dataclass(frozen=True)
class Assured:
    """Seeds per side whose power, averaged over the true spreads a pilot leaves possible, reaches `target`."""

    seeds: int | None  # None: more than the limit
    exact: int | None  # the seeds the pilot's spreads would need if they were the true ones
    sure: float | None  # chance, given the pilot, that the power at `seeds` reaches the target
    below_half: float | None  # chance that it is below 0.5
    factor: float | None  # the spread factor at which `seeds` just reaches the target (for simulated tests)


def assured_seeds(effect: float, sd_a: float, sd_b: float, alpha: float, target: float, spread: SpreadUncertainty, *,
                  design: str = DEFAULT_DESIGN, sd_diff: float | None = None, delta: float = 0.0,
                  limit: int = 1000, pilot: tuple[np.ndarray, np.ndarray] | None = None) -> Assured:
    """Seeds per side for probability `target` of the verdict (see `stats.seeds_for`) on average over the true
    spreads the pilot leaves possible (`spread`), with how sure that is. Power is the design's normal-theory power
    of the verdict (`StatTest.power_model`; `sd_diff` for a test that pairs by seed). `pilot`: the pilot's values,
    for the design's own search of `exact` where it simulates them."""
    test = get(design)
    if abs(effect) <= delta:
        return Assured(None, None, None, None, None)
    exact = test.seeds_for(effect, sd_a, sd_b, alpha, target, sd_diff=sd_diff, delta=delta, limit=limit, pilot=pilot)

    def power(n: int, g: float) -> float:
        f = math.sqrt(g)
        return test.power_model(sd_a * f, sd_b * f, n, n, None if sd_diff is None else sd_diff * f) \
            .verdict_power(effect, delta, alpha)

    nodes = spread.quantile(_GL_U)

    def expected(n: int) -> float:
        return float(np.sum(_GL_W * np.array([power(n, g) for g in nodes])))

    lo = hi = max(exact or limit, 2)
    if expected(lo) >= target:
        while lo > 2 and expected(lo - 1) >= target:  # rare: the average above the plug-in power
            lo -= 1
        n: int | None = lo
    else:
        while expected(hi) < target:
            if hi >= limit:
                return Assured(None, exact, None, None, None)
            lo, hi = hi, min(hi * 2, limit)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if expected(mid) >= target else (mid, hi)
        n = hi

    def factor_at(level: float) -> float:
        """G at which the power at n is exactly `level` (power falls as G grows)."""
        g_lo, g_hi = 1e-6, 1.0
        while power(n, g_hi) > level and g_hi < 1e12:
            g_lo, g_hi = g_hi, g_hi * 4.0
        return math.exp(bisect(lambda lg: level - power(n, math.exp(lg)), math.log(g_lo), math.log(g_hi), 1e-4))

    g_target, g_half = factor_at(target), factor_at(0.5)
    sure, half = spread.cdf(np.array([g_target, g_half]))
    # the factor a hair inside, so that the design's own search at the widened spreads lands on n itself
    return Assured(n, exact, float(sure), float(1.0 - half), math.sqrt(g_target * (1.0 - 1e-3)))


def plan(suite_name: str, reference: str, variants: Sequence[str], metrics: Sequence[MetricSpec],
         pilot: ResultSet, *, alpha: float = 0.05, design: str = DEFAULT_DESIGN, limit: int = 1000) -> Plan:
    """Seeds per side each (variant, metric) pair check needs so that a true difference of twice its
    min_effect is reported `regressed` 80% (90%) of the time, on average over the true spreads the pilot
    leaves possible.

    A few pilot seeds give uncertain spreads (a 3-seed spread can be off by a factor of two): planned on the
    pilot's spreads as if they were true, a plan from 3 seeds delivers less power than it promises on average
    and often far less. Here the power is averaged over the spreads' uncertainty (`SpreadUncertainty`), and
    each row says how sure the plan is (the chance that its power reaches 0.8, and that it falls below 0.5)
    beside what the pilot's spreads alone would need. Tests whose power is simulated from the pilot's values
    (the permutation test) are planned on those values widened by the factor the t-test needs.
    """
    values = pilot.values
    rows: list[PlanRow] = []
    ref_values = values.get(reference, {})
    for v in variants:
        if v == reference and len(variants) > 1:
            continue
        mine = values.get(v, {})
        for m in metrics:
            a = ref_values.get(m.name, {}) if v != reference else mine.get(m.name, {})
            b = mine.get(m.name, {})
            rows.append(_plan_row(v, m, a, b, alone=v == reference, alpha=alpha, design=design, limit=limit))
    if not rows:
        raise InputError(f"{pilot.source}: holds none of the suite's variants ({', '.join(variants)})")
    return Plan(suite_name, pilot.source, alpha, design, tuple(rows), limit)


def _plan_row(v: str, m: MetricSpec, a: Mapping[int, float], b: Mapping[int, float], *, alone: bool, alpha: float,
              design: str, limit: int) -> PlanRow:
    """One (variant, metric) row of `plan`; `alone`: the reference planned against itself."""
    note = "the reference alone: both sides take its spread" if alone else ""
    _, sd_a = mean_sd([a[s] for s in sorted(a)])
    _, sd_b = mean_sd([b[s] for s in sorted(b)])
    common = sorted(set(a) & set(b))
    r = None if alone else seed_correlation(a, b)
    sd_diff = None
    if not alone and len(common) >= 2:
        _, sd_diff = mean_sd([b[s] - a[s] for s in common])
    pairs = get(design).pairs_by_seed
    n_pilot = min(len(a), len(b))
    base = dict(variant=v, metric=m.name, min_effect=m.min_effect, n_pilot=n_pilot, sd_a=sd_a, sd_b=sd_b,
                sd_diff=sd_diff if pairs else None, correlation=r, n_shared=0 if alone else len(common))
    if sd_a is None or sd_b is None:
        return PlanRow(**base, seeds_80=None, seeds_90=None,  # type: ignore[arg-type]
                       note="the pilot has fewer than two values on a side: run more pilot seeds")
    if m.min_effect <= 0:
        return PlanRow(**base, seeds_80=None, seeds_90=None,  # type: ignore[arg-type]
                       note="min_effect is 0: no difference is too small to matter; set min_effect")
    use = design
    if pairs and (alone or sd_diff is None) and get(design).unpaired:
        use = get(design).unpaired  # type: ignore[assignment]
        note = note or f"too few paired seeds in the pilot: planned as {get(use).title}"
    paired_use = get(use).pairs_by_seed
    effect = design_effect(m.min_effect)
    if paired_use:
        spread = uncertainty([sd_diff], [len(common)])  # type: ignore[list-item]
    elif alone:
        spread = uncertainty([sd_a], [len(a)])
    else:
        spread = uncertainty([sd_a, sd_b], [len(a), len(b)])
    d = sd_diff if paired_use else None
    pilot_values = (np.array([a[s] for s in sorted(a)]), np.array([b[s] for s in sorted(b)]))
    found = [assured_seeds(effect, sd_a, sd_b, alpha, target, spread, design=use, sd_diff=d, delta=m.min_effect,
                           limit=limit, pilot=pilot_values) for target in (0.8, 0.9)]
    # The design's own search (a test simulated from the pilot's values searches by simulation) at the spreads
    # widened by the factor the average power needs; for a model-based test this is the averaged answer itself.
    seeds = [None if f.factor is None else
             get(use).seeds_for(effect, sd_a * f.factor, sd_b * f.factor, alpha, target,
                                sd_diff=None if d is None else d * f.factor, delta=m.min_effect, limit=limit,
                                pilot=tuple(x.mean() + f.factor * (x - x.mean()) for x in pilot_values))  # type: ignore[arg-type]
             for f, target in zip(found, (0.8, 0.9))]
    extra = "" if alone else pairing_note(r, len(common), design, sd_a, sd_b, sd_diff, effect, m.min_effect, alpha,
                                          seeds[0], limit)
    note = "; ".join(x for x in (note, extra) if x)
    return PlanRow(**base, seeds_80=seeds[0], seeds_90=seeds[1], note=note,  # type: ignore[arg-type]
                   seeds_80_exact=found[0].exact, seeds_90_exact=found[1].exact, sure_80=found[0].sure,
                   below_half_80=found[0].below_half)


def pairing_note(r: float | None, n: int, design: str, sd_a: float, sd_b: float, sd_diff: float | None,
                 effect: float, delta: float, alpha: float, seeds: int | None, limit: int) -> str:
    """What the pilot's per-seed correlation says about the design when it is clearly not zero (two-sided
    p < 0.05, `stats.clear_correlation`): positive, the paired design would need fewer seeds; negative, the
    unpaired test's false-alarm rate does not hold."""
    paired = pairing_design(design)
    if paired is None:
        return ""
    sign, p = clear_correlation(r, n)
    title = get(design).title
    if sign > 0 and sd_diff is not None and sd_diff > 0:
        paired_n = assured_seeds(effect, sd_a, sd_b, alpha, 0.8, uncertainty([sd_diff], [n]), design=paired,
                                 sd_diff=sd_diff, delta=delta, limit=limit).seeds
        if paired_n is not None and (seeds is None or paired_n < seeds):
            return (f"per-seed correlation {r:+.2f} over {n} shared seeds (p={p:.2g}): the sides share "
                    f"seed-to-seed noise, which {title} counts twice; design: {paired} would need {paired_n} seeds "
                    f"instead of {seeds if seeds else f'>{limit}'}")
    if sign < 0:
        return (f"per-seed correlation {r:+.2f} over {n} shared seeds (p={p:.2g}): the sides move against each "
                f"other seed by seed, so {title}'s false-alarm rate is above alpha; use design: {paired}")
    return ""


@dataclass(frozen=True)
class CalibrationRow:
    variant: str
    metric: str
    n_values: int  # the variant's values (paired: the per-seed differences from the reference)
    false_alarm: float  # share of A/A comparisons that came out regressed or improved (NaN: too few values)
    power: float  # share of comparisons shifted by twice min_effect that came out regressed
    warnings: tuple[str, ...] = ()
    false_alarm_se: float = math.nan  # how much the estimate would move with another pilot of the same size
    power_se: float = math.nan
    reference: str | None = None  # a pair check: the reference, whose values are side a; None: the variant
    n_reference: int = 0  # against itself, as a check against its own stored baseline sees it

    @property
    def check(self) -> str:
        """Which check the row calibrates: `merged -> twin` (a pair check) or `twin (baseline)`."""
        return f"{self.reference} -> {self.variant}" if self.reference is not None else f"{self.variant} (baseline)"


@dataclass(frozen=True)
class Calibration:
    source: str
    alpha: float
    design: str
    seeds: int
    stages: tuple[int, ...]
    spending: str
    reps: int
    rows: tuple[CalibrationRow, ...]

    @property
    def poor(self) -> bool:
        return any(r.warnings for r in self.rows)


MIN_CALIBRATION_VALUES = 5  # below this the resampled rates say more about the pilot than about the test
PILOTS = 40  # bootstrap pilots behind each estimate's uncertainty and the power's bias
NESTED = 10  # pilots of each pilot, for the spread of the bias-corrected power


def resampled_rates(x: np.ndarray, spec: MetricSpec, *, n_max: int, reps: int, rng: np.random.Generator,
                    alpha: float = 0.05, design: str = DEFAULT_DESIGN, stages: Sequence[int] = (),
                    spending: str = "pocock", y: np.ndarray | None = None) -> tuple[float, float]:
    """False-alarm rate (A/A: both sides with the same mean) and the rate of `regressed` with the candidate
    shifted by twice min_effect, under the suite's test and verdict rule. Side a is drawn from the reference's
    values `x`, side b from the candidate's `y` (default `x`: one variant against itself, as a check against
    its own baseline sees it), each with its own spread. Paired: `x` holds per-seed differences, `y` is unused."""
    fa, pw = batched_rates([(x, y)], spec, n_max=n_max, reps=reps, rng=rng, alpha=alpha, design=design,
                           stages=stages, spending=spending)[0]
    return float(fa), float(pw)


def batched_rates(sides: Sequence[tuple[np.ndarray, np.ndarray | None]], spec: MetricSpec, *, n_max: int, reps: int,
                  rng: np.random.Generator, alpha: float = 0.05, design: str = DEFAULT_DESIGN,
                  stages: Sequence[int] = (), spending: str = "pocock", power_only: bool = False) -> np.ndarray:
    """`resampled_rates` for many (x, y) at once, simulated together: (false alarms, power) a row (false alarms
    NaN when `power_only`)."""
    parts_a, parts_b = [], []
    for x, y in sides:
        if get(design).pairs_by_seed:
            draw_b = smoothed_draws(x - x.mean(), (reps, n_max), rng)
            parts_a.append(np.zeros_like(draw_b))
        else:
            parts_a.append(smoothed_draws(x - x.mean(), (reps, n_max), rng))
            other = x if y is None else y
            draw_b = smoothed_draws(other - other.mean(), (reps, n_max), rng)
        parts_b.append(draw_b)
    draw_a, draw_b = np.concatenate(parts_a), np.concatenate(parts_b)
    kw = dict(alpha=alpha, design=design, stages=tuple(stages) or None, spending=spending)
    out = np.full((len(sides), 2), math.nan)
    if not power_only:
        codes, _ = simulate(draw_a, draw_b, spec, **kw)  # type: ignore[arg-type]
        out[:, 0] = (codes < 2).reshape(len(sides), reps).mean(1)
    if spec.min_effect > 0:
        effect = design_effect(spec.min_effect)
        codes, _ = simulate(draw_a, draw_b + (-effect if spec.goal == "max" else effect), spec, **kw)  # type: ignore[arg-type]
        out[:, 1] = (codes == 0).reshape(len(sides), reps).mean(1)
    return out


@dataclass(frozen=True)
class PilotSpread:
    """What another pilot of the same size would change: the spread of each estimate, and the power estimate's
    bias (power is a steep, curved function of the spreads, so a few values' spreads, right on average, give a
    power too high or too low on average; the false-alarm rate hardly depends on them)."""

    false_alarm_se: float
    power_se: float  # the spread of the bias-corrected power estimate
    pilot_power: float  # mean power over pilots drawn at the estimated spreads: less the estimate, its bias


def _normal_like(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, float(x.std(ddof=1)), size)


def pilot_spread(x: np.ndarray, y: np.ndarray | None, spec: MetricSpec, *, rng: np.random.Generator, reps: int,
                 pilots: int = PILOTS, nested: int = NESTED, **kw: object) -> PilotSpread:
    """The estimates' spread over pilots of the same size, and the power estimate's bias (a parametric bootstrap).

    Pilots are normal with each side's estimated spread: resampling a few values, plainly or smoothed, varies
    their spread less than new seeds do, and so understates how much an estimate moves. The power's bias is the
    pilots' mean power less the estimate; the bias-corrected estimate (estimate less bias) moves more than the
    estimate itself, so its spread is found the same way one level down (`nested` pilots of each pilot), with the
    Monte Carlo noise of both levels removed."""
    inner, deep = max(reps // 4, 100), max(reps // 20, 100)

    def draw(xs: np.ndarray, ys: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        return _normal_like(xs, len(xs), rng), None if ys is None else _normal_like(ys, len(ys), rng)

    firsts = [draw(x, y) for _ in range(pilots)]
    est = batched_rates(firsts, spec, reps=inner, rng=rng, **kw)  # type: ignore[arg-type]
    fa_se = _spread(est[:, 0], inner)
    if np.isnan(est[:, 1]).all():
        return PilotSpread(fa_se, math.nan, math.nan)
    below = batched_rates([draw(px, py) for px, py in firsts for _ in range(nested)], spec, reps=deep, rng=rng,
                          power_only=True, **kw)[:, 1].reshape(pilots, nested)  # type: ignore[arg-type]
    pw = est[:, 1]
    corrected = 2.0 * pw - below.mean(1)
    noise = 4.0 * pw * (1 - pw) / inner + below.var(1, ddof=1) / nested
    pw_se = math.sqrt(max(float(np.var(corrected, ddof=1)) - float(np.mean(noise)), 0.0))
    return PilotSpread(fa_se, pw_se, float(np.mean(pw)))


def _spread(estimates: np.ndarray, reps: int) -> float:
    """Spread of rate estimates over pilots, without the Monte Carlo noise of `reps` resamples each."""
    if np.isnan(estimates).all():
        return math.nan
    mc = float(np.mean(estimates * (1 - estimates))) / reps
    return math.sqrt(max(float(np.var(estimates, ddof=1)) - mc, 0.0))


def _sides(rs: ResultSet, v: str, m: str, design: str,
           reference: str | None) -> list[tuple[str | None, np.ndarray, np.ndarray | None]]:
    """The checks to calibrate for variant `v` on metric `m`: (reference or None, side a's values, side b's).
    Welch and permutation: the pair check against the reference, with each side's own values, and the variant
    against its own baseline; paired: the pair check's per-seed differences, centred on zero."""
    by_seed = rs.values[v][m]
    mine = np.array([by_seed[s] for s in sorted(by_seed)])
    ref = rs.values.get(reference, {}).get(m) if reference is not None and v != reference else None
    if get(design).pairs_by_seed:
        if ref is None:
            return []
        common = sorted(set(ref) & set(by_seed))
        x = np.array([by_seed[s] - ref[s] for s in common])
        return [(reference, x - x.mean() if len(x) else x, None)]
    out: list[tuple[str | None, np.ndarray, np.ndarray | None]] = []
    if ref:
        out.append((reference, np.array([ref[s] for s in sorted(ref)]), mine))
    out.append((None, mine, None))
    return out


def calibrate(rs: ResultSet, specs: Mapping[str, MetricSpec], *, seeds: int, alpha: float = 0.05,
              design: str = DEFAULT_DESIGN, stages: Sequence[int] = (), spending: str = "pocock", reps: int = 2000,
              reference: str | None = None, random_seed: int = 0) -> Calibration:
    """Resample per-seed values to estimate the false-alarm rate and power of the suite's checks.

    Each pair check (a variant against the reference) draws its reference side from the reference's values and
    its candidate side from the variant's, each with its own spread; each variant is also calibrated against
    itself, as a check against its own stored baseline sees it. Paired: per-seed differences from the reference,
    centred on zero, are drawn. Draws come from a smoothed, variance-corrected bootstrap (`smoothed_draws`). Each
    estimate's uncertainty is its spread over pilots of the same size (`pilot_spread`). `stages`, when given,
    stages the seeds as `run` does.
    """
    rng = np.random.default_rng(random_seed)
    n_max = stages[-1] if stages else seeds
    kw = dict(n_max=n_max, alpha=alpha, design=design, stages=stages, spending=spending)
    rows: list[CalibrationRow] = []
    for v in sorted(rs.values):
        for m in sorted(rs.values[v]):
            spec = specs.get(m)
            if spec is None:
                continue
            for ref, x, y in _sides(rs, v, m, design, reference):
                rows.append(calibrate_check(v, m, ref, x, y, spec, rng=rng, reps=reps, **kw))  # type: ignore[arg-type]
    if not rows:
        raise InputError(f"{rs.source}: no variant has values of a known metric to resample"
                         + (" (paired: each variant needs seeds shared with the reference)" if get(design).pairs_by_seed
                            else ""))
    return Calibration(rs.source, alpha, design, seeds, tuple(stages), spending, reps, tuple(rows))


def calibrate_check(v: str, m: str, ref: str | None, x: np.ndarray, y: np.ndarray | None, spec: MetricSpec, *,
                    rng: np.random.Generator, reps: int, n_max: int, alpha: float = 0.05, design: str = DEFAULT_DESIGN,
                    stages: Sequence[int] = (), spending: str = "pocock") -> CalibrationRow:
    """One row of `calibrate`: the check of variant `v` against `ref` (None: against itself) on metric `m`, from
    the reference's values `x` and the variant's `y` (paired: `x` the centred per-seed differences, `y` None).
    The power is bias-corrected (the estimate less its bias over pilots, `pilot_spread`)."""
    kw = dict(n_max=n_max, alpha=alpha, design=design, stages=stages, spending=spending)
    mine = x if y is None else y
    n_ref = len(x) if y is not None else 0
    few = min(len(x), len(mine))
    if few < MIN_CALIBRATION_VALUES:
        return CalibrationRow(v, m, len(mine), math.nan, math.nan, (
            f"only {few} values: too few to calibrate (at least {MIN_CALIBRATION_VALUES}); the rates "
            "would describe these few values more than the test; run more seeds",), reference=ref, n_reference=n_ref)
    false_alarm, raw = resampled_rates(x, spec, reps=reps, rng=rng, y=y, **kw)  # type: ignore[arg-type]
    spread = pilot_spread(x, y, spec, rng=rng, reps=reps, **kw)
    pw = raw if math.isnan(raw) else min(max(2.0 * raw - spread.pilot_power, 0.0), 1.0)
    fa_se, pw_se = spread.false_alarm_se, spread.power_se
    warn = []
    mc = 2.0 * math.sqrt(alpha * (1 - alpha) / reps)
    if false_alarm > alpha + max(0.02, mc):
        warn.append(f"false alarms {false_alarm:.3f} exceed alpha {alpha:g}: the per-seed values are far "
                    "from normal (outliers, collapsed seeds); add seeds or investigate the outliers")
    if spec.min_effect > 0 and pw < 0.8:
        warn.append(f"power {pw:.2f} at {DESIGN_EFFECT:g} x min_effect ({design_effect(spec.min_effect):g})"
                    " is below 0.8: a real regression of that size is often missed; run `normreg plan` "
                    "for the seeds it needs")
    if spec.min_effect <= 0:
        warn.append("min_effect is 0: power is undefined; set the smallest difference that matters")
    if few < 8:
        warn.append(f"estimated from only {few} values a side: a rough estimate (see the ± column)")
    return CalibrationRow(v, m, len(mine), false_alarm, pw, tuple(warn), fa_se, pw_se, ref, n_ref)


def settings_from(path_spec: str) -> dict:
    """The test settings a report records for its one suite (seeds, alpha, design, stages, spending, reference),
    or a baseline for its suite (reference, alpha, design, a fixed number of seeds); empty for other files."""
    path = Path(path_spec.partition("#")[0])
    if path.is_dir() or path.suffix.lower() == ".csv":
        return {}
    try:
        data = read_json(path)
    except ResultsError:
        return {}
    if isinstance(data, dict) and isinstance(data.get("suite_content"), dict):  # a baseline: its suite's settings
        content = data["suite_content"]
        stats = content.get("stats") if isinstance(content.get("stats"), dict) else {}
        seeds = content.get("seeds")
        out = {"reference": content.get("reference"), "alpha": stats.get("alpha"), "design": stats.get("design"),
               "seeds": seeds if isinstance(seeds, int) and not isinstance(seeds, bool) else None}
        return {k: v for k, v in out.items() if v}
    suites = data.get("suites") if isinstance(data, dict) else None
    if not isinstance(suites, list) or len(suites) != 1:
        return {}
    s = suites[0]
    out = {"alpha": s.get("alpha"), "design": s.get("design"), "reference": s.get("reference"),
           "seeds": len(s.get("seeds") or []) or None}
    if s.get("seed_plan"):
        out["stages"] = tuple(s["seed_plan"].get("stages") or ())
        out["spending"] = s["seed_plan"].get("spending")
    return {k: v for k, v in out.items() if v}
