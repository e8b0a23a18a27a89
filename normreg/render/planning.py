"""The terminal forms of `normreg plan` and `normreg calibrate`."""

from __future__ import annotations

from normreg.judge.planning import Calibration, Plan
from normreg.render.labels import number, text_table


def render_plan(p: Plan) -> str:
    head = ("variant", "metric", "min_effect", "pilot n", "sd ref", "sd var", "sd diff", "seeds 80%", "seeds 90%")
    fmt = lambda x: number(x, 3)  # noqa: E731
    many = f">{p.limit}"
    rows = [(r.variant, r.metric, f"{r.min_effect:g}", str(r.n_pilot), fmt(r.sd_a), fmt(r.sd_b), fmt(r.sd_diff),
             str(r.seeds_80) if r.seeds_80 else (many if r.sd_a is not None and r.min_effect > 0 else "-"),
             str(r.seeds_90) if r.seeds_90 else (many if r.sd_a is not None and r.min_effect > 0 else "-"))
            for r in p.rows]
    out = [f"Plan for {p.suite} from {p.source} (alpha {p.alpha:g}, {p.design} design; seeds per side):",
           *text_table(head, rows)]
    notes = [f"  {r.variant} {r.metric}: {r.note}" for r in p.rows if r.note]
    if notes:
        out += ["Notes:", *notes]
    worst = max((r.seeds_80 for r in p.rows if r.seeds_80), default=None)
    if worst:
        out.append(f"To find every min_effect with 80% power: seeds: {worst} (or seeds: {{min: 3, max: "
                   f"{max(worst, 3)}}} to stop early where the gap is clear).")
    out.append("Pilot spreads are estimates: with few pilot seeds the true need can be half or twice this.")
    return "\n".join(out)


def render_calibration(c: Calibration) -> str:
    how = (f"staged seeds {', '.join(map(str, c.stages))} ({c.spending})" if c.stages else f"{c.seeds} seeds")
    out = [f"Calibration of {c.source}: {c.design} test at alpha {c.alpha:g}, {how} per side, {c.reps} resamples"]
    head = ("variant", "metric", "values", "false alarms", "power at min_effect")
    rows = [(r.variant, r.metric, str(r.n_values), f"{r.false_alarm:.3f}",
             "-" if r.power != r.power else f"{r.power:.2f}") for r in c.rows]
    out += text_table(head, rows)
    warns = [f"  WARNING {r.variant} {r.metric}: {w}" for r in c.rows for w in r.warnings]
    if warns:
        out += ["", *warns]
    return "\n".join(out)
