"""The Markdown summary: short enough for a pull-request comment or a CI job summary.

One row per comparison, failures first, then known bugs caught as declared (marked "expected"), then the rest;
failed training runs and environment differences follow the table. Made from a report alone.
"""

from __future__ import annotations

from normreg.judge.checks import Check
from normreg.judge.stats import Comparison
from normreg.render.escape import markdown_text, plain
from normreg.render.history import METHOD, ad_hoc_line, environment_text, evidence_text, short_commit
from normreg.render.labels import (
    EN_DASH,
    MARKDOWN,
    NO_BASELINE,
    OTHER_ENVIRONMENT,
    correlation,
    environment_changes,
    first_per_suite,
    interval,
    level,
    mean_pm_sd,
    number,
    order,
    p_value,
    p_with_adjusted,
    pairing_note,
    resumed_notes,
    signed,
    suite_change_note,
)
from normreg.render.summary import describe, group_problems
from normreg.report.history import History
from normreg.report.model import Report

_OUTCOME = {"pass": "✅ PASS", "fail": "❌ FAIL", "error": "💥 ERROR"}


def _num(x: float | None, digits: int = 4) -> str:
    return number(x, digits, missing=EN_DASH)


def _signed(x: float | None) -> str:
    return signed(x, missing=EN_DASH)


def _cell(text: str) -> str:
    """Table cells cannot hold pipes or line breaks (for text normreg makes itself)."""
    return " ".join(text.replace("|", "\\|").split())


def _md(text: str) -> str:
    """Text normreg does not control (names, reasons, messages): escaped, on one line."""
    return " ".join(markdown_text(text).split())


def verdict_cell(check: Check) -> str:
    return MARKDOWN.label(check)


def _side(mean: float | None, sd: float | None, n: int) -> str:
    return f"{mean_pm_sd(mean, sd, EN_DASH)} (n={n})"


def _level(c: Comparison) -> str:
    return "" if c.ci_level is None else f" ({level(c.ci_level)})"


def _row(check: Check) -> str:
    c = check.comparison
    ci = "" if c.ci_low is None else f" {interval(c)}{_level(c)}"
    suite = _md(check.suite) if check.suite else EN_DASH
    kind = "" if check.kind == "pair" else f" ({check.kind})"
    cells = (suite, _md(c.metric), f"{_md(c.a)} vs {_md(c.b)}{kind}", _side(c.mean_a, c.sd_a, c.n_a),
             _side(c.mean_b, c.sd_b, c.n_b), f"{_signed(c.diff)}{ci}", p_with_adjusted(c, missing=EN_DASH),
             correlation(c, EN_DASH), verdict_cell(check))
    return "| " + " | ".join(" ".join(x.split()) for x in cells) + " |"


def render_markdown(report: Report) -> str:
    """The summary of one report as GitHub-flavoured Markdown (ends with a newline)."""
    checks = order(report.checks)
    n_failed = sum(c.failed for c in checks)
    n_expected = sum(c.expected_failure for c in checks)
    env = report.environment
    commit = env.get("git_commit")
    lines = [f"## normreg: {_OUTCOME.get(report.verdict, report.verdict)} (exit {report.exit_code})", ""]
    facts = [f"{len(checks)} comparison{'s' * (len(checks) != 1)}", f"{n_failed} failed"]
    if n_expected:
        facts.append(f"{n_expected} known bug{'s' * (n_expected != 1)} caught as expected")
    if report.suites:
        facts.append(f"suites: {', '.join(_md(s.name) for s in report.suites)}")
    if commit:
        facts.append(f"commit `{plain(str(commit)[:12]).replace('`', '')}`")
    facts.append(_md(str(report.created)))
    lines += [" · ".join(facts), ""]
    if checks:
        lines += ["| suite | metric | a vs b | mean a ± sd | mean b ± sd | b − a [CI the verdict used] | p | seed r | "
                  "verdict |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [_row(c) for c in checks]
        lines.append("")
        why = [c for c in checks if c.failed or c.expected_failure]
        if why:
            lines.append("**Why**")
            lines.append("")
            for c in why:
                tag = " (expected)" if c.expected_failure else ""
                lines.append(f"- {_md(c.suite or '–')} {_md(c.comparison.metric)} {_md(c.comparison.a)} vs "
                             f"{_md(c.comparison.b)}{tag}: {_md(c.comparison.reason)}")
            lines.append("")
        short = [c for c in checks if c.comparison.short_of_margin and c not in why]
        if short:
            lines += ["**Significant, but not shown beyond min_effect**", ""]
            lines += [f"- {_md(c.suite or '–')} {_md(c.comparison.metric)} {_md(c.comparison.a)} vs "
                      f"{_md(c.comparison.b)}: {_md(c.comparison.reason)}" for c in short]
            lines.append("")
    else:
        lines += ["No comparisons.", ""]
    if report.curves:
        lines += ["**Curves** (epoch by epoch; they inform unless the suite says "
                  "`curves: {metrics: [...], fail: true}`)", ""]
        for c in report.curves:
            tag = " ❌ fails the run" if c.failed else ""
            suite = f"{_md(c.suite)}: " if c.suite else ""
            lines.append(f"- {suite}{_md(c.summary)}{tag}")
        lines.append("")
    if report.problems:
        lines += ["**Problems**", ""]
        for g in group_problems(report.problems):
            first = (describe(g).strip().splitlines() or [""])[0]
            first = first if len(first) <= 240 else first[:239] + "…"
            lines.append(f"- {_md(g.suite)}/{_md(first)}")
        lines.append("")
    notes = []
    for suite, changes in first_per_suite(checks, lambda c: c.suite_changes):
        notes.append(f"- {_md(suite)}: {_md(suite_change_note(changes))}")
    for suite, diffs in first_per_suite(checks, lambda c: c.environment_differences):
        notes.append(f"- {_md(suite)}: {OTHER_ENVIRONMENT} ({_md(environment_changes(diffs, '→'))})")
    for s in report.suites:
        if s.baseline is None and report.command == "run":
            notes.append(f"- {_md(s.name)}: {NO_BASELINE}")
        if s.baseline_note:
            notes.append(f"- {_md(s.name)}: {_md(s.baseline_note)}")
        notes += [f"- {_md(s.name)}: {_md(n)}" for n in resumed_notes(report.runs, s.name)]
    for c in checks:
        pairing = pairing_note(c.comparison)
        if pairing:
            notes.append(f"- {_md(c.suite or '–')} {_md(c.comparison.metric)} {_md(c.comparison.a)} vs "
                         f"{_md(c.comparison.b)}: {_md(pairing)}")
    if notes:
        lines += ["**Notes**", "", *notes, ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- history

_CHANGE_MARK = {"regressed": "❌ **regressed**", "improved": "⬆️ improved"}


def render_history_markdown(history: History) -> str:
    """The changes `normreg history` found, one row each, oldest first, for a CI job summary."""
    nights = history.nights
    lines = [f"## normreg history: {len(nights)} nights, {_cell(nights[0].label)} to {_cell(nights[-1].label)}", ""]
    changes = history.changes()
    if not changes:
        lines.append("No change found in any series.")
    else:
        lines += ["| suite | metric | variant | from night | commit | last night before | before → after | "
                  "diff [CI] | p | verdict | evidence | environment |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for s, c in changes:
            k = c.comparison
            new, old = nights[c.night], nights[c.last_before]
            ci = f" {interval(k)}" if k.ci_low is not None else ""
            lines.append("| " + " | ".join([_md(s.suite), _md(s.metric), _md(s.variant)] + [_cell(x) for x in (
                new.label, f"`{short_commit(new.commit)}`",
                f"{old.label} (`{short_commit(old.commit)}`)",
                f"{_num(k.mean_a)} → {_num(k.mean_b)}", f"{_signed(k.diff)}{ci}",
                p_value(k.p_value, EN_DASH),
                _CHANGE_MARK.get(k.verdict, k.verdict), evidence_text(c.evidence, ""),
                ("⚠️ " if c.environment else "") + environment_text(c))]) + " |")
    outliers = [f"{_md(s.suite)} {_md(s.metric)} {_md(s.variant)}: {', '.join(nights[i].label for i in s.outliers)}"
                for s in history.series if s.outliers]
    if outliers:
        lines += ["", "One-night outliers (not changes): " + "; ".join(outliers)]
    if history.ad_hoc:
        lines += ["", _md(ad_hoc_line(history.ad_hoc))]
    lines += ["", "Changes are found with ruptures (PELT) on the per-seed values, and each confirmed at the suite's "
              f"alpha and beyond min_effect by a test whose unit is the distinct night ({METHOD})."]
    return "\n".join(lines) + "\n"
