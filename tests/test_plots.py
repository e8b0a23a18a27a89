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
