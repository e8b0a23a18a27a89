"""normreg/pipeline.py: `run_suites` with the fake executor: staged seeds, --seeds, run directories."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from normreg import cli
from normreg.execution.fake import FakeRunner
from normreg.pipeline import run_suites
from tests.conftest import REGRESSION, SAME
from tests.scripted import flagship

DATA = Path(__file__).parent / "data" / "suites"


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


def test_an_earlier_run_directory_is_never_mixed_or_overwritten(cli, write_suite, tmp_path: Path) -> None:
    suite, out = write_suite(), tmp_path / "run"
    assert cli("run", suite, "--out", out, "--baselines", tmp_path / "b", script=SAME).exit_code == 0
    before = (out / "pair" / "results.csv").read_text()
    again = cli("run", suite, "--out", out, "--baselines", tmp_path / "b", script=REGRESSION)
    assert again.exit_code == 2 and "already holds the results of an earlier run" in again.output
    assert (out / "pair" / "results.csv").read_text() == before


def test_default_run_directories_never_collide(tmp_path: Path, monkeypatch) -> None:
    from normreg.execution.rundir import new_run_dir

    monkeypatch.chdir(tmp_path)
    first = new_run_dir()
    second = new_run_dir()
    assert second != first and first.is_dir() and second.is_dir() and second.parent == first.parent


def test_staged_seeds_stop_for_baseline_checks_more_seeds_cannot_decide(tmp_path):
    """A 5-seed baseline bounds the standard error of its checks however many seeds the candidate runs: a
    variant whose pair checks are decided stops, and its undecidable baseline check says why."""
    night = [0]

    def script(variant: str, seed: int) -> dict[str, float]:
        rng = np.random.default_rng([seed, {"merged": 1, "twin": 2, "same": 3}[variant], night[0]])
        mean, sd = {"merged": (0.984, 0.005), "twin": (0.937, 0.018), "same": (0.984, 0.005)}[variant]
        return {"acc": float(rng.normal(mean, sd)), "loss": float(rng.normal(1.0, 0.01))}

    suite = tmp_path / "fixed.yaml"
    suite.write_text((DATA / "staged.yaml").read_text().replace("seeds: {min: 3, max: 20}", "seeds: 5"))
    run_suites([suite], executor=FakeRunner(script), out=tmp_path / "r1", baselines=tmp_path / "b",
               update_baseline=True)
    night[0] = 1
    runner = FakeRunner(script)
    report = run_suites([suite], seeds="auto", executor=runner, out=tmp_path / "r2", baselines=tmp_path / "b")
    twin = next(c.comparison for c in report.checks if c.kind == "baseline" and c.comparison.b == "twin"
                and c.comparison.metric == "acc")
    assert twin.verdict == "inconclusive" and twin.stopped and "more seeds cannot decide it" in twin.reason
    assert twin.seeds_needed is None and twin.n_b == report.suites[0].seeds_used["twin"]
    assert report.suites[0].seeds_used["twin"] <= 8 and report.suites[0].seeds_used["merged"] <= 8
    assert len(runner.jobs) < 40  # 48 before: the reference and the undecidable checks kept running


def test_staged_rows_count_one_n_per_variant(tmp_path):
    """Each row reports the seeds it was judged on, one n per side: its table n, its stages and its reason agree.
    A baseline's fixed side (5 values) is not the candidate's seed count: a baseline check decided at the first
    stage says "after 1 stage (3 seeds)" with n=3, where it said "(5 seeds)"."""

    def script(variant: str, seed: int) -> dict[str, float]:
        rng = np.random.default_rng([seed, {"merged": 1, "twin": 2, "same": 3}[variant], seed >= 100])
        mean, sd = {"merged": (0.984, 0.005), "twin": (0.937, 0.018), "same": (0.984, 0.005)}[variant]
        return {"acc": float(rng.normal(mean, sd)), "loss": float(rng.normal(1.0, 0.01))}

    suite = tmp_path / "fixed.yaml"
    suite.write_text((DATA / "staged.yaml").read_text().replace("seeds: {min: 3, max: 20}", "seeds: 5"))
    run_suites([suite], executor=FakeRunner(lambda v, s: script(v, s + 100)), out=tmp_path / "r1",
               baselines=tmp_path / "b", update_baseline=True)
    report = run_suites([suite], seeds="auto", executor=FakeRunner(script), out=tmp_path / "r2",
                        baselines=tmp_path / "b")
    used = report.suites[0].seeds_used
    kinds = set()
    for check in report.checks:
        c = check.comparison
        kinds.add((check.kind, c.n_b < used[c.b]))
        assert c.stages[-1] == c.n_b <= used[c.b], (check.kind, c.b, c.metric)
        assert list(c.stages) == sorted(set(c.stages))
        assert f"after {len(c.stages)} stage{'s' * (len(c.stages) > 1)} ({c.n_b} seeds)" in c.reason
        if check.kind == "pair":
            assert c.n_a == c.n_b
        else:
            assert c.n_a == 5
        assert all(int(n) == c.n_b for n in re.findall(r"\((\d+) seeds\)", c.reason))
    assert ("baseline", True) in kinds  # a baseline check decided before its variant's last stage
