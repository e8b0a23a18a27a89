"""JUnit XML, so CI systems list every comparison as a test: one `<testsuite>` per normreg suite.

Each comparison is a test case named `suite.metric.a_vs_b`. A failing verdict is a `<failure>` with the numbers in
its message; a known bug caught as declared is skipped as an expected failure (as pytest writes an xfail); a
failed training run is an `<error>` with its message; a problem that fails the run (a known bug no longer
reproduced, a baseline left unchanged) is a `<failure>`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

from normreg.judge.checks import Check, Problem
from normreg.judge.curves import CurveCheck
from normreg.render.escape import xml_text
from normreg.render.labels import (
    JUNIT,
    OTHER_ENVIRONMENT_JUNIT,
    environment_changes,
    interval,
    level,
    number,
    problem_message,
    signed,
    suite_change_note,
    verdict_shown,
)
from normreg.report.model import Report

NA = "n/a"


def _g(x: float | None, digits: int = 4) -> str:
    return number(x, digits, missing=NA)


def case_name(check: Check) -> str:
    c = check.comparison
    return f"{check.suite or 'compare'}.{c.metric}.{c.a}_vs_{c.b}"


def numbers(check: Check) -> str:
    """The comparison's numbers on one line, for a failure message."""
    c = check.comparison
    ci = "" if c.ci_low is None else f" {interval(c, 4)} ({level(c.ci_level)} CI)"
    diff = signed(c.diff, 4, missing=NA)
    return (f"{c.a}: mean {_g(c.mean_a)} sd {_g(c.sd_a, 3)} n={c.n_a}; {c.b}: mean {_g(c.mean_b)} sd {_g(c.sd_b, 3)} "
            f"n={c.n_b}; diff {diff}{ci}; p={_g(c.p_value, 3)}; min_effect {c.min_effect:g}; alpha {c.alpha:g}")


def _check_case(parent: ET.Element, check: Check) -> str:
    c = check.comparison
    case = ET.SubElement(parent, "testcase", name=case_name(check), classname=f"normreg.{check.suite or 'compare'}",
                         time="0")
    detail = f"{c.reason}\n{numbers(check)}"
    if check.suite_changes:
        detail += f"\n{suite_change_note(check.suite_changes)}"
    if check.environment_differences:
        detail += f"\n{OTHER_ENVIRONMENT_JUNIT}: {environment_changes(check.environment_differences)}"
    if check.failed:
        ET.SubElement(case, "failure", message=f"{JUNIT.label(check)}: {c.reason}", type=c.verdict).text = detail
        return "failure"
    if check.expected_failure:
        ET.SubElement(case, "skipped", type="xfail", message=JUNIT.label(check)).text = detail
        return "skipped"
    ET.SubElement(case, "system-out").text = f"{verdict_shown(c)}: {detail}"
    return "pass"


def _curve_case(parent: ET.Element, curve: CurveCheck) -> str:
    """A curve check is a test case that fails only where the suite asks (`curves: {metrics: [...], fail: true}`)."""
    case = ET.SubElement(parent, "testcase", name=f"{curve.suite}.curve.{curve.metric}.{curve.a}_vs_{curve.b}",
                         classname=f"normreg.{curve.suite}", time="0")
    detail = curve.summary
    if curve.parted:
        detail += f"\nparted at epochs {', '.join(map(str, curve.parted))}; per-epoch level {curve.level:.3g}"
    if curve.failed:
        ET.SubElement(case, "failure", message=curve.summary, type="curves_parted").text = detail
        return "failure"
    ET.SubElement(case, "system-out").text = detail
    return "pass"


def _problem_case(parent: ET.Element, problem: Problem, name: str) -> str:
    case = ET.SubElement(parent, "testcase", name=name, classname=f"normreg.{problem.suite}", time="0")
    message = problem_message(problem)
    if problem.kind == "run_failed" and problem.expected:
        ET.SubElement(case, "skipped", type="xfail", message=f"run failed as expected: {message}")
        return "skipped"
    if problem.kind == "run_failed":
        first = (message.strip().splitlines() or [""])[0]
        ET.SubElement(case, "error", message=first, type="run_failed").text = message
        return "error"
    ET.SubElement(case, "failure", message=message, type=problem.kind).text = message
    return "failure"


def render_junit(report: Report) -> str:
    """The report as a JUnit XML document (UTF-8 text with an XML declaration)."""
    suites = [s.name for s in report.suites]
    for name in [c.suite for c in report.checks] + [p.suite for p in report.problems] + \
            [c.suite for c in report.curves]:
        if name not in suites:
            suites.append(name)
    root = ET.Element("testsuites", name="normreg")
    totals: Counter[str] = Counter()
    for name in suites:
        checks = [c for c in report.checks if c.suite == name]
        problems = [p for p in report.problems if p.suite == name]
        seconds = sum(r.duration_s for r in report.runs if r.suite == name)
        ts = ET.SubElement(root, "testsuite", name=name or "compare", timestamp=report.created,
                           time=f"{seconds:.3f}")
        props = ET.SubElement(ts, "properties")
        for k, v in sorted(report.environment.items()):
            ET.SubElement(props, "property", name=k, value="" if v is None else str(v))
        counts: Counter[str] = Counter(_check_case(ts, c) for c in checks)
        counts.update(_curve_case(ts, c) for c in report.curves if c.suite == name)
        used: Counter[str] = Counter()
        for p in problems:
            base = f"{p.suite}.{p.variant}.{p.kind}" + ("" if p.seed is None else f".seed{p.seed}")
            used[base] += 1
            counts[_problem_case(ts, p, base if used[base] == 1 else f"{base}.{used[base]}")] += 1
        tests = sum(counts.values())
        ts.attrib.update(tests=str(tests), failures=str(counts["failure"]), errors=str(counts["error"]),
                         skipped=str(counts["skipped"]))
        # ElementTree keeps insertion order: put the counts first for readers of the raw XML.
        ts.attrib = {k: ts.attrib[k] for k in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp")}
        totals.update(counts)
    root.attrib.update(tests=str(sum(totals.values())), failures=str(totals["failure"]),
                       errors=str(totals["error"]), skipped=str(totals["skipped"]))
    for el in root.iter():  # names and messages come from files: keep the document well-formed XML
        el.text = None if el.text is None else xml_text(el.text)
        el.attrib = {k: xml_text(v) for k, v in el.attrib.items()}
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
