"""Check 1, pair divergence: one training step of the reference and of a variant, same weights, same batch, in
train and in eval mode; the loss, gradient and running-statistics differences, and the first module that differs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import Tensor

from normreg.auditing.divergence import first_divergence, rel_diff
from normreg.auditing.findings import ModeSummary
from normreg.auditing.record import Call


@dataclass(frozen=True)
class StepRecord:
    """One subject's training step in one mode: the calls, the loss, the gradients, the state before and after."""

    calls: Sequence[Call]
    loss: float | None
    grads: Mapping[str, Tensor]
    before: Mapping[str, Tensor]
    after: Mapping[str, Tensor]
    error: str | None = None


def grad_diff(ref: Mapping[str, Tensor], var: Mapping[str, Tensor]) -> float | None:
    """||g_ref - g_var|| / ||g_ref|| over the parameters both have with the same shape (None when there are none)."""
    num = den = 0.0
    common = [k for k in ref if k in var and ref[k].shape == var[k].shape]
    if not common:
        return None
    for k in common:
        a, b = ref[k].double(), var[k].double()
        num += float(((a - b) ** 2).sum())
        den += float((a**2).sum())
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return math.sqrt(num / den)


def stats_diff(ref: Mapping[str, Tensor], var: Mapping[str, Tensor]) -> tuple[float | None, str | None]:
    """Largest relative difference between running means and variances after the step, and its name."""
    worst, where = None, None
    for k, a in ref.items():
        b = var.get(k)
        if b is None or b.shape != a.shape or a.is_floating_point() != b.is_floating_point():
            continue
        if not k.endswith(("running_mean", "running_var")):  # a count of updates would swamp the statistics
            continue
        d = rel_diff(a, b)
        if worst is None or d > worst:
            worst, where = d, k
    return worst, where


def mode_summary(mode: str, ref: StepRecord, var: StepRecord, names: tuple[str, str]) -> ModeSummary:
    if ref.error or var.error:
        return ModeSummary(mode, ref.loss, var.loss, None, None, None, 0, None, None, None,
                           error=ref.error or var.error)
    div = first_divergence(ref.calls, var.calls, state_ref=ref.before, state_var=var.before, names=names)
    sd, sw = stats_diff(ref.after, var.after)
    first = div.first
    return ModeSummary(mode, ref.loss, var.loss, grad_diff(ref.grads, var.grads), sd, sw, div.compared,
                       first.name if first else None, first.type if first else None, first.cause if first else None)
