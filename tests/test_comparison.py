"""normreg/comparison.py and the result sets it reads (judge/resultset.py): reports, run directories, baselines,
tidy CSVs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from normreg import cli
from normreg.execution.fake import FakeRunner
from normreg.judge.resultset import load_result_set
from normreg.pipeline import run_suites
from tests.conftest import REGRESSION, SAME

ROOT = Path(__file__).parent.parent


def test_compare_reads_a_tidy_csv_and_pairs_by_seed(tmp_path):
    rows = ["variant,seed,metric,value"]
    rng = np.random.default_rng(0)
    for s in range(6):
        shared = rng.normal(0, 0.02)
        rows += [f"{v},{s},acc,{0.9 + shared + rng.normal(0, 0.001)!r}" for v in "ab"]
    csv = tmp_path / "tidy.csv"
    csv.write_text("\n".join(rows) + "\n")
    args = ["compare", f"{csv}#a", f"{csv}#b", "--min-effect", "0.01"]
    welch = CliRunner().invoke(cli.app, args)
    paired = CliRunner().invoke(cli.app, [*args, "--design", "paired"])
    assert welch.exit_code == 0 and paired.exit_code == 0
    assert "inconclusive" in welch.output
    assert "equivalent" in paired.output and "Pairing by seed" in paired.output


def test_compare_imports_neither_torch_nor_lightning(tmp_path):
    """What keeps `compare` fast to start; its wall time is measured by benchmarks/commands.py, not asserted here."""
    csv = tmp_path / "tidy.csv"
    csv.write_text("variant,seed,metric,value\n" + "".join(f"{v},{s},acc,{0.9 + 0.01 * s + (v == 'b') * 0.001}\n"
                                                           for v in "ab" for s in range(4)))
    code = ("import sys; from normreg import cli\n"
            f"try: cli.app(['compare', '{csv}#a', '{csv}#b', '--min-effect', '0.05'])\n"
            "except SystemExit as e: code = e.code\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning'))\n"
            "print('EXIT', code, 'HEAVY', bad)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "EXIT 0 HEAVY []" in out.stdout, out.stdout + out.stderr  # it judged the pair, without torch


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def test_compare_reports_and_baselines(cli, write_suite, tmp_path: Path) -> None:
    suite, base = write_suite(), tmp_path / "baselines"
    cli("run", suite, "--out", tmp_path / "good", "--baselines", base, "--update-baseline", script=SAME)
    cli("run", suite, "--out", tmp_path / "bad", "--baselines", tmp_path / "none", script=REGRESSION)
    good, bad = tmp_path / "good" / "report.json", tmp_path / "bad" / "report.json"
    # Variants matched by name: merged vs merged passes, twin vs twin regressed.
    res = cli("compare", good, bad, "--report", tmp_path / "c.json")
    assert res.exit_code == 1, res.output
    checks = _report(tmp_path / "c.json")["comparisons"]
    assert {(c["b"], c["metric"]): c["verdict"] for c in checks}[("bad/report:twin", "acc")] == "regressed"
    # A report against a baseline, one variant picked on each side.
    res = cli("compare", f"{base / 'pair.json'}#merged", f"{bad}#merged", "--metric", "acc")
    assert res.exit_code == 0 and "pair:merged -> report:merged" in res.output
    # A run directory works too, and identical data passes.
    assert cli("compare", tmp_path / "good", good).exit_code == 0
    # Improvement fails a pair comparison but not a baseline-mode one.
    assert cli("compare", f"{bad}#twin", f"{good}#twin", "--metric", "acc").exit_code == 1
    assert cli("compare", f"{bad}#twin", f"{good}#twin", "--metric", "acc", "--mode", "baseline").exit_code == 0


def test_compare_tidy_csv(cli, tmp_path: Path) -> None:
    rows = ["variant,seed,metric,value"]
    rows += [f"a,{i},acc,{v}" for i, v in enumerate(REGRESSION["merged"]["acc"])]
    rows += [f"b,{i},acc,{v}" for i, v in enumerate(REGRESSION["twin"]["acc"])]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    res = cli("compare", f"{tmp_path / 't.csv'}#a", f"{tmp_path / 't.csv'}#b", "--min-effect", "0.01")
    assert res.exit_code == 1 and "regressed" in res.output


def test_compare_bad_inputs_exit_2(cli, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"schema": "something/1"}')
    for args, fragment in [
        (("compare", tmp_path / "missing.json", tmp_path / "x.json"), "no such file or directory"),
        (("compare", tmp_path / "x.json", tmp_path / "x.json"), "not valid JSON"),
        (("compare", tmp_path / "other.json", tmp_path / "other.json"), "not a normreg report or baseline"),
    ]:
        res = cli(*args)
        assert res.exit_code == 2 and fragment in res.output, res.output


def test_compare_unknown_variant_suggests(cli, write_suite, tmp_path: Path) -> None:
    cli("run", write_suite(), "--out", tmp_path / "r", "--baselines", tmp_path / "b", script=SAME)
    rep = tmp_path / "r" / "report.json"
    res = cli("compare", f"{rep}#twn", f"{rep}#merged")
    assert res.exit_code == 2 and "Did you mean 'twin'?" in res.output


def test_report_round_trips_through_compare(tmp_path: Path, write_suite) -> None:
    from tests.conftest import REGRESSION

    report = run_suites([write_suite()], out=tmp_path / "run", baselines=tmp_path / "b",
                        executor=FakeRunner(REGRESSION))
    report.write(tmp_path / "r.json")
    rs = load_result_set(str(tmp_path / "r.json"))
    assert rs.values["twin"]["acc"] == dict(enumerate(REGRESSION["twin"]["acc"]))
    assert rs.specs["loss"].goal == "min" and rs.alpha == 0.05
    from_dir = load_result_set(str(tmp_path / "run"))
    assert from_dir.values == rs.values and from_dir.specs == rs.specs


def test_compare_fills_the_suite_column_from_the_files(cli, write_suite, tmp_path: Path) -> None:
    suite, base = write_suite(), tmp_path / "baselines"
    cli("run", suite, "--out", tmp_path / "good", "--baselines", base, "--update-baseline", script=SAME)
    cli("run", suite, "--out", tmp_path / "bad", "--baselines", tmp_path / "none", script=REGRESSION)
    (tmp_path / "other.csv").write_text("variant,seed,metric,value\n" + "".join(
        f"twin,{i},acc,{v}\n" for i, v in enumerate(REGRESSION["twin"]["acc"])))
    for a, b, suite_column in [
        (tmp_path / "good" / "report.json", tmp_path / "bad" / "report.json", "pair"),  # reports
        (f"{base / 'pair.json'}#twin", f"{tmp_path / 'bad'}#twin", "pair"),  # a baseline and a run directory
        (f"{tmp_path / 'bad' / 'pair' / 'results.csv'}#merged", tmp_path / "other.csv", "pair"),  # a tidy CSV's suite
        (tmp_path / "other.csv", f"{tmp_path / 'bad' / 'pair' / 'results.csv'}#twin", "pair"),
        (tmp_path / "other.csv", tmp_path / "other.csv", "other"),  # no suite named: the file's name
    ]:
        cli("compare", a, b, "--report", tmp_path / "c.json", "--min-effect", "0.01")
        checks = _report(tmp_path / "c.json")["comparisons"]
        assert checks and {c["suite"] for c in checks} == {suite_column}, (a, b, checks[0]["suite"])
    res = cli("compare", tmp_path / "good" / "report.json", tmp_path / "bad" / "report.json")
    assert any(line.startswith("pair   pair  acc") for line in res.output.splitlines()), res.output


def test_a_run_directory_of_several_suites_names_its_variants_suite_slash_variant(tmp_path, write_suite):
    run_suites([write_suite(name="one"), write_suite(name="two")], out=tmp_path / "run", baselines=tmp_path / "b",
               executor=FakeRunner(REGRESSION))
    rs = load_result_set(str(tmp_path / "run"))
    assert sorted(rs.values) == ["one/merged", "one/twin", "two/merged", "two/twin"]
    assert rs.values["one/twin"] == load_result_set(str(tmp_path / "run" / "one")).values["twin"]
