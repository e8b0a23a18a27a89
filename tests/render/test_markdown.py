from __future__ import annotations

from dataclasses import replace

from normreg.render.markdown import render_markdown
from normreg.report.file import report_from_json
from tests.golden import assert_golden
from tests.scripted import GOLDEN


def test_markdown_matches_golden(report_json):
    assert_golden(render_markdown(report_from_json(report_json).report), GOLDEN / "summary.md")


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| suite")]


def test_one_row_per_comparison_failures_first_expected_marked(report_json):
    rf = report_from_json(report_json)
    rows = _table_rows(render_markdown(rf.report))
    assert len(rows) == len(rf.report.checks) == 9
    kinds = ["fail" if "❌" in r else "xfail" if "(expected)" in r else "other" for r in rows]
    assert kinds == sorted(kinds, key=["fail", "xfail", "other"].index)
    assert kinds.count("fail") == 2 and kinds.count("xfail") == 2
    twin = [r for r in rows if "merged vs twin" in r]
    assert twin and all("⚠️ regressed (expected)" in r for r in twin)


def test_header_states_outcome_and_exit_code(report_json):
    text = render_markdown(report_from_json(report_json).report)
    assert text.startswith("## normreg: 💥 ERROR (exit 3)\n")
    assert "[CI the verdict used]" in text
    rf = report_from_json(report_json)
    for c in rf.report.checks:  # each row says the level of the interval its verdict used
        if c.comparison.ci_low is not None:
            assert f"({c.comparison.ci_level * 100:.3g}%)" in text


def test_problems_are_grouped_by_seed(report_json):
    text = render_markdown(report_from_json(report_json).report)
    assert "pairs/crash: run failed on seeds 0, 1, 2, 3, 4 (expected): RuntimeError" in text
    assert text.count("CUDA error") == 1


def test_cells_cannot_break_the_table(report_json):
    rf = report_from_json(report_json)
    check = rf.report.checks[0]
    odd = replace(check, comparison=replace(check.comparison, metric="a|b\nc"))
    text = render_markdown(replace(rf.report, checks=(odd,)))
    row = _table_rows(text)[0]
    assert "a\\|b c" in row and row.count(" | ") == 8


def test_a_passing_report(report_json):
    rf = report_from_json(report_json)
    passing = tuple(c for c in rf.report.checks if not c.failed)
    report = replace(rf.report, checks=passing, problems=())
    text = render_markdown(report)
    assert text.startswith("## normreg: ✅ PASS (exit 0)")
    assert "**Problems**" not in text
