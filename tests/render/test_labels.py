"""render/labels.py: what every format shows alike, decided once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from normreg.judge.checks import Check, Problem
from normreg.judge.designs import compare_values
from normreg.render.labels import (
    HTML,
    JUNIT,
    MARKDOWN,
    TERMINAL,
    adjusted_p,
    environment_note,
    order,
    p_value,
    p_with_adjusted,
    problem_message,
    status,
    text_table,
)
from normreg.suite.model import MetricSpec

ACC = MetricSpec("acc", "max", 0.01)


def check(verdict: str, expected: str | None = None, kind: str = "pair", metric: str = "acc") -> Check:
    c = compare_values({s: 0.9 + s / 1000 for s in range(4)}, {s: 0.9 + s / 1000 for s in range(4)}, ACC)
    return Check("s", kind, replace(c, verdict=verdict, metric=metric), expected)


@pytest.mark.parametrize("verdict, expected, want", [
    ("regressed", None, "fail"),
    ("regressed", "equivalent", "unexpected"),
    ("regressed", "regressed", "known_bug"),
    ("equivalent", "equivalent", "as_expected"),
    ("equivalent", None, "pass"),
    ("inconclusive", None, "pass"),
], ids=["fail", "unexpected", "known-bug", "as-expected", "equivalent", "inconclusive"])
def test_status_follows_the_check(verdict, expected, want):
    assert status(check(verdict, expected)) == want


@pytest.mark.parametrize("style, verdict, expected, label", [
    (TERMINAL, "regressed", None, "regressed FAIL"),
    (TERMINAL, "regressed", "equivalent", "regressed (UNEXPECTED: expected equivalent)"),
    (TERMINAL, "regressed", "regressed", "regressed (expected)"),
    (MARKDOWN, "regressed", "equivalent", "❌ **regressed**, expected equivalent"),
    (MARKDOWN, "equivalent", "equivalent", "✅ equivalent"),
    (MARKDOWN, "inconclusive", "inconclusive", "➖ inconclusive (as expected)"),
    (HTML, "regressed", "<x>", "regressed — FAIL (expected &lt;x&gt;)"),
    (JUNIT, "improved", "improved", "known bug caught as expected: improved"),
], ids=["t-fail", "t-unexpected", "t-known", "md-unexpected", "md-equivalent", "md-as-expected", "html-escaped",
        "junit-known"])
def test_each_format_labels_each_status(style, verdict, expected, label):
    from html import escape

    assert style.label(check(verdict, expected), escape if style is HTML else str) == label


def test_numbers_and_notes():
    c = check("equivalent").comparison
    assert p_value(None) == "-" and p_value(None, "–") == "–"
    assert p_value(3e-5) == "<1e-4" and p_value(0.0312) == "0.031"
    moved = replace(c, p_value=0.01, p_adjusted=0.04)
    assert adjusted_p(moved) == "0.04" and p_with_adjusted(moved) == "0.01 (adj. 0.04)"
    assert adjusted_p(replace(c, p_value=0.01, p_adjusted=0.0101)) is None  # shows the same: not repeated
    assert environment_note({"torch": ["2.1", "2.2"], "device": ["cuda:0", "cpu"]}) == \
        "the baseline was made in another environment (device cuda:0 -> cpu, torch 2.1 -> 2.2)"
    assert problem_message(Problem("s", "v", "run_failed", "boom", seed=3)) == "seed 3: boom"
    assert problem_message(Problem("s", "*", "baseline_not_updated", "left")) == "left"


def test_row_order_failures_then_known_bugs_then_pairs_before_baselines():
    rows = [check("equivalent", kind="baseline"), check("regressed", "regressed"), check("equivalent"),
            check("regressed", metric="loss")]
    assert [(status(c), c.kind) for c in order(rows)] == [("fail", "pair"), ("known_bug", "pair"), ("pass", "pair"),
                                                          ("pass", "baseline")]


def test_text_table_pads_every_column_to_its_widest_cell():
    assert text_table(("a", "bb"), [("long", 1), ("x", "")], indent="  ") == [
        "  a     bb", "  ----  --", "  long  1", "  x"]
