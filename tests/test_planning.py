"""normreg/judge/planning.py: `plan` and `calibrate`, their promises checked by simulation (seeded, vectorised),
and their terminal forms (render/planning.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scripted import flagship
from typer.testing import CliRunner

from normreg import cli
from normreg.errors import InputError
from normreg.judge.planning import (
    MIN_CALIBRATION_VALUES,
    calibrate,
    plan,
    plan_suite,
    resampled_rates,
    smoothed_draws,
)
from normreg.judge.resultset import ResultSet
from normreg.judge.stats import Design, array_p, array_stats
from normreg.pipeline import pilot_run, run_suites
from normreg.render.planning import render_calibration, render_plan
from normreg.run.fake import FakeRunner
from normreg.suite.spec import MetricSpec

DATA = Path(__file__).parent / "data" / "suites"
ACC = MetricSpec("acc", "max", 0.01)


def test_the_pilot_run_is_the_callers(tmp_path: Path, write_suite) -> None:
    suite = write_suite()
    with pytest.raises(InputError, match="no pilot given and no stored baseline"):
        plan_suite(suite, baselines=tmp_path / "none")
    asked = []

    def run_pilot(path: Path, seeds: int) -> ResultSet:
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


def test_smoothed_draws_keep_the_sample_variance():
    rng = np.random.default_rng(20)
    x = rng.normal(0.9, 0.01, 5)
    draws = smoothed_draws(x, (20000, 5), rng)
    assert float(draws.mean()) == pytest.approx(float(x.mean()), abs=1e-4)
    assert float(np.var(draws)) == pytest.approx(float(np.var(x, ddof=1)), rel=0.02)  # a plain bootstrap: 0.8
    assert float(np.mean(draws.std(axis=1) == 0)) == 0.0  # no ties: no spreads of zero


def test_calibrated_power_from_five_values_is_nearly_unbiased():
    """Across 400 pilots of 5 values each, the mean power estimate for 16 seeds a side lies within 0.04 of the
    true power of the verdict (0.78); standard error of the mean 0.009. (Under the margin rule, at 5 seeds a
    side, where the true power is 0.26, the estimate runs about 0.1 high: a 5-value spread is itself uncertain.)"""
    rng = np.random.default_rng(21)
    est = np.array([resampled_rates(rng.normal(0.9, 0.01, 5), ACC, n_max=16, reps=400, rng=rng)
                    for _ in range(400)])
    true_power = Design(0.01, 0.01, 16, 16).verdict_power(0.02, 0.01, 0.05)
    a, b = rng.normal(0, 0.01, (40000, 16)), rng.normal(0, 0.01, (40000, 16))
    diff, se, df = array_stats(a, b)
    p, _ = array_p(diff, se, df, 0.01)
    true_false_alarm = float(np.mean((p < 0.05) & (np.abs(diff) > 0.01)))
    assert float(est[:, 1].mean()) == pytest.approx(true_power, abs=0.04)
    assert float(est[:, 0].mean()) == pytest.approx(true_false_alarm, abs=0.01)


def test_calibration_prints_uncertainty_and_refuses_too_few_values():
    rng = np.random.default_rng(22)
    values = {"ref": {"acc": {s: float(x) for s, x in enumerate(rng.normal(0.9, 0.01, 6))}},
              "few": {"acc": {s: float(x) for s, x in enumerate(rng.normal(0.9, 0.01, 3))}}}
    c = calibrate(ResultSet("pilot.csv", values, {"acc": ACC}), {"acc": ACC}, seeds=5, reps=400)
    rows = {r.variant: r for r in c.rows}
    assert rows["ref"].false_alarm_se > 0 and rows["ref"].power_se > 0
    assert rows["few"].false_alarm != rows["few"].false_alarm  # NaN: no estimate
    assert f"too few to calibrate (at least {MIN_CALIBRATION_VALUES})" in rows["few"].warnings[0]
    text = render_calibration(c)
    assert f"{rows['ref'].power:.2f} ± {rows['ref'].power_se:.2f}" in text
    assert "power at 2 x min_effect" in text


def test_plan_states_the_true_difference_it_powers_for():
    rng = np.random.default_rng(23)
    pilot = ResultSet("pilot.csv", {v: {"acc": {s: float(x) for s, x in enumerate(rng.normal(0.9, 0.01, 5))}}
                                    for v in ("ref", "new")}, {})
    p = plan("s", "ref", ["ref", "new"], [ACC], pilot)
    (row,) = p.rows
    d = Design(row.sd_a, row.sd_b, row.seeds_80, row.seeds_80)
    assert d.verdict_power(0.02, 0.01, 0.05) >= 0.8
    assert Design(row.sd_a, row.sd_b, row.seeds_80 - 1, row.seeds_80 - 1).verdict_power(0.02, 0.01, 0.05) < 0.8
    assert "a true difference of 2 x min_effect is reported regressed" in render_plan(p)
