"""normreg/render/plots.py: the figures the HTML pages embed, as PNG bytes drawn without a display."""

from __future__ import annotations

import struct

import pytest
import scipy.stats as st

from normreg.render.plots import Sample, curves_figure, history_figure, mean_ci, seeds_figure
from normreg.report.history import NightPoint

PNG = b"\x89PNG\r\n\x1a\n"


def size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG
    return struct.unpack(">II", png[16:24])


def test_mean_ci_is_the_t_interval():
    values = [0.81, 0.83, 0.80, 0.86]
    mean, half = mean_ci(values, 0.05)
    low, high = st.t.interval(0.95, len(values) - 1, loc=mean, scale=st.sem(values))
    assert half == pytest.approx((high - low) / 2, rel=1e-9)
    assert mean_ci([0.8], 0.05) == (0.8, None)


def test_seeds_figure_draws_one_panel_per_metric_with_the_baseline_beside():
    current = {"acc": {"a": Sample((0.8, 0.82, 0.81)), "b": Sample((0.7, 0.71), failed_runs=1)},
               "loss": {"a": Sample((0.3, 0.31)), "b": Sample(())}}
    baseline = {"acc": {"a": Sample((), summary=(0.81, 0.01, 5))}}
    one = seeds_figure(["a", "b"], [("acc", "max")], {"acc": current["acc"]}, baseline, {"acc": {"b"}}, 0.05)
    two = seeds_figure(["a", "b"], [("acc", "max"), ("loss", "min")], current, baseline, {}, 0.05)
    assert size(two)[0] > size(one)[0]  # a second panel beside the first


def test_curves_and_history_figures_are_pngs():
    assert size(curves_figure(["a"], {"val_acc": {"a": [[0.5, 0.6, 0.7], [0.55, 0.65]]}}))[0] > 0
    points = {"a": [NightPoint(0, (0.8, 0.81), False), NightPoint(1, (0.7,), True)]}
    assert size(history_figure("s: acc", "max", ["mon", "tue"], points))[1] > 0


def test_each_figure_is_drawn_once_with_every_label_inside_it(monkeypatch):
    """Fixed margins, no layout engine: a figure with one (constrained layout) is drawn twice to be saved, which
    made `report --html` slow (benchmarks/html_report.py); the margins must still hold every title and label."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from normreg.render import plots

    draws, saved = [], []
    real_draw, real_png = Figure.draw, plots._png
    monkeypatch.setattr(Figure, "draw", lambda fig, renderer: (draws.append(fig), real_draw(fig, renderer))[1])
    monkeypatch.setattr(plots, "_png", lambda fig: (saved.append(fig), real_png(fig))[1])
    long_names = ["merged", "twin_with_a_long_name", "copy", "layer_norm", "crash"]
    current = {m: {v: Sample((0.8 + i / 100, 0.81, 0.79)) for i, v in enumerate(long_names)} for m in ("acc", "loss")}
    seeds_figure(long_names, [("acc", "max"), ("loss", "min")], current, {"acc": current["acc"]}, {}, 0.05)
    curves_figure(["a", "b"], {k: {"a": [[0.5, 0.6, 0.7]], "b": [[0.4, 0.5, 0.6]]} for k in ("x", "y", "z", "w")})
    labels = [f"2026-11-{d:02d}" for d in range(1, 9)]
    history_figure("s: acc", "max", labels, {"a": [NightPoint(i, (0.8, 0.81), i == 3) for i in range(8)]})
    assert len(draws) == len(saved) == 3
    for fig in saved:
        assert fig.get_layout_engine() is None
        drawn = fig.get_tightbbox(FigureCanvasAgg(fig).get_renderer())  # inches: all drawn
        width, height = fig.get_size_inches()
        assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01 and drawn.x1 <= width + 0.01 and drawn.y1 <= height + 0.01, \
            (drawn, width, height)
