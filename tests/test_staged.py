"""Seed plans in suites, staged running with the FakeRunner, and the plan / calibrate / compare commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from normreg import cli
from normreg.errors import SuiteError
from normreg.pipeline import run_suites
from normreg.run.fake import FakeRunner
from normreg.suite.spec import load_suite

DATA = Path(__file__).parent / "data" / "suites"
ROOT = Path(__file__).parent.parent


def test_seed_plan_and_stats_keys_load():
    s = load_suite(DATA / "staged.yaml")
    assert (s.seed_plan.min, s.seed_plan.max, s.seed_plan.stages) == (3, 20, (3, 5, 8, 12, 18, 20))
    assert s.seeds == tuple(range(20))
    assert (s.stats.design, s.stats.correction, s.stats.spending) == ("welch", "holm", "pocock")
    p = load_suite(DATA / "staged.yaml", ["stats.design=paired", "stats.correction=none"])
    assert (p.stats.design, p.stats.correction) == ("paired", "none")


@pytest.mark.parametrize("name, match", [
    ("seeds_typo", r"seeds_typo.yaml:2: seeds.maxx: unknown key 'maxx'. Did you mean 'max'\?"),
    ("seeds_min_above_max", r"seeds_min_above_max.yaml:3: seeds.min: min \(8\) is above max \(5\)"),
    ("seeds_plan_one", r"seeds_plan_one.yaml:2: seeds.min: expected at least 2 seeds"),
    ("stats_design", r"stats_design.yaml:4: stats.design: expected one of welch, paired, but found a string "
                     r"\('pared'\). Did you mean 'paired'\?"),
    ("stats_correction", r"stats_correction.yaml:3: stats.correction: .*Did you mean 'holm'\?"),
])
def test_bad_seed_and_stats_keys_name_file_line_and_key(name, match):
    with pytest.raises(SuiteError, match=match):
        load_suite(DATA.parent / "bad" / f"{name}.yaml")


def flagship(variant: str, seed: int) -> dict[str, float]:
    """merged and same: 0.984 ± 0.005; twin: 0.937 ± 0.018 (the twin-tower gap)."""
    rng = np.random.default_rng([seed, {"merged": 1, "twin": 2, "same": 3}[variant]])
    mean, sd = {"merged": (0.984, 0.005), "twin": (0.937, 0.018), "same": (0.984, 0.005)}[variant]
    return {"acc": float(rng.normal(mean, sd)), "loss": float(rng.normal(1.0, 0.01))}


def test_staged_run_stops_each_comparison_when_decisive(tmp_path):
    runner = FakeRunner(flagship)
    report = run_suites([DATA / "staged.yaml"], executor=runner, out=tmp_path / "run", baselines=tmp_path / "b")
    verdicts = {(c.comparison.b, c.comparison.metric): c.comparison.verdict for c in report.checks}
    assert verdicts[("twin", "acc")] == "regressed"
    assert verdicts[("same", "acc")] == "equivalent"
    info = report.suites[0]
    assert info.seed_plan is not None and info.seed_plan.stages == (3, 5, 8, 12, 18, 20)
    assert 1 <= info.stages_run < 6
    assert len(runner.jobs) == sum(info.seeds_used.values()) < 60
    twin = next(c.comparison for c in report.checks if c.comparison.b == "twin" and c.comparison.metric == "acc")
    assert twin.stages and twin.p_sequential is not None and twin.p_adjusted is not None
    data = report.to_json()
    assert data["schema"] == "normreg.report/1"
    assert data["suites"][0]["seeds_used"] == info.seeds_used
    assert {"power", "mde", "p_adjusted", "stages", "seeds_needed", "correction"} <= set(data["comparisons"][0])
    # staged jobs came in stages: every seed below 3 before any seed of 3 or more
    seeds = [j.seed for j in runner.jobs]
    assert max(seeds[:9]) == 2 and sorted(seeds) != seeds or max(seeds[:9]) == 2


def test_run_seeds_auto_on_a_fixed_suite(tmp_path, monkeypatch):
    suite = tmp_path / "fixed.yaml"
    suite.write_text((DATA / "staged.yaml").read_text().replace("seeds: {min: 3, max: 20}", "seeds: 4"))
    monkeypatch.setattr(cli, "make_executor", lambda *a, **k: FakeRunner(flagship))
    res = CliRunner().invoke(cli.app, ["run", str(suite), "--seeds", "auto", "--out", str(tmp_path / "o"),
                                       "--baselines", str(tmp_path / "b"), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output
    assert "stages run (seeds 3..20, pocock spending)" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["suites"][0]["seed_plan"]["max"] == 20
    bad = CliRunner().invoke(cli.app, ["run", str(suite), "--seeds", "many"])
    assert bad.exit_code == 2 and "--seeds auto" in bad.output


def test_plan_and_calibrate_commands(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "make_executor", lambda *a, **k: FakeRunner(flagship))
    suite = DATA / "staged.yaml"
    res = CliRunner().invoke(cli.app, ["plan", str(suite), "--baselines", str(tmp_path / "none"),
                                       "--pilot-seeds", "5"])
    assert res.exit_code == 0, res.output
    assert "seeds 80%" in res.output and "twin" in res.output
    report = run_suites([suite], seeds=10, executor=FakeRunner(flagship), out=tmp_path / "run",
                        baselines=tmp_path / "b")
    report.write(tmp_path / "r.json")
    res = CliRunner().invoke(cli.app, ["plan", str(suite), "--pilot", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli.app, ["calibrate", str(tmp_path / "r.json"), "--reps", "500"])
    assert res.exit_code == 0, res.output
    assert "false alarms" in res.output and "10 seeds per side" in res.output
    res = CliRunner().invoke(cli.app, ["calibrate", str(tmp_path / "r.json"), "--reps", "500", "--seeds", "3",
                                       "--strict"])
    assert res.exit_code == 1 and "WARNING twin acc: power" in res.output


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
            "except SystemExit: pass\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning'))\n"
            "print('HEAVY', bad)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_calibrate_judges_declared_metrics_and_needs_min_effect_for_a_csv(tmp_path):
    # A report's runs hold every value the model logged; only the suite's declared metrics are calibrated.
    def extra(variant: str, seed: int) -> dict[str, float]:
        return {**flagship(variant, seed), "logged_only": 0.5 + seed / 100}

    report = run_suites([DATA / "staged.yaml"], seeds=10, executor=FakeRunner(extra), out=tmp_path / "run",
                        baselines=tmp_path / "b")
    report.write(tmp_path / "r.json")
    res = CliRunner().invoke(cli.app, ["calibrate", str(tmp_path / "r.json"), "--reps", "200"])
    assert res.exit_code == 0, res.output
    assert "logged_only" not in res.output
    csv = tmp_path / "tidy.csv"
    csv.write_text("variant,seed,metric,value\n" + "".join(f"a,{s},acc,{0.9 + s / 100}\n" for s in range(5)))
    res = CliRunner().invoke(cli.app, ["calibrate", str(csv), "--reps", "200"])
    assert res.exit_code == 2 and "declares no metric's goal or min_effect; give --suite or --min-effect" in res.output
    res = CliRunner().invoke(cli.app, ["calibrate", str(csv), "--reps", "200", "--min-effect", "0.01"])
    assert res.exit_code == 0 and "false alarms" in res.output
