"""normreg/render/svg.py: the SVG writer of the HTML pages' figures: ticks a reader can use, ranges with room, and
markup that parses with every user-given text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from normreg.render.svg import Canvas, fmt, limits, nice_ticks, tick_labels


@pytest.mark.parametrize("lo,hi,integer,ticks", [
    (0.0, 1.0, False, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.931, 0.989, False, [0.94, 0.95, 0.96, 0.97, 0.98]),  # 0.93 is outside
    (-3.2, 7.9, False, [-2.0, 0.0, 2.0, 4.0, 6.0]),
    (0.0, 14.0, False, [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]),
    (1.0, 30.0, True, [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]),
    (0.0, 3.0, True, [0.0, 1.0, 2.0, 3.0]),
    (2.0, 2.0, False, [2.0]),
])
def test_ticks_are_round_steps_inside_the_range(lo, hi, integer, ticks):
    assert nice_ticks(lo, hi, integer=integer) == pytest.approx(ticks)


def test_tick_labels_use_as_few_decimals_as_tell_them_apart_and_a_real_minus():
    assert tick_labels([0.93, 0.94, 0.95]) == ["0.93", "0.94", "0.95"]
    assert tick_labels([-2.5, 0.0, 2.5]) == ["−2.5", "0.0", "2.5"]
    assert tick_labels([0.0, 1e6, 2e6]) == ["0", "1e+06", "2e+06"]
    assert tick_labels([]) == []


def test_limits_give_room_and_a_single_or_no_value_a_range():
    assert limits([0.0, 1.0, None, float("nan")]) == pytest.approx((-0.05, 1.05))
    assert limits([2.0, 2.0]) == pytest.approx((1.9, 2.1))
    assert limits([0.0]) == (-0.5, 0.5) and limits([]) == (0.0, 1.0)


def test_coordinates_are_written_to_a_tenth_of_a_pixel():
    assert [fmt(x) for x in (3.0, 3.04, 3.06, -0.0)] == ["3", "3", "3.1", "-0"]


def test_a_canvas_is_svg_that_parses_with_user_texts_escaped():
    canvas = Canvas(120.4, 80)
    canvas.text(10, 20, "<script>alert(1)</script> & twin", anchor="middle", bold=True)
    canvas.circle(30, 40, 3, "#1f77b4", tip='seed 3: "0.93" <b>')
    canvas.polyline([(0, 0), (10.25, 5)], "#333333")
    svg = canvas.svg(title="acc <by seed>", desc="a & b")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert (root.get("width"), root.get("viewBox")) == ("121", "0 0 121 80")
    assert root.find(f"{ns}title").text == "acc <by seed>" and root.find(f"{ns}desc").text == "a & b"
    assert root.find(f"{ns}text").text == "<script>alert(1)</script> & twin"
    assert root.find(f"{ns}circle/{ns}title").text == 'seed 3: "0.93" <b>'
    assert "<script>" not in svg and root.find(f"{ns}polyline").get("points") == "0,0 10.2,5"
