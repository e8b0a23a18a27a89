from __future__ import annotations

import base64
import json
import re
import struct
import time
from dataclasses import replace

import pytest
from scripted import make_report

from normreg.audit.findings import AuditReport
from normreg.render.html import audit_html, render_html
from normreg.report.file import report_from_json

PNG = b"\x89PNG\r\n\x1a\n"


def images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG
    return struct.unpack(">II", data[16:24])


AUDIT = {"schema": "normreg.audit/1", "suite": "pairs", "findings": [
    {"severity": "error", "check": "pair_divergence", "variant": "b", "module": "encoder.1",
     "module_type": "BatchNorm1d", "message": "first divergence in train mode", "evidence": {"max_abs_diff": 0.42},
     "fix": "one batch"},
    {"severity": "info", "check": "pair_divergence", "variant": "b", "module": "(loss)", "module_type": "-",
     "message": "only the loss differs", "evidence": {}, "fix": "nothing to fix"}]}


@pytest.fixture(scope="module")
def page(report_json) -> str:
    """The scripted report, with audit findings attached to the pairs suite only (as `run` may attach them)."""
    data = json.loads(json.dumps(report_json))
    next(s for s in data["suites"] if s["name"] == "pairs")["audit"] = AUDIT
    return render_html(report_from_json(data).report)


def test_page_is_self_contained(page):
    assert "<script" not in page and "<link" not in page and "@import" not in page
    for ref in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert ref.startswith(("data:image/png;base64,", "#suite-")), ref
    assert not re.search(r"url\(\s*['\"]?(?!data:)", page)


def test_verdict_table_has_a_row_per_comparison_failures_first(page, report_json):
    table = page.split('<table class="verdicts">')[1].split("</table>")[0]
    rows = re.findall(r'<tr class="([^"]*)">', table)
    assert len(rows) == len(report_json["comparisons"])
    assert rows[:4] == ["fail", "fail", "xfail", "xfail"] and set(rows[4:]) == {""}


def test_each_suite_has_seed_plot_and_curves_as_decodable_pngs(page):
    pngs = images(page)
    assert len(pngs) == 4  # per suite: per-seed values and learning curves
    for data in pngs:
        width, height = png_size(data)
        assert width > 200 and height > 150
    assert page.count("<h3>Per-seed results</h3>") == 2 and page.count("<h3>Learning curves</h3>") == 2


def test_no_learning_curves_without_history(tmp_path):
    page = render_html(report_from_json(make_report(tmp_path, curves=False)).report)
    assert "Learning curves" not in page and len(images(page)) == 2


def test_environment_differences_from_the_baseline_are_shown(page):
    drift = page.split('id="suite-drift"')[1].split('id="suite-pairs"')[0]
    assert "The baseline was made in another environment" in drift and "cuda:0 → fake" in drift
    assert '<tr class="diff"><td>device ≠</td><td>fake</td><td>cuda:0</td></tr>' in drift
    pairs = page.split('id="suite-pairs"')[1]
    assert "another environment" not in pairs and "<th>baseline</th>" not in pairs


def test_problems_grouped_and_marked(page):
    assert "crash: run failed on seeds 0, 1, 2, 3, 4 (expected)" in page
    assert '<li class="v-fail"><code>c: run failed on seed 2: ValueError' in page


def test_baseline_seeds_come_from_the_report_or_else_from_the_checks(report_json):
    from normreg.render.html import _samples, _variants

    rf = report_from_json(report_json)
    drift = next(s for s in rf.report.suites if s.name == "drift")
    _, baseline = _samples(rf.report, drift, _variants(rf.report, drift))
    assert len(baseline["acc"]["b"].values) == 4
    older = replace(drift, baseline_values=None)  # reports written before baselines travelled with them
    _, baseline = _samples(rf.report, older, _variants(rf.report, older))
    assert baseline["acc"]["b"].values == () and baseline["acc"]["b"].summary[2] == 4
    render_html(replace(rf.report, suites=(older,)))  # and it still renders


def test_audit_findings_when_present_and_absence_tolerated(page):
    drift, pairs = page.split('id="suite-drift"')[1].split('id="suite-pairs"')
    assert "<h3>Audit</h3>" not in drift
    assert "<h3>Audit</h3>" in pairs and '<tr class="sev-error">' in pairs
    assert "encoder.1" in pairs and "BatchNorm1d" in pairs and "&quot;max_abs_diff&quot;: 0.42" in pairs
    assert "normreg.audit/1" in pairs


WARNING = {"severity": "warning", "check": "frozen_drift", "variant": "b", "module": "bn", "module_type": "BatchNorm1d",
           "message": "drifts", "evidence": {}, "fix": "eval()"}


@pytest.mark.parametrize("audit, expect", [
    ({"suite": "s", "findings": []}, "No findings."),
    ({"suite": "s", "findings": [WARNING]}, '<tr class="sev-warning">'),
    ({"schema": "normreg.audit/1", "error": "cannot import module 'x'"}, "cannot import module"),
], ids=["no-findings", "a-warning", "could-not-run"])
def test_audit_forms(audit, expect):
    assert expect in audit_html(AuditReport.from_json(audit, suite="s"))
    assert audit_html(None) == ""


def test_all_suites_page_stays_under_two_megabytes(tmp_path):
    """A report the size of a full nightly (6 suites, 4 variants, 10 seeds, 2 metrics, 20-epoch curves) stays
    well under the 2 MB budget."""
    from scripted import CurvesFakeRunner, normalise

    from normreg.pipeline import run_suites
    from normreg.run.fake import FakeRunner

    for i in range(6):
        (tmp_path / f"s{i}.yaml").write_text(
            f"name: s{i}\nseeds: 10\nmetrics: {{acc: {{goal: max, min_effect: 0.01}}, loss: {{goal: min}}}}\n"
            "reference: v0\nvariants:\n" + "".join(f"  v{j}: {{model: {{target: m:Net}}}}\n" for j in range(4)))

    def metrics(variant: str, seed: int) -> dict[str, float]:
        return {"acc": 0.8 + 0.01 * ((seed * 7 + int(variant[1]) * 3) % 5), "loss": 0.3 + 0.02 * (seed % 3)}

    def curves(variant: str, seed: int) -> dict[str, list[float]]:
        return {k: [1 / (e + 1) + 0.01 * seed + 0.02 * int(variant[1]) for e in range(20)]
                for k in ("train_loss", "train_acc", "val_loss", "val_acc")}

    assert isinstance(CurvesFakeRunner(metrics, curves), FakeRunner)
    first = run_suites([tmp_path], out=tmp_path / "r1", baselines=tmp_path / "b", update_baseline=True,
                       executor=FakeRunner(metrics))
    assert first.verdict == "pass"
    report = run_suites([tmp_path], out=tmp_path / "r2", baselines=tmp_path / "b",
                        executor=CurvesFakeRunner(metrics, curves))
    start = time.perf_counter()
    page = render_html(report_from_json(normalise(report.to_json())).report)
    seconds = time.perf_counter() - start
    size = len(page.encode("utf-8"))
    print(f"6-suite HTML report: {size / 1e6:.2f} MB in {seconds:.1f} s")
    assert len(images(page)) == 12
    assert size < 2_000_000
