"""normreg/render/plots.py and svg.py: the figures the HTML pages hold inline, as SVG. Each test parses the SVG
and checks that the marks stand for the data: one dot per seed, placed in the order of the values."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import scipy.stats as st

from normreg.judge.curves import compare_curves
from normreg.render.plots import (
    BASELINE_COLOR,
    EQUIVALENT_COLOR,
    FAIL_COLOR,
    PARTED_COLOR,
    Sample,
    curve_check_figure,
    curves_figure,
    history_figure,
    mean_ci,
    seeds_figure,
)
from normreg.render.svg import GLYPH, nice_ticks, tick_labels
from normreg.report.history import NightPoint
from normreg.suite.model import MetricSpec

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == NS + "svg"
    assert root[0].tag == NS + "title" and root[0].text and root[1].tag == NS + "desc" and root[1].text
    return root


def find(root: ET.Element, tag: str, **data: str) -> list[ET.Element]:
    """Elements `tag` whose attributes hold `data` (class=..., data-variant=...)."""
    attrs = {("class" if k == "cls" else "data-" + k): v for k, v in data.items()}
    return [e for e in root.iter(NS + tag) if all(e.get(k) == v for k, v in attrs.items())]


def one(root: ET.Element, tag: str, **data: str) -> ET.Element:
    found = find(root, tag, **data)
    assert len(found) == 1, (tag, data, len(found))
    return found[0]


def cys(group: ET.Element) -> list[float]:
    return [float(c.get("cy")) for c in group.iter(NS + "circle") if c.get("class") == "seed"]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(NS + "text")]


def test_mean_ci_is_the_t_interval():
    values = [0.81, 0.83, 0.80, 0.86]
    mean, half = mean_ci(values, 0.05)
    low, high = st.t.interval(0.95, len(values) - 1, loc=mean, scale=st.sem(values))
    assert half == pytest.approx((high - low) / 2, rel=1e-9)
    assert mean_ci([0.8], 0.05) == (0.8, None)


@pytest.mark.parametrize("lo, hi", [(0.834, 0.921), (0.0, 1.0), (-3.2, 17.5), (0.2971, 0.2975), (1.0, 10.0)])
def test_ticks_are_round_inside_the_range_and_labelled_apart(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 7 and all(lo <= t <= hi for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
    labels = tick_labels(ticks)
    assert len(set(labels)) == len(labels) and [float(x.replace("−", "-")) for x in labels] == pytest.approx(ticks)
    assert all(t == int(t) for t in nice_ticks(1, 3, 6, integer=True))  # epochs: no 1.25


CURRENT = {"acc": {"a": Sample((0.8, 0.82, 0.81)), "b": Sample((0.7, 0.73), failed_runs=1)},
           "loss": {"a": Sample((0.3, 0.31)), "b": Sample(())}}
BASELINE = {"acc": {"a": Sample((0.79, 0.80, 0.805, 0.81)), "b": Sample((), summary=(0.81, 0.01, 5))}}


def test_seeds_figure_draws_one_dot_per_seed_in_the_order_of_the_values():
    root = parse(seeds_figure(["a", "b"], [("acc", "max"), ("loss", "min")], CURRENT, BASELINE, {"acc": {"b"}}, 0.05))
    acc = one(root, "g", cls="panel", metric="acc")
    for variant, sample in CURRENT["acc"].items():
        group = one(acc, "g", cls="sample", variant=variant, source="run")
        ys = cys(group)
        assert len(ys) == len(sample.values)
        assert np.argsort(ys).tolist() == np.argsort([-v for v in sample.values]).tolist()  # higher value, higher up
    baseline = one(acc, "g", cls="sample", variant="a", source="baseline")
    assert len(cys(baseline)) == 4 and {c.get("fill") for c in baseline.iter(NS + "circle")} == {"none"}
    assert {c.get("stroke") for c in baseline.iter(NS + "circle")} == {BASELINE_COLOR}
    summary_only = one(acc, "g", cls="sample", variant="b", source="baseline")
    assert cys(summary_only) == [] and len(list(summary_only.iter(NS + "line"))) == 4  # bar, two caps, mean
    # across panels the same pixel scale holds within one: a's dots sit above b's (0.8 vs 0.7)
    a_run, b_run = (one(acc, "g", cls="sample", variant=v, source="run") for v in "ab")
    assert max(cys(a_run)) < min(cys(b_run))
    assert "1 run failed" in texts(root) and "acc (higher is better)" in texts(root)
    assert "loss (lower is better)" in texts(root) and "stored baseline" in texts(root)
    red = [t for t in root.iter(NS + "text") if t.get("fill") == FAIL_COLOR and t.get("font-weight") == "bold"]
    assert ["".join(t.itertext()) for t in red] == ["b"]  # the variant that failed a check, on acc only
    single = parse(seeds_figure(["a", "b"], [("acc", "max")], {"acc": CURRENT["acc"]}, {}, {}, 0.05))
    assert float(root.get("width")) > float(single.get("width"))  # a second panel beside the first
    assert "stored baseline" not in texts(single)


def test_seeds_figure_mean_bar_spans_the_t_interval():
    root = parse(seeds_figure(["a"], [("acc", "max")], {"acc": {"a": Sample((0.8, 0.82, 0.81, 0.86))}}, {}, {}, 0.05))
    group = one(root, "g", cls="sample", variant="a", source="run")
    bar = next(x for x in group.iter(NS + "line") if x.get("x1") == x.get("x2"))
    ticks = {"".join(t.itertext()): float(t.get("y")) for t in root.iter(NS + "text")}
    # pixels per unit from two y tick labels (their baselines sit a fixed offset below their ticks)
    (v0, y0), (v1, y1) = [(float(k), y) for k, y in ticks.items() if re.fullmatch(r"0\.\d+", k)][:2]
    length = abs(float(bar.get("y1")) - float(bar.get("y2"))) / abs((y1 - y0) / (v1 - v0))
    mean, half = mean_ci([0.8, 0.82, 0.81, 0.86], 0.05)
    assert length == pytest.approx(2 * half, rel=0.01)


def test_curves_figure_draws_one_line_per_seed_rising_with_the_values():
    curves = {"val_acc": {"a": [[0.5, 0.6, 0.7], [0.55, 0.65, 0.66]], "b": [[0.4, 0.5, 0.45]]},
              "train_loss": {"a": [[0.9, 0.5, 0.4]]}}
    root = parse(curves_figure(["a", "b"], curves))
    for key, per_variant in curves.items():
        panel = one(root, "g", cls="panel", metric=key)
        for variant, seqs in per_variant.items():
            lines = list(one(panel, "g", cls="variant", variant=variant).iter(NS + "polyline"))
            assert len(lines) == len(seqs)
            for line, seq in zip(lines, seqs):
                pts = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
                assert len(pts) == len(seq) and all(x0 < x1 for (x0, _), (x1, _) in zip(pts, pts[1:]))
                assert np.sign(np.diff([-y for _, y in pts])).tolist() == np.sign(np.diff(seq)).tolist()
    assert {"a", "b", "epoch", "val_acc", "train_loss"} <= set(texts(root))


def test_curve_check_figure_shades_the_parted_epochs_and_draws_each_difference():
    rng = np.random.default_rng(3)
    mean = 0.9 - 0.4 * np.exp(-0.5 * np.arange(8))
    a = {s: list(mean + rng.normal(0, 0.01, 8)) for s in range(6)}
    b = {s: list(mean + rng.normal(0, 0.01, 8) - np.where(np.arange(8) >= 3, 0.2, 0.0)) for s in range(6)}
    check = compare_curves(a, b, MetricSpec("val_acc", "max", 0.05), alpha=0.05, a_name="ref", b_name="new")
    assert check.parted and check.equivalent
    root = parse(curve_check_figure(check))
    fills = [r.get("fill") for r in root.iter(NS + "rect")]
    assert fills.count(PARTED_COLOR) == 2 * len(check.parted)  # in both panels
    assert fills.count(EQUIVALENT_COLOR) == 2 * len(check.equivalent)
    dots = [float(c.get("cy")) for c in one(root, "g", cls="diff", variant="new").iter(NS + "circle")]
    diffs = [c.diff for c in check.epochs]
    assert len(dots) == 8
    slope, intercept = np.polyfit(diffs, dots, 1)  # each dot at its difference, on one scale, higher is up
    assert slope < 0 and np.abs(np.polyval([slope, intercept], diffs) - dots).max() < 0.1
    margins = [x for x in root.iter(NS + "line") if x.get("stroke") == FAIL_COLOR and x.get("stroke-dasharray")]
    assert len(margins) == 2
    for name in ("ref", "new"):
        assert len(list(one(root, "g", cls="mean", variant=name).iter(NS + "polygon"))) == 1  # the ± sd band
    assert "val_acc: new vs ref (higher is better)" in texts(root) and "new − ref" in texts(root)


def test_history_figure_rings_the_failed_nights_and_marks_the_changes():
    labels = [f"2026-11-{d:02d}" for d in range(1, 9)]
    points = {"a": [NightPoint(i, (0.8, 0.81), i == 3) for i in range(8)],
              "b": [NightPoint(i, (0.8 - 0.05 * (i >= 4), 0.79 - 0.05 * (i >= 4), 0.8), False) for i in range(8)]}
    root = parse(history_figure("s: acc", "max", labels, points, [("b", 4, "regressed")]))
    assert len(find(one(root, "g", cls="variant", variant="a"), "circle", cls="failed")) == 1
    assert len(find(one(root, "g", cls="variant", variant="b"), "circle", cls="seed")) == 24
    b_means = next(one(root, "g", cls="variant", variant="b").iter(NS + "polyline")).get("points").split()
    ys = [float(p.split(",")[1]) for p in b_means]
    assert ys[:4] == [ys[0]] * 4 and ys[4:] == [ys[4]] * 4 and ys[4] > ys[0]  # lower after the change
    assert [x for x in root.iter(NS + "line") if x.get("stroke") == FAIL_COLOR and x.get("stroke-dasharray")]
    assert "b ↓" in texts(root) and "change: regressed" in texts(root) and "check failed" in texts(root)


def _text_box(t: ET.Element) -> tuple[float, float, float, float]:
    """A text's estimated box (x0, y0, x1, y1), rotated as drawn."""
    x, y, size = float(t.get("x")), float(t.get("y")), float(t.get("font-size"))
    width = len("".join(t.itertext())) * size * GLYPH
    start = {"start": 0.0, "middle": -width / 2, "end": -width}[t.get("text-anchor", "start")]
    corners = [(x + start + dx, y + dy) for dx in (0, width) for dy in (-0.8 * size, 0.25 * size)]
    angle = 0.0
    if t.get("transform"):
        angle = math.radians(float(re.match(r"rotate\(([-\d.]+)", t.get("transform")).group(1)))
    rotated = [(x + (cx - x) * math.cos(angle) - (cy - y) * math.sin(angle),
                y + (cx - x) * math.sin(angle) + (cy - y) * math.cos(angle)) for cx, cy in corners]
    return (min(p[0] for p in rotated), min(p[1] for p in rotated), max(p[0] for p in rotated),
            max(p[1] for p in rotated))


def test_every_text_lies_inside_its_figure():
    """Margins are computed from the texts (no layout engine measures them): long and rotated labels, long tick
    labels and legends must still fit."""
    long_names = ["twin_with_a_much_longer_name_than_most", "merged", "copy", "layer_norm", "crash"]
    current = {m: {v: Sample((0.8 + i / 100, 0.81, 0.79)) for i, v in enumerate(long_names)} for m in ("acc", "loss")}
    figures = [
        seeds_figure(long_names, [("acc", "max"), ("loss", "min")], current, {"acc": current["acc"]}, {}, 0.05),
        seeds_figure(["a_rather_long_first_name", "b"], [("acc", "max")], {"acc": {"a": Sample((12345.5, 12346.0))}},
                     {}, {}, 0.05),
        curves_figure(["a", "b"], {k: {"a": [[0.5, 0.6, 0.7]], "b": [[0.4, 0.5, 0.6]]} for k in ("x", "y", "z", "w")}),
        curves_figure([f"variant_{i}" for i in range(9)], {"x": {f"variant_{i}": [[i, i + 1.0]] for i in range(9)}}),
        history_figure("s: acc", "max", [f"2026-11-{d:02d}" for d in range(1, 9)],
                       {"a": [NightPoint(i, (0.8, 0.81), i == 3) for i in range(8)]}, [("a", 2, "improved")]),
    ]
    for svg in figures:
        root = parse(svg)
        width, height = float(root.get("width")), float(root.get("height"))
        for t in root.iter(NS + "text"):
            x0, y0, x1, y1 = _text_box(t)
            assert x0 >= -1 and y0 >= -1 and x1 <= width + 1 and y1 <= height + 1, ("".join(t.itertext()), width,
                                                                                     height, (x0, y0, x1, y1))


def test_names_are_text_never_markup():
    name = 'x</text><script>alert(1)</script><text>"&'
    svg = seeds_figure([name], [("cost$x^$", "max")], {"cost$x^$": {name: Sample((0.1, 0.2))}}, {}, {}, 0.05,
                       title=f"per-seed values of {name}")
    root = parse(svg)  # well-formed: the name did not close or open an element
    assert not list(root.iter(NS + "script")) and "<script" not in svg
    assert name in texts(root) and name in root[0].text and "cost$x^$ (higher is better)" in texts(root)
    assert one(root, "g", cls="sample", variant=name, source="run") is not None


def test_missing_values_leave_gaps_not_nan_coordinates():
    """A value written as null (None) or NaN is left out: a dot is not drawn, a line breaks there."""
    seeds = seeds_figure(["a"], [("acc", "max")], {"acc": {"a": Sample((0.8, math.nan, 0.82))}}, {}, {}, 0.05)
    curves = curves_figure(["a"], {"x": {"a": [[0.5, None, 0.7, 0.8], [0.4, math.nan, 0.6, 0.7]]}})
    history = history_figure("s: acc", "max", ["mon", "tue"], {"a": [NightPoint(0, (0.8, math.nan), False),
                                                                     NightPoint(1, (math.nan,), True)]})
    for svg in (seeds, curves, history):
        assert "nan" not in svg.lower() and "inf" not in svg.lower()
        parse(svg)
    assert len(cys(one(parse(seeds), "g", cls="sample", variant="a", source="run"))) == 2
    lines = list(one(parse(curves), "g", cls="variant", variant="a").iter(NS + "polyline"))
    assert [len(x.get("points").split()) for x in lines] == [2, 2]  # epochs 3-4 of each seed (epoch 1 alone is no line)
    assert len(find(parse(history), "circle", cls="seed")) == 1
