"""normreg/auditing/run.py: `audit_suite` and `normreg audit` (variants, bad input, exit codes), and the audit
`normreg run` attaches to a failing pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from normreg.auditing import SCHEMA, AuditReport, audit_suite
from normreg.errors import InputError, SuiteError
from tests.auditing.helpers import SUITES


def test_unknown_variant_is_bad_input() -> None:
    with pytest.raises(InputError, match=r"unknown variant 'twn'. Did you mean 'twin'\? Variants: merged, twin"):
        audit_suite(SUITES / "audit_pair.yaml", variants=["twn"])
    with pytest.raises(SuiteError, match="no such suite file"):
        audit_suite(SUITES / "nope.yaml")


def test_variant_option_audits_only_that_pair() -> None:
    r = audit_suite(SUITES / "audit_pair.yaml", variants=["reversed"])
    assert r.variants == ("merged", "reversed") and r.exit_code == 0


@pytest.mark.parametrize("suite,code", [("audit_pair", 1), ("audit_pair_layer", 0)])
def test_cli_exit_codes(cli, tmp_path: Path, suite: str, code: int) -> None:
    out = tmp_path / "a.json"
    result = cli("audit", SUITES / f"{suite}.yaml", "--report", out)
    assert result.exit_code == code, result.output
    assert json.loads(out.read_text())["exit_code"] == code
    assert f"Report: {out}" in result.output


def test_cli_bad_input_exits_2(cli) -> None:
    result = cli("audit", SUITES / "audit_pair.yaml", "--variant", "nope")
    assert result.exit_code == 2
    assert "InputError: " in result.output and "unknown variant 'nope'" in result.output


def test_run_attaches_the_audit_to_a_failing_pair(tmp_path: Path) -> None:
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites
    from normreg.render.terminal import render

    script = {"merged": {"acc": [0.90, 0.91]}, "twin": {"acc": [0.80, 0.81]}, "reversed": {"acc": [0.90, 0.91]}}
    report = run_suites([SUITES / "audit_pair.yaml"], executor=FakeRunner(script), out=tmp_path / "run",
                        baselines=tmp_path / "b", audit=True)
    (info,) = report.suites
    assert isinstance(info.audit, AuditReport) and info.audit.variants == ("merged", "twin")
    assert report.to_json()["suites"][0]["audit"]["schema"] == SCHEMA
    assert report.to_json()["suites"][0]["audit"]["findings"][0]["module"] == "net.1"
    assert "Likely cause (normreg audit, no training):\n  audit_pair/twin: [pair_divergence] net.1 (BatchNorm1d)" \
        in render(report)
    from normreg.render.html import render_html
    from normreg.report.file import report_from_json

    back = report_from_json(json.loads(json.dumps(report.to_json())))
    assert back.audit("audit_pair").to_json() == info.audit.to_json()  # survives the JSON round trip
    assert "<h3>Audit</h3>" in render_html(back.report)


def test_run_survives_an_audit_that_cannot_run(tmp_path: Path) -> None:
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nseeds: 2\nmetrics: {acc: {}}\nvariants:\n  a: {model: no_such_module:M}\n"
                     "  b: {model: no_such_module:M}\n")
    report = run_suites([suite], executor=FakeRunner({"a": {"acc": [0.9, 0.91]}, "b": {"acc": [0.5, 0.51]}}),
                        out=tmp_path / "run", baselines=tmp_path / "b", audit=True)
    assert "cannot import module 'no_such_module'" in report.suites[0].audit.error
    assert report.to_json()["suites"][0]["audit"] == {"schema": SCHEMA, "error": report.suites[0].audit.error}
    assert report.verdict == "fail"


def test_run_with_a_fake_runner_does_not_audit_by_default(tmp_path: Path) -> None:
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites

    script = {"merged": {"acc": [0.90, 0.91]}, "twin": {"acc": [0.80, 0.81]}, "reversed": {"acc": [0.90, 0.91]}}
    report = run_suites([SUITES / "audit_pair.yaml"], executor=FakeRunner(script), out=tmp_path / "run",
                        baselines=tmp_path / "b")
    assert report.suites[0].audit is None
