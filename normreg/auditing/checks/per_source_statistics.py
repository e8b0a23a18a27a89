"""Per-source statistics: BatchNorm fed several sub-batches per training step whose statistics differ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from normreg.auditing.checks import Recordings, register
from normreg.auditing.findings import Finding
from normreg.auditing.record import Call


def _channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    v = x.double().transpose(0, 1).reshape(x.shape[1], -1) if x.dim() > 1 else x.double()[None]
    return v.mean(dim=1), v.var(dim=1, unbiased=False)


def per_source_statistics(calls: Sequence[Call], variant: str, start: Mapping[str, Tensor],
                          shift_limit: float = 0.5, ratio_limit: float = 2.0) -> list[Finding]:
    """BatchNorm layers fed several sub-batches in one training step: how far apart are their statistics?

    Means are compared in units of the pooled standard deviation (what the running statistics converge to),
    variances as a geometric-mean ratio over channels.
    """
    groups: dict[str, list[Call]] = {}
    for c in calls:
        if isinstance(c.module, _BatchNorm) and c.training and c.x is not None and c.x.dim() >= 2 and not c.failed:
            groups.setdefault(c.name, []).append(c)
    findings = []
    for name, cs in groups.items():
        if len(cs) < 2:
            continue
        stats = [_channel_stats(c.x) for c in cs]  # type: ignore[arg-type]
        pooled_mean, pooled_var = _channel_stats(torch.cat([c.x for c in cs]))  # type: ignore[misc]
        sd = pooled_var.clamp_min(1e-12).sqrt()
        shift = ratio = 0.0
        for i in range(len(stats)):
            for j in range(i + 1, len(stats)):
                shift = max(shift, float((((stats[i][0] - stats[j][0]) / sd) ** 2).mean().sqrt()))
                lr = (stats[i][1].clamp_min(1e-12).log() - stats[j][1].clamp_min(1e-12).log()).abs().mean()
                ratio = max(ratio, float(lr.exp()))
        ev: dict[str, Any] = {"calls": len(cs), "rows": [c.rows for c in cs], "mean_shift_sd": shift,
                              "variance_ratio": ratio}
        key = "" if name == "(model)" else name + "."
        tracked = start.get(key + "num_batches_tracked")
        if tracked is not None and int(tracked) > 0 and key + "running_mean" in start:
            rsd = start[key + "running_var"].double().clamp_min(1e-12).sqrt()
            ev["shift_from_running_sd"] = max(
                float((((m - start[key + "running_mean"].double()) / rsd) ** 2).mean().sqrt()) for m, _ in stats)
        if shift < shift_limit and ratio < ratio_limit:
            continue
        findings.append(Finding(
            "per_source_statistics", "warning", variant, name, cs[0].type,
            f"{name} is fed {len(cs)} sub-batches per training step whose statistics differ by {shift:.2g} SD in mean "
            f"and {ratio:.3g}x in variance: in train mode each is normalised with its own statistics, at test time "
            "all share the running statistics (the pooled ones), which the network never trained with",
            ev, "Feed the sources through in one call (one batch holding both), or use per-domain BatchNorm, or "
                "LayerNorm/GroupNorm."))
    return findings


@register("per_source_statistics")
def check(rec: Recordings) -> list[Finding]:
    """Per-source statistics: sub-batches normalised apart in training, together at test time."""
    train = rec.training
    return [] if train is None else per_source_statistics(train.calls, rec.variant, train.before)
