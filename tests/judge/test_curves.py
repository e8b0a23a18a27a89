"""Curve checks: learning curves compared epoch by epoch across seeds (normreg.judge.curves), end to end with the
fake runner, in every output and in `compare`. Synthetic per-epoch histories, fixed random seeds."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from normreg.comparison import compare
from normreg.errors import SuiteError
from normreg.judge.curves import (
    CurveCheck,
    array_epoch_verdicts,
    compare_curves,
    epoch_comparison,
    simultaneous_level,
)
from normreg.judge.designs import compare_values
from normreg.judge.designs import get as get_design
from normreg.judge.stats import VERDICT_CODES
from normreg.pipeline import run_suites
from normreg.render.html import render_html
from normreg.render.junit import render_junit
from normreg.render.markdown import render_markdown
from normreg.render.terminal import render
from normreg.report.file import read_report
from normreg.suite.model import MetricSpec
from normreg.suite.spec import load_suite
from tests.scripted import CurvesFakeRunner

SPEC = MetricSpec("val_acc", "max", 0.05)
EPOCHS = 10
SEEDS = 6


def walk_curves(rng: np.random.Generator, shift: np.ndarray, seeds: int = SEEDS, step: float = 0.02,
                noise: float = 0.01) -> dict[int, list[float]]:
    """seed -> curve: a shared rising mean, a per-seed random walk and noise, plus `shift` at each epoch."""
    mean = 0.9 - 0.4 * np.exp(-0.5 * np.arange(len(shift)))
    walks = np.cumsum(rng.normal(0, step, (seeds, len(shift))), 1) + rng.normal(0, noise, (seeds, len(shift)))
    return {s: list(mean + walks[s] + shift) for s in range(seeds)}


PARTS_AT_4 = np.where(np.arange(EPOCHS) >= 3, -0.2, 0.0)  # from epoch 4 on, 4 x min_effect lower


def test_curves_that_part_from_an_epoch_are_reported_from_about_there():
    rng = np.random.default_rng(1)
    a, b = walk_curves(rng, np.zeros(EPOCHS)), walk_curves(rng, PARTS_AT_4)
    check = compare_curves(a, b, SPEC, alpha=0.05, a_name="merged", b_name="twin", suite="s")
    assert check.n_epochs == EPOCHS
    assert check.first_parted is not None and 4 <= check.first_parted <= 5
    assert set(check.parted) <= set(range(4, EPOCHS + 1))
    assert check.direction == "regressed"
    assert check.summary.startswith(f"twin parts from merged in val_acc from epoch {check.first_parted} of 10")
    assert not check.failed  # curves inform unless the suite asks them to fail


def test_each_epoch_is_the_designs_pair_test_at_the_simultaneous_level():
    """The per-epoch verdicts are exactly the suite design's compare at the level found for all epochs: any change
    to the pair test's rule (the margin) reaches curves through this one call."""
    rng = np.random.default_rng(2)
    a, b = walk_curves(rng, np.zeros(EPOCHS)), walk_curves(rng, PARTS_AT_4)
    for design in ("welch", "paired"):
        check = compare_curves(a, b, SPEC, alpha=0.05, design=design, a_name="r", b_name="v")
        assert check.alpha / EPOCHS <= check.level <= check.alpha
        for e, c in enumerate(check.epochs):
            column = ({s: a[s][e] for s in a}, {s: b[s][e] for s in b})
            direct = compare_values(*column, SPEC, alpha=check.level, design=design, a_name="r", b_name="v")
            assert c == direct == epoch_comparison(*column, SPEC, level=check.level, design=design, a_name="r",
                                                   b_name="v")


@pytest.mark.parametrize("design", ["welch", "paired"])
def test_the_array_form_gives_the_verdicts_compare_gives(design):
    """The benchmark simulates curve checks with `array_epoch_verdicts`: it must decide every epoch as `compare`
    does (regressed, improved, equivalent, inconclusive), here on curves that part, stay and wander."""
    rng = np.random.default_rng(7)
    for shift in (PARTS_AT_4, np.zeros(EPOCHS), np.linspace(0.0, 0.08, EPOCHS)):
        a, b = walk_curves(rng, np.zeros(EPOCHS)), walk_curves(rng, shift)
        check = compare_curves(a, b, SPEC, design=design)
        xa, xb = np.array(list(a.values())).T, np.array(list(b.values())).T  # (epochs, seeds)
        codes = array_epoch_verdicts(xa, xb, SPEC, check.level, design)
        assert [VERDICT_CODES[k] for k in codes] == [c.verdict for c in check.epochs]


def test_level_is_near_alpha_for_nearly_equal_epochs_and_bonferroni_for_independent_ones():
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, (8, 1))
    same = np.repeat(base, 12, axis=1) + rng.normal(0, 1e-3, (8, 12))  # 12 epochs that move together
    other = np.repeat(rng.normal(0, 1, (8, 1)), 12, axis=1) + rng.normal(0, 1e-3, (8, 12))
    assert simultaneous_level(same, other, 0.05, "welch") > 0.04
    white_a, white_b = rng.normal(0, 1, (40, 12)), rng.normal(0, 1, (40, 12))
    level = simultaneous_level(white_a, white_b, 0.05, "welch")
    assert 0.05 / 12 <= level < 0.0055  # Sidak for 12 independent tests: 0.00427
    assert simultaneous_level(same[:, :1], other[:, :1], 0.05, "welch") == 0.05  # one epoch: no correction


def test_false_parted_rate_on_identical_random_walks_is_at_most_alpha():
    """Identical-distribution curves: any parted epoch is a false alarm; its rate over a metric's epochs is held
    at alpha (400 simulated suites, 8 epochs, 5 seeds a side, where one test per epoch at alpha gives ~0.2). With
    min_effect 0 an epoch parts when its p-value is below the level; the p-values are the design's array test's,
    checked equal to `compare` above."""
    rng = np.random.default_rng(4)
    reps, false, naive = 400, 0, 0
    for _ in range(reps):
        xa, xb = (np.array(list(walk_curves(rng, np.zeros(8), seeds=5, step=0.02, noise=0.02).values()))
                  for _ in range(2))
        level = simultaneous_level(xa, xb, 0.05, "welch", reps=1000)
        _, p, _ = get_design("welch").array_test(xa.T, xb.T, 0.0)
        false += bool(np.any(p < level))
        naive += bool(np.any(p < 0.05))
    assert false / reps <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / reps)
    assert naive / reps > 0.1  # the error an uncorrected per-epoch test makes: what the level prevents


def test_equivalent_epochs_and_unequal_lengths():
    rng = np.random.default_rng(5)
    a = walk_curves(rng, np.zeros(EPOCHS), seeds=10, step=0.001, noise=0.002)
    b = walk_curves(rng, np.zeros(EPOCHS), seeds=10, step=0.001, noise=0.002)
    b[0] = b[0] + [0.9]  # one seed logged an extra epoch
    check = compare_curves(a, b, SPEC, a_name="r", b_name="v")
    assert check.n_epochs == EPOCHS and "epochs after 10 left out" in check.note
    assert check.equivalent == tuple(range(1, EPOCHS + 1)) and not check.parted
    assert check.summary == "v stays with r in val_acc: within ±0.05 at every epoch of 10"


def test_too_few_seeds_is_a_stated_result():
    check = compare_curves({0: [1.0, 2.0]}, {0: [1.0, 2.0], 1: [1.0, 2.0]}, SPEC)
    assert check.epochs == () and check.level is None and "needs two on each" in check.note
    assert "not compared" in check.summary


def test_json_round_trip():
    rng = np.random.default_rng(6)
    check = compare_curves(walk_curves(rng, np.zeros(EPOCHS)), walk_curves(rng, PARTS_AT_4), SPEC, suite="s",
                           a_name="r", b_name="v")
    data = json.loads(json.dumps(check.to_json()))
    assert data["first_parted"] == check.first_parted and len(data["epochs"]) == EPOCHS
    assert {"epoch", "diff", "ci_low", "ci_high", "verdict"} <= set(data["epochs"][0])
    back = CurveCheck.from_json(data)
    assert (back.parted, back.equivalent, back.summary) == (check.parted, check.equivalent, check.summary)


# ------------------------------------------------------------------------------------------------- suites


SUITE = """name: c
seeds: 6
metrics: {{acc: {{goal: max, min_effect: 0.01}}}}
reference: merged
variants:
  merged: {{model: m:Net}}
  twin: {{model: m:Net}}
{curves}
"""


def _runner(shift: np.ndarray = PARTS_AT_4) -> CurvesFakeRunner:
    def curves(variant: str, seed: int) -> dict[str, list[float]]:
        rng = np.random.default_rng([seed, 7 if variant == "twin" else 3])
        walk = walk_curves(rng, shift if variant == "twin" else np.zeros(EPOCHS), seeds=1)[0]
        return {"val_acc": walk, "train_loss": [1.0 / (e + 1) for e in range(EPOCHS)]}

    return CurvesFakeRunner({"merged": {"acc": [0.91, 0.92, 0.90, 0.91, 0.915, 0.905]},
                             "twin": {"acc": [0.912, 0.918, 0.905, 0.909, 0.911, 0.908]}}, curves)


def _suite(tmp_path, curves: str):
    path = tmp_path / "c.yaml"
    path.write_text(SUITE.format(curves=curves))
    return path


def test_suite_key_forms_and_errors(tmp_path):
    assert load_suite(_suite(tmp_path, "")).curves.metrics == ()
    s = load_suite(_suite(tmp_path, "curves: [acc, {val_acc: {goal: max, min_effect: 0.05}}]"))
    assert [(m.name, m.goal, m.min_effect) for m in s.curves.metrics] == [("acc", "max", 0.01),
                                                                          ("val_acc", "max", 0.05)]
    assert not s.curves.fail
    s = load_suite(_suite(tmp_path, "curves: {metrics: {val_loss: {goal: min, min_effect: 0.1}}, fail: true}"))
    assert s.curves.fail and s.curves.metrics[0].goal == "min"
    with pytest.raises(SuiteError, match=r"c.yaml:8: curves.0: 'val_acc' is not under 'metrics'"):
        load_suite(_suite(tmp_path, "curves: [val_acc]"))
    with pytest.raises(SuiteError, match=r"curves.fail: expected true or false"):
        load_suite(_suite(tmp_path, "curves: {metrics: [acc], fail: 'yes'}"))
    with pytest.raises(SuiteError, match=r"unknown key 'fial'.*Did you mean 'fail'"):
        load_suite(_suite(tmp_path, "curves: {metrics: [acc], fial: true}"))


CURVES = "curves: [{val_acc: {goal: max, min_effect: 0.05}}]"


def test_declaring_curves_leaves_the_digest_alone(tmp_path):
    """Curves change no run and no other check: a suite that declares them is not 'changed since the baseline', and
    its reports are not set apart from earlier nights in `history`."""
    plain = load_suite(_suite(tmp_path, ""))
    assert load_suite(_suite(tmp_path, CURVES)).digest == plain.digest
    assert load_suite(_suite(tmp_path, "stats: {alpha: 0.01}")).digest != plain.digest


def test_a_run_reports_curves_in_every_output_and_keeps_its_outcome(tmp_path):
    report = run_suites([_suite(tmp_path, CURVES)], out=tmp_path / "r", baselines=tmp_path / "b",
                        executor=_runner())
    assert report.verdict == "pass" and report.exit_code == 0  # the pair check passes; curves inform
    (curve,) = report.curves
    assert curve.suite == "c" and curve.first_parted is not None and 4 <= curve.first_parted <= 5
    line = f"twin parts from merged in val_acc from epoch {curve.first_parted} of 10"
    assert line in render(report)
    assert line in render_markdown(report)
    junit = ET.fromstring(render_junit(report).split("\n", 1)[1])
    case = junit.find(".//testcase[@name='c.curve.val_acc.merged_vs_twin']")
    assert case is not None and case.find("failure") is None and line in case.find("system-out").text
    page = render_html(report)
    assert line in page and "per-epoch differences" in page and page.count("<svg ") == 3  # seeds, curves, check
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["schema"] == "normreg.report/1" and data["curves"][0]["first_parted"] == curve.first_parted
    back = read_report(tmp_path / "r" / "report.json").report
    assert back.curves[0].summary == curve.summary and line in render(back)


def test_curves_fail_a_run_only_when_the_suite_says_so(tmp_path):
    report = run_suites([_suite(tmp_path, "curves: {metrics: [{val_acc: {goal: max, min_effect: 0.05}}], "
                                          "fail: true}")], out=tmp_path / "r", baselines=tmp_path / "b",
                        executor=_runner())
    assert report.curves[0].failed and report.verdict == "fail" and report.exit_code == 1
    assert "[fails the run]" in render(report)
    junit = ET.fromstring(render_junit(report).split("\n", 1)[1])
    assert junit.find(".//testcase[@name='c.curve.val_acc.merged_vs_twin']/failure") is not None
    calm = run_suites([_suite(tmp_path, "curves: {metrics: [{val_acc: {goal: max, min_effect: 0.05}}], "
                                        "fail: true}")], out=tmp_path / "r2", baselines=tmp_path / "b",
                      executor=_runner(np.zeros(EPOCHS)))
    assert not calm.curves[0].parted and calm.verdict == "pass"


def test_a_suite_without_curves_writes_the_report_it_wrote_before(tmp_path):
    report = run_suites([_suite(tmp_path, "")], out=tmp_path / "r", baselines=tmp_path / "b", executor=_runner())
    assert report.curves == () and "curves" not in report.to_json() and "Curves" not in render(report)


def test_a_metric_no_run_logged_is_said(tmp_path):
    report = run_suites([_suite(tmp_path, "curves: [{val_f1: {goal: max, min_effect: 0.05}}]")],
                        out=tmp_path / "r", baselines=tmp_path / "b", executor=_runner())
    assert "no run of merged and twin logged val_f1 per epoch" in render(report)


def test_compare_on_run_directories_and_reports_compares_curves(tmp_path):
    run_suites([_suite(tmp_path, CURVES)], out=tmp_path / "r", baselines=tmp_path / "b", executor=_runner())
    for source in (tmp_path / "r", tmp_path / "r" / "report.json"):
        report = compare(f"{source}#merged", f"{source}#twin")
        (curve,) = report.curves
        assert curve.metric == "val_acc" and curve.min_effect == 0.05 and curve.parted
        assert curve.suite == report.checks[0].suite == "c"  # listed under the pair's suite, in JUnit too
        assert "parts from" in render(report) and report.exit_code == 0
    asked = compare(f"{tmp_path / 'r'}#merged", f"{tmp_path / 'r'}#twin", curves=("train_loss",))
    assert [c.metric for c in asked.curves] == ["train_loss"]
    assert asked.curves[0].equivalent == tuple(range(1, EPOCHS + 1))  # the same curve on both sides: identical
