"""Curve checks: two variants' learning curves compared across seeds, epoch by epoch, with one error rate per metric.

Every run records each epoch's logged values (`RunResult.history`). A curve check takes one per-epoch metric,
the seeds both variants finished, and at every epoch compares the variant with the reference by the suite's own
pair test (`epoch_comparison`: the design's `compare`, with its verdict rule, min_effect and intervals), at one
per-epoch level chosen so that the chance of any false "parted" epoch, over all the epochs of the metric, is at
most the suite's alpha:

* **max-statistic level (Westfall-Young, parametric).** Under "no difference at any epoch" the smallest of the E
  per-epoch p-values is at most L with probability alpha for the L found here. Its distribution is simulated:
  new seeds are drawn as Gaussian combinations of the observed seeds' centred curves (each variant's own; both
  curves of a seed together for a design that pairs seeds), so the simulated curves have the spreads and the
  epoch-to-epoch correlation estimated from the seeds, and each simulated pair of curves is judged by the
  design's own array test. Correlated epochs (curves are random walks, not independent draws) give a level close
  to alpha; nearly independent epochs give one close to Bonferroni's alpha / E, which is where the level is
  floored: Bonferroni holds whatever the correlation, so the simulation can only make the check more powerful.
* The intervals at that level form a simultaneous band over the epochs: with probability 1 - alpha it holds the
  true difference at every epoch. A verdict that needs its interval beyond min_effect (the margin rule) is then
  false at some epoch with probability at most alpha, whatever the true curves within the margin.

`benchmarks/curves.py` measures the false "parted" rate and the power by simulation; `docs/curves.md` has them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from normreg.choices import DEFAULT_DESIGN, SIGNIFICANT
from normreg.execution.results import RunResult
from normreg.fileio import clean_json
from normreg.judge.designs import compare_values
from normreg.judge.designs import get as get_design
from normreg.judge.resultset import histories_from_runs
from normreg.judge.stats import Comparison, array_verdicts, as_record
from normreg.suite.model import MetricSpec, Suite

LEVEL_REPS = 2000  # simulated pairs of curves for the per-epoch level (its error rate is alpha ± 0.005)
LEVEL_SEED = 20240  # the simulation's random seed: a curve check of the same values always gives the same level

Curves = Mapping[int, Sequence[float]]  # seed -> the metric's value at each epoch
# What a report keeps of each epoch's comparison (beside the epoch's number), and reads back
EPOCH_FIELDS = ("n_a", "n_b", "mean_a", "mean_b", "sd_a", "sd_b", "diff", "ci_low", "ci_high", "ci_level", "p_value",
                "p_equivalence", "p_margin", "verdict", "short_of_margin", "reason")


def epoch_comparison(a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, level: float,
                     design: str, a_name: str, b_name: str) -> Comparison:
    """The verdict at one epoch: the design's pair test at the per-epoch `level`. Every rule of the pair test
    (min_effect, the margin, identical and exact values) applies to curves through this one call."""
    return compare_values(a, b, spec, alpha=level, design=design, a_name=a_name, b_name=b_name)


def array_epoch_verdicts(xa: np.ndarray, xb: np.ndarray, spec: MetricSpec, level: float, design: str) -> np.ndarray:
    """`epoch_comparison`'s verdicts for many simulated suites at once, as indices into `stats.VERDICT_CODES`:
    `xa`, `xb` are (..., epochs, seeds); the design's array test and `stats.array_verdicts` apply the same rule as
    its `compare` (the benchmark simulates curve checks with this; a test holds the two to the same verdicts)."""
    diff, p, p_eq = get_design(design).array_test(xa, xb, spec.min_effect)
    return array_verdicts(diff, p, p_eq, spec.min_effect, spec.goal, level, level)


def pairs_seeds(design: str) -> bool:
    """Whether the design's test pairs the two sides by seed (`StatTest.pairs_by_seed`): the simulation must then
    keep each seed's two curves together, and only the seeds both sides have are compared."""
    return get_design(design).pairs_by_seed


def _draws(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, seeds, columns) Gaussian draws with the covariance of the rows of `x` (seeds, columns): each simulated
    seed a random combination of the observed seeds' centred rows."""
    n = x.shape[0]
    w = rng.standard_normal((reps, n, n)) / math.sqrt(n - 1)
    return np.einsum("rsk,ke->rse", w, x - x.mean(0))


def simultaneous_level(xa: np.ndarray, xb: np.ndarray, alpha: float, design: str, *, reps: int = LEVEL_REPS,
                       seed: int = LEVEL_SEED) -> float:
    """The per-epoch level L at which the smallest of the E per-epoch p-values falls below L with probability
    `alpha` when the curves do not differ; `xa`, `xb` are (seeds, epochs) (for a paired design row i of each is
    the same seed).

    Simulated seeds are Gaussian combinations of the observed seeds' centred curves, so they have the spreads and
    the epoch-to-epoch correlations estimated from the seeds: each side on its own, or, for a design that pairs
    seeds, both curves of a seed together. Each simulated pair is judged by the design's array test. The result
    lies in [alpha / E, alpha]: Bonferroni's level holds for any correlation, one epoch alone needs no correction.
    """
    epochs = xa.shape[1]
    if epochs <= 1:
        return alpha
    floor = alpha / epochs
    if min(len(xa), len(xb)) < 2 or not (np.any(xa - xa.mean(0)) or np.any(xb - xb.mean(0))):
        return floor
    rng = np.random.default_rng(seed)
    if pairs_seeds(design):
        joint = _draws(np.concatenate([xa, xb], axis=1), reps, rng)
        sa, sb = joint[..., :epochs], joint[..., epochs:]
    else:
        sa, sb = _draws(xa, reps, rng), _draws(xb, reps, rng)
    _, p, _ = get_design(design).array_test(np.moveaxis(sa, 1, 2), np.moveaxis(sb, 1, 2), 0.0)  # (reps, E, seeds)
    smallest = np.nan_to_num(np.asarray(p, dtype=float), nan=1.0).min(axis=1)  # an epoch with no spread: no alarm
    smallest.sort()
    k = int(math.floor(alpha * reps))  # at most k of the reps fall below the k-th smallest
    level = float(smallest[k]) if k < reps else alpha
    return min(alpha, max(floor, level))


@dataclass(frozen=True)
class CurveCheck:
    """One metric's curves, variant `b` against reference `a`, epoch by epoch (`epochs[i]` is epoch i + 1).

    `level` is the per-epoch level that keeps the chance of any false "parted" epoch at `alpha`; each epoch's
    comparison was made at it. `note` says why no epoch was compared (no curve, too few seeds) or what was left out.
    """

    suite: str
    metric: str
    a: str
    b: str
    goal: str
    min_effect: float
    alpha: float
    design: str
    level: float | None
    seeds: tuple[int, ...]
    epochs: tuple[Comparison, ...]
    fail_on_parting: bool = False  # the suite's `curves: {metrics: [...], fail: true}`
    note: str | None = None

    @property
    def n_epochs(self) -> int:
        return len(self.epochs)

    @property
    def parted(self) -> tuple[int, ...]:
        """The epochs (from 1) where the curves part: the verdict is a difference beyond min_effect."""
        return tuple(i + 1 for i, c in enumerate(self.epochs) if c.verdict in SIGNIFICANT)

    @property
    def equivalent(self) -> tuple[int, ...]:
        """The epochs (from 1) where the curves are shown to lie within ±min_effect (or are identical)."""
        return tuple(i + 1 for i, c in enumerate(self.epochs) if c.verdict in ("equivalent", "identical"))

    @property
    def first_parted(self) -> int | None:
        return self.parted[0] if self.parted else None

    @property
    def direction(self) -> str | None:
        """"regressed", "improved" or "both" over the parted epochs; None where the curves never part."""
        kinds = {self.epochs[e - 1].verdict for e in self.parted}
        return None if not kinds else kinds.pop() if len(kinds) == 1 else "both"

    @property
    def failed(self) -> bool:
        """Curve checks inform; they fail a run only where the suite asks (`curves: {metrics: [...], fail: true}`)."""
        return self.fail_on_parting and bool(self.parted)

    @property
    def summary(self) -> str:
        """One line: where the curves part, or that they do not."""
        of = f"of {self.n_epochs}"
        if not self.epochs:
            return f"{self.b} vs {self.a} in {self.metric}: not compared ({self.note})"
        if self.parted:
            how = {"regressed": "worse", "improved": "better", "both": "worse and better"}[self.direction or "both"]
            return (f"{self.b} parts from {self.a} in {self.metric} from epoch {self.first_parted} {of} "
                    f"({how} beyond ±{self.min_effect:g} at {len(self.parted)} epoch{'s' * (len(self.parted) > 1)})")
        if len(self.equivalent) == self.n_epochs:
            return f"{self.b} stays with {self.a} in {self.metric}: within ±{self.min_effect:g} at every epoch {of}"
        shown = f"; within ±{self.min_effect:g} at {len(self.equivalent)} {of}" if self.equivalent else ""
        return f"{self.b} does not part from {self.a} in {self.metric} at any epoch {of}{shown}"

    def to_json(self) -> dict:
        epochs = [{"epoch": i + 1, **{k: v for k, v in as_record(c).items() if k in EPOCH_FIELDS}}
                  for i, c in enumerate(self.epochs)]
        return clean_json({
            "suite": self.suite, "metric": self.metric, "a": self.a, "b": self.b, "goal": self.goal,
            "min_effect": self.min_effect, "alpha": self.alpha, "design": self.design, "level": self.level,
            "seeds": list(self.seeds), "n_epochs": self.n_epochs, "first_parted": self.first_parted,
            "parted": list(self.parted), "equivalent": list(self.equivalent), "direction": self.direction,
            "fail_on_parting": self.fail_on_parting, "failed": self.failed, "summary": self.summary,
            "note": self.note, "epochs": epochs,
        })

    @classmethod
    def from_json(cls, d: Mapping) -> CurveCheck:
        """A curve check read back from a report (the per-epoch comparisons keep the fields `to_json` writes)."""
        spec = dict(metric=d["metric"], a=d["a"], b=d["b"], goal=d["goal"], min_effect=d["min_effect"],
                    alpha=d["level"] if d.get("level") is not None else d["alpha"], design=d["design"])
        epochs = tuple(Comparison(**spec, **{k: e[k] for k in EPOCH_FIELDS if k in e}, rel_diff=None, t=None, df=None)
                       for e in d.get("epochs", []))
        return cls(suite=d["suite"], metric=d["metric"], a=d["a"], b=d["b"], goal=d["goal"],
                   min_effect=float(d["min_effect"]), alpha=float(d["alpha"]), design=d["design"],
                   level=d.get("level"), seeds=tuple(int(s) for s in d.get("seeds", ())), epochs=epochs,
                   fail_on_parting=bool(d.get("fail_on_parting", False)), note=d.get("note"))


def compare_curves(a: Curves, b: Curves, spec: MetricSpec, *, alpha: float = 0.05, design: str = DEFAULT_DESIGN,
                   a_name: str = "a", b_name: str = "b", suite: str = "", fail: bool = False) -> CurveCheck:
    """Compare candidate curves `b` with reference curves `a` ({seed: per-epoch values}) at every epoch.

    Every seed of each side is used (only the seeds both sides have, for a design that pairs seeds), up to the
    last epoch every one of their curves reached; each epoch is judged by `epoch_comparison` at the level
    `simultaneous_level` finds for these curves.
    """
    paired = pairs_seeds(design)
    seeds_a = sorted(set(a) & set(b)) if paired else sorted(a)
    seeds_b = seeds_a if paired else sorted(b)
    seeds = tuple(sorted(set(seeds_a) | set(seeds_b)))
    common = dict(suite=suite, metric=spec.name, a=a_name, b=b_name, goal=spec.goal, min_effect=spec.min_effect,
                  alpha=alpha, design=design, seeds=seeds, fail_on_parting=fail)
    if min(len(seeds_a), len(seeds_b)) < 2:
        what = "seeds with a curve on both sides" if paired else f"seeds with a curve on {a_name} and on {b_name}"
        return CurveCheck(**common, level=None, epochs=(),
                          note=f"{len(seeds_a)} and {len(seeds_b)} {what}; a curve check needs two on each")
    lengths = [len(a[s]) for s in seeds_a] + [len(b[s]) for s in seeds_b]
    epochs = min(lengths)
    if epochs == 0:
        return CurveCheck(**common, level=None, epochs=(), note="no epoch was logged")
    note = None
    if max(lengths) > epochs:
        note = f"epochs after {epochs} left out: not every seed's curve reached them"
    xa = np.array([[float(a[s][e]) for e in range(epochs)] for s in seeds_a])
    xb = np.array([[float(b[s][e]) for e in range(epochs)] for s in seeds_b])
    level = simultaneous_level(xa, xb, alpha, design)
    compared = tuple(epoch_comparison(dict(zip(seeds_a, xa[:, e])), dict(zip(seeds_b, xb[:, e])), spec,
                                      level=level, design=design, a_name=a_name, b_name=b_name)
                     for e in range(epochs))
    return CurveCheck(**common, level=level, epochs=compared, note=note)


def curve_checks(suite: Suite, runs: Sequence[RunResult], ignore_expect: bool = False) -> list[CurveCheck]:
    """Every curve check a suite declares (`curves:`): each variant against the reference, on each curve metric.
    Variants whose runs are expected to fail are left out, as their pair checks are."""
    checks: list[CurveCheck] = []
    histories = histories_from_runs(runs, qualify=False)  # variant -> metric -> seed -> per-epoch values
    for v in suite.variants:
        if v.name == suite.reference or (not ignore_expect and suite.expects_failure(v.name)):
            continue
        for spec in suite.curves.metrics:
            ref = histories.get(suite.reference, {}).get(spec.name, {})
            mine = histories.get(v.name, {}).get(spec.name, {})
            check = compare_curves(ref, mine, spec, alpha=suite.stats.alpha, design=suite.stats.design,
                                   a_name=suite.reference, b_name=v.name, suite=suite.name, fail=suite.curves.fail)
            if not ref or not mine:
                missing = " and ".join(n for n, c in ((suite.reference, ref), (v.name, mine)) if not c)
                check = replace(check, note=f"no run of {missing} logged {spec.name} per epoch (log it with "
                                            "on_epoch=True, or in validation)")
            checks.append(check)
    return checks
