"""Every closed set of choices normreg accepts, defined once, and the one way a choice is checked.

The suite schema, the command-line options, `compare` and the statistics all take their choices from here, so a
new design or correction is added in one place, and every message lists the same options with a did-you-mean.
"""

from __future__ import annotations

import math
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from normreg.errors import ExitCode, InputError, did_you_mean
from normreg.fileio import describe_value

Goal = Literal["max", "min"]
GOALS: tuple[Goal, ...] = ("max", "min")
# The verdicts of a comparison; the first two are the significant ones, which fail a pair check. "identical" is
# reached only when neither side varies and the values are equal (no test is made).
VERDICTS = ("regressed", "improved", "equivalent", "identical", "inconclusive")
SIGNIFICANT = ("regressed", "improved")
EXPECTATIONS = (*VERDICTS, "failed")  # what a suite may declare with `expect`


# The statistical test a suite uses when it names none: the one design name the stages before judging need (the
# suite's default, the CLI's); a test checks that the registry holds it.
DEFAULT_DESIGN = "welch"


def _designs() -> tuple[str, ...]:
    """The statistical tests the registry holds, one file each in normreg/judge/designs named after the test,
    listed without importing the judging stage (the suite stage comes before it); the default first."""
    folder = Path(__file__).resolve().parent / "judge" / "designs"
    found = sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if m.name != "base")
    return (DEFAULT_DESIGN, *(n for n in found if n != DEFAULT_DESIGN))


DESIGNS = _designs()  # `judge.designs.names()` holds the same, imported; a test checks the two agree
CORRECTIONS = ("holm", "bonferroni", "none")
SPENDING = ("pocock", "obrien-fleming")
MODES = ("pair", "baseline")  # `compare --mode`: the kind of check it makes
# What a report file may hold in its closed fields (checked when a report is read back: `report.file`).
CHECK_KINDS = ("pair", "baseline")  # a comparison's `kind`
PROBLEM_KINDS = ("run_failed", "expected_failure_missing", "baseline_not_updated", "write_failed")
RUN_STATUSES = ("ok", "failed")
# a report's verdict and its exit code
REPORT_VERDICTS = {"pass": ExitCode.PASS, "fail": ExitCode.FAIL, "error": ExitCode.RUN_FAILED}
REPORT_COMMANDS = ("run", "compare")  # the commands that write a report


def choice_problem(value: object, options: Sequence[str]) -> str | None:
    """None when `value` is one of `options`; else `expected one of a, b, but found ... Did you mean ...?`."""
    if isinstance(value, str) and value in options:
        return None
    return (f"expected one of {', '.join(options)}, but found {describe_value(value, yaml=True)}."
            f"{did_you_mean(value, options)}")


def check_choice(what: str, value: object, options: Sequence[str]) -> str:
    """`value` when it is one of `options`; else an `InputError` naming `what` (e.g. `--design`)."""
    problem = choice_problem(value, options)
    if problem is not None:
        raise InputError(f"{what}: {problem}")
    return str(value)


ALPHA_LOW, ALPHA_HIGH = 0.0, 0.5  # a significance level lies strictly between: suites, reports, the command line


def is_alpha(value: object) -> bool:
    """Whether `value` is a significance level: a finite number strictly between ALPHA_LOW and ALPHA_HIGH."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and ALPHA_LOW < value < ALPHA_HIGH)


def check_alpha(value: float | None, what: str = "--alpha") -> float | None:
    """`value` when it is a significance level in (0, 0.5) (or None: not given); else an `InputError`."""
    if value is not None and not is_alpha(value):
        raise InputError(f"expected {what} in ({ALPHA_LOW:g}, {ALPHA_HIGH:g}), got {value}")
    return value


def check_min_effect(value: float | None, what: str = "--min-effect") -> float | None:
    """`value` when it is a finite number >= 0 (or None: not given); else an `InputError`."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise InputError(f"expected {what} to be a finite number >= 0 (the smallest difference that matters), "
                         f"got {value}")
    return value
