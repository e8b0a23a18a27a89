"""Change points in the nightly history: found by ruptures, confirmed by Welch's test, shown everywhere.

The detector's rates are measured on series generated in memory; one 30-night series goes through real report
files and the `history` command end to end.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from normreg import cli
from normreg.judge.changepoints import detect_changes
from normreg.pipeline import run_suites
from normreg.render.history import render_history
from normreg.report.history import load_history
from normreg.run.fake import FakeRunner
from normreg.suite.spec import MetricSpec

SPEC = MetricSpec("acc", "max", 0.0)  # no min_effect: the detector and the test alone must keep false alarms down


def _series(rng: np.random.Generator, nights: int = 30, seeds: int = 5, step_at: int | None = None,
            step: float = 0.0, outlier_at: int | None = None, outlier: float = 0.0) -> list[list[float]]:
    out = []
    for n in range(nights):
        shift = (step if step_at is not None and n >= step_at else 0.0) + (outlier if n == outlier_at else 0.0)
        out.append(list(rng.normal(shift, 1.0, seeds)))
    return out


@pytest.mark.parametrize("seeds", [3, 5])
def test_a_three_sd_step_is_found_within_one_night(seeds):
    rng = np.random.default_rng(20)
    for _ in range(10):
        found = detect_changes(_series(rng, seeds=seeds, step_at=20, step=-3.0), SPEC)
        assert len(found.changes) == 1, found
        change = found.changes[0]
        assert abs(change.night - 20) <= 1 and change.verdict == "regressed"
        assert change.comparison.ci_high < 0 and change.comparison.mean_b < change.comparison.mean_a


def test_an_improvement_is_a_change_too():
    found = detect_changes(_series(np.random.default_rng(3), step_at=12, step=3.0), SPEC)
    assert [(c.night, c.verdict) for c in found.changes] == [(12, "improved")]


def test_false_alarms_over_200_series_without_a_change_stay_under_five_percent():
    rng = np.random.default_rng(0)
    alarms = sum(bool(detect_changes(_series(rng), SPEC).changes) for _ in range(200))
    assert alarms <= 10, f"{alarms} of 200 series without a change reported one"


@pytest.mark.parametrize("night", [0, 12, 29])
def test_a_one_night_outlier_is_not_a_change(night):
    rng = np.random.default_rng(night)
    found = detect_changes(_series(rng, outlier_at=night, outlier=8.0), SPEC)
    assert found.changes == () and found.outliers == (night,)


def test_a_step_beside_an_outlier_is_still_found():
    found = detect_changes(_series(np.random.default_rng(5), step_at=20, step=-3.0, outlier_at=8, outlier=8.0),
                           SPEC)
    assert [c.night for c in found.changes] == [20] and found.outliers == (8,)
    assert found.changes[0].before == (0, 20)  # the outlier night is left out of the test, not of the range


def test_min_effect_keeps_a_real_but_negligible_step_out():
    values = _series(np.random.default_rng(1), step_at=15, step=-3.0)
    assert detect_changes(values, SPEC).changes
    assert not detect_changes(values, MetricSpec("acc", "max", 5.0)).changes


def test_no_spread_within_nights_is_a_stated_reason():
    found = detect_changes([[0.9, 0.9]] * 10 + [[0.8, 0.8]] * 10, SPEC)
    assert found.changes == () and "no seed-to-seed variance" in (found.reason or "")
    assert "unknown" in (detect_changes([[0.9]] * 5, SPEC).reason or "")


# ------------------------------------------------------------------------------------ through report files

SUITE = """
trainer: {max_epochs: 1}
seeds: 5
metrics: {acc: {goal: max, min_effect: 0.005}}
variants:
  model: {model: "m:M"}
"""


def _commit(night: int) -> str:
    return f"{night:02d}" + "c0ffee" * 6 + "ab"


@pytest.fixture(scope="module")
def thirty_nights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 nightly reports of one suite through the real harness (fake runner); acc drops 3 sd from night 20."""
    work = tmp_path_factory.mktemp("thirty")
    suite = work / "model.yaml"
    suite.write_text(SUITE)
    reports = work / "reports"
    rng = np.random.default_rng(7)
    for night in range(30):
        values = list(0.95 + rng.normal(0, 0.01, 5) - (0.03 if night >= 20 else 0.0))
        rep = run_suites([suite], out=work / "runs" / f"n{night}", baselines=work / "baselines",
                         executor=FakeRunner({"model": {"acc": values}}))
        data = rep.to_json()
        data["created"] = f"2026-10-{night + 1:02d}T03:17:00+00:00"
        data["environment"]["git_commit"] = _commit(night)
        (reports / f"n{night}").mkdir(parents=True)
        (reports / f"n{night}" / "report.json").write_text(json.dumps(data))
    return reports


def test_the_history_command_names_the_night_and_the_commits(thirty_nights, tmp_path):
    r = CliRunner().invoke(cli.app, ["history", str(thirty_nights), "--markdown", str(tmp_path / "h.md"),
                                     "--html", str(tmp_path / "h.html")])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("  model: from "))
    assert line.startswith(f"  model: from 2026-10-21 03:17:00 (commit {_commit(20)[:10]}; last night before: "
                           f"2026-10-20 03:17:00, commit {_commit(19)[:10]}): 0.9")
    assert re.search(r"\(n=100\) -> 0\.9[12]\d* \(n=50\), diff -0\.0[23]\d* \[-0\.0\d+, -0\.0\d+\], p=.*: regressed$",
                     line), line
    assert "1 change found" in r.output
    md = (tmp_path / "h.md").read_text(encoding="utf-8")
    row = next(x for x in md.splitlines() if x.startswith("| model |"))
    assert f"`{_commit(20)[:10]}`" in row and "2026-10-20 03:17" in row and "❌ **regressed**" in row
    page = (tmp_path / "h.html").read_text(encoding="utf-8")
    assert "<p class=change>model: from 2026-10-21 03:17" in page
    png = base64.b64decode(re.findall(r'src="data:image/png;base64,([^"]+)"', page)[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_change_marker_is_drawn_on_the_plot(thirty_nights):
    from normreg.render.plots import history_figure

    history = load_history([thirty_nights])
    s = history.series[0]
    plain = history_figure("t", "max", [n.label for n in history.nights], {s.variant: s.points})
    marked = history_figure("t", "max", [n.label for n in history.nights], {s.variant: s.points},
                            [(s.variant, c.night, c.verdict) for c in s.changes])
    assert s.changes and plain != marked


def test_fail_on_change_exits_1_only_for_a_recent_regression(thirty_nights):
    recent = CliRunner().invoke(cli.app, ["history", str(thirty_nights), "--fail-on-change", "10"])
    assert recent.exit_code == 1, recent.output
    assert "Regression within the last 10 nights: model acc model from 2026-10-21 03:17" in recent.output
    old = CliRunner().invoke(cli.app, ["history", str(thirty_nights), "--fail-on-change", "9"])
    assert old.exit_code == 0, old.output


def test_a_regression_undone_later_does_not_fail_the_ci_check():
    """--fail-on-change looks at each series' newest change: a regression that a later change undid passes."""
    from normreg.report.history import History, Night, NightPoint, Series, _with_changes

    rng = np.random.default_rng(11)
    values = _series(rng, step_at=10, step=-3.0)
    values = [[v + (3.0 if n >= 20 else 0.0) for v in vals] for n, vals in enumerate(values)]
    nights = tuple(Night(f"n{i}", f"2026-10-{i + 1:02d}T03:00:00+00:00", None, "pass", ()) for i in range(30))
    series = Series("s", "acc", "v", "max", tuple(NightPoint(i, tuple(v), False) for i, v in enumerate(values)))
    history = History(nights, (_with_changes(series, SPEC, 0.05, 30),))
    assert [(c.night, c.verdict) for _, c in history.changes()] == [(10, "regressed"), (20, "improved")]
    assert history.recent_regressions(30) == []
    assert "one-night outlier" not in render_history(history)
