"""normreg/render/terminal.py: the summary `run`, `compare` and `report` print."""

from __future__ import annotations

from dataclasses import replace

from normreg.auditing.findings import AuditReport, Finding
from normreg.render.terminal import render, render_table
from normreg.report.file import report_from_json


def test_the_table_lists_failures_first_and_the_outcome_closes(report_json):
    report = report_from_json(report_json).report
    text = render(report)
    rows = render_table(report.checks).splitlines()[2:]
    assert "FAIL" in rows[0] and not any("FAIL" in r for r in rows[sum("FAIL" in r for r in rows):])
    assert text.endswith(f"Outcome: {report.verdict.upper()} (exit {report.exit_code})")


def test_notes_problems_and_the_likely_cause(report_json):
    report = report_from_json(report_json).report
    text = render(report)
    assert "drift: the baseline was made in another environment (device cuda:0 -> fake)" in text
    assert "pairs: no stored baseline; only pair checks were made (store one with --update-baseline)" in text
    failed = next(p for p in report.problems if p.seed is not None)
    assert f"  {failed.suite}/{failed.variant}: seed {failed.seed}: " in text
    pair = next(c for c in report.checks if c.kind == "pair" and c.failed)
    finding = Finding("pair_divergence", "error", pair.comparison.b, "net.1", "BatchNorm1d", "differs", {}, "fix")
    suites = tuple(replace(s, audit=AuditReport(s.name, findings=(finding,))) if s.name == pair.suite else s
                   for s in report.suites)
    assert (f"Likely cause (normreg audit, no training):\n  {pair.suite}/{pair.comparison.b}: [pair_divergence] "
            "net.1 (BatchNorm1d): differs") in render(replace(report, suites=suites))
    broken = tuple(replace(s, audit=AuditReport(s.name, error="ImportError: no module x")) for s in report.suites)
    assert f"  {report.suites[0].name}: the audit could not run: ImportError: no module x" in \
        render(replace(report, suites=broken))
