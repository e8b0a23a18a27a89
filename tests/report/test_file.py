"""normreg/report/: the report model and its JSON read back (round trip, types, malformed files)."""

from __future__ import annotations

import json

import pytest

from normreg.auditing.findings import AuditReport, Finding
from normreg.errors import ResultsError
from normreg.report.file import read_report, report_from_json
from normreg.suite.model import MetricSpec, SeedPlan
from tests.conftest import REGRESSION


def test_round_trip_is_exact(report_json):
    rf = report_from_json(report_json)
    again = json.loads(json.dumps(rf.report.to_json()))
    assert again == report_json
    assert rf.report.verdict == report_json["verdict"] == "error"
    assert rf.report.exit_code == 3


def test_baseline_values_come_back_with_integer_seeds(report_json):
    rf = report_from_json(report_json)
    drift = next(s for s in rf.report.suites if s.name == "drift")
    assert drift.baseline_values is not None
    assert sorted(drift.baseline_values["b"]["acc"]) == [0, 1, 2, 3]
    assert drift.baseline_values["b"]["acc"][0] == pytest.approx(0.802)


def test_unknown_per_suite_entries_are_kept_as_extras(report_json):
    data = json.loads(json.dumps(report_json))
    data["suites"][0]["from_a_later_version"] = {"x": 1}
    rf = report_from_json(data)
    assert rf.extras[data["suites"][0]["name"]] == {"from_a_later_version": {"x": 1}}


def test_suite_entries_read_back_as_their_types(report_json):
    data = json.loads(json.dumps(report_json))
    finding = {"check": "pair_divergence", "severity": "error", "variant": "b", "module": "bn1",
               "module_type": "BatchNorm1d", "message": "differs", "evidence": {"x": 1.0}, "fix": "one batch"}
    data["suites"][0]["audit"] = {"schema": "normreg.audit/1", "suite": data["suites"][0]["name"],
                                  "findings": [finding]}
    data["suites"][0]["seed_plan"] = {"min": 3, "max": 8, "spending": "obrien-fleming", "stages": [3, 5, 8]}
    rf = report_from_json(data)
    info = rf.report.suites[0]
    assert isinstance(info.audit, AuditReport) and info.audit.findings[0] == Finding.from_json(finding)
    assert rf.audit("no-such-suite") is None
    assert info.seed_plan == SeedPlan(3, 8) and info.spending == "obrien-fleming"
    assert all(isinstance(m, MetricSpec) for m in info.metrics)
    back = info.to_json()
    assert back["seed_plan"] == data["suites"][0]["seed_plan"] and back["audit"]["findings"] == [finding]
    assert "spending" not in back  # it lives under seed_plan, as the schema says


def test_problems_carry_their_seed_and_old_reports_read_back(report_json):
    data = json.loads(json.dumps(report_json))
    data["problems"] = [{"suite": "s", "variant": "v", "kind": "run_failed", "message": "seed 4: boom",
                         "expected": False}]  # written before problems carried their seed
    (p,) = report_from_json(data).report.problems
    assert (p.seed, p.message) == (4, "boom")
    assert p.to_json()["seed"] == 4 and p.to_json()["message"] == "boom"


def test_read_report_from_disk(report_path):
    assert read_report(report_path).source == str(report_path)


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(schema="normreg.report/9"), "schema 'normreg.report/9' is not known"),
    (lambda d: d.update(schema="normreg.baseline/1"), "expected a file with schema 'normreg.report/1'"),
    (lambda d: d.pop("created"), r"malformed report \(missing key 'created'\)"),
    (lambda d: d["comparisons"][0].pop("verdict"), r"nightly\.json: comparisons\[0\]\.verdict: missing"),
    (lambda d: d["suites"][0].pop("reference"), r"nightly\.json: suites\[0\]\.reference: missing"),
], ids=["future-schema", "a-baseline", "no-created", "no-verdict", "suite-without-reference"])
def test_bad_reports_are_refused_with_a_message(report_json, mutate, match):
    data = json.loads(json.dumps(report_json))
    mutate(data)
    with pytest.raises(ResultsError, match=match):
        report_from_json(data, "nightly.json")


def test_not_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{\n  oops\n}")
    with pytest.raises(ResultsError, match=r"r\.json:2: not valid JSON"):
        read_report(path)


def test_a_non_finite_metric_stored_as_null_reads_back(tmp_path):
    """A run that logged NaN fails, and the report stores its value as null; the formats still render."""
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites
    from normreg.render.markdown import render_markdown
    from tests.scripted import REPORT_SUITES

    script = {"a": {"acc": [0.8, 0.81, 0.79, 0.8]}, "b": {"acc": [0.8, float("nan"), 0.8, 0.81]},
              "c": {"acc": [0.8, 0.8, 0.81, 0.79]}}
    report = run_suites([REPORT_SUITES / "drift.yaml"], out=tmp_path, baselines=tmp_path / "b",
                        executor=FakeRunner(script))
    data = json.loads(json.dumps(report.to_json()))
    assert [r["metrics"] for r in data["runs"] if r["status"] == "failed"] == [{"acc": None}]
    rf = report_from_json(data)
    assert rf.report.verdict == "error"
    assert "NonFiniteMetric: acc=nan" in render_markdown(rf.report)


def test_the_runs_and_checks_as_pandas_tables_match_the_run_directory(cli, write_suite, tmp_path) -> None:
    import pandas as pd  # here, not at the top: importing it takes seconds, and only this test needs it
    script = {"merged": REGRESSION["merged"],
              "twin": {m: [*xs[:-1], RuntimeError("diverged")] for m, xs in REGRESSION["twin"].items()}}
    cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=script)
    report = read_report(tmp_path / "run" / "report.json").report
    runs = report.runs_frame()
    on_disk = pd.read_csv(tmp_path / "run" / "pair" / "results.csv", keep_default_na=False, na_values={"value": [""]},
                          dtype={"error": str, "metric": str})
    key = ["variant", "seed", "metric"]
    mine = runs.drop(columns="device").sort_values(key).reset_index(drop=True)
    assert list(runs.columns) == [*on_disk.columns, "device"] and set(runs["device"]) == {"fake"}
    pd.testing.assert_frame_equal(mine, on_disk.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert runs["value"].isna().sum() == 1 and (runs["status"] == "failed").sum() == 1
    checks = report.checks_frame()
    assert len(checks) == len(report.checks)
    assert list(checks["verdict"]) == [c.comparison.verdict for c in report.checks]
