"""`normreg plan` and `normreg calibrate`: load the suite, find the values (a pilot run, a stored baseline, a
report, a run directory or a CSV) and hand them to `judge.planning`, which never reads a suite file itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from normreg.choices import DEFAULT_DESIGN, DESIGNS, check_choice
from normreg.errors import InputError
from normreg.judge.planning import Calibration, Plan, calibrate, plan, settings_from
from normreg.judge.resultset import ResultSet, load_result_set
from normreg.suite.model import MetricSpec, SeedPlan, Seeds
from normreg.suite.spec import load_suite

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
    return plan(s.name, s.reference, list(s.variant_names), s.metrics, values,
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
    chosen = check_choice("--design", design or cfg.get("design", DEFAULT_DESIGN), DESIGNS)
    n = cfg.get("seeds") or max(len(x) for ms in rs.values.values() for x in ms.values())
    return calibrate(rs, specs, seeds=int(n), alpha=alpha or cfg.get("alpha", 0.05), design=chosen,
                     stages=cfg.get("stages", ()), spending=cfg.get("spending", "pocock"), reps=reps,
                     reference=cfg.get("reference"), random_seed=random_seed)
