"""Frozen drift: the buffers of a frozen part (no trainable parameter) that still move during training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from normreg.auditing.checks import Recordings, register
from normreg.auditing.divergence import rel_diff
from normreg.auditing.findings import Finding
from normreg.auditing.steps import seed_all, training_step


def frozen_modules(model: nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> dict[str, nn.Module]:
    """Modules in a frozen part: every parameter they (or, having none, their nearest parent with any) hold is frozen.

    A parameter is frozen when it does not require gradients, or when no optimizer is given it.
    """
    given = {id(p) for o in optimizers for g in o.param_groups for p in g["params"]}

    def frozen(p: nn.Parameter) -> bool:
        return not p.requires_grad or (bool(given) and id(p) not in given)

    named = dict(model.named_modules())
    out = {}
    for name, m in named.items():
        own = list(m.parameters(recurse=False))
        if own:
            if all(frozen(p) for p in own):
                out[name] = m
            continue
        parts = name.split(".")
        for i in range(len(parts) - 1, -1, -1):
            parent = named.get(".".join(parts[:i]))
            params = list(parent.parameters()) if parent is not None else []
            if params:
                if all(frozen(p) for p in params):
                    out[name] = m
                break
    return out


def frozen_drift(model: nn.Module, run_steps: Any, optimizers: Sequence[torch.optim.Optimizer], variant: str,
                 steps: int = 3) -> list[Finding]:
    """Run `steps` training steps (`run_steps(i)`); flag frozen modules whose buffers moved."""
    frozen = frozen_modules(model, optimizers)
    before = {n: {k: b.detach().clone() for k, b in m.named_buffers(recurse=False)} for n, m in frozen.items()}
    modes = {n: m.training for n, m in frozen.items()}
    for i in range(steps):
        run_steps(i)
    findings = []
    for name, m in frozen.items():
        moved = {k: rel_diff(v, dict(m.named_buffers(recurse=False))[k]) for k, v in before[name].items()}
        moved = {k: d for k, d in moved.items() if d > 0}
        qual = name or "(model)"
        if moved:
            ev: dict[str, Any] = {"steps": steps, "in_train_mode": modes[name], "buffers_changed": sorted(moved)}
            if isinstance(m, _BatchNorm) and m.running_mean is not None and "running_mean" in before[name]:
                sd = before[name]["running_var"].clamp_min(m.eps).sqrt()
                ev["running_mean_shift_sd"] = float(((m.running_mean - before[name]["running_mean"]) / sd).abs().max())
                ev["running_var_ratio"] = float((m.running_var / before[name]["running_var"].clamp_min(m.eps)).max())
            if "num_batches_tracked" in before[name]:
                ev["batches_tracked"] = [int(before[name]["num_batches_tracked"]), int(m.num_batches_tracked)]
            findings.append(Finding(
                "frozen_drift", "error", variant, qual, type(m).__name__,
                f"{qual} is frozen (no trainable parameter) but its buffers {', '.join(sorted(moved))} changed over "
                f"{steps} training steps: it {'runs in train mode' if modes[name] else 'is updated'} while its "
                "weights stay fixed, so the network it was trained with drifts away from the one that is served",
                ev, "Keep the frozen part in eval mode for good (override train() to call .eval() on it after "
                    "super().train()), or replace its BatchNorm layers by frozen BatchNorm."))
        elif isinstance(m, _BatchNorm) and not m.track_running_stats and modes[name]:
            findings.append(Finding(
                "frozen_drift", "warning", variant, qual, type(m).__name__,
                f"{qual} sits in a frozen part with track_running_stats=False: it normalises with the statistics of "
                "each batch in train and eval mode alike, so a frozen network still depends on its batch",
                {"track_running_stats": False, "in_train_mode": True},
                "Load the pretrained running statistics and keep track_running_stats=True with the part in eval mode."))
    return findings


@register("frozen_drift")
def check(rec: Recordings) -> list[Finding]:
    """Frozen drift: a few training steps with the model's own optimizer; frozen modules whose buffers moved."""
    if rec.batch is None:
        return []
    rec.model.train()
    opts = rec.optimizers()
    seed_all(rec.seed)

    def one_step(i: int) -> None:
        training_step(rec.model, rec.batch, i, optimizers=opts, update=True)

    try:
        return frozen_drift(rec.model, one_step, opts, rec.variant, rec.drift_steps)
    finally:
        rec.restore()
