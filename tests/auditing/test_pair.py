"""normreg/auditing/pair.py: a pair's training step summarised: the relative gradient difference, the largest
difference of running statistics, and a step that could not run."""

from __future__ import annotations

import math

import pytest
import torch

from normreg.auditing.pair import StepRecord, grad_diff, mode_summary, stats_diff


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def test_the_gradient_difference_is_relative_to_the_references_gradient():
    assert grad_diff({"w": t(3, 4)}, {"w": t(3, 0)}) == pytest.approx(0.8)  # |(0, 4)| / |(3, 4)|
    assert grad_diff({"w": t(3, 4), "b": t(1)}, {"w": t(3, 4), "b": t(1)}) == 0.0
    # only parameters both sides have, with the same shape
    assert grad_diff({"w": t(3, 4), "extra": t(9)}, {"w": t(3, 4), "v": t(1)}) == 0.0
    assert grad_diff({"w": t(3, 4)}, {"w": t(1, 2, 3)}) is None and grad_diff({}, {}) is None


def test_a_zero_reference_gradient_is_zero_or_infinitely_different():
    assert grad_diff({"w": t(0, 0)}, {"w": t(0, 0)}) == 0.0
    assert grad_diff({"w": t(0, 0)}, {"w": t(0, 1)}) == math.inf


def test_the_statistics_difference_is_the_worst_running_statistic_and_names_it():
    ref = {"bn.running_mean": t(1, 2), "bn.running_var": t(4, 4), "bn.num_batches_tracked": torch.tensor(1),
           "lin.weight": t(1, 1)}
    var = {"bn.running_mean": t(1, 1), "bn.running_var": t(4, 5), "bn.num_batches_tracked": torch.tensor(900),
           "lin.weight": t(50, 50)}
    assert stats_diff(ref, var) == (pytest.approx(0.5), "bn.running_mean")  # |2 - 1| / 2 beats |4 - 5| / 4
    assert stats_diff({"lin.weight": t(1)}, {"lin.weight": t(2)}) == (None, None)  # no running statistics


def test_a_step_that_raised_is_summarised_by_its_error_alone():
    ok = StepRecord(calls=(), loss=0.5, grads={}, before={}, after={})
    failed = StepRecord(calls=(), loss=None, grads={}, before={}, after={}, error="RuntimeError: no trainer")
    summary = mode_summary("train", ok, failed, ("merged", "twin"))
    assert summary.error == "RuntimeError: no trainer" and summary.grad_diff is None
    assert (summary.mode, summary.loss_reference, summary.loss_variant) == ("train", 0.5, None)
