"""Change points: the nights where a metric's values moved, each confirmed by a test whose unit of evidence is what
is independent: a distinct night, not a per-seed value repeated night after night.

Detection uses `ruptures` (PELT, exact penalised segmentation) with a cost on the per-seed values in which a
segment boundary can only fall between two nights: each night is summarised by its count, sum and sum of squares,
so the cost of a segment is the sum of squared deviations of all its per-seed values from their mean, exactly
ruptures' `l2` cost on the flattened values, but never cutting a night in two. That cost is the within-night
spread (the same for every segmentation) plus each night's count times its mean's squared deviation, so only the
night means move boundaries. The penalty is `PENALTY * n * v * log(number of values)`, with n the mean values
per night and v the variance of a night mean: estimated from the differences between consecutive nights (the
median, so a step or an odd night does not inflate it), which holds the seed noise and any night-to-night effect,
and never below the seed-to-seed variance within nights divided by n. It does not depend on the metric's scale.

A change must hold for `MIN_NIGHTS` nights: a segment of one night (a night that differs and the next night
returns, or a newest night alone) is a one-night outlier, left out, and the detector runs again without it.

Each remaining boundary is confirmed by `segment_test` on the segment before against the segment after (at the
suite's alpha and with the metric's `min_effect`; only `regressed` or `improved` counts). Its unit is the
distinct night: nights that repeat an earlier night's values exactly (a deterministic nightly) are one
observation, not new evidence. With two or more distinct nights in the two segments together, the test is
Student's t on the distinct nights' means, with the variance of a night mean pooled from their spread within each
segment: seed noise and night-to-night effect are both in the error, and the degrees of freedom are those of the
nights. A two-way layout of the segments (nights x seeds, `two_way`) adds what the night means' spread misses
or could borrow, each by Bancroft's sometimes-pool rule at `POOL_LEVEL`: nights that differ a little but rerun
the same seeds (nondeterministic kernels) share each seed's own effect, which is added to the error
(Satterthwaite's degrees of freedom) when its F-test shows it; and when no night effect is shown (the F-test of
the night means against the residual), the residual is fresh seed noise, the stuff a night mean's spread is then
made of, and lends the test its degrees of freedom.
With one distinct night a side (every night repeated), nothing shows the night-to-night effect: the test is
Welch's on that night's per-seed values on each side, the best the data allow. Unconfirmed boundaries are
dropped one at a time (the least significant first) and the neighbours re-tested on the merged segments.

Measured in `benchmarks/history_alarms.py` (docs/history-evidence.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.special as _sp

from normreg.judge.designs.welch import Welch, welch
from normreg.judge.stats import Comparison, _flat, mean_sd, satterthwaite_df
from normreg.suite.model import MetricSpec

PENALTY = 3.0  # times n * v * log(n values): the false-change rate over 30 nights stays under 5% (benchmark)
MAX_PASSES = 5  # rounds of leaving out one-night outliers
MIN_NIGHTS = 2  # a change must hold this many nights: a single odd night is an outlier, not a change
POOL_LEVEL = 0.05  # a seed effect, or a night effect, counts as shown when its F-test has p below this
_MAD_TO_SD = 0.6744897501960817  # the median of |N(0, 1)|


@dataclass(frozen=True)
class Side:
    """The evidence on one side of a change: `nights` with values in the segment (outliers left out), of which
    `distinct` differ from every other one in it (a night repeating another's values exactly counts once), and
    `values`, the per-seed values of those distinct nights."""

    nights: int
    distinct: int
    values: int


@dataclass(frozen=True)
class Evidence:
    """What a change's test used. `unit` is "nights" (Student's t on the distinct nights' means, their spread
    within segments as the error) or "seeds" (one distinct night a side: Welch's test on its per-seed values)."""

    before: Side
    after: Side
    unit: str


@dataclass(frozen=True)
class Change:
    """A confirmed change: from night `night` on (a position in the sequence given), the values moved.

    `comparison` is the test of the segment before (side a, nights `before`) against the segment after (side b,
    nights `after`); `before` and `after` are [start, end) positions, outliers left out. Its counts `n_a`, `n_b`
    are those of the unit tested (distinct nights, or values when each side is one distinct night); `evidence`
    says which.
    """

    night: int
    before: tuple[int, int]
    after: tuple[int, int]
    comparison: Comparison
    evidence: Evidence

    @property
    def verdict(self) -> str:
        return self.comparison.verdict


@dataclass(frozen=True)
class Segmentation:
    """What the detector found in one series: confirmed changes, one-night outliers, and the candidates it
    proposed before confirmation (positions of the nights where a new level would start)."""

    changes: tuple[Change, ...]
    outliers: tuple[int, ...] = ()
    candidates: tuple[int, ...] = ()
    reason: str | None = None  # why nothing could be looked for, when that is the case


def _night_cost() -> object:
    """A ruptures cost over nights summarised as (count, sum, sum of squares): the l2 cost of their values."""
    from ruptures.base import BaseCost

    class NightL2(BaseCost):
        model = "night_l2"
        min_size = 1

        def fit(self, signal: np.ndarray) -> NightL2:
            self.signal = signal
            self._cum = np.vstack([np.zeros(3), np.cumsum(signal, axis=0)])
            return self

        def error(self, start: int, end: int) -> float:
            n, s, ss = self._cum[end] - self._cum[start]
            return float(ss - s * s / n) if n else 0.0

    return NightL2()


def pooled_variance(nights: Sequence[Sequence[float]]) -> float | None:
    """Seed-to-seed variance pooled over the nights with two or more values; None when none has."""
    num, den = 0.0, 0
    for vals in nights:
        if len(vals) >= 2:
            m = math.fsum(vals) / len(vals)
            num += math.fsum((v - m) ** 2 for v in vals)
            den += len(vals) - 1
    return num / den if den else None


def distinct(nights: Sequence[Sequence[float]]) -> list[tuple[float, ...]]:
    """The nights in order, each night that repeats another one's values exactly left out: a deterministic rerun
    of the same code and environment is no new evidence. A night whose values all appear in another night's (the
    same run with a seed that failed) is a repeat too; of equal nights the first is kept."""
    rows = [tuple(float(v) for v in vals) for vals in nights]
    kept: list[int] = []
    for i in sorted(range(len(rows)), key=lambda i: -len(rows[i])):  # stable: the first of equal nights stays
        if not any(_within(rows[i], rows[j]) for j in kept):
            kept.append(i)
    return [rows[i] for i in sorted(kept)]


def _within(small: tuple[float, ...], big: tuple[float, ...]) -> bool:
    """Every value of `small` is one of `big`'s (counting repeats)."""
    have = Counter(big)
    have.subtract(Counter(small))
    return min(have.values(), default=0) >= 0


def night_mean_variance(nights: Sequence[Sequence[float]]) -> float:
    """The variance of one night's mean around its level, for the search's penalty: from the median difference
    between consecutive nights (a step or an odd night moves it little; nights that repeat the one before count
    as no difference), and at least the seed-to-seed variance within nights over the mean count."""
    means = [math.fsum(v) / len(v) for v in nights]
    steps = np.abs(np.diff(means))
    between = float(np.median(steps) / _MAD_TO_SD) ** 2 / 2.0 if len(steps) else 0.0
    var = pooled_variance(nights)
    within = var / float(np.mean([len(v) for v in nights])) if var is not None else 0.0
    return max(between, within)


@dataclass(frozen=True)
class TwoWay:
    """The nights x seeds layout of the segments around a change (values in seed order, nights of a segment's usual
    count), pooled over segments: `seed_var`, the variance of a seed's effect that persists from night to night
    (the same seeds rerun), 0 unless its F-test against the residual has p below `POOL_LEVEL`; `residual`, the
    variance of a value around its night's and its seed's effects (fresh seed noise); with their degrees of
    freedom."""

    seed_var: float
    seed_df: int
    residual: float
    residual_df: int


def two_way(segments: Sequence[Sequence[Sequence[float]]]) -> TwoWay | None:
    """The two-way layout of the segments with two or more nights of one count; None when none has them."""
    est: list[tuple[float, int]] = []
    ss_seed = ss_res = 0.0
    df_res = 0
    for nights in segments:
        counts = [len(v) for v in nights]
        n = max(set(counts), key=counts.count) if counts else 0
        rows = [v for v in nights if len(v) == n]
        if len(rows) < 2 or n < 2:
            continue
        y = np.asarray(rows, dtype=float)
        d = len(rows)
        by_seed, by_night, grand = y.mean(axis=0), y.mean(axis=1), y.mean()
        ms_seed = d * float(((by_seed - grand) ** 2).sum()) / (n - 1)
        res = float(((y - by_night[:, None] - by_seed[None, :] + grand) ** 2).sum())
        est.append(((ms_seed - res / ((d - 1) * (n - 1))) / d, n - 1))
        ss_seed, ss_res, df_res = ss_seed + ms_seed * (n - 1), ss_res + res, df_res + (d - 1) * (n - 1)
    if not est:
        return None
    df = sum(w for _, w in est)
    residual = ss_res / df_res
    shown = residual <= 0 or float(_sp.fdtrc(df, df_res, (ss_seed / df) / residual)) < POOL_LEVEL
    seed_var = max(0.0, sum(e * w for e, w in est) / df) if shown else 0.0  # Bancroft's sometimes-pool rule
    return TwoWay(seed_var, df, residual, df_res)


def _side(nights: Sequence[Sequence[float]], kept: tuple[tuple[float, ...], ...]) -> Side:
    return Side(len(nights), len(kept), sum(len(v) for v in kept))


def segment_test(before: Sequence[Sequence[float]], after: Sequence[Sequence[float]], spec: MetricSpec,
                 alpha: float = 0.05) -> tuple[Comparison, Evidence]:
    """Did the metric move between two segments of nights (each night its per-seed values)? The unit of evidence
    is the distinct night (see the module's docstring); `regressed` and `improved` follow normreg's verdict rule
    at `alpha` and the metric's `min_effect`, so a change within min_effect is not one."""
    da, db = tuple(distinct(before)), tuple(distinct(after))
    sides = (_side(before, da), _side(after, db))
    if len(da) == 1 and len(db) == 1:
        c = welch(da[0], db[0], spec, alpha=alpha, a_name="before", b_name="after")
        return c, Evidence(*sides, "seeds")
    ma = [math.fsum(v) / len(v) for v in da]
    mb = [math.fsum(v) / len(v) for v in db]
    mean_a, sd_a = mean_sd(ma)
    mean_b, sd_b = mean_sd(mb)
    assert mean_a is not None and mean_b is not None
    ss = math.fsum((m - mean_a) ** 2 for m in ma) + math.fsum((m - mean_b) ** 2 for m in mb)
    df = len(ma) + len(mb) - 2
    var = ss / df
    if _flat(math.sqrt(var), [*ma, *mb]):  # distinct nights with equal means: no night-to-night spread to use
        c = welch([v for n in da for v in n], [v for n in db for v in n], spec, alpha=alpha, a_name="before",
                  b_name="after")
        return c, Evidence(*sides, "seeds")
    diff = mean_b - mean_a
    layout = two_way([da, db])
    n_a, n_b = sides[0].values / len(da), sides[1].values / len(db)
    per_night = (sides[0].values + sides[1].values) / (len(da) + len(db))
    if layout is not None and layout.residual > 0:
        # no night effect shown (F-test at POOL_LEVEL): the residual is fresh seed noise, as a night mean's spread
        # is then, and adds its degrees of freedom
        if float(_sp.fdtrc(df, layout.residual_df, per_night * var / layout.residual)) >= POOL_LEVEL:
            var = (df * var + layout.residual_df * layout.residual / per_night) / (df + layout.residual_df)
            df += layout.residual_df
    between = var * (1.0 / len(ma) + 1.0 / len(mb))
    seeds = layout.seed_var * (1.0 / n_a + 1.0 / n_b) if layout is not None else 0.0
    se = math.sqrt(between + seeds)
    if seeds > 0:
        assert layout is not None
        df = satterthwaite_df([between, seeds], [df, layout.seed_df])
    base = dict(metric=spec.name, a="before", b="after", goal=spec.goal, min_effect=spec.min_effect, alpha=alpha,
                n_a=len(ma), n_b=len(mb), mean_a=mean_a, mean_b=mean_b, sd_a=sd_a, sd_b=sd_b, diff=diff,
                rel_diff=diff / abs(mean_a) if mean_a else None, ci_low=None, ci_high=None, design="nights",
                method=f"t on {len(ma)} + {len(mb)} distinct night means, df {df:.3g}")
    # Welch's comparison of a t statistic (seed advice as for Welch's test on the night means, in nights a side);
    # no power is quoted, as none is modelled for nights that share seeds
    c = Welch().t_comparison(base, se, float(df), spec, alpha, None)
    return c, Evidence(*sides, "nights")


def _segment(nights: Sequence[Sequence[float]], positions: Sequence[int], pen: float) -> list[int]:
    """PELT over the nights at `positions`; returns the indices into `positions` where a new segment starts."""
    import ruptures as rpt

    signal = np.array([[len(nights[p]), math.fsum(nights[p]), math.fsum(v * v for v in nights[p])]
                       for p in positions], dtype=float)
    if len(positions) < 2:
        return []
    algo = rpt.Pelt(custom_cost=_night_cost(), min_size=1, jump=1).fit(signal)
    return [b for b in algo.predict(pen=pen) if b < len(positions)]


def _confirm(nights: Sequence[Sequence[float]], kept: Sequence[int], starts: list[int], spec: MetricSpec,
             alpha: float) -> list[Change]:
    """Test each boundary on its neighbouring segments; drop the unconfirmed one with the largest p (the one its
    verdict uses) and repeat."""
    starts = sorted(starts)
    while starts:
        edges = [0, *starts, len(kept)]
        changes = []
        for j in range(1, len(edges) - 1):
            lo, mid, hi = edges[j - 1], edges[j], edges[j + 1]
            c, evidence = segment_test([nights[p] for p in kept[lo:mid]], [nights[p] for p in kept[mid:hi]], spec,
                                       alpha)
            changes.append(Change(kept[mid], (kept[lo], kept[mid - 1] + 1), (kept[mid], kept[hi - 1] + 1), c,
                                  evidence))
        weak = [(c.comparison.p_used if c.comparison.p_used is not None else 2.0, i)
                for i, c in enumerate(changes) if c.verdict not in ("regressed", "improved")]
        if not weak:
            return changes
        starts.pop(max(weak)[1])
    return []


def detect_changes(nights: Sequence[Sequence[float]], spec: MetricSpec, alpha: float = 0.05,
                   penalty: float = PENALTY) -> Segmentation:
    """Changes in one series: `nights[i]` holds night i's per-seed values (empty when it has none)."""
    kept = [i for i, vals in enumerate(nights) if len(vals)]
    var = pooled_variance([nights[i] for i in kept])
    if var is None or var <= 0:
        why = ("no night has two values: the seed-to-seed spread is unknown" if var is None else
               "no seed-to-seed variance within any night: a change cannot be tested")
        return Segmentation((), reason=why)
    total = sum(len(nights[i]) for i in kept)
    per_night = total / len(kept)
    pen = penalty * per_night * night_mean_variance([nights[i] for i in kept]) * math.log(max(total, 2))
    outliers: list[int] = []
    starts: list[int] = []
    for _ in range(MAX_PASSES):
        starts = _segment(nights, kept, pen)
        edges = [0, *starts, len(kept)]
        short = [p for j in range(len(edges) - 1) if edges[j + 1] - edges[j] < MIN_NIGHTS
                 for p in kept[edges[j]:edges[j + 1]]]
        if not short or len(short) >= len(kept) - 1:
            break
        outliers += short
        kept = [p for p in kept if p not in short]
    candidates = tuple(kept[s] for s in starts)
    changes = _confirm(nights, kept, starts, spec, alpha)
    return Segmentation(tuple(changes), tuple(sorted(outliers)), candidates)
