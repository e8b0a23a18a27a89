"""The `report` and `history` commands, and `run --html/--markdown/--junit`, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from scripted import PAIRS, REPORT_SUITES, drift_script
from typer.testing import CliRunner

from normreg import cli
from normreg.render.markdown import render_markdown
from normreg.report.file import read_report
from normreg.run.fake import FakeRunner

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def test_report_writes_every_format(report_path, tmp_path):
    out = tmp_path / "out"
    r = invoke("report", report_path, "--html", out / "r.html", "--markdown", out / "r.md", "--junit", out / "j.xml")
    assert r.exit_code == 0, r.output
    assert "Outcome: ERROR (exit 3)" in r.output
    for name in ("r.html", "r.md", "j.xml"):
        assert (out / name).stat().st_size > 500
        assert f"Wrote {out / name}" in r.output
    assert (out / "r.md").read_text(encoding="utf-8") == render_markdown(read_report(report_path).report)


def test_report_on_a_bad_file_exits_2(tmp_path):
    r = invoke("report", tmp_path / "missing.json", "--markdown", tmp_path / "x.md")
    assert r.exit_code == 2
    assert "ResultsError:" in r.output and "missing.json: no such file" in r.output
    assert not (tmp_path / "x.md").exists()


def test_run_writes_the_formats_from_its_own_report(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "make_executor", lambda *a, **k: FakeRunner({**PAIRS, **drift_script(2)}))
    shutil.copytree(REPORT_SUITES, tmp_path / "suites")
    monkeypatch.chdir(tmp_path)
    r = invoke("run", "suites", "--out", "runs/n", "--report", "reports/report.json", "--html", "reports/report.html",
               "--markdown", "reports/summary.md", "--junit", "reports/junit.xml")
    assert r.exit_code == 3, r.output  # drift/c crashed on one seed
    reports = tmp_path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["junit.xml", "report.html", "report.json", "summary.md"]
    summary = (reports / "summary.md").read_text(encoding="utf-8")
    assert summary == render_markdown(read_report(reports / "report.json").report)
    assert summary.startswith("## normreg: 💥 ERROR (exit 3)")


def test_history_command(nights_dir, tmp_path):
    r = invoke("history", nights_dir, "--html", tmp_path / "h.html")
    assert r.exit_code == 0, r.output
    assert "drift: acc (higher is better)" in r.output and "5 nights, 2 not passing" in r.output
    assert (tmp_path / "h.html").read_text(encoding="utf-8").count("data:image/png;base64,") == 3
    bad = invoke("history", tmp_path / "nothing-here")
    assert bad.exit_code == 2 and "no such file or directory" in bad.output


def test_formats_do_not_import_torch(report_path, nights_dir, tmp_path):
    """Every format is made from the report alone: torch and Lightning are never imported."""
    script = textwrap.dedent(f"""
        import sys
        from normreg import cli
        for args in (["report", {str(report_path)!r}, "--html", {str(tmp_path / "r.html")!r},
                      "--markdown", {str(tmp_path / "r.md")!r}, "--junit", {str(tmp_path / "r.xml")!r}],
                     ["history", {str(nights_dir)!r}, "--html", {str(tmp_path / "h.html")!r}]):
            sys.argv = ["normreg", *args]
            try:
                cli.main()
            except SystemExit as e:
                assert e.code == 0, (args, e.code)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "pytorch_lightning", "lightning"))
        print("HEAVY", heavy)
        assert "matplotlib" in sys.modules  # the HTML really was drawn in this process
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout
    assert all((tmp_path / n).exists() for n in ("r.html", "r.md", "r.xml", "h.html"))
    json.loads(report_path.read_text())  # untouched


def test_outputs_are_readable_like_any_new_file(report_path, tmp_path):
    old = os.umask(0o022)
    try:
        assert invoke("report", report_path, "--markdown", tmp_path / "s.md").exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / "s.md").stat().st_mode & 0o777 == 0o644
