"""How many seeds a suite needs (`plan`) and how its test behaves on its own data (`calibrate`).

`plan` takes per-seed spreads from a pilot (a report, a baseline, a run directory or a short run) and gives the
seeds per side for 80% and 90% power to find `min_effect`, from the noncentral t distribution with Welch's
degrees of freedom (or n - 1 for the paired design). `calibrate` resamples observed per-seed values: A/A
comparisons (both sides drawn from one variant's values) estimate the false-alarm rate, the same with one side
shifted by `min_effect` estimates the power, at the suite's seeds and test. Imports neither torch nor Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normreg.choices import DESIGNS, check_choice
from normreg.errors import InputError
from normreg.judge.resultset import ResultSet, load_result_set
from normreg.judge.sequential import simulate
from normreg.judge.stats import mean_sd, seeds_for
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
    seeds_80: int | None  # seeds per side for 80% power at min_effect; None: more than the limit
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
    """Seeds per side each (variant, metric) pair check needs for 80% and 90% power at its min_effect.

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
            found = tuple(seeds_for(m.min_effect, sd_a, sd_b, alpha, target, design=use, sd_diff=sd_diff,
                                    limit=limit) for target in (0.8, 0.9))
            rows.append(PlanRow(v, m.name, m.min_effect, n_pilot, sd_a, sd_b, sd_diff, found[0], found[1], note))
    if not rows:
        raise InputError(f"{pilot.source}: holds none of the suite's variants ({', '.join(variants)})")
    return Plan(suite_name, pilot.source, alpha, design, tuple(rows), limit)


@dataclass(frozen=True)
class CalibrationRow:
    variant: str
    metric: str
    n_values: int
    false_alarm: float  # share of A/A comparisons that came out regressed or improved
    power: float  # share of comparisons shifted by min_effect found significantly worse
    warnings: tuple[str, ...] = ()


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


def calibrate(rs: ResultSet, specs: Mapping[str, MetricSpec], *, seeds: int, alpha: float = 0.05,
              design: str = "welch", stages: Sequence[int] = (), spending: str = "pocock", reps: int = 2000,
              reference: str | None = None, random_seed: int = 0) -> Calibration:
    """Resample each variant's per-seed values to estimate the false-alarm rate and power of the suite's test.

    Welch: both sides are drawn with replacement from one variant's values. Paired: per-seed differences
    from the reference, centred on zero, are drawn. `stages`, when given, stages the seeds as `run` does.
    """
    rng = np.random.default_rng(random_seed)
    n_max = stages[-1] if stages else seeds
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
            if len(x) < 3:
                continue
            draw_b = rng.choice(x, size=(reps, n_max))
            draw_a = np.zeros_like(draw_b) if design == "paired" else rng.choice(x, size=(reps, n_max))
            kw = dict(alpha=alpha, design=design, stages=stages or None, spending=spending)
            codes, _ = simulate(draw_a, draw_b, spec, **kw)  # type: ignore[arg-type]
            false_alarm = float(np.mean(codes < 2))
            shift = -spec.min_effect if spec.goal == "max" else spec.min_effect
            sig = MetricSpec(m, spec.goal, 0.0)
            codes, _ = simulate(draw_a, draw_b + shift, sig, **kw)  # type: ignore[arg-type]
            pw = float(np.mean(codes == 0)) if spec.min_effect > 0 else math.nan
            warn = []
            mc = 2.0 * math.sqrt(alpha * (1 - alpha) / reps)
            if false_alarm > alpha + max(0.02, mc):
                warn.append(f"false alarms {false_alarm:.3f} exceed alpha {alpha:g}: the per-seed values are far "
                            "from normal (outliers, collapsed seeds); add seeds or investigate the outliers")
            if spec.min_effect > 0 and pw < 0.8:
                warn.append(f"power {pw:.2f} at min_effect {spec.min_effect:g} is below 0.8: a real regression "
                            "of that size is often missed; run `normreg plan` for the seeds it needs")
            if spec.min_effect <= 0:
                warn.append("min_effect is 0: power is undefined; set the smallest difference that matters")
            if len(x) < 8:
                warn.append(f"estimated from only {len(x)} values: a rough estimate")
            rows.append(CalibrationRow(v, m, len(x), false_alarm, pw, tuple(warn)))
    if not rows:
        raise InputError(f"{rs.source}: no variant has three or more values of a known metric to resample"
                         + (" (paired: each variant needs seeds shared with the reference)" if design == "paired"
                            else ""))
    return Calibration(rs.source, alpha, design, seeds, tuple(stages), spending, reps, tuple(rows))


def settings_from(path_spec: str) -> dict:
    """The test settings a report records for its one suite (seeds, alpha, design, stages, spending, reference);
    empty when the file is not a single-suite report."""
    import json
    from pathlib import Path

    path = Path(path_spec.partition("#")[0])
    if path.is_dir() or path.suffix.lower() == ".csv":
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
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


PilotRun = Callable[[Path, int], str]
"""Runs a short pilot of a suite file with N seeds and returns where its per-seed values are (a run directory).
The caller supplies it (`normreg.pipeline.pilot_run`), so planning never depends on how suites are run."""


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
        source = run_pilot(suite_path, pilot_seeds)
    return plan(s.name, s.reference, [v.name for v in s.variants], s.metrics, load_result_set(source),
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
    chosen = check_choice("--design", design or cfg.get("design", "welch"), DESIGNS)
    n = cfg.get("seeds") or max(len(x) for ms in rs.values.values() for x in ms.values())
    return calibrate(rs, specs, seeds=int(n), alpha=alpha or cfg.get("alpha", 0.05), design=chosen,
                     stages=cfg.get("stages", ()), spending=cfg.get("spending", "pocock"), reps=reps,
                     reference=cfg.get("reference"), random_seed=random_seed)
