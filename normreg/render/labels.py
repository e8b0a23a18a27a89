"""Presentation decisions every report format shares, made once: verdict labels, number and p-value formats, the
notes (no stored baseline, a baseline made in another environment), the row order, and plain-text tables.

A renderer picks its style (a dash or "n/a" for a missing number, an arrow, an icon per verdict status) from the
constants here, so two formats cannot drift apart on what a verdict or a number means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from normreg.execution.results import RunResult
from normreg.judge.checks import Check, Problem
from normreg.judge.designs import pairing_design, pairing_power
from normreg.judge.stats import Comparison, clear_correlation
from normreg.suite.diff import summarise

# ------------------------------------------------------------------------------------------------ numbers

DASH = "-"  # a missing number in plain text
EN_DASH = "–"  # a missing number in Markdown and HTML


def number(x: float | None, digits: int = 4, missing: str = DASH) -> str:
    """A number to `digits` significant digits, or `missing`."""
    return missing if x is None else f"{x:.{digits}g}"


def signed(x: float | None, digits: int = 3, missing: str = DASH) -> str:
    """A difference with its sign always shown."""
    return missing if x is None else f"{x:+.{digits}g}"


def mean_pm_sd(mean: float | None, sd: float | None, missing: str = DASH) -> str:
    """One side's mean and spread, `0.9781 ± 0.0086` (4 and 2 significant digits); the mean alone when there is no
    spread (one seed), `missing` when there is no mean."""
    if mean is None:
        return missing
    return number(mean, 4) + ("" if sd is None else f" ± {number(sd, 2)}")


def interval(c: Comparison, digits: int = 3, missing: str = DASH) -> str:
    """The confidence interval of b - a as `[low, high]`, or `missing` when there is none."""
    return missing if c.ci_low is None else f"[{signed(c.ci_low, digits)}, {signed(c.ci_high, digits)}]"


def level(x: float | None, missing: str = DASH) -> str:
    """A confidence level as a percentage: 95%, 90%, 98.3%; an exact difference is 100%."""
    return missing if x is None else f"{x * 100:.3g}%"


def p_value(p: float | None, missing: str = DASH) -> str:
    """Two significant digits; anything below 1e-4 is shown as `<1e-4` (more digits would be noise)."""
    if p is None:
        return missing
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def adjusted_p(c: Comparison, missing: str = DASH) -> str | None:
    """The adjusted p the verdict used, when the correction changed what is shown; else None."""
    if c.p_adjusted is None:
        return None
    adjusted = p_value(c.p_adjusted, missing)
    return None if adjusted == p_value(c.p_value, missing) else adjusted


def p_with_adjusted(c: Comparison, missing: str = DASH) -> str:
    """The p-value, followed by the adjusted one the verdict used when correction changed it."""
    adjusted = adjusted_p(c, missing)
    p = p_value(c.p_value, missing)
    return p if adjusted is None else f"{p} (adj. {adjusted})"


# ------------------------------------------------------------------------------------------ verdict labels

def verdict_shown(c: Comparison) -> str:
    """The verdict as every format shows it: an inconclusive difference that is significant but not shown beyond
    min_effect says which way it points, so it cannot be read as "no difference" in any output."""
    if c.verdict == "inconclusive" and c.short_of_margin:
        return f"inconclusive ({c.short_of_margin}, not shown beyond min_effect)"
    return c.verdict


Status = Literal["fail", "unexpected", "known_bug", "as_expected", "pass"]
OK_VERDICTS = ("equivalent", "identical")  # verdicts shown as good news when they do not fail


def status(check: Check) -> Status:
    """How a check bears on the outcome.

    fail: a failing verdict with no expectation; unexpected: a verdict other than the declared one; known_bug: a
    declared regression or improvement, caught as declared (reported, does not fail); as_expected: another
    declared verdict met; pass: anything else.
    """
    if check.failed:
        return "unexpected" if check.expected is not None else "fail"
    if check.expected_failure:
        return "known_bug"
    return "as_expected" if check.expected is not None else "pass"


@dataclass(frozen=True)
class VerdictStyle:
    """One format's label per status; `{v}` is the verdict, `{e}` the declared one. `equivalent`, when given,
    replaces the label of an equivalent verdict that does not fail."""

    fail: str
    unexpected: str
    known_bug: str
    as_expected: str
    passed: str
    equivalent: str | None = None  # also for `identical`: both are in OK_VERDICTS

    def label(self, check: Check, escape: Callable[[str], str] = str) -> str:
        s = status(check)
        v = verdict_shown(check.comparison)
        if self.equivalent is not None and check.comparison.verdict in OK_VERDICTS and s in ("as_expected", "pass"):
            template = self.equivalent
        else:
            template = self.passed if s == "pass" else getattr(self, s)
        return template.format(v=escape(v), e=escape(check.expected or ""))


TERMINAL = VerdictStyle(fail="{v} FAIL", unexpected="{v} (UNEXPECTED: expected {e})", known_bug="{v} (expected)",
                        as_expected="{v} (as expected)", passed="{v}")
MARKDOWN = VerdictStyle(fail="❌ **{v}**", unexpected="❌ **{v}**, expected {e}", known_bug="⚠️ {v} (expected)",
                        as_expected="➖ {v} (as expected)", passed="➖ {v}", equivalent="✅ {v}")
HTML = VerdictStyle(fail="{v} — FAIL", unexpected="{v} — FAIL (expected {e})", known_bug="{v} (expected: known bug)",
                    as_expected="{v}", passed="{v}")
JUNIT = VerdictStyle(fail="{v}", unexpected="{v} (expected {e})", known_bug="known bug caught as expected: {v}",
                     as_expected="{v}", passed="{v}")
# CSS class of an HTML verdict and of its table row, per status.
HTML_CLASS: Mapping[Status, str] = {"fail": "v-fail", "unexpected": "v-fail", "known_bug": "v-xfail",
                                    "as_expected": "", "pass": ""}
HTML_ROW_CLASS: Mapping[Status, str] = {"fail": "fail", "unexpected": "fail", "known_bug": "xfail",
                                        "as_expected": "", "pass": ""}

# --------------------------------------------------------------------------------------------------- notes

NO_BASELINE = "no stored baseline; only pair checks were made"
NO_BASELINE_HINT = "store one with --update-baseline"
OTHER_ENVIRONMENT = "the baseline was made in another environment"
OTHER_ENVIRONMENT_JUNIT = "environment differs from the baseline's"


def environment_changes(diffs: Mapping[str, Sequence[Any]], arrow: str = "->",
                        value: Callable[[Any], str] = str) -> str:
    """`key stored -> current, ...`, sorted by key."""
    return ", ".join(f"{k} {value(a)} {arrow} {value(b)}" for k, (a, b) in sorted(diffs.items()))


def environment_note(diffs: Mapping[str, Sequence[Any]], arrow: str = "->") -> str:
    """`the baseline was made in another environment (key stored -> current, ...)`."""
    return f"{OTHER_ENVIRONMENT} ({environment_changes(diffs, arrow)})"


def resumed_notes(runs: Iterable[RunResult], suite: str) -> list[str]:
    """`["runs continued from a checkpoint by --resume: a seed 0 resumed from epoch 4, ..."]`, or [] when every run
    of `suite` trained from epoch 0. A resumed run equals an uninterrupted one only where Lightning and normreg
    restore everything it depends on (docs/stops-and-failures.md says what), so a report always says so."""
    resumed = sorted((r.variant, r.seed, r.resumed_from_epoch) for r in runs
                     if r.suite == suite and r.resumed_from_epoch is not None)
    return ["runs continued from a checkpoint by --resume: " + ", ".join(
        f"{v} seed {seed} resumed from epoch {k}" for v, seed, k in resumed)] if resumed else []


SUITE_CHANGED = "the suite changed since the baseline"


def suite_change_note(changes: Sequence[str]) -> str:
    """`the suite changed since the baseline (variants.twin.trainer.max_epochs: 3 -> 4; ...)`."""
    return f"{SUITE_CHANGED} ({summarise(changes)})"


def correlation(c: Comparison, missing: str = DASH) -> str:
    """The per-seed correlation of the two sides (`+0.81`), or `missing` with fewer than three shared seeds."""
    return missing if c.seed_correlation is None else f"{c.seed_correlation:+.2f}"


def pairing_note(c: Comparison) -> str | None:
    """What a clearly non-zero per-seed correlation means for an unpaired test (two-sided p < 0.05): positive, the
    paired design would be more powerful; negative, the unpaired test's false-alarm rate does not hold. None
    for the paired design, which accounts for it, and where the correlation is not clear."""
    paired = pairing_design(c.design)
    if paired is None or not c.tested:
        return None
    sign, p = clear_correlation(c.seed_correlation, c.shared_seeds)
    if sign == 0:
        return None
    shown = p_value(p)
    head = (f"per-seed correlation {c.seed_correlation:+.2f} over {c.shared_seeds} shared seeds "
            f"(p{shown if shown.startswith('<') else '=' + shown}): ")
    if sign > 0:
        gain = pairing_power(c, paired)
        if gain is None or c.power is None or gain < c.power + PAIRING_GAIN:
            return None  # the unpaired test is only conservative, and pairing would gain little
        return (head + f"same-seed runs move together, which the {c.design} test ignores; design: {paired} would "
                f"be more powerful here (power at 2 x min_effect {gain:.2f} against {c.power:.2f})")
    return (head + f"same-seed runs move against each other, so the {c.design} test's false-alarm rate is above "
            f"alpha here (it assumes independent sides); use design: {paired}")


PAIRING_GAIN = 0.05  # the least gain in power for which the pairing note suggests the paired design


T = TypeVar("T")


def first_per_suite(checks: Sequence[Check], field: Callable[[Check], T]) -> list[tuple[str, T]]:
    """(suite, value) of the first check of each suite whose `field` is not empty: a suite's changes since its
    baseline (`lambda c: c.suite_changes`) or its environment differences, which every baseline check carries."""
    seen: dict[str, T] = {}
    for c in checks:
        value = field(c)
        if value and c.suite not in seen:
            seen[c.suite] = value
    return list(seen.items())


def problem_message(problem: Problem) -> str:
    """The problem's message, headed by the seed of the run it concerns (`seed 3: RuntimeError: ...`)."""
    return problem.message if problem.seed is None else f"seed {problem.seed}: {problem.message}"


# ------------------------------------------------------------------------------------------------ row order


def order(checks: Sequence[Check]) -> list[Check]:
    """Failures first, then known bugs caught as expected, then the rest; by suite, pairs before baselines."""
    def rank(c: Check) -> int:
        return 0 if c.failed else 1 if c.expected_failure else 2

    return sorted(checks, key=lambda c: (rank(c), c.suite, c.kind != "pair", c.comparison.metric, c.comparison.b))


# --------------------------------------------------------------------------------------------- text tables


def text_table(head: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> list[str]:
    """A plain-text table: the header, a rule of dashes, then the rows, each column as wide as its widest cell."""
    cells = [[str(x) for x in head], *([str(x) for x in r] for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]

    def line(r: Sequence[str]) -> str:
        return indent + "  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()

    return [line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])]
