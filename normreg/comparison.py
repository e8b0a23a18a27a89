"""`compare`: verdicts between two result sets already on disk. Imports neither torch nor Lightning."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from normreg.choices import (
    CORRECTIONS,
    DEFAULT_DESIGN,
    DESIGNS,
    GOALS,
    MODES,
    Goal,
    check_alpha,
    check_choice,
    check_min_effect,
)
from normreg.environment import fingerprint
from normreg.errors import InputError
from normreg.judge.checks import Check
from normreg.judge.curves import CurveCheck, compare_curves
from normreg.judge.designs import compare_values
from normreg.judge.resultset import ResultSet, load_result_set
from normreg.judge.stats import adjust
from normreg.report.file import check_report
from normreg.report.model import Report
from normreg.suite.model import MetricSpec


def _pairs(a: ResultSet, b: ResultSet) -> list[tuple[str, str]]:
    """Which variant of A goes with which of B: the only one of each, or the variants both share by name."""
    if len(a.values) == 1 and len(b.values) == 1:
        return [(next(iter(a.values)), next(iter(b.values)))]
    shared = [v for v in a.values if v in b.values]
    if not shared:
        raise InputError(f"{a.source} holds {', '.join(sorted(a.values))} and {b.source} holds "
                         f"{', '.join(sorted(b.values))}: no variant in common; pick one on each side with "
                         "PATH#variant")
    return [(v, v) for v in shared]


def _label(rs: ResultSet, other: ResultSet, variant: str) -> str:
    """`stem:variant`, with the parent folder when both files share a name (two nights' report.json)."""
    mine, theirs = Path(rs.source.partition("#")[0]), Path(other.source.partition("#")[0])
    if mine == theirs:
        return variant  # two variants of one file: their names say it all
    stem = mine.stem if mine.name != theirs.name else f"{mine.parent.name}/{mine.stem}"
    return f"{stem}:{variant}"


def _suite(a: ResultSet, b: ResultSet, va: str, vb: str) -> str:
    """The suite column of a comparison: the suite both sides come from, `x vs y` when they differ, else the
    name of A's file (a CSV without a suite column names none)."""
    sa, sb = a.suite_of(va), b.suite_of(vb)
    if sa and sb and sa != sb:
        return f"{sa} vs {sb}"
    return sa or sb or Path(a.source.partition("#")[0]).stem


def compare(
    a_spec: str,
    b_spec: str,
    *,
    metrics: tuple[str, ...] = (),
    alpha: float | None = None,
    goal: Goal | None = None,
    min_effect: float | None = None,
    mode: str = "pair",
    design: str = DEFAULT_DESIGN,
    correction: str = "holm",
    curves: tuple[str, ...] = (),
) -> Report:
    """Compare B (candidate) with A (reference) on every shared metric, or only on `metrics`.

    mode "pair": a regression or an improvement fails (the two should match); "baseline": only a regression fails.
    Goal and min_effect come from the files (A's first), unless given. `design` names the statistical test
    (`judge.designs`); `correction` (holm, bonferroni or none) adjusts p-values across all the comparisons made.
    Learning curves are compared epoch by epoch (`judge.curves`) for the curves the files' suites declare, or for
    `curves`; curve checks inform and never change the exit code.
    """
    check_choice("--design", design, DESIGNS)
    check_choice("--correction", correction, CORRECTIONS)
    check_choice("--mode", mode, MODES)
    if goal is not None:
        check_choice("--goal", goal, GOALS)
    check_alpha(alpha)
    check_min_effect(min_effect)
    # reports are checked in full, as `report` and `history` check them, in the same read
    a, b = (load_result_set(spec, check_report=check_report) for spec in (a_spec, b_spec))
    pairs = _pairs(a, b)
    checks: list[Check] = []
    level = alpha if alpha is not None else (a.alpha or b.alpha or 0.05)
    for va, vb in pairs:
        shared = [m for m in a.values[va] if m in b.values[vb]]
        declared = [m for m in shared if m in a.specs or m in b.specs]
        wanted = list(metrics) or declared or shared  # the suite's metrics, not every value a model logged
        for m in wanted:
            if m not in shared:
                have = sorted(set(a.values[va]) & set(b.values[vb]))
                raise InputError(f"metric '{m}' is not in both {a.source} ({va}) and {b.source} ({vb}); "
                                 f"shared metrics: {', '.join(have) or 'none'}")
            a.refuse_non_finite([m], [va])
            b.refuse_non_finite([m], [vb])
            spec = _override(a.specs.get(m) or b.specs.get(m) or MetricSpec(m), goal, min_effect)
            xa, xb = a.values[va][m], b.values[vb][m]
            comparison = compare_values(xa, xb, spec, alpha=level, design=design, a_name=_label(a, b, va),
                                        b_name=_label(b, a, vb))
            checks.append(Check(_suite(a, b, va, vb), mode, comparison))
        if not wanted:
            raise InputError(f"{a.source} ({va}) and {b.source} ({vb}) share no metric")
    adjusted = adjust([c.comparison for c in checks], correction)
    checks = [Check(c.suite, c.kind, x) for c, x in zip(checks, adjusted)]
    curve_checks = [check for va, vb in pairs for check in _curves(a, b, va, vb, curves, level, design, goal,
                                                                   min_effect)]
    env = fingerprint(None)
    return Report(created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), environment=env,
                  suites=(), runs=(), checks=tuple(checks), command="compare", curves=tuple(curve_checks))


def _curves(a: ResultSet, b: ResultSet, va: str, vb: str, asked: tuple[str, ...], alpha: float, design: str,
            goal: Goal | None, min_effect: float | None) -> list[CurveCheck]:
    """Curve checks of B's variant `vb` against A's `va`: the curves `asked`, else those the files declare."""
    ha, hb = a.histories.get(va, {}), b.histories.get(vb, {})
    declared = {**b.curve_specs, **a.curve_specs}
    for m in asked:
        if m not in ha or m not in hb:
            have = ", ".join(sorted(set(ha) & set(hb))) or "none (runs record them; CSVs and baselines do not)"
            raise InputError(f"curve '{m}' is not logged per epoch in both {a.source} ({va}) and {b.source} ({vb}); "
                             f"curves both logged: {have}")
    out = []
    for m in asked or [m for m in declared if m in ha and m in hb]:
        spec = _override(declared.get(m) or a.specs.get(m) or b.specs.get(m) or MetricSpec(m), goal, min_effect)
        out.append(compare_curves(ha[m], hb[m], spec, alpha=alpha, design=design, a_name=_label(a, b, va),
                                  b_name=_label(b, a, vb), suite=_suite(a, b, va, vb)))
    return out


def _override(spec: MetricSpec, goal: Goal | None, min_effect: float | None) -> MetricSpec:
    """`spec` with the command line's --goal and --min-effect where given."""
    return MetricSpec(spec.name, goal or spec.goal, spec.min_effect if min_effect is None else min_effect)

