"""normreg/judge/planning.py: `plan` and `calibrate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted import flagship
from typer.testing import CliRunner

from normreg import cli
from normreg.errors import InputError
from normreg.judge.planning import plan_suite
from normreg.pipeline import pilot_run, run_suites
from normreg.run.fake import FakeRunner

DATA = Path(__file__).parent / "data" / "suites"


def test_the_pilot_run_is_the_callers(tmp_path: Path, write_suite) -> None:
    suite = write_suite()
    with pytest.raises(InputError, match="no pilot given and no stored baseline"):
        plan_suite(suite, baselines=tmp_path / "none")
    asked = []

    def run_pilot(path: Path, seeds: int) -> str:
        asked.append((path, seeds))
        runner = FakeRunner(lambda v, s: {"acc": 0.9 + s / 100, "loss": 0.3 - s / 100})
        return pilot_run(executor=runner, baselines=tmp_path / "none")(path, seeds)

    p = plan_suite(suite, baselines=tmp_path / "none", pilot_seeds=4, run_pilot=run_pilot)
    assert asked == [(suite, 4)] and p.rows and all(r.n_pilot == 4 for r in p.rows)


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
