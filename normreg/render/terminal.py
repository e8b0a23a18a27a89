"""The terminal rendering of a report: the verdict table, reasons, problems, notes and the outcome."""

from __future__ import annotations

from collections.abc import Sequence

from normreg.judge.checks import Check
from normreg.judge.stats import Comparison
from normreg.render.escape import plain
from normreg.report.model import Report


def format_number(x: float | None, digits: int = 4, missing: str = "-") -> str:
    return missing if x is None else f"{x:.{digits}g}"


def format_p(p: float | None, missing: str = "-") -> str:
    if p is None:
        return missing
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"




def format_level(level: float | None, missing: str = "-") -> str:
    """A confidence level as a percentage: 95%, 90%, 98.3%; an exact difference is 100%."""
    return missing if level is None else f"{level * 100:.3g}%"


def format_p_with_adjusted(c: Comparison, missing: str = "-") -> str:
    """The p-value, followed by the adjusted one the verdict used when correction changed it."""
    p = format_p(c.p_value, missing)
    adjusted = format_p(c.p_adjusted, missing)
    return p if c.p_adjusted is None or adjusted == p else f"{p} (adj. {adjusted})"


def verdict_label(check: Check) -> str:
    v = check.comparison.verdict
    if check.expected_failure:
        return f"{v} (expected)"
    if check.expected is not None and check.failed:
        return f"{v} (UNEXPECTED: expected {check.expected})"
    if check.expected is not None:
        return f"{v} (as expected)"
    return f"{v} FAIL" if check.failed else v


def render_table(checks: Sequence[Check]) -> str:
    """A plain-text table of comparisons, failures first."""
    head = ("suite", "kind", "metric", "a -> b", "mean a", "mean b", "diff", "CI", "p", "p adj", "power", "MDE",
            "verdict")
    rows = []
    for ch in sorted(checks, key=lambda c: (not c.failed, c.suite, c.kind != "pair", c.comparison.metric)):
        c = ch.comparison
        ci = "-" if c.ci_low is None else f"[{c.ci_low:+.3g}, {c.ci_high:+.3g}] {format_level(c.ci_level)}"
        diff = "-" if c.diff is None else f"{c.diff:+.4g}"
        rows.append((ch.suite, ch.kind, c.metric, f"{c.a} -> {c.b}", f"{format_number(c.mean_a)} (n={c.n_a})",
                     f"{format_number(c.mean_b)} (n={c.n_b})", diff, ci, format_p(c.p_value),
                     format_p(c.p_adjusted), format_number(c.power, 2), format_number(c.mde, 2),
                     verdict_label(ch)))
    rows = [tuple(plain(str(x)) for x in r) for r in rows]  # names from files: no terminal escape sequences
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *map(line, rows)])


def _likely_causes(report: Report) -> list[str]:
    """One line per audit error finding on a variant whose pair check failed or failed as expected."""
    lines = []
    for s in report.suites:
        if not s.audit:
            continue
        if s.audit.get("error"):
            lines.append(f"  {s.name}: the audit could not run: {s.audit['error']}")
            continue
        failing = {c.comparison.b for c in report.checks
                   if c.suite == s.name and c.kind == "pair" and (c.failed or c.expected_failure)}
        for f in s.audit.get("findings", []):
            if f.get("severity") == "error" and f.get("variant") in failing:
                lines.append(f"  {s.name}/{f['variant']}: [{f['check']}] {f['module']} ({f['module_type']}): "
                             f"{f['message']}")
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
                     f"about {c.comparison.seeds_needed} seeds per side would likely (80%) show it "
                     f"{c.comparison.seeds_needed_for}" for c in report.checks
                     if c.comparison.verdict == "inconclusive" and c.comparison.seeds_needed is not None]
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
            parts.append(f"p adj: the p-value the verdict uses, {', '.join(fam)}-adjusted within each suite's pair "
                         "checks and, apart, its baseline checks (sequential where seeds ran in stages). CI: the "
                         "interval the verdict used, at the level shown. power: the chance of the verdict if the true "
                         "difference is 2 x min_effect; MDE: the true difference reported 80% of the time; both at "
                         "the seeds used.")
    else:
        parts.append("No comparisons.")
    causes = _likely_causes(report)
    if causes:
        parts.append("Likely cause (normreg audit, no training):\n" + "\n".join(causes))
    if report.problems:
        parts.append("Problems:\n" + "\n".join(
            f"  {p.suite}/{p.variant}: {p.message}{' (expected)' if p.expected else ''}" for p in report.problems))
    notes = []
    for s in report.suites:
        if s.baseline is None and report.command == "run" and not s.baseline_updated:
            notes.append(f"  {s.name}: no stored baseline; only the pair checks were made "
                         "(store one with --update-baseline)")
        if s.baseline_note:
            notes.append(f"  {s.name}: {s.baseline_note}")
        if s.baseline_updated:
            first = " (the first: none was stored, so only the pair checks were made)" if s.baseline is None else ""
            notes.append(f"  {s.name}: baseline written{first}")
        if s.seed_plan is not None and s.seeds_used is not None:
            used = ", ".join(f"{v} {n}" for v, n in s.seeds_used.items())
            total, fixed = sum(s.seeds_used.values()), s.seed_plan["max"] * len(s.seeds_used)
            notes.append(f"  {s.name}: {s.stages_run} of {len(s.seed_plan['stages'])} stages run "
                         f"(seeds {s.seed_plan['min']}..{s.seed_plan['max']}, {s.seed_plan['spending']} spending); "
                         f"seeds used: {used}; {total} runs, {fixed} at the maximum")
    seen: set[str] = set()
    for c in report.checks:
        if c.environment_differences and c.suite not in seen:
            seen.add(c.suite)
            diffs = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in c.environment_differences.items())
            notes.append(f"  {c.suite}: the baseline was made in another environment ({diffs})")
    if notes:
        parts.append("Notes:\n" + "\n".join(notes))
    parts.append(f"Outcome: {report.verdict.upper()} (exit {report.exit_code})")
    return plain("\n\n".join(parts))
