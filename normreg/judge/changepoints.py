"""Change points: the nights where a metric's distribution of per-seed values moved, each confirmed by a test.

Detection uses `ruptures` (PELT, exact penalised segmentation) with a cost on the per-seed values in which a
segment boundary can only fall between two nights: each night is summarised by its count, sum and sum of squares,
so the cost of a segment is the sum of squared deviations of all its per-seed values from their mean, exactly
ruptures' `l2` cost on the flattened values, but never cutting a night in two. The penalty is BIC-like,
`PENALTY * sigma^2 * log(number of values)`, with sigma^2 the pooled seed-to-seed variance within nights, so it
does not depend on the metric's scale; `PENALTY` is set so that fewer than 5% of 30-night series without a change
report one (see the tests).

A change must hold: a segment of one night (a night that differs and the next night returns) is a one-night
outlier, left out, and the detector runs again without it; so a change needs two nights after it to be seen.
Each remaining boundary is then confirmed with normreg's own two-sample test (`designs.welch.welch`) on the per-seed
values of the segment before against the segment after, at the suite's alpha and with the metric's
`min_effect`: only `regressed` or `improved` counts. Unconfirmed boundaries are dropped one at a time (the least
significant first) and the neighbours re-tested on the merged segments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from normreg.judge.designs.welch import welch
from normreg.judge.stats import Comparison
from normreg.suite.spec import MetricSpec

PENALTY = 3.0  # times sigma^2 * log(n values): the false-alarm rate over 30 nights stays under 5% (tests)
MAX_PASSES = 5  # rounds of leaving out one-night outliers


@dataclass(frozen=True)
class Change:
    """A confirmed change: from night `night` on (a position in the sequence given), the values moved.

    `comparison` is the two-sample test of the segment before (side a, nights `before`) against the segment
    after (side b, nights `after`); `before` and `after` are [start, end) positions, outliers left out.
    """

    night: int
    before: tuple[int, int]
    after: tuple[int, int]
    comparison: Comparison

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
    """Test each boundary on its neighbouring segments; drop the least significant unconfirmed one and repeat."""
    starts = sorted(starts)
    while starts:
        edges = [0, *starts, len(kept)]
        changes = []
        for j in range(1, len(edges) - 1):
            lo, mid, hi = edges[j - 1], edges[j], edges[j + 1]
            a = [v for p in kept[lo:mid] for v in nights[p]]
            b = [v for p in kept[mid:hi] for v in nights[p]]
            c = welch(a, b, spec, alpha=alpha, a_name="before", b_name="after")
            changes.append(Change(kept[mid], (kept[lo], kept[mid - 1] + 1), (kept[mid], kept[hi - 1] + 1), c))
        weak = [(c.comparison.p_value if c.comparison.p_value is not None else 2.0, i)
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
    pen = penalty * var * math.log(max(total, 2))
    outliers: list[int] = []
    starts: list[int] = []
    for _ in range(MAX_PASSES):
        starts = _segment(nights, kept, pen)
        edges = [0, *starts, len(kept)]
        single = [kept[edges[j]] for j in range(len(edges) - 1) if edges[j + 1] - edges[j] == 1]
        if not single or len(single) >= len(kept) - 1:
            break
        outliers += single
        kept = [p for p in kept if p not in single]
    candidates = tuple(kept[s] for s in starts)
    changes = _confirm(nights, kept, starts, spec, alpha)
    return Segmentation(tuple(changes), tuple(sorted(outliers)), candidates)
