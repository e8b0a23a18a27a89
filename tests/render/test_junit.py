from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from normreg.render.junit import render_junit
from normreg.report.file import report_from_json
from tests.golden import assert_golden
from tests.scripted import GOLDEN


def test_junit_matches_golden(report_json):
    assert_golden(render_junit(report_from_json(report_json).report), GOLDEN / "junit.xml")


def test_junit_parses_with_the_standard_library(report_json):
    rf = report_from_json(report_json)
    root = ET.fromstring(render_junit(rf.report).encode("utf-8"))
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    names = [c.get("name") for c in cases]
    for check in rf.report.checks:
        c = check.comparison
        assert f"{check.suite}.{c.metric}.{c.a}_vs_{c.b}" in names
    failures = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failures) == {"drift.acc.a_vs_b", "drift.acc.baseline:b_vs_b"}
    message = failures["drift.acc.a_vs_b"].get("message")
    assert message.startswith("regressed: b is worse by 0.046")
    assert "mean 0.7562" in failures["drift.acc.a_vs_b"].text and "(97.5% CI)" in failures["drift.acc.a_vs_b"].text
    errors = [c for c in cases if c.find("error") is not None]
    assert [c.get("name") for c in errors] == ["drift.c.run_failed.seed2"]
    assert "loss is NaN" in errors[0].find("error").get("message")
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert "pairs.acc.merged_vs_twin" in skipped and "pairs.crash.run_failed.seed0" in skipped
    for ts in root.findall("testsuite"):
        mine = ts.findall("testcase")
        assert int(ts.get("tests")) == len(mine)
        assert int(ts.get("failures")) == sum(c.find("failure") is not None for c in mine)
        assert int(ts.get("errors")) == sum(c.find("error") is not None for c in mine)
    assert int(root.get("tests")) == len(cases)


def test_junit_loads_in_junitparser(report_json, tmp_path):
    junitparser = pytest.importorskip("junitparser", reason="junitparser is not installed (pip install junitparser)")
    path = tmp_path / "junit.xml"
    path.write_text(render_junit(report_from_json(report_json).report), encoding="utf-8")
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    assert set(suites) == {"drift", "pairs"}
    assert (suites["drift"].tests, suites["drift"].failures, suites["drift"].errors) == (6, 2, 1)
    results = {case.name: [type(r).__name__ for r in case.result] for case in suites["drift"]}
    assert results["drift.acc.a_vs_b"] == ["Failure"]
    assert results["drift.c.run_failed.seed2"] == ["Error"]
    assert results["drift.acc.a_vs_c"] == []
