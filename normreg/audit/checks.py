"""Checks 2 to 6: batch independence, BatchNorm in train mode where nothing trains, frozen drift, per-source
statistics, heterogeneous normalisation. Each takes recordings or a model and returns findings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from normreg.audit.divergence import RTOL, first_divergence, rel_diff
from normreg.audit.findings import Finding
from normreg.audit.record import Call, Recorder, first_tensor, has_own_parameters
from normreg.audit.steps import restore, snapshot

_FIX_EVAL = ("Put the network in eval mode on this path (net.eval() before, net.train() after), so BatchNorm uses its "
             "running statistics; or use LayerNorm/GroupNorm, which behave the same in both modes.")

# --------------------------------------------------------------------------------- 2. batch independence


def _slice(args: Any, rows: int, start: int, stop: int) -> Any:
    """Rows start:stop of every tensor (also inside dicts, lists and tuples) whose first dimension is the batch."""
    if isinstance(args, Tensor):
        return args[start:stop] if args.dim() > 0 and args.shape[0] == rows else args
    if isinstance(args, Mapping):
        return {k: _slice(v, rows, start, stop) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        return type(args)(_slice(v, rows, start, stop) for v in args) if not hasattr(args, "_fields") else \
            type(args)(*(_slice(v, rows, start, stop) for v in args))
    return args


def _apply_flags(module: nn.Module, flags: Mapping[int, bool]) -> None:
    for m in module.modules():
        if id(m) in flags:
            m.training = flags[id(m)]


def _split_diff(module: nn.Module, args: tuple[Any, ...], rows: int, n: int) -> float:
    """Relative change of the outputs when `n` rows are run as two halves instead of one batch."""
    h = n // 2
    full = first_tensor(module(*_slice(args, rows, 0, n)))
    parts = [first_tensor(module(*_slice(args, rows, 0, h))), first_tensor(module(*_slice(args, rows, h, n)))]
    if full is None or any(p is None for p in parts) or full.dim() == 0 or full.shape[0] != n:
        return math.nan
    return rel_diff(full, torch.cat(parts))  # type: ignore[arg-type]


def batch_independence(module: nn.Module, args: tuple[Any, ...], flags: Mapping[int, bool], *, variant: str,
                       path: str, names: Mapping[int, str], inference: bool, max_rows: int = 64) -> list[Finding]:
    """Is one row's output affected by the other rows of its batch? Run N rows as one batch and as two halves.

    Then locate the layers: the first module whose outputs differ (hooks), and, with every BatchNorm in eval
    mode, each BatchNorm that on its own in train mode brings the dependence back.
    """
    x = first_tensor(args)
    if x is None or x.dim() == 0 or x.shape[0] < 4:
        return []
    rows, n = x.shape[0], min(x.shape[0], max_rows)
    snap = snapshot(module)
    try:
        with torch.no_grad():
            _apply_flags(module, flags)
            with Recorder(names, capture=True) as whole:
                module(*_slice(args, rows, 0, n))
            with Recorder(names, capture=True) as halves:
                module(*_slice(args, rows, 0, n // 2))
                module(*_slice(args, rows, n // 2, n))
            restore(module, snap)
            _apply_flags(module, flags)
            diff = _split_diff(module, args, rows, n)
            if not diff > RTOL:
                return []
            div = first_divergence(whole.calls, halves.calls, names=("one batch", "two halves"))
            norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.training][:16]
            responsible = []
            for bn in norms:
                restore(module, snap)
                _apply_flags(module, flags)
                for other in norms:
                    other.training = other is bn
                if _split_diff(module, args, rows, n) > RTOL:
                    responsible.append(names.get(id(bn), f"[{type(bn).__name__}]"))
            single = None
            if norms:
                restore(module, snap)
                _apply_flags(module, flags)
                try:
                    module(*_slice(args, rows, 0, 1))
                    single = "runs"
                except Exception as e:  # noqa: BLE001 - what a single example does is the evidence
                    single = f"raises {type(e).__name__}: {str(e).splitlines()[0][:120]}"
    except Exception:  # noqa: BLE001 - a module that cannot be re-run on part of its batch is not probed
        return []
    finally:
        restore(module, snap)
    first = div.first
    where = first.name if first else names.get(id(module), type(module).__name__)
    kind = first.type if first else type(module).__name__
    evidence: dict[str, Any] = {"path": path, "rows": n, "output_change": diff, "responsible": responsible}
    if single is not None:
        evidence["single_example"] = single
    layers = ", ".join(responsible) or where
    if inference:
        return [Finding("batch_independence", "error", variant, where, kind,
                        f"on the {path} path an example's output depends on the other examples in its batch: running "
                        f"{n} rows as two halves instead of one batch changes the outputs by {diff:.3g} (relative); "
                        f"first module to differ: {where} ({kind}); responsible: {layers}", evidence, _FIX_EVAL)]
    return [Finding("batch_independence", "info", variant, where, kind,
                    f"in train mode an example's output depends on the rest of its batch through {layers}: running "
                    f"{n} rows as two halves changes the outputs by {diff:.3g} (relative). Expected of BatchNorm; it "
                    "matters when implementations batch differently or a batch mixes sources", evidence,
                    "Nothing to fix if every implementation feeds the same batches; otherwise LayerNorm/GroupNorm.")]


# ------------------------------------------------------------------ 3. train mode where nothing trains


def _regime(rows: int, values: int, spatial: int) -> str:
    if values <= 1:
        return ("sees 1 value per channel: PyTorch raises 'Expected more than 1 value per channel when "
                "training'")
    if rows == 1:
        return (f"normalises a single example over its own {spatial} positions: its output no longer depends on "
                "the example's overall level and contrast")
    if rows <= 32:
        return (f"normalises each of {rows} examples against the other {rows - 1} (e.g. parallel environments): "
                "an example's output depends on its neighbours, not on itself alone")
    return f"normalises batches of {rows} with their own statistics instead of the running statistics"


def train_mode_without_training(paths: Mapping[str, Sequence[Call]], variant: str) -> list[Finding]:
    """BatchNorm layers run in train mode on evaluation, prediction and acting paths (where nothing trains)."""
    groups: dict[str, list[tuple[str, Call]]] = {}
    for path, calls in paths.items():
        for c in calls:
            if isinstance(c.module, _BatchNorm) and (c.training or not c.module.track_running_stats) and c.shape:
                groups.setdefault(c.name, []).append((path, c))
    findings = []
    for name, items in groups.items():
        calls = [c for _, c in items]
        worst = min(calls, key=lambda c: (c.values_per_channel or 0, c.rows or 0))
        rows = [c.rows or 0 for c in calls]
        values = [c.values_per_channel or 0 for c in calls]
        bn = worst.module
        moves = bool(bn.track_running_stats)
        used = sorted({p for p, _ in items})
        n_rows, n_values = worst.rows or 0, worst.values_per_channel or 0
        how = "runs in train mode" if any(c.training for c in calls) else \
            "normalises with batch statistics (track_running_stats=False)"
        message = (f"{name} {how} on the {', '.join(used)} path{'s' if len(used) > 1 else ''}, "
                   f"{'with no gradient taken' if not any(c.grad for c in calls) else 'where nothing trains'}; "
                   f"it {_regime(n_rows, n_values, n_values // max(n_rows, 1))}")
        if moves:
            message += ". Each call also moves its running statistics"
        findings.append(Finding(
            "train_mode_without_training", "error", variant, name, worst.type, message,
            {"paths": used, "calls": len(calls), "rows": [min(rows), max(rows)],
             "values_per_channel": [min(values), max(values)], "gradients": any(c.grad for c in calls),
             "raised": any(c.failed for c in calls), "called_from": sorted({c.where for c in calls})[:3],
             "moves_running_stats": moves},
            _FIX_EVAL))
    return findings


# ------------------------------------------------------------------------------------- 4. frozen drift


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


# ------------------------------------------------------------------------------- 5. per-source statistics


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


# -------------------------------------------------------------------------- 6. heterogeneous normalisation

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

