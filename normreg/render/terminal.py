"""The terminal rendering of a report: the verdict table, reasons, problems, notes and the outcome."""

from __future__ import annotations

from collections.abc import Sequence

from normreg.judge.checks import Check
from normreg.render.escape import plain
from normreg.render.labels import (
    NO_BASELINE,
    NO_BASELINE_HINT,
    TERMINAL,
    correlation,
    environment_note,
    first_per_suite,
    interval,
    level,
    number,
    order,
    p_value,
    pairing_note,
    problem_message,
    resumed_notes,
    signed,
    suite_change_note,
    text_table,
)
from normreg.report.model import Report


def render_table(checks: Sequence[Check]) -> str:
    """A plain-text table of comparisons, failures first."""
    head = ("suite", "kind", "metric", "a -> b", "mean a", "mean b", "diff", "CI", "p", "p adj", "power", "MDE",
            "seed r", "verdict")
    rows = []
    for ch in order(checks):
        c = ch.comparison
        ci = interval(c) if c.ci_low is None else f"{interval(c)} {level(c.ci_level)}"
        rows.append((ch.suite, ch.kind, c.metric, f"{c.a} -> {c.b}", f"{number(c.mean_a)} (n={c.n_a})",
                     f"{number(c.mean_b)} (n={c.n_b})", signed(c.diff, 4), ci, p_value(c.p_value),
                     p_value(c.p_adjusted), number(c.power, 2), number(c.mde, 2), correlation(c), TERMINAL.label(ch)))
    rows = [tuple(plain(str(x)) for x in r) for r in rows]  # names from files: no terminal escape sequences
    return "\n".join(text_table(head, rows))


def render_curves(report: Report) -> str:
    """One line per curve check: where the two variants' learning curves part, or that they do not."""
    lines = []
    for c in report.curves:
        tag = " [fails the run]" if c.failed else ""
        suite = f"{c.suite} " if c.suite else ""
        lines.append(f"  {suite}{c.summary}{tag}")
        if c.note and c.epochs:
            lines.append(f"    ({c.note})")
    return ("Curves (epoch by epoch, each metric's error held at its alpha over all epochs; they inform unless the "
            "suite says curves: {metrics: [...], fail: true}):\n" + "\n".join(lines))


def _likely_causes(report: Report) -> list[str]:
    """One line per audit error finding on a variant whose pair check failed or failed as expected."""
    lines = []
    for s in report.suites:
        if s.audit is None:
            continue
        if s.audit.error is not None:
            lines.append(f"  {s.name}: the audit could not run: {s.audit.error}")
            continue
        failing = {c.comparison.b for c in report.checks
                   if c.suite == s.name and c.kind == "pair" and (c.failed or c.expected_failure)}
        for f in s.audit.findings:
            if f.severity == "error" and f.variant in failing:
                lines.append(f"  {s.name}/{f.variant}: [{f.check}] {f.module} ({f.module_type}): {f.message}")
    return lines


def render(report: Report) -> str:
    """The terminal summary: table, reasons of failing checks, problems, environment notes, outcome."""
    parts = []
    if report.checks:
        parts.append(render_table(report.checks))
        reasons = [f"  {c.suite or '-'} {c.kind} {c.comparison.metric} {c.comparison.a} -> {c.comparison.b}: "
                   f"{c.comparison.reason}" for c in report.checks if c.failed or c.expected_failure]
        if reasons:
            parts.append("Why:\n" + "\n".join(reasons))
        undecided = [f"  {c.suite or '-'} {c.kind} {c.comparison.metric} {c.comparison.a} -> {c.comparison.b}: "
                     + (c.comparison.reason if c.comparison.short_of_margin else
                        f"about {c.comparison.seeds_needed} seeds per side would likely (80%) show it "
                        f"{c.comparison.seeds_needed_for}") for c in report.checks
                     if c.comparison.verdict == "inconclusive" and (c.comparison.seeds_needed is not None
                                                                    or c.comparison.short_of_margin)]
        undecided += [f"  {c.suite or '-'} {c.kind} {c.comparison.metric} {c.comparison.a} -> {c.comparison.b}: "
                      f"{c.comparison.stopped}" for c in report.checks if c.comparison.stopped]
        if undecided:
            parts.append("Inconclusive (from the observed difference and spread, a rough guide):\n"
                         + "\n".join(undecided))
        paired = [f"  {c.suite or '-'} {c.kind} {c.comparison.metric} {c.comparison.a} -> {c.comparison.b}: power "
                  f"{c.comparison.power:.2f} paired vs {c.comparison.power_unpaired:.2f} unpaired"
                  for c in report.checks if c.comparison.power is not None
                  and c.comparison.power_unpaired is not None]
        if paired:
            parts.append("Pairing by seed (power at 2 x min_effect):\n" + "\n".join(paired))
        fam = sorted({c.comparison.correction for c in report.checks} - {"none"})
        if fam:
            staged = any(c.comparison.stages for c in report.checks)
            parts.append(f"p adj: the p-value the verdict uses (of the test against min_effect), {', '.join(fam)}-"
                         "adjusted within each suite's pair checks and, apart, its baseline checks (sequential where "
                         "seeds ran in stages). CI: the interval the verdict used, at the level shown: regressed or "
                         "improved when it lies wholly beyond min_effect. power: the chance of the verdict if the true "
                         "difference is 2 x min_effect; MDE: the true difference reported 80% of the time; both at "
                         "the seeds used" + (", or for staged seeds, of the staged procedure over its planned looks."
                                             if staged else ".") + " seed r: the per-seed correlation of the two sides "
                         "over shared seeds.")
    else:
        parts.append("No comparisons.")
    if report.curves:
        parts.append(render_curves(report))
    causes = _likely_causes(report)
    if causes:
        parts.append("Likely cause (normreg audit, no training):\n" + "\n".join(causes))
    if report.problems:
        parts.append("Problems:\n" + "\n".join(f"  {p.suite}/{p.variant}: {problem_message(p)}"
                                                f"{' (expected)' if p.expected else ''}" for p in report.problems))
    notes = []
    for s in report.suites:
        if s.baseline is None and report.command == "run" and not s.baseline_updated:
            notes.append(f"  {s.name}: {NO_BASELINE} ({NO_BASELINE_HINT})")
        if s.baseline_note:
            notes.append(f"  {s.name}: {s.baseline_note}")
        if s.baseline_updated:
            first = " (the first: none was stored, so only the pair checks were made)" if s.baseline is None else ""
            notes.append(f"  {s.name}: baseline written{first}")
        if s.seed_plan is not None and s.seeds_used is not None:
            used = ", ".join(f"{v} {n}" for v, n in s.seeds_used.items())
            total, fixed = sum(s.seeds_used.values()), s.seed_plan.max * len(s.seeds_used)
            notes.append(f"  {s.name}: {s.stages_run} of {len(s.seed_plan.stages)} stages run "
                         f"(seeds {s.seed_plan.min}..{s.seed_plan.max}, {s.spending} spending); "
                         f"seeds used: {used}; {total} runs, {fixed} at the maximum")
        notes += [f"  {s.name}: {n}" for n in resumed_notes(report.runs, s.name)]
    for suite, changes in first_per_suite(report.checks, lambda c: c.suite_changes):
        notes.append(f"  {suite}: {suite_change_note(changes)}")
    for suite, diffs in first_per_suite(report.checks, lambda c: c.environment_differences):
        notes.append(f"  {suite}: {environment_note(diffs)}")
    for c in report.checks:
        pairing = pairing_note(c.comparison)
        if pairing:
            notes.append(f"  {c.suite or '-'} {c.kind} {c.comparison.metric} {c.comparison.a} -> {c.comparison.b}: "
                         f"{pairing}")
    if notes:
        parts.append("Notes:\n" + "\n".join(notes))
    parts.append(f"Outcome: {report.verdict.upper()} (exit {report.exit_code})")
    return plain("\n\n".join(parts))
