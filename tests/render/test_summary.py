"""normreg/render/summary.py: problems grouped alike in every format."""

from __future__ import annotations

from normreg.judge.checks import Problem
from normreg.render.summary import describe, group_problems


def test_the_same_failure_on_several_seeds_is_one_group_unexpected_first():
    problems = [Problem("s", "crash", "run_failed", "RuntimeError: boom", expected=True, seed=1),
                Problem("s", "crash", "run_failed", "RuntimeError: boom", expected=True, seed=0),
                Problem("s", "twin", "run_failed", "ValueError: nan", seed=2),
                Problem("s", "*", "baseline_not_updated", "runs failed, so the baseline was left unchanged")]
    groups = group_problems(problems)
    assert [(g.variant, g.seeds) for g in groups] == [("*", ()), ("twin", (2,)), ("crash", (0, 1))]
    assert describe(groups[2]) == "crash: run failed on seeds 0, 1 (expected): RuntimeError: boom"
    assert describe(groups[1]) == "twin: run failed on seed 2: ValueError: nan"
    assert describe(groups[0]) == "*: baseline not updated: runs failed, so the baseline was left unchanged"
