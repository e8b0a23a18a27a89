"""normreg/cli.py end to end with the fake executor: exit codes, the terminal summary, the report, the `report`
and `history` commands and the output formats. No training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REGRESSION, SAME
from scripted import PAIRS, REPORT_SUITES, drift_script
from typer.testing import CliRunner

from normreg import cli
from normreg.execution.fake import FakeRunner
from normreg.render.markdown import render_markdown
from normreg.report.file import read_report
from normreg.report.model import SCHEMA


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def test_regression_exits_1_and_report_has_the_schema(cli, write_suite, tmp_path: Path) -> None:
    suite = write_suite()
    out, report = tmp_path / "run", tmp_path / "r.json"
    res = cli("run", suite, "--out", out, "--report", report, "--baselines", tmp_path / "b", script=REGRESSION)
    assert res.exit_code == 1, res.output
    assert "regressed FAIL" in res.output and "Outcome: FAIL (exit 1)" in res.output
    data = _report(report)
    assert data["schema"] == SCHEMA and data["verdict"] == "fail" and data["exit_code"] == 1
    assert report.read_text().endswith("\n")
    assert list(data) == sorted(data)
    acc = next(c for c in data["comparisons"] if c["metric"] == "acc")
    for key in ("suite", "kind", "metric", "a", "b", "n_a", "n_b", "mean_a", "mean_b", "diff", "ci_low",
                "ci_high", "t", "df", "p_value", "verdict"):
        assert key in acc, key
    assert acc["kind"] == "pair" and acc["a"] == "merged" and acc["b"] == "twin" and acc["verdict"] == "regressed"
    assert acc["failed"] is True and acc["p_value"] < 0.01
    loss = next(c for c in data["comparisons"] if c["metric"] == "loss")
    assert loss["failed"] is False
    assert len(data["runs"]) == 10 and {r["seed"] for r in data["runs"]} == set(range(5))
    assert (out / "report.json").exists() and (out / "pair" / "results.csv").exists()


def test_same_implementation_passes(cli, write_suite, tmp_path: Path) -> None:
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 0, res.output
    assert "Outcome: PASS (exit 0)" in res.output
    assert "no stored baseline" in res.output


def test_failed_run_exits_3_and_others_go_on(cli, write_suite, tmp_path: Path) -> None:
    script = {"merged": SAME["merged"],
              "twin": {"acc": [0.98, RuntimeError("CUDA out of memory"), 0.97, float("nan"), 0.99],
                       "loss": [0.3] * 5}}
    report = tmp_path / "r.json"
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--report", report, "--baselines", tmp_path / "b",
              script=script)
    assert res.exit_code == 3, res.output
    data = _report(report)
    assert data["verdict"] == "error"
    failed = [r for r in data["runs"] if r["status"] == "failed"]
    assert [(r["seed"], r["error"].split(":")[0]) for r in failed] == [(1, "RuntimeError"), (3, "NonFiniteMetric")]
    assert "CUDA out of memory" in failed[0]["error"]
    assert sum(r["status"] == "ok" for r in data["runs"]) == 8
    assert "seed 1: RuntimeError: CUDA out of memory" in res.output


def test_expectations(cli, write_suite, tmp_path: Path) -> None:
    suite = write_suite(extra="expect: {twin: {acc: regressed}}\n")
    args = ("run", suite, "--baselines", tmp_path / "b")
    caught = cli(*args, "--out", tmp_path / "r1", "--report", tmp_path / "r.json", script=REGRESSION)
    assert caught.exit_code == 0, caught.output
    assert "regressed (expected)" in caught.output
    acc = next(c for c in _report(tmp_path / "r.json")["comparisons"] if c["metric"] == "acc")
    assert acc["verdict"] == "regressed" and acc["expected"] == "regressed" and acc["expected_failure"] is True
    # The bug no longer reproduces: a surprise fails the run.
    fixed = cli(*args, "--out", tmp_path / "r2", script=SAME)
    assert fixed.exit_code == 1 and "UNEXPECTED: expected regressed" in fixed.output
    # A user debugging the known bug wants it to fail.
    ignored = cli(*args, "--out", tmp_path / "r3", "--ignore-expect", script=REGRESSION)
    assert ignored.exit_code == 1 and "regressed FAIL" in ignored.output


def test_expected_crash(cli, write_suite, tmp_path: Path) -> None:
    suite = write_suite(extra="expect: {twin: failed}\n")
    crash = {"merged": SAME["merged"], "twin": ValueError("Expected more than 1 value per channel when training")}
    res = cli("run", suite, "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=crash)
    assert res.exit_code == 0, res.output
    assert "Expected more than 1 value per channel" in res.output and "(expected)" in res.output
    survived = cli("run", suite, "--out", tmp_path / "run2", "--baselines", tmp_path / "b", script=SAME)
    assert survived.exit_code == 1 and "no longer reproduced" in survived.output
    ignored = cli("run", suite, "--out", tmp_path / "run3", "--baselines", tmp_path / "b", "--ignore-expect",
                  script=crash)
    assert ignored.exit_code == 3


def test_misspelt_key_is_one_line_exit_2(cli, tmp_path: Path) -> None:
    bad = Path(__file__).parent / "data" / "bad" / "misspelt_top_key.yaml"
    res = cli("run", bad, "--out", tmp_path / "r", script=SAME)
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0
    assert res.output.startswith(f"SuiteError: {bad}:3: varients: unknown key 'varients'. Did you mean 'variants'?")
    assert "Traceback" not in res.output


def test_debug_shows_traceback(cli, tmp_path: Path) -> None:
    bad = Path(__file__).parent / "data" / "bad" / "misspelt_top_key.yaml"
    res = cli("--debug", "run", bad, "--out", tmp_path / "r", script=SAME)
    assert res.exit_code == 2 and "Traceback" in res.output


def test_seeds_option_and_set_override(cli, write_suite, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    res = cli("run", write_suite(), "--seeds", "3", "--set", "stats.alpha=0.01", "--out", tmp_path / "r",
              "--report", report, "--baselines", tmp_path / "b", script=REGRESSION)
    data = _report(report)
    assert {r["seed"] for r in data["runs"]} == {0, 1, 2}
    assert data["suites"][0]["alpha"] == 0.01
    acc = next(c for c in data["comparisons"] if c["metric"] == "acc")
    assert 0.01 < acc["p_value"] < 0.05  # would be a regression at the default alpha, not at 0.01
    assert acc["verdict"] == "inconclusive" and res.exit_code == 0


def test_folder_runs_every_suite(cli, write_suite, tmp_path: Path) -> None:
    write_suite(name="one")
    write_suite(name="two")
    report = tmp_path / "r.json"
    res = cli("run", tmp_path, "--out", tmp_path / "r", "--report", report, "--baselines", tmp_path / "b",
              script=SAME)
    assert res.exit_code == 0
    assert [s["name"] for s in _report(report)["suites"]] == ["one", "two"]


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
    assert (tmp_path / "h.html").read_text(encoding="utf-8").count("<svg ") == 3
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
        assert "matplotlib" not in sys.modules  # the figures are written as SVG, no plotting library imported
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout
    assert all((tmp_path / n).exists() for n in ("r.html", "r.md", "r.xml", "h.html"))
    assert (tmp_path / "r.html").read_text().count("<svg") == 4 and "<svg" in (tmp_path / "h.html").read_text()
    json.loads(report_path.read_text())  # untouched


def test_outputs_are_readable_like_any_new_file(report_path, tmp_path):
    old = os.umask(0o022)
    try:
        assert invoke("report", report_path, "--markdown", tmp_path / "s.md").exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / "s.md").stat().st_mode & 0o777 == 0o644


def test_usage_errors_are_one_line_with_the_help_hint(cli, tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    for args, fragment in [
        (("run", "--bogus", suite), "No such option: --bogus"),
        (("run", "--workrs", "2", suite), "(Possible options: --workers)"),
        (("run", "--workers", "-3", suite), "Invalid value for '--workers'"),
        (("run", "--workers", "x", suite), "Invalid value for '--workers'"),
        (("run", suite, "--set"), "Option '--set' requires an argument"),
        (("compare", "a.json"), "Missing argument 'b'"),
        (("frob",), "No such command 'frob'"),
    ]:
        res = cli(*args)
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("UsageError: ") and fragment in lines[0], (args, res.output)
        assert "--help')" in lines[0] and "╭" not in res.output


def test_seed_counts_beyond_the_limit_are_usage_errors(cli, write_suite, tmp_path: Path) -> None:
    res = cli("run", write_suite(), "--seeds", "1000000000", "--out", tmp_path / "r", script=SAME)
    assert res.exit_code == 2 and "from 1 to 1000" in res.output and not (tmp_path / "r").exists()


def test_the_first_line_of_a_run_says_the_checks_passed_and_where_it_trains(cli, write_suite, tmp_path: Path) -> None:
    """In a log, the first line comes as soon as every suite is loaded and checked, not with the first run's end;
    a suite refused by the checks still prints its one line and nothing else."""
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=SAME)
    lines = res.output.splitlines()
    assert lines[0] == f"Checked every suite; training into {tmp_path / 'run'}" and lines[1].startswith("[1/10] ")
    bad = cli("run", write_suite(extra="metrcs: {}\n", name="bad"), "--out", tmp_path / "r2",
              "--baselines", tmp_path / "b", script=SAME)
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1, bad.output


def test_a_command_that_imported_torch_skips_the_teardown_but_not_the_exit_handlers(tmp_path: Path) -> None:
    """The console script leaves a process that imported torch without the interpreter's module teardown (seconds
    on a small machine), yet runs every exit handler, flushes the output and keeps the exit status; a process
    without torch exits as usual."""
    program = textwrap.dedent("""
        import atexit, sys
        from pathlib import Path
        out = Path(sys.argv[1])
        if sys.argv[2] == "torch":
            import torch
        atexit.register(lambda: (out / "exit handler").write_text("ran"))
        class Teardown:  # a module global: only the interpreter's teardown deletes it
            def __del__(self):
                (out / "teardown").write_text("ran")
        kept = Teardown()
        sys.argv = ["normreg", "compare", str(out / "missing-a.json"), str(out / "missing-b.json")]
        from normreg.cli import main
        main()
    """)
    for mode in ("torch", "plain"):
        where = tmp_path / mode
        where.mkdir()
        done = subprocess.run([sys.executable, "-c", program, str(where), mode], capture_output=True, text=True)
        assert done.returncode == 2, done.stderr  # compare's "no such file": exit 2 either way
        assert "missing-a.json" in done.stdout + done.stderr
        assert (where / "exit handler").read_text() == "ran"
        assert (where / "teardown").exists() == (mode == "plain"), mode
