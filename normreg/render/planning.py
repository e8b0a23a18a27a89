"""The terminal forms of `normreg plan` and `normreg calibrate`."""

from __future__ import annotations

from normreg.judge.designs import get
from normreg.judge.planning import Calibration, Plan, PlanRow
from normreg.judge.stats import DESIGN_EFFECT
from normreg.render.labels import number, text_table


def _seeds(n: int | None, r: PlanRow, many: str) -> str:
    return str(n) if n else (many if r.sd_a is not None and r.min_effect > 0 else "-")


def _chance(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def render_plan(p: Plan) -> str:
    head = ("variant", "metric", "min_effect", "pilot n", "sd ref", "sd var", "sd diff", "seed r", "seeds 80%",
            "seeds 90%", "sure of 80%", "below 0.5", "if sds exact")
    fmt = lambda x: number(x, 3)  # noqa: E731
    many = f">{p.limit}"
    rows = [(r.variant, r.metric, f"{r.min_effect:g}", str(r.n_pilot), fmt(r.sd_a), fmt(r.sd_b), fmt(r.sd_diff),
             "-" if r.correlation is None else f"{r.correlation:+.2f}", _seeds(r.seeds_80, r, many),
             _seeds(r.seeds_90, r, many), _chance(r.sure_80), _chance(r.below_half_80),
             _seeds(r.seeds_80_exact, r, many)) for r in p.rows]
    out = [f"Plan for {p.suite} from {p.source} (alpha {p.alpha:g}, {p.design} design; seeds per side for an "
           f"80% or 90% chance that a true difference of {DESIGN_EFFECT:g} x min_effect is reported regressed, on "
           "average over the true spreads the pilot leaves possible):", *text_table(head, rows)]
    notes = [f"  {r.variant} {r.metric}: {r.note}" for r in p.rows if r.note]
    if notes:
        out += ["Notes:", *notes]
    worst = max((r.seeds_80 for r in p.rows if r.seeds_80), default=None)
    if worst:
        out.append(f"To catch every {DESIGN_EFFECT:g} x min_effect 80% of the time: seeds: {worst} (or seeds: "
                   f"{{min: 3, max: {max(worst, 3)}}} to stop early where the gap is clear). A true difference of "
                   f"min_effect itself is reported regressed at most alpha / 2 ({p.alpha / 2:g}) of the time, "
                   "however many seeds run: the verdict needs it shown beyond min_effect.")
    out.append("How sure: a pilot's spreads are estimates. `sure of 80%` is the chance, given the pilot, that the "
               "power at the 80% seeds is at least 0.8, `below 0.5` that it is under 0.5; `if sds exact` is what the "
               "pilot's spreads would need if they were the true ones. A larger pilot (--pilot-seeds) narrows the gap.")
    return "\n".join(out)


def _estimate(x: float, se: float, digits: int) -> str:
    """A rate with its uncertainty (`0.050 ± 0.012`), or `-` when there is none (NaN)."""
    if x != x:
        return "-"
    return f"{x:.{digits}f}" + ("" if se != se else f" ± {se:.{digits}f}")


def render_calibration(c: Calibration) -> str:
    how = (f"staged seeds {', '.join(map(str, c.stages))} ({c.spending})" if c.stages else f"{c.seeds} seeds")
    out = [f"Calibration of {c.source}: {c.design} test at alpha {c.alpha:g}, {how} per side, {c.reps} resamples"]
    head = ("check", "metric", "values", "false alarms", f"power at {DESIGN_EFFECT:g} x min_effect")
    both = not get(c.design).pairs_by_seed  # a pair row draws from two variants' values
    rows = [(r.check, r.metric, f"{r.n_reference} / {r.n_values}" if r.reference is not None and both
             else str(r.n_values), _estimate(r.false_alarm, r.false_alarm_se, 3), _estimate(r.power, r.power_se, 2))
            for r in c.rows]
    out += text_table(head, rows)
    out.append("a -> b: a pair check, each side drawn from its own variant's values; (baseline): the variant against "
               "its own stored values. ± : how much each estimate would move with another pilot of the same size; "
               "power is the chance of `regressed` under the verdict's rule.")
    warns = [f"  WARNING {r.check} {r.metric}: {w}" for r in c.rows for w in r.warnings]
    if warns:
        out += ["", *warns]
    return "\n".join(out)
