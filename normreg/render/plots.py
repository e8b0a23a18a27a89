"""The figures of the HTML reports, as PNG bytes: per-seed values, learning curves, metrics across nights.

matplotlib is imported inside each function and used through its object API with the Agg canvas, so importing
this module costs nothing, no display is needed and no global backend state is touched.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec

from normreg.judge.curves import CurveCheck
from normreg.judge.stats import mean_sd, t_half_width
from normreg.report.history import NightPoint

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
BASELINE_COLOR = "#9a9a9a"
FAIL_COLOR = "#c62828"
CHANGE_UP_COLOR = "#2e7d32"
DPI = 96
# Titles sit just above their panel (no tick labels are drawn on top): a title placed by matplotlib instead
# measures the top axis of every panel on every draw, a fifth of a figure's time.
TITLE_Y = 1.0
P = ParamSpec("P")


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


def _plain_text(draw: Callable[P, bytes]) -> Callable[P, bytes]:
    """Draw with math text off: a name such as `cost$x^$` is a name, not a formula that fails to parse."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> bytes:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float, rows: int = 1, cols: int = 1, *, left: float = 0.6, right: float = 0.15,
            top: float = 0.3, bottom: float = 0.45, gap_w: float = 0.55, gap_h: float = 0.7) -> Any:
    """A figure whose margins and gaps between panels are fixed in inches, sized for what these figures draw
    (tick labels of a few characters, a title over each panel, a legend along the bottom).

    Not matplotlib's constrained layout: it measures every text of every panel, and a figure that has a layout
    engine is drawn twice to save it; that made `normreg report --html` take three times as long as `normreg
    report` (`benchmarks/html_report.py` measures both)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    panel_w = max((width - left - right - (cols - 1) * gap_w) / cols, 0.5)
    panel_h = max((height - top - bottom - (rows - 1) * gap_h) / rows, 0.5)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gap_w / panel_w, hspace=gap_h / panel_h)
    return fig


def _label_room(labels: Sequence[str], rotation: float, fontsize: float) -> float:
    """Inches below an axis that its tick labels take, rotated by `rotation` degrees."""
    longest = max((len(x) for x in labels), default=0) * fontsize * 0.6 / 72  # an average glyph: 0.6 em
    return 0.12 + fontsize / 72 + longest * math.sin(math.radians(rotation))


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _draw_group(ax: Any, x: float, s: Sample, color: str, alpha: float, hollow: bool) -> None:
    if s.values:
        k = len(s.values)
        offsets = [(i - (k - 1) / 2) * min(0.035, 0.18 / max(k - 1, 1)) for i in range(k)]
        ax.scatter([x + o for o in offsets], s.values, s=22, zorder=3,
                   facecolors="none" if hollow else color, edgecolors=color, linewidths=1.2)
        mean, half = mean_ci(s.values, alpha)
    elif s.summary is not None:
        mean, sd, n = s.summary
        half = t_half_width(sd, n, alpha)
    else:
        return
    ax.errorbar([x + 0.13], [mean], yerr=None if half is None else [[half], [half]], fmt="_", markersize=14,
                color=color, capsize=4, elinewidth=1.6, zorder=4)


@_plain_text
def seeds_figure(variants: Sequence[str], metrics: Sequence[tuple[str, str]],
                 current: Mapping[str, Mapping[str, Sample]], baseline: Mapping[str, Mapping[str, Sample]],
                 failed: Mapping[str, set[str]], alpha: float) -> bytes:
    """One panel per metric: every seed's value per variant, its mean and (1 - alpha) CI, the baseline beside it.

    `metrics` holds (name, goal); `current[metric][variant]` and `baseline[metric][variant]` the samples;
    `failed[metric]` the variants whose checks failed on that metric (their labels are drawn in red).
    """
    n = max(len(metrics), 1)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    width = max(3.6, 1.3 * len(variants) + 2.0)
    rotation = 20 if len(variants) > 4 else 0
    room = _label_room(variants, rotation, 8)
    legend = 0.3 if any(baseline.values()) else 0.0
    fig = _figure(width * cols, 3.0 * rows + room + legend - 0.2, rows, cols, bottom=room + legend + 0.1,
                  gap_h=room + 0.35)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, (metric, goal) in enumerate(metrics):
        ax = axes[i // cols][i % cols]
        for j, v in enumerate(variants):
            color = COLORS[j % len(COLORS)]
            if v in baseline.get(metric, {}):
                _draw_group(ax, j - 0.22, baseline[metric][v], BASELINE_COLOR, alpha, hollow=True)
            s = current.get(metric, {}).get(v)
            if s is not None:
                _draw_group(ax, j + 0.08, s, color, alpha, hollow=False)
                if s.failed_runs:
                    ax.annotate(f"{s.failed_runs} run{'s' * (s.failed_runs != 1)} failed", (j, 0.02),
                                xycoords=("data", "axes fraction"), ha="center", fontsize=7, color=FAIL_COLOR)
        ax.set_xticks(range(len(variants)), list(variants), rotation=rotation)
        for label, v in zip(ax.get_xticklabels(), variants, strict=True):
            if v in failed.get(metric, set()):
                label.set_color(FAIL_COLOR)
                label.set_fontweight("bold")
        ax.set_xlim(-0.6, len(variants) - 0.4)
        ax.set_title(f"{metric} ({'higher' if goal == 'max' else 'lower'} is better)", fontsize=10, y=TITLE_Y)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelsize=8)
    for k in range(len(metrics), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    if any(baseline.values()):
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", ls="", color=COLORS[0], label="this run (per seed)"),
                   Line2D([], [], marker="o", ls="", mfc="none", color=BASELINE_COLOR, label="stored baseline")]
        fig.legend(handles=handles, loc="lower center", ncols=2, fontsize=8, frameon=False)
    return _png(fig)


@_plain_text
def curves_figure(variants: Sequence[str], curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
                  max_panels: int = 6) -> bytes:
    """Learning curves: one panel per logged metric, one thin line per seed, one colour per variant.

    `curves[metric][variant]` holds one per-epoch sequence per seed.
    """
    from matplotlib.lines import Line2D

    keys = list(curves)[:max_panels]
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig = _figure(3.4 * cols, 2.5 * rows + 0.4, rows, cols, left=0.55, bottom=0.75, gap_w=0.5, gap_h=0.65)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, key in enumerate(keys):
        ax = axes[i // cols][i % cols]
        for j, v in enumerate(variants):
            for seq in curves[key].get(v, ()):
                ax.plot(range(1, len(seq) + 1), seq, color=COLORS[j % len(COLORS)], lw=1, alpha=0.7,
                        marker="." if len(seq) < 4 else None)
        ax.set_title(key, fontsize=9, y=TITLE_Y)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for k in range(len(keys), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    handles = [Line2D([], [], color=COLORS[j % len(COLORS)], label=v) for j, v in enumerate(variants)]
    fig.legend(handles=handles, loc="lower center", ncols=min(len(variants), 6), fontsize=8, frameon=False)
    return _png(fig)


PARTED_COLOR = "#f4c7c3"
EQUIVALENT_COLOR = "#d8ecd9"


@_plain_text
def curve_check_figure(check: CurveCheck) -> bytes:
    """A curve check: above, each variant's mean ± sd over the seeds at every epoch, the epochs where the curves
    part shaded red (shown equivalent: green); below, the difference with the interval each epoch's verdict used
    and the ±min_effect margin."""
    epochs = range(1, check.n_epochs + 1)
    fig = _figure(6.4, 4.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for ax in (top, bottom):
        for e in check.parted:
            ax.axvspan(e - 0.5, e + 0.5, color=PARTED_COLOR, lw=0, zorder=0)
        for e in check.equivalent:
            ax.axvspan(e - 0.5, e + 0.5, color=EQUIVALENT_COLOR, lw=0, zorder=0)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for j, (name, means, sds) in enumerate((
            (check.a, [c.mean_a for c in check.epochs], [c.sd_a for c in check.epochs]),
            (check.b, [c.mean_b for c in check.epochs], [c.sd_b for c in check.epochs]))):
        color = COLORS[j]
        m = [math.nan if x is None else x for x in means]
        sd = [0.0 if x is None else x for x in sds]
        top.fill_between(epochs, [x - y for x, y in zip(m, sd)], [x + y for x, y in zip(m, sd)], color=color,
                         alpha=0.2, lw=0)
        top.plot(epochs, m, color=color, lw=1.6, marker="." if check.n_epochs < 30 else None, label=f"{name} mean ± sd")
    top.legend(fontsize=7, frameon=False, loc="best")
    better = "higher" if check.goal == "max" else "lower"
    top.set_title(f"{check.metric}: {check.b} vs {check.a} ({better} is better)", fontsize=9)
    diffs = [math.nan if c.diff is None else c.diff for c in check.epochs]
    low = [d - c.ci_low if c.ci_low is not None and math.isfinite(c.ci_low) else 0.0
           for d, c in zip(diffs, check.epochs)]
    high = [c.ci_high - d if c.ci_high is not None and math.isfinite(c.ci_high) else 0.0
            for d, c in zip(diffs, check.epochs)]
    bottom.errorbar(epochs, diffs, yerr=[low, high], fmt="o", ms=3, color="#333333", capsize=2, lw=1)
    bottom.axhline(0.0, color="#777777", lw=0.8)
    for sign in (-1, 1):
        if check.min_effect > 0:
            bottom.axhline(sign * check.min_effect, color=FAIL_COLOR, lw=0.8, ls="--")
    from matplotlib.ticker import MaxNLocator

    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylabel(f"{check.b} − {check.a}", fontsize=8)
    bottom.set_xlabel("epoch (red: parted beyond ±min_effect; green: shown within it)", fontsize=8)
    return _png(fig)


@_plain_text
def history_figure(title: str, goal: str, labels: Sequence[str],
                   series: Mapping[str, Sequence[NightPoint]],
                   changes: Sequence[tuple[str, int, str]] = ()) -> bytes:
    """A metric across nights: per variant the mean with every seed's value and the min–max band.

    Nights whose checks failed for a variant are ringed in red. `changes` holds (variant, night, verdict) of
    each confirmed change: a dashed line just before that night, red for a regression, green for an improvement,
    labelled with the variant.
    """
    from matplotlib.lines import Line2D

    rotation = 35 if len(labels) > 5 else 0
    room = _label_room(labels, rotation, 7)
    fig = _figure(max(5.0, 0.55 * len(labels) + 2.5), 2.8 + room, bottom=room + 0.1)
    ax = fig.subplots()
    for j, (v, points) in enumerate(series.items()):
        color = COLORS[j % len(COLORS)]
        pts = [p for p in points if p.values]
        if not pts:
            continue
        xs = [p.night for p in pts]
        means = [math.fsum(p.values) / len(p.values) for p in pts]
        ax.fill_between(xs, [min(p.values) for p in pts], [max(p.values) for p in pts], color=color, alpha=0.15,
                        lw=0)
        ax.plot(xs, means, color=color, marker="o", ms=4, lw=1.4, label=v)
        for p in pts:
            ax.scatter([p.night] * len(p.values), p.values, s=6, color=color, alpha=0.6, zorder=3)
        bad = [(p.night, m) for p, m in zip(pts, means, strict=True) if p.failed]
        if bad:
            ax.scatter([b[0] for b in bad], [b[1] for b in bad], s=110, facecolors="none", edgecolors=FAIL_COLOR,
                       linewidths=1.8, zorder=5)
    for variant, night, verdict in changes:
        color = FAIL_COLOR if verdict == "regressed" else CHANGE_UP_COLOR
        ax.axvline(night - 0.5, color=color, ls="--", lw=1.4, zorder=2)
        ax.annotate(f"{variant} {'↓' if verdict == 'regressed' else '↑'}", (night - 0.45, 0.97),
                    xycoords=("data", "axes fraction"), ha="left", va="top", fontsize=7, color=color)
    ax.set_xticks(range(len(labels)), list(labels), rotation=rotation, ha="right" if rotation else "center")
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(f"{title} ({'higher' if goal == 'max' else 'lower'} is better)", fontsize=10, y=TITLE_Y)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", ls="", mfc="none", mec=FAIL_COLOR, ms=9, label="check failed"))
    if changes:
        handles.append(Line2D([], [], ls="--", color=FAIL_COLOR, label="change: regressed"))
        if any(v != "regressed" for _, _, v in changes):
            handles.append(Line2D([], [], ls="--", color=CHANGE_UP_COLOR, label="change: improved"))
    ax.legend(handles=handles, fontsize=7, loc="best", frameon=False)
    return _png(fig)
