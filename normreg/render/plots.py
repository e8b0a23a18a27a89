"""The figures of the HTML reports, as inline SVG: per-seed values, learning curves, curve checks, metrics across
nights.

Written with `normreg.render.svg` rather than a plotting library: the figures are dots, bars, lines and bands,
and matplotlib's import and PNG encoding made `normreg report --html` take several times as long as `normreg
report` (`benchmarks/html_report.py` measures both). Each figure's <title> names it and its <desc> states its
numbers for screen readers; the plotted marks sit in groups named by metric and variant (`data-metric`,
`data-variant`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from normreg.judge.curves import CurveCheck
from normreg.judge.stats import mean_sd, t_half_width
from normreg.render.escape import html_text
from normreg.render.svg import (
    INK,
    Canvas,
    LegendItem,
    Panel,
    finite,
    legend,
    legend_lines,
    legend_width,
    limits,
    nice_ticks,
    text_width,
    tick_labels,
)
from normreg.report.history import NightPoint

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
BASELINE_COLOR = "#9a9a9a"
FAIL_COLOR = "#c62828"
CHANGE_UP_COLOR = "#2e7d32"
PARTED_COLOR = "#f4c7c3"
EQUIVALENT_COLOR = "#d8ecd9"
TICK = 10  # font sizes in pixels
LABEL = 11
TITLE = 13
NOTE = 9.5


@dataclass(frozen=True)
class Sample:
    """One group of per-seed values to draw: the run's values of a variant, or the baseline's."""

    values: tuple[float, ...]
    failed_runs: int = 0
    # when only summary statistics are known (older reports): mean, sd and n
    summary: tuple[float, float | None, int] | None = None


def mean_ci(values: Sequence[float], alpha: float) -> tuple[float, float | None]:
    """Mean and half-width of its (1 - alpha) t interval; no interval with fewer than two values."""
    mean, sd = mean_sd(values)
    assert mean is not None, "mean_ci needs at least one value"
    return mean, t_half_width(sd, len(values), alpha)


def _better(goal: str) -> str:
    return f"{'higher' if goal == 'max' else 'lower'} is better"


def _g(x: float) -> str:
    return f"{x:.4g}"


def _data(**attrs: str) -> str:
    """Attributes naming what a group of marks shows, escaped (names come from users' files)."""
    return " ".join(f'{"class" if k == "cls" else "data-" + k}="{html_text(v)}"' for k, v in attrs.items())


def _tick_room(ticks: Sequence[Sequence[float]]) -> float:
    """Pixels left of a panel that its y tick labels take."""
    return 12 + max((text_width(t, TICK) for ts in ticks for t in tick_labels(ts)), default=0)


def _label_room(labels: Sequence[str], rotation: float, size: float) -> float:
    """Pixels below a panel that its x tick labels take, rotated by `rotation` degrees."""
    longest = max((text_width(x, size) for x in labels), default=0)
    return 10 + size + longest * math.sin(math.radians(rotation))


def _mean_interval(s: Sample, alpha: float) -> tuple[float, float | None] | None:
    values = finite(s.values)
    if values:
        return mean_ci(values, alpha)
    if s.summary is not None:
        mean, sd, n = s.summary
        return mean, t_half_width(sd, n, alpha)
    return None


def _extent(s: Sample, alpha: float) -> list[float]:
    """The values a group draws: its seeds and the ends of its interval."""
    mi = _mean_interval(s, alpha)
    ends = [] if mi is None else [mi[0]] if mi[1] is None else [mi[0] - mi[1], mi[0] + mi[1]]
    return [*s.values, *ends]


def _draw_group(p: Panel, x: float, s: Sample, variant: str, source: str, color: str, alpha: float) -> None:
    """A group's seeds as dots spread a little sideways (hollow for the baseline), its mean and interval beside."""
    hollow = source == "baseline"
    p.canvas.group(_data(cls="sample", variant=variant, source=source))
    values = finite(s.values)  # a metric that came out NaN has no place on the axis
    k = len(values)
    for i, v in enumerate(values):
        offset = (i - (k - 1) / 2) * min(0.035, 0.18 / max(k - 1, 1))
        p.canvas.circle(p.x(x + offset), p.y(v), 3.3, color, hollow=hollow, width=1.4 if hollow else 0, cls="seed",
                        tip=f"{variant}{' (baseline)' if hollow else ''}: {_g(v)}")
    mi = _mean_interval(s, alpha)
    if mi is not None:
        mean, half = mi
        p.errorbar(x + 0.13, mean, None if half is None else mean - half, None if half is None else mean + half,
                   color, mark=18)
    p.canvas.end_group()


def _seeds_desc(metrics: Sequence[tuple[str, str]], variants: Sequence[str],
                current: Mapping[str, Mapping[str, Sample]], baseline: Mapping[str, Mapping[str, Sample]],
                alpha: float) -> str:
    parts = []
    for metric, goal in metrics:
        said = []
        for v in variants:
            bits = []
            for name, store in (("this run", current), ("baseline", baseline)):
                s = store.get(metric, {}).get(v)
                mi = None if s is None else _mean_interval(s, alpha)
                if s is not None and mi is not None:
                    n = len(finite(s.values)) if s.values else (s.summary or (0, 0, 0))[2]
                    bits.append(f"{name} mean {_g(mi[0])} over {n} seeds")
                if s is not None and s.failed_runs:
                    bits.append(f"{s.failed_runs} failed runs")
            if bits:
                said.append(f"{v}: {', '.join(bits)}")
        parts.append(f"{metric} ({_better(goal)}): {'; '.join(said)}.")
    return " ".join(parts)


def seeds_figure(variants: Sequence[str], metrics: Sequence[tuple[str, str]],
                 current: Mapping[str, Mapping[str, Sample]], baseline: Mapping[str, Mapping[str, Sample]],
                 failed: Mapping[str, set[str]], alpha: float, title: str = "per-seed values") -> str:
    """One panel per metric: every seed's value per variant, its mean and (1 - alpha) CI, the baseline beside it.

    `metrics` holds (name, goal); `current[metric][variant]` and `baseline[metric][variant]` the samples;
    `failed[metric]` the variants whose checks failed on that metric (their labels are drawn in red).
    """
    n = max(len(metrics), 1)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    rotation = 20 if len(variants) > 4 else 0
    panel_w = max(230.0, 125.0 * len(variants) + 60)
    panel_h = 220.0
    xlim = (-0.6, len(variants) - 0.4)
    ylims = [limits([x for store in (current, baseline) for s in store.get(m, {}).values() for x in _extent(s, alpha)])
             for m, _ in metrics]
    ticks = [nice_ticks(*lim) for lim in ylims]
    left = _tick_room(ticks)
    if rotation and variants:  # the first label, rotated, reaches left of its tick
        left = max(left, text_width(variants[0], TICK) * math.cos(math.radians(rotation)) - 0.6 / (xlim[1] - xlim[0])
                   * panel_w + 8)
    room = _label_room(variants, rotation, TICK)
    cell_w, cell_h = left + panel_w + 16, 26 + panel_h + room
    items: list[LegendItem] = [("dot", COLORS[0], "this run (per seed)"), ("ring", BASELINE_COLOR, "stored baseline")]
    has_baseline = any(baseline.values())
    canvas = Canvas(cols * cell_w, rows * cell_h + (26 if has_baseline else 4))
    for i, ((metric, goal), ylim, yt) in enumerate(zip(metrics, ylims, ticks)):
        p = Panel(canvas, (i % cols) * cell_w + left, (i // cols) * cell_h + 26, panel_w, panel_h, xlim, ylim)
        p.yticks(yt, TICK)
        canvas.group(_data(cls="panel", metric=metric))
        for j, v in enumerate(variants):
            if v in baseline.get(metric, {}):
                _draw_group(p, j - 0.22, baseline[metric][v], v, "baseline", BASELINE_COLOR, alpha)
            s = current.get(metric, {}).get(v)
            if s is not None:
                _draw_group(p, j + 0.08, s, v, "run", COLORS[j % len(COLORS)], alpha)
                if s.failed_runs:
                    canvas.text(p.x(j), p.bottom - 5, f"{s.failed_runs} run{'s' * (s.failed_runs != 1)} failed",
                                size=NOTE, anchor="middle", color=FAIL_COLOR)
        canvas.end_group()
        bad = [v in failed.get(metric, set()) for v in variants]
        p.xticks(list(enumerate(variants)), TICK, rotation, colors=[FAIL_COLOR if b else INK for b in bad], bold=bad)
        p.frame()
        p.title(f"{metric} ({_better(goal)})", TITLE)
    if has_baseline:
        legend(canvas, items, canvas.width / 2, canvas.height - 8, center=True)
    return canvas.svg(title, _seeds_desc(metrics, variants, current, baseline, alpha))


def curves_figure(variants: Sequence[str], curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
                  max_panels: int = 6, title: str = "learning curves") -> str:
    """Learning curves: one panel per logged metric, one thin line per seed, one colour per variant.

    `curves[metric][variant]` holds one per-epoch sequence per seed.
    """
    keys = list(curves)[:max_panels]
    cols = max(min(len(keys), 3), 1)
    rows = max(math.ceil(len(keys) / cols), 1)
    ylims = [limits(x for seqs in curves[k].values() for seq in seqs for x in seq) for k in keys]
    ticks = [nice_ticks(*lim) for lim in ylims]
    left = _tick_room(ticks)
    panel_w, panel_h = 250.0, 165.0
    cell_w, cell_h = left + panel_w + 14, 24 + panel_h + 42
    items: list[LegendItem] = [("line", COLORS[j % len(COLORS)], v) for j, v in enumerate(variants)]
    width = cols * cell_w
    lines = legend_lines(items, width - 20)
    canvas = Canvas(width, rows * cell_h + 20 * len(lines) + 4)
    for i, (key, ylim, yt) in enumerate(zip(keys, ylims, ticks)):
        epochs = max((len(seq) for seqs in curves[key].values() for seq in seqs), default=1)
        p = Panel(canvas, (i % cols) * cell_w + left, (i // cols) * cell_h + 24, panel_w, panel_h,
                  limits([1, epochs]), ylim)
        xt = nice_ticks(1, epochs, 6, integer=True)
        p.xticks(list(zip(xt, tick_labels(xt))), TICK, grid=True)
        p.yticks(yt, TICK)
        canvas.group(_data(cls="panel", metric=key))
        for j, v in enumerate(variants):
            canvas.group(_data(cls="variant", variant=v))
            for seq in curves[key].get(v, ()):
                p.curve(range(1, len(seq) + 1), seq, COLORS[j % len(COLORS)], opacity=0.7,
                        dots=2.2 if len(seq) < 4 else 0)
            canvas.end_group()
        canvas.end_group()
        p.frame()
        p.title(key, LABEL + 1)
        canvas.text(p.left + panel_w / 2, p.bottom + 2 * TICK + 16, "epoch", size=LABEL, anchor="middle")
    for k, line in enumerate(lines):
        legend(canvas, line, width / 2, rows * cell_h + 14 + 20 * k, center=True)
    desc = " ".join(f"{k}: " + "; ".join(f"{v} {len(curves[k][v])} seeds over {max(map(len, curves[k][v]), default=0)}"
                                         " epochs" for v in variants if curves[k].get(v)) + "." for k in keys)
    return canvas.svg(title, desc)


def _mean_sd_bands(check: CurveCheck) -> list[tuple[str, list[float], list[float], list[float]]]:
    """Each side's (name, mean, mean - sd, mean + sd) per epoch; a missing mean is NaN (a gap), a missing sd 0."""
    sides = [(check.a, [c.mean_a for c in check.epochs], [c.sd_a for c in check.epochs]),
             (check.b, [c.mean_b for c in check.epochs], [c.sd_b for c in check.epochs])]
    bands = []
    for name, means, sds in sides:
        m = [math.nan if x is None else x for x in means]
        sd = [0.0 if x is None else x for x in sds]
        bands.append((name, m, [x - y for x, y in zip(m, sd)], [x + y for x, y in zip(m, sd)]))
    return bands


def _draw_differences(canvas: Canvas, panel: Panel, check: CurveCheck, diffs: Sequence[float],
                      lows: Sequence[float], highs: Sequence[float]) -> None:
    """The lower panel's marks: zero, the ±min_effect margin, and each epoch's difference with its interval."""
    panel.hline(0.0, "#777777", 0.8)
    if check.min_effect > 0:
        for sign in (-1, 1):
            panel.hline(sign * check.min_effect, FAIL_COLOR, 0.8, dash="5 3")
    canvas.group(_data(cls="diff", variant=check.b))
    for e, d, lo, hi in zip(range(1, len(diffs) + 1), diffs, lows, highs):
        if math.isfinite(d):
            panel.errorbar(e, d, lo, hi, "#333333", cap=3, width=1)
            canvas.circle(panel.x(e), panel.y(d), 3, "#333333", width=0, cls="epoch", tip=f"epoch {e}: {_g(d)}")
    canvas.end_group()


def curve_check_figure(check: CurveCheck, title: str | None = None) -> str:
    """A curve check: above, each variant's mean ± sd over the seeds at every epoch, the epochs where the curves
    part shaded red (shown equivalent: green); below, the difference with the interval each epoch's verdict used
    and the ±min_effect margin."""
    n = check.n_epochs
    epochs = list(range(1, n + 1))
    bands = _mean_sd_bands(check)
    diffs = [math.nan if c.diff is None else c.diff for c in check.epochs]
    lows = [c.ci_low if c.ci_low is not None and math.isfinite(c.ci_low) else d for d, c in zip(diffs, check.epochs)]
    highs = [c.ci_high if c.ci_high is not None and math.isfinite(c.ci_high) else d
             for d, c in zip(diffs, check.epochs)]
    top_lim = limits(x for _, m, lo, hi in bands for x in (*m, *lo, *hi))
    low_lim = limits([*diffs, *lows, *highs, 0.0, *((check.min_effect, -check.min_effect) if check.min_effect > 0
                                                     else ())])
    top_ticks, low_ticks = nice_ticks(*top_lim), nice_ticks(*low_lim)
    left = 26 + _tick_room([top_ticks, low_ticks])
    width = 640.0
    panel_w = width - left - 16
    xlim = (0.5, n + 0.5)
    canvas = Canvas(width, 436)
    better = _better(check.goal)
    canvas.text(left + panel_w / 2, 18, f"{check.metric}: {check.b} vs {check.a} ({better})", size=LABEL + 1,
                anchor="middle")
    legend(canvas, [("line", COLORS[j], f"{name} mean ± sd") for j, (name, *_) in enumerate(bands)], left + 4, 38,
           size=TICK)
    top = Panel(canvas, left, 48, panel_w, 200, xlim, top_lim)
    bottom = Panel(canvas, left, 262, panel_w, 120, xlim, low_lim)
    xt = nice_ticks(1, max(n, 1), 10, integer=True)
    for p, yt in ((top, top_ticks), (bottom, low_ticks)):
        for e in check.parted:
            p.vspan(e - 0.5, e + 0.5, PARTED_COLOR)
        for e in check.equivalent:
            p.vspan(e - 0.5, e + 0.5, EQUIVALENT_COLOR)
        p.yticks(yt, TICK)
        p.xticks([(t, label if p is bottom else "") for t, label in zip(xt, tick_labels(xt))], TICK, grid=True)
    for j, (name, m, lo, hi) in enumerate(bands):
        canvas.group(_data(cls="mean", variant=name))
        top.band(epochs, lo, hi, COLORS[j], 0.2)
        top.curve(epochs, m, COLORS[j], width=1.6, dots=2.5 if n < 30 else 0)
        canvas.end_group()
    _draw_differences(canvas, bottom, check, diffs, lows, highs)
    for p in (top, bottom):
        p.frame()
    label = f"{check.b} − {check.a}"
    canvas.text(14, bottom.top + bottom.height / 2, label, size=LABEL, anchor="middle", rotate=-90)
    canvas.text(left + panel_w / 2, bottom.bottom + 2 * TICK + 18,
                "epoch (red: parted beyond ±min_effect; green: shown within it)", size=LABEL, anchor="middle")
    parted = ", ".join(map(str, check.parted)) or "none"
    desc = (f"{check.metric} per epoch over {n} epochs, {check.b} against {check.a} ({better}); "
            f"epochs where the curves part: {parted}; last epoch: {check.a} "
            f"{_g(bands[0][1][-1]) if n else '-'}, {check.b} {_g(bands[1][1][-1]) if n else '-'}.")
    return canvas.svg(title or f"curves of {check.metric}: {check.b} vs {check.a}", desc)


def history_figure(title: str, goal: str, labels: Sequence[str],
                   series: Mapping[str, Sequence[NightPoint]],
                   changes: Sequence[tuple[str, int, str]] = ()) -> str:
    """A metric across nights: per variant the mean with every seed's value and the min–max band.

    Nights whose checks failed for a variant are ringed in red. `changes` holds (variant, night, verdict) of
    each confirmed change: a dashed line just before that night, red for a regression, green for an improvement,
    labelled with the variant.
    """
    rotation = 35 if len(labels) > 5 else 0
    room = _label_room(labels, rotation, TICK)
    ylim = limits(x for points in series.values() for p in points for x in p.values)
    yt = nice_ticks(*ylim)
    items: list[LegendItem] = [("line", COLORS[j % len(COLORS)], v) for j, v in enumerate(series)]
    items.append(("ring", FAIL_COLOR, "check failed"))
    if changes:
        items.append(("dashed", FAIL_COLOR, "change: regressed"))
        if any(v != "regressed" for _, _, v in changes):
            items.append(("dashed", CHANGE_UP_COLOR, "change: improved"))
    legend_w = max(legend_width([i], TICK) for i in items) + 20
    left = _tick_room([yt])
    if rotation and labels:
        left = max(left, text_width(labels[0], TICK) * math.cos(math.radians(rotation)) - 20)
    panel_w = max(380.0, 53.0 * len(labels) + 120)
    canvas = Canvas(left + panel_w + legend_w + 10, 30 + 220 + room + 4)
    p = Panel(canvas, left, 30, panel_w, 220, (-0.5, max(len(labels), 1) - 0.5), ylim)
    p.yticks(yt, TICK)
    p.xticks(list(enumerate(labels)), TICK, rotation, grid=True)
    said = []
    for j, (v, points) in enumerate(series.items()):
        color = COLORS[j % len(COLORS)]
        pts = [NightPoint(pt.night, tuple(finite(pt.values)), pt.failed) for pt in points if finite(pt.values)]
        if not pts:
            continue
        xs = [pt.night for pt in pts]
        means = [math.fsum(pt.values) / len(pt.values) for pt in pts]
        canvas.group(_data(cls="variant", variant=v))
        p.band(xs, [min(pt.values) for pt in pts], [max(pt.values) for pt in pts], color, 0.15)
        p.curve(xs, means, color, width=1.4, dots=2.8)
        for pt in pts:
            for value in pt.values:
                canvas.circle(p.x(pt.night), p.y(value), 1.7, color, width=0, opacity=0.6, cls="seed")
        for pt, mean in zip(pts, means):
            if pt.failed:
                canvas.circle(p.x(pt.night), p.y(mean), 7, FAIL_COLOR, hollow=True, width=1.8, cls="failed")
        canvas.end_group()
        said.append(f"{v}: mean {_g(means[0])} on the first night, {_g(means[-1])} on the last, "
                    f"{sum(pt.failed for pt in pts)} nights failed")
    for variant, night, verdict in changes:
        color = FAIL_COLOR if verdict == "regressed" else CHANGE_UP_COLOR
        p.vline(night - 0.5, color, 1.4, dash="5 3")
        canvas.text(p.x(night - 0.45) + 2, p.top + 12, f"{variant} {'↓' if verdict == 'regressed' else '↑'}",
                    size=NOTE, color=color)
        said.append(f"{variant} {verdict} from {labels[night] if 0 <= night < len(labels) else night}")
    p.frame()
    p.title(f"{title} ({_better(goal)})", TITLE)
    legend(canvas, items, p.left + panel_w + 14, p.top + 14, size=TICK, column=True)
    return canvas.svg(f"{title} over nights", f"{title} ({_better(goal)}), {len(labels)} nights. " + "; ".join(said)
                      + ".")
