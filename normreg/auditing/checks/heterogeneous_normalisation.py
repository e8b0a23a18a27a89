"""Heterogeneous normalisation: input features of very different scales normalised together."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from normreg.auditing.checks import Recordings, register
from normreg.auditing.findings import Finding
from normreg.auditing.record import Call, has_own_parameters

_NORMS = (nn.LayerNorm, nn.GroupNorm, _BatchNorm, _InstanceNorm) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def _feature_scales(m: nn.Module, x: Tensor) -> list[Tensor]:
    """RMS over the batch of each feature that shares one set of statistics; one tensor per such group."""
    x = x.double()
    if isinstance(m, (nn.LayerNorm,) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())):
        k = math.prod(m.normalized_shape)
        return [x.reshape(-1, k).pow(2).mean(0).sqrt()]
    if x.dim() < 3:
        return []  # BatchNorm over (N, C): each feature has its own statistics
    if isinstance(m, nn.GroupNorm):
        g = x.reshape(x.shape[0], m.num_groups, -1)
        return [g[:, i].pow(2).mean(0).sqrt() for i in range(m.num_groups)]
    flat = x.reshape(x.shape[0], x.shape[1], -1)  # per channel, over positions
    return [flat[:, c].pow(2).mean(0).sqrt() for c in range(min(x.shape[1], 64))]


def heterogeneous_normalisation(calls: Sequence[Call], variant: str, limit: float = 10.0) -> list[Finding]:
    """A normalisation applied to input features (no layer with weights ran before it) that pools features whose
    scales differ by more than `limit` times, e.g. joint positions and velocities normalised together.
    """
    by_root: dict[int, list[Call]] = {}
    for c in calls:
        by_root.setdefault(c.root, []).append(c)
    findings, seen = [], set()
    for c in calls:
        if not isinstance(c.module, _NORMS) or c.x is None or c.name in seen or c.failed:
            continue
        before = [o for o in by_root[c.root] if o.end != -1 and o.end < c.start and o is not c]
        if any(has_own_parameters(o.module) and not isinstance(o.module, _NORMS) for o in before):
            continue
        seen.add(c.name)
        worst = None
        for scales in _feature_scales(c.module, c.x):
            top = float(scales.max())
            live = scales > 1e-6 * top  # features that are always zero carry no scale
            if top <= 0 or int(live.sum()) < 2:
                continue
            lo = int(torch.where(live, scales, torch.full_like(scales, math.inf)).argmin())
            # Robust to a few odd features (e.g. the rarely lit border pixels of an image): 90th / 10th percentile.
            ratio = float(torch.quantile(scales[live], 0.9) / torch.quantile(scales[live], 0.1))
            if worst is None or ratio > worst[0]:
                worst = (ratio, lo, int(scales.argmax()), float(scales[lo]), top, len(scales))
        if worst is None or worst[0] <= limit:
            continue
        ratio, lo, hi, smin, smax, k = worst
        findings.append(Finding(
            "heterogeneous_normalisation", "warning", variant, c.name, c.type,
            f"{c.name} normalises {k} input features together whose scales differ by {ratio:.3g}x (90th vs 10th "
            f"percentile; feature {hi}: "
            f"RMS {smax:.3g}, feature {lo}: RMS {smin:.3g}); the large features set the statistics, so the small ones "
            "shrink whenever the large ones grow (the essay's joint positions and velocities)",
            {"ratio": ratio, "largest": [hi, smax], "smallest": [lo, smin], "features": k},
            "Normalise each group of features separately (e.g. positions and velocities each with its own "
            "normalisation), or normalise per feature (BatchNorm1d over features, or fixed input scaling)."))
    return findings


@register("heterogeneous_normalisation")
def check(rec: Recordings) -> list[Finding]:
    """Heterogeneous normalisation: features of very different scales pooled by one normalisation."""
    train = rec.training
    return [] if train is None else heterogeneous_normalisation(train.calls, rec.variant)
