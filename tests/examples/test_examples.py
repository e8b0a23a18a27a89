"""The story suites under suites/: each runs in a fast setting in CI; full length (slow) reproduces its story.

Fast: a couple of seeds, a fraction of the training; it proves the suite, models and data work together.
Slow: the suite at its defaults must give its declared verdicts (the project's own nightly does the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from normreg.pipeline import run_suites
from normreg.suite.spec import load_suite

SUITES = Path(__file__).resolve().parents[2] / "suites"
FAST = {
    "ddp_batchnorm": ["trainer.max_epochs=1"],
    "ddp_batchnorm_layernorm": ["trainer.max_epochs=1"],
    "domain_adapt": ["trainer.max_epochs=1"],
    "domain_adapt_layernorm": ["trainer.max_epochs=1"],
    "frozen_backbone": ["trainer.max_epochs=1"],
    "frozen_backbone_layernorm": ["trainer.max_epochs=1"],
    "gan_discriminator": ["trainer.max_epochs=1"],
    "gan_discriminator_layernorm": ["trainer.max_epochs=1"],
    "rl_acting": ["trainer.max_epochs=1"],
    "rl_acting_layernorm": ["trainer.max_epochs=1"],
}


# Suites with runs on two processes: each rank imports torch and Lightning (seconds on 2 cores), so even their
# fast setting runs with the slow tests.
TWO_PROCESS = {"ddp_batchnorm", "ddp_batchnorm_layernorm"}


def _present(names: list[str]) -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.slow) if n in TWO_PROCESS else n
            for n in names if (SUITES / f"{n}.yaml").exists()]


@pytest.mark.parametrize("name", _present(sorted(FAST)))
def test_story_runs_in_fast_setting(name: str, tmp_path: Path, local_executor: Any) -> None:
    suite = load_suite(SUITES / f"{name}.yaml", FAST[name])
    report = run_suites([SUITES / f"{name}.yaml"], seeds=2, overrides=FAST[name], out=tmp_path,
                        executor=local_executor(workers=0), baselines=tmp_path / "none", ignore_expect=True)
    expect_crash = {v.name for v in suite.variants if suite.expects_failure(v.name)}
    for r in report.runs:
        if r.variant in expect_crash:
            assert not r.ok
        else:
            assert r.ok, r.error
            assert all(m.name in r.metrics for m in suite.metrics)


def test_every_suite_has_a_fast_setting() -> None:
    assert sorted(p.stem for p in SUITES.glob("*.yaml")) == sorted(FAST)


@pytest.mark.slow
def test_flagship_reproduces_the_twin_tower_gap(tmp_path: Path, local_executor: Any) -> None:
    report = run_suites([SUITES / "domain_adapt.yaml"], out=tmp_path, baselines=tmp_path / "none",
                        executor=local_executor())
    (check,) = [c for c in report.checks if c.kind == "pair"]
    c = check.comparison
    assert c.verdict == "regressed" and c.p_value < 0.01
    assert -0.08 <= c.diff <= -0.03
    assert c.sd_b > c.sd_a  # noisier across seeds too
    assert report.exit_code == 0  # expected: the suite declares it


@pytest.mark.slow
def test_full_story_suites_give_their_declared_verdicts(tmp_path: Path, local_executor: Any) -> None:
    report = run_suites([SUITES], out=tmp_path, baselines=SUITES.parent / "baselines", executor=local_executor())
    assert report.exit_code == 0, [c.comparison.reason for c in report.checks if c.failed]
    ignored = run_suites([SUITES], out=tmp_path / "ignored", baselines=tmp_path / "none", ignore_expect=True,
                         executor=local_executor())
    # Every known bug now fails, and the batch-of-one crashes are unexpected failed runs: exit 3.
    assert ignored.exit_code == 3
    failing = {(c.suite, c.comparison.b) for c in ignored.checks if c.failed}
    assert failing == {("domain_adapt", "twin"), ("ddp_batchnorm", "per_domain_ddp"),
                       ("frozen_backbone", "backbone_train"), ("gan_discriminator", "separate"),
                       ("rl_acting", "train_acting")}
    crashed = {(p.suite, p.variant) for p in ignored.problems if p.kind == "run_failed"}
    assert crashed == {("rl_acting", "batch_of_one")}


def test_fixing_a_known_bug_fails_its_suite_by_surprise(tmp_path: Path, local_executor: Any) -> None:
    """The frozen-backbone bug, caught as declared; corrected to eval mode, the same suite fails: not caught."""
    path = SUITES / "frozen_backbone.yaml"
    fast = ["trainer.max_epochs=1", "seeds=3"]
    fixed = [*fast, "variants.backbone_train.model.args.backbone_mode=eval"]

    def single_acc(overrides: list[str], out: str):
        report = run_suites([path], overrides=overrides, out=tmp_path / out, baselines=tmp_path / "none",
                             executor=local_executor(workers=0))
        return next(c for c in report.checks if c.kind == "pair" and c.comparison.metric == "single_acc")

    buggy = single_acc(fast, "buggy")
    assert buggy.comparison.verdict == "regressed" and buggy.expected_failure and not buggy.failed
    corrected = single_acc(fixed, "fixed")
    assert corrected.comparison.verdict != "regressed"
    assert corrected.failed and corrected.expected == "regressed"
