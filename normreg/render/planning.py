"""The terminal forms of `normreg plan` and `normreg calibrate`."""

from __future__ import annotations

from normreg.judge.planning import Calibration, Plan
from normreg.judge.stats import DESIGN_EFFECT
from normreg.render.labels import number, text_table


def render_plan(p: Plan) -> str:
    head = ("variant", "metric", "min_effect", "pilot n", "sd ref", "sd var", "sd diff", "seeds 80%", "seeds 90%")
    fmt = lambda x: number(x, 3)  # noqa: E731
    many = f">{p.limit}"
    rows = [(r.variant, r.metric, f"{r.min_effect:g}", str(r.n_pilot), fmt(r.sd_a), fmt(r.sd_b), fmt(r.sd_diff),
             str(r.seeds_80) if r.seeds_80 else (many if r.sd_a is not None and r.min_effect > 0 else "-"),
             str(r.seeds_90) if r.seeds_90 else (many if r.sd_a is not None and r.min_effect > 0 else "-"))
            for r in p.rows]
    out = [f"Plan for {p.suite} from {p.source} (alpha {p.alpha:g}, {p.design} design; seeds per side for an "
           f"80% or 90% chance that a true difference of {DESIGN_EFFECT:g} x min_effect is reported regressed):",
           *text_table(head, rows)]
    notes = [f"  {r.variant} {r.metric}: {r.note}" for r in p.rows if r.note]
    if notes:
        out += ["Notes:", *notes]
    worst = max((r.seeds_80 for r in p.rows if r.seeds_80), default=None)
    if worst:
        out.append(f"To catch every {DESIGN_EFFECT:g} x min_effect 80% of the time: seeds: {worst} (or seeds: "
                   f"{{min: 3, max: {max(worst, 3)}}} to stop early where the gap is clear). A true difference of "
                   f"min_effect itself is reported regressed at most alpha / 2 ({p.alpha / 2:g}) of the time, "
                   "however many seeds run: the verdict needs it shown beyond min_effect.")
    out.append("Pilot spreads are estimates: with few pilot seeds the true need can be half or twice this.")
    return "\n".join(out)


def _estimate(x: float, se: float, digits: int) -> str:
    """A rate with its uncertainty (`0.050 ± 0.012`), or `-` when there is none (NaN)."""
    if x != x:
        return "-"
    return f"{x:.{digits}f}" + ("" if se != se else f" ± {se:.{digits}f}")


def render_calibration(c: Calibration) -> str:
    how = (f"staged seeds {', '.join(map(str, c.stages))} ({c.spending})" if c.stages else f"{c.seeds} seeds")
    out = [f"Calibration of {c.source}: {c.design} test at alpha {c.alpha:g}, {how} per side, {c.reps} resamples"]
    head = ("variant", "metric", "values", "false alarms", f"power at {DESIGN_EFFECT:g} x min_effect")
    rows = [(r.variant, r.metric, str(r.n_values), _estimate(r.false_alarm, r.false_alarm_se, 3),
             _estimate(r.power, r.power_se, 2)) for r in c.rows]
    out += text_table(head, rows)
    out.append("± : how much each estimate would move with another pilot of the same size; power is the chance "
               "of `regressed` under the verdict's rule.")
    warns = [f"  WARNING {r.variant} {r.metric}: {w}" for r in c.rows for w in r.warnings]
    if warns:
        out += ["", *warns]
    return "\n".join(out)
