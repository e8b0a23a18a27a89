"""How many seeds a suite needs (`plan`) and how its test behaves on its own data (`calibrate`).

`plan` takes per-seed spreads from a pilot (a report, a baseline, a run directory or a short run) and gives the
seeds per side for an 80% and a 90% chance that a true difference of twice `min_effect` is reported `regressed`
under the verdict's own rule (the interval wholly beyond `min_effect`: `stats.Design`), integrating over the
sample variances with Welch's degrees of freedom (or n - 1 for the paired design). `calibrate` resamples
observed per-seed values: A/A comparisons (both sides drawn from one variant's values) estimate the false-alarm
rate, the same with one side shifted by twice `min_effect` the power of the verdict, at the suite's seeds and
test. Imports neither torch nor Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normreg.choices import DESIGNS, check_choice
from normreg.errors import InputError, ResultsError
from normreg.fileio import read_json
from normreg.judge.designs import get
from normreg.judge.resultset import ResultSet, load_result_set
from normreg.judge.sequential import simulate
from normreg.judge.stats import DESIGN_EFFECT, design_effect, mean_sd, smoothed_draws
from normreg.suite.spec import MetricSpec, SeedPlan, Seeds, load_suite


@dataclass(frozen=True)
class PlanRow:
    variant: str
    metric: str
    min_effect: float
    n_pilot: int
    sd_a: float | None  # the reference's per-seed spread
    sd_b: float | None
    sd_diff: float | None  # paired design: spread of per-seed differences
    seeds_80: int | None  # seeds per side for an 80% chance of `regressed` at twice min_effect; None: over the limit
    seeds_90: int | None
    note: str = ""


@dataclass(frozen=True)
class Plan:
    suite: str
    source: str
    alpha: float
    design: str
    rows: tuple[PlanRow, ...]
    limit: int = 1000


def plan(suite_name: str, reference: str, variants: Sequence[str], metrics: Sequence[MetricSpec],
         pilot: ResultSet, *, alpha: float = 0.05, design: str = "welch", limit: int = 1000) -> Plan:
    """Seeds per side each (variant, metric) pair check needs so that a true difference of twice its
    min_effect is reported `regressed` 80% (90%) of the time.

    The pilot's spreads are taken as the truth; with few pilot seeds they are themselves uncertain (a
    3-seed spread can be off by a factor of two), so treat the answer as a first estimate.
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
            note = "" if v != reference else "the reference alone: both sides take its spread"
            _, sd_a = mean_sd([a[s] for s in sorted(a)])
            _, sd_b = mean_sd([b[s] for s in sorted(b)])
            common = sorted(set(a) & set(b))
            sd_diff = None
            if design == "paired" and v != reference:
                _, sd_diff = mean_sd([b[s] - a[s] for s in common])
            n_pilot = min(len(a), len(b))
            if sd_a is None or sd_b is None:
                rows.append(PlanRow(v, m.name, m.min_effect, n_pilot, sd_a, sd_b, sd_diff, None, None,
                                    "the pilot has fewer than two values on a side: run more pilot seeds"))
                continue
            if m.min_effect <= 0:
                rows.append(PlanRow(v, m.name, m.min_effect, n_pilot, sd_a, sd_b, sd_diff, None, None,
                                    "min_effect is 0: no difference is too small to matter; set min_effect"))
                continue
            use = design
            if design == "paired" and sd_diff is None:
                use, note = "welch", "too few paired seeds in the pilot: planned as Welch"
            pilot_values = (np.array([a[s] for s in sorted(a)]), np.array([b[s] for s in sorted(b)]))
            found = tuple(get(use).seeds_for(design_effect(m.min_effect), sd_a, sd_b, alpha, target,
                                             sd_diff=sd_diff if use == "paired" else None, delta=m.min_effect,
                                             limit=limit, pilot=pilot_values) for target in (0.8, 0.9))
            rows.append(PlanRow(v, m.name, m.min_effect, n_pilot, sd_a, sd_b, sd_diff, found[0], found[1], note))
    if not rows:
        raise InputError(f"{pilot.source}: holds none of the suite's variants ({', '.join(variants)})")
    return Plan(suite_name, pilot.source, alpha, design, tuple(rows), limit)


@dataclass(frozen=True)
class CalibrationRow:
    variant: str
    metric: str
    n_values: int
    false_alarm: float  # share of A/A comparisons that came out regressed or improved (NaN: too few values)
    power: float  # share of comparisons shifted by twice min_effect that came out regressed
    warnings: tuple[str, ...] = ()
    false_alarm_se: float = math.nan  # how much the estimate would move with another pilot of the same size
    power_se: float = math.nan


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
PILOTS = 40  # bootstrap pilots behind each estimate's uncertainty


def resampled_rates(x: np.ndarray, spec: MetricSpec, *, n_max: int, reps: int, rng: np.random.Generator,
                    alpha: float = 0.05, design: str = "welch", stages: Sequence[int] = (),
                    spending: str = "pocock") -> tuple[float, float]:
    """False-alarm rate (A/A: both sides from `x`) and the rate of `regressed` with the candidate shifted by
    twice min_effect, under the suite's test and verdict rule. Paired: `x` holds centred per-seed differences."""
    draw_b = smoothed_draws(x, (reps, n_max), rng)
    draw_a = np.zeros_like(draw_b) if design == "paired" else smoothed_draws(x, (reps, n_max), rng)
    kw = dict(alpha=alpha, design=design, stages=tuple(stages) or None, spending=spending)
    codes, _ = simulate(draw_a, draw_b, spec, **kw)  # type: ignore[arg-type]
    false_alarm = float(np.mean(codes < 2))
    if spec.min_effect <= 0:
        return false_alarm, math.nan
    effect = design_effect(spec.min_effect)
    codes, _ = simulate(draw_a, draw_b + (-effect if spec.goal == "max" else effect), spec, **kw)  # type: ignore[arg-type]
    return false_alarm, float(np.mean(codes == 0))


def _spread(estimates: np.ndarray, reps: int) -> float:
    """Spread of rate estimates over bootstrap pilots, without the Monte Carlo noise of `reps` resamples each."""
    if np.isnan(estimates).all():
        return math.nan
    mc = float(np.mean(estimates * (1 - estimates))) / reps
    return math.sqrt(max(float(np.var(estimates, ddof=1)) - mc, 0.0))


def calibrate(rs: ResultSet, specs: Mapping[str, MetricSpec], *, seeds: int, alpha: float = 0.05,
              design: str = "welch", stages: Sequence[int] = (), spending: str = "pocock", reps: int = 2000,
              reference: str | None = None, random_seed: int = 0) -> Calibration:
    """Resample each variant's per-seed values to estimate the false-alarm rate and power of the suite's test.

    Welch: both sides are drawn from one variant's values. Paired: per-seed differences from the reference,
    centred on zero, are drawn. Draws come from a smoothed, variance-corrected bootstrap (`smoothed_draws`).
    Each estimate's uncertainty is its spread over bootstrap pilots of the same size (Monte Carlo noise
    removed). `stages`, when given, stages the seeds as `run` does.
    """
    rng = np.random.default_rng(random_seed)
    n_max = stages[-1] if stages else seeds
    kw = dict(n_max=n_max, alpha=alpha, design=design, stages=stages, spending=spending)
    rows: list[CalibrationRow] = []
    for v in sorted(rs.values):
        if design == "paired" and (reference is None or v == reference or reference not in rs.values):
            continue
        for m, by_seed in sorted(rs.values[v].items()):
            spec = specs.get(m)
            if spec is None:
                continue
            if design == "paired":
                ref = rs.values[reference].get(m, {})  # type: ignore[index]
                common = sorted(set(ref) & set(by_seed))
                x = np.array([by_seed[s] - ref[s] for s in common])
                x = x - x.mean() if len(x) else x
            else:
                x = np.array([by_seed[s] for s in sorted(by_seed)])
            if len(x) < MIN_CALIBRATION_VALUES:
                rows.append(CalibrationRow(v, m, len(x), math.nan, math.nan, (
                    f"only {len(x)} values: too few to calibrate (at least {MIN_CALIBRATION_VALUES}); the rates "
                    "would describe these few values more than the test; run more seeds",)))
                continue
            false_alarm, pw = resampled_rates(x, spec, reps=reps, rng=rng, **kw)  # type: ignore[arg-type]
            inner = max(reps // 4, 100)
            pilots = np.array([resampled_rates(x[rng.integers(0, len(x), len(x))], spec, reps=inner, rng=rng,
                                               **kw) for _ in range(PILOTS)])  # type: ignore[arg-type]

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
            if len(x) < 8:
                warn.append(f"estimated from only {len(x)} values: a rough estimate (see the ± column)")
            rows.append(CalibrationRow(v, m, len(x), false_alarm, pw, tuple(warn), _spread(pilots[:, 0], inner),
                                       _spread(pilots[:, 1], inner)))
    if not rows:
        raise InputError(f"{rs.source}: no variant has values of a known metric to resample"
                         + (" (paired: each variant needs seeds shared with the reference)" if design == "paired"
                            else ""))
    return Calibration(rs.source, alpha, design, seeds, tuple(stages), spending, reps, tuple(rows))


def settings_from(path_spec: str) -> dict:
    """The test settings a report records for its one suite (seeds, alpha, design, stages, spending, reference);
    empty when the file is not a single-suite report."""
    path = Path(path_spec.partition("#")[0])
    if path.is_dir() or path.suffix.lower() == ".csv":
        return {}
    try:
        data = read_json(path)
    except ResultsError:
        return {}
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


# ------------------------------------------------------------------------------- the commands' entry points


PilotRun = Callable[[Path, int], ResultSet]
"""Runs a short pilot of a suite file with N seeds and returns its per-seed values, leaving no run directory
behind. The caller supplies it (`normreg.pipeline.pilot_run`), so planning never depends on how suites are run."""


def plan_suite(suite_path: Path, *, pilot: str | None = None, baselines: Path = Path("baselines"),
               pilot_seeds: int = 3, overrides: Sequence[str] = (), run_pilot: PilotRun | None = None) -> Plan:
    """`normreg plan`: spreads from `pilot`, else the stored baseline, else a short pilot run by `run_pilot`."""
    s = load_suite(suite_path, overrides)
    source = pilot
    stored = baselines / f"{s.name}.json"
    if source is None and stored.exists():
        source = str(stored)
    if source is None:
        if run_pilot is None:
            raise InputError(f"{suite_path}: no pilot given and no stored baseline in {baselines}; give --pilot "
                             "(a report, baseline, run directory or tidy CSV)")
        values = run_pilot(suite_path, pilot_seeds)
    else:
        values = load_result_set(source)
        values.refuse_non_finite(m.name for m in s.metrics)
    return plan(s.name, s.reference, [v.name for v in s.variants], s.metrics, values,
                alpha=s.stats.alpha, design=s.stats.design)


def calibrate_source(source: str, *, suite: Path | None = None, seeds: Seeds = None,
                     alpha: float | None = None, design: str | None = None, min_effect: float | None = None,
                     reps: int = 2000, random_seed: int = 0) -> Calibration:
    """`normreg calibrate`: settings from `suite` when given, else from the file, else the defaults."""
    rs = load_result_set(source)
    cfg = settings_from(source)
    specs = dict(rs.specs)
    if suite is not None:
        s = load_suite(suite)
        cfg = {"alpha": s.stats.alpha, "design": s.stats.design, "reference": s.reference,
               "seeds": len(s.seeds), "spending": s.stats.spending,
               **({"stages": s.seed_plan.stages} if s.seed_plan else {})}
        specs.update({m.name: m for m in s.metrics})
    if seeds == "auto":
        cfg["stages"] = SeedPlan().stages
    elif seeds is not None:
        cfg["seeds"] = int(seeds)
        cfg.pop("stages", None)
    if min_effect is not None:
        specs = {m: MetricSpec(m, sp.goal, min_effect) for m, sp in specs.items()}
    if not specs:  # a tidy CSV declares no metric: the user must say what matters
        if min_effect is None:
            raise InputError(f"{source}: the file declares no metric's goal or min_effect; give --suite or "
                             "--min-effect")
        specs = {m: MetricSpec(m, "max", min_effect) for ms in rs.values.values() for m in ms}
    rs.refuse_non_finite(specs)
    chosen = check_choice("--design", design or cfg.get("design", "welch"), DESIGNS)
    n = cfg.get("seeds") or max(len(x) for ms in rs.values.values() for x in ms.values())
    return calibrate(rs, specs, seeds=int(n), alpha=alpha or cfg.get("alpha", 0.05), design=chosen,
                     stages=cfg.get("stages", ()), spending=cfg.get("spending", "pocock"), reps=reps,
                     reference=cfg.get("reference"), random_seed=random_seed)
