"""normreg/render/html.py: the self-contained HTML pages, also opened in headless Chromium when installed."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from normreg.auditing.findings import AuditReport
from normreg.render.html import audit_html, render_html
from normreg.report.file import report_from_json
from tests.scripted import make_report

PNG = b"\x89PNG\r\n\x1a\n"


def figures(page: str) -> list[ET.Element]:
    """The page's inline SVG figures, each parsed on its own (each must be well-formed XML)."""
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, flags=re.S)]


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
        assert ref.startswith("#suite-"), ref
    assert "<img" not in page and "<image" not in page and "<use" not in page
    assert not re.search(r"url\(\s*['\"]?(?!data:)", page)


def test_verdict_table_has_a_row_per_comparison_failures_first(page, report_json):
    table = page.split('<table class="verdicts">')[1].split("</table>")[0]
    rows = re.findall(r'<tr class="([^"]*)">', table)
    assert len(rows) == len(report_json["comparisons"])
    assert rows[:4] == ["fail", "fail", "xfail", "xfail"] and set(rows[4:]) == {""}


def test_a_row_without_an_interval_names_no_level(report_json):
    """An identical pair or a failed side has no interval: its cell is a dash, not a dash with "- CI" under it."""
    data = json.loads(json.dumps(report_json))
    data["comparisons"][0].update(ci_low=None, ci_high=None)  # as an identical pair's
    page = render_html(report_from_json(data).report)
    table = page.split('<table class="verdicts">')[1].split("</table>")[0]
    rows = table.split("<tr class=")[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row)[6] for row in rows]  # the "CI of b − a" column
    assert len(cells) == len(data["comparisons"]) and cells.count("–") == 1, cells
    assert all(c.endswith("% CI</small>") for c in cells if c != "–")


def test_each_suite_has_seed_plot_and_curves_as_inline_svg(page, report_json):
    svgs = figures(page)
    assert len(svgs) == 4  # per suite: per-seed values and learning curves
    for svg in svgs:
        assert float(svg.get("width")) > 200 and float(svg.get("height")) > 150
    assert page.count("<h3>Per-seed results</h3>") == 2 and page.count("<h3>Learning curves</h3>") == 2
    titles = [svg.find("{http://www.w3.org/2000/svg}title").text for svg in svgs]
    assert titles == ["per-seed values of drift", "learning curves of drift", "per-seed values of pairs",
                      "learning curves of pairs"]
    # every successful run of the report is one dot in its suite's per-seed figure, under its variant and metric
    for svg, suite in ((svgs[0], "drift"), (svgs[2], "pairs")):
        drawn = {(g.get("data-variant"), len([c for c in g.iter() if c.get("class") == "seed"]))
                 for g in svg.iter("{http://www.w3.org/2000/svg}g")
                 if g.get("class") == "sample" and g.get("data-source") == "run"}
        metric = next(m for m in next(s for s in report_json["suites"] if s["name"] == suite)["metrics"])
        runs = [r for r in report_json["runs"] if r["suite"] == suite]
        expected = {(v, sum(r["status"] == "ok" and metric in r["metrics"] for r in runs if r["variant"] == v))
                    for v in {r["variant"] for r in runs}}
        assert drawn == expected


def test_no_learning_curves_without_history(tmp_path):
    page = render_html(report_from_json(make_report(tmp_path, curves=False)).report)
    assert "Learning curves" not in page and len(figures(page)) == 2


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
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites
    from tests.scripted import CurvesFakeRunner, normalise

    for i in range(6):
        (tmp_path / f"s{i}.yaml").write_text(
            f"name: s{i}\nseeds: 10\nmetrics: {{acc: {{goal: max, min_effect: 0.01}}, loss: {{goal: min}}}}\n"
            "reference: v0\nvariants:\n" + "".join(f"  v{j}: {{model: {{target: m:Net}}}}\n" for j in range(4)))

    def metrics(variant: str, seed: int) -> dict[str, float]:
        return {"acc": 0.8 + 0.01 * ((seed * 7 + int(variant[1]) * 3) % 5), "loss": 0.3 + 0.02 * (seed % 3)}

    def curves(variant: str, seed: int) -> dict[str, list[float]]:
        return {k: [1 / (e + 1) + 0.01 * seed + 0.02 * int(variant[1]) for e in range(20)]
                for k in ("train_loss", "train_acc", "val_loss", "val_acc")}

    first = run_suites([tmp_path], out=tmp_path / "r1", baselines=tmp_path / "b", update_baseline=True,
                       executor=FakeRunner(metrics))
    assert first.verdict == "pass"
    report = run_suites([tmp_path], out=tmp_path / "r2", baselines=tmp_path / "b",
                        executor=CurvesFakeRunner(metrics, curves))
    assert len(report.runs) == 240 and all(len(r.history["val_acc"]) == 20 for r in report.runs)  # full-size
    start = time.perf_counter()
    page = render_html(report_from_json(normalise(report.to_json())).report)
    seconds = time.perf_counter() - start
    size = len(page.encode("utf-8"))
    print(f"6-suite HTML report: {size / 1e6:.2f} MB in {seconds:.1f} s")
    assert len(figures(page)) == 12
    assert size < 2_000_000


# Fetches nothing: no background services, every host name unresolvable, any proxy use refused.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--hide-scrollbars"]


PROBE = """<script>
window.addEventListener("load", () => {
  const figures = [...document.querySelectorAll("svg.figure")].map(f => {
    const box = f.getBoundingClientRect();
    return {width: box.width, height: box.height, marks: f.querySelectorAll("circle, polyline").length,
            title: f.querySelector("title").textContent};
  });
  const rows = document.querySelectorAll("table.verdicts tr").length;
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({figures, rows, title: document.title});
  document.body.appendChild(probe);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium not found: install Debian's package with 'apt-get install -y chromium'")


def browse(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def html_file(report_json, tmp_path_factory) -> tuple[Path, int]:
    page = render_html(report_from_json(report_json).report)
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(page, encoding="utf-8")
    return path, len(report_json["comparisons"])


def test_table_and_figures_in_the_dom(html_file, tmp_path):
    page, n_checks = html_file
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = browse(tmp_path, probe, "--dump-dom", "--virtual-time-budget=10000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, flags=re.S)
    assert match, "the probe did not run: " + proc.stdout[-1000:]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["rows"] == n_checks + 1  # header and one row per comparison
    assert result["title"] == "normreg report: error"
    assert len(result["figures"]) == 4
    for fig in result["figures"]:
        assert fig["width"] > 200 and fig["height"] > 150 and fig["marks"] > 10 and fig["title"], fig


def test_screenshot_is_not_blank(html_file, tmp_path):
    from PIL import Image

    page, _ = html_file
    shot = tmp_path / "shot.png"
    proc = browse(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2400")
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    assert png_size(shot.read_bytes()) == (1280, 2400)
    with Image.open(shot) as im:
        rgb = im.convert("RGB").resize((320, 600))
        pixels = list(rgb.getdata())
    ink = sum(1 for p in pixels if min(p) < 200) / len(pixels)
    colours = len(set(pixels))
    reddish = sum(1 for r, g, b in pixels if r > 200 and g < 230 and b < 230 and r - b > 10)
    assert ink > 0.03, f"only {ink:.1%} of the page has ink"
    assert colours > 200, f"only {colours} colours: the figures did not render"
    assert reddish > 50, "the failing rows are not tinted"
