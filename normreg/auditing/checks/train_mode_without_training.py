"""Train mode where nothing trains: BatchNorm (or dropout) in train mode on evaluation, prediction and acting paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from normreg.auditing.checks import FIX_EVAL, Recordings, register
from normreg.auditing.findings import Finding
from normreg.auditing.record import Call


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
            FIX_EVAL))
    return findings + _dropout(paths, variant)


def _dropout(paths: Mapping[str, Sequence[Call]], variant: str) -> list[Finding]:
    """Dropout in train mode where nothing trains: each example's output is random (not batch dependence)."""
    groups: dict[str, list[tuple[str, Call]]] = {}
    for path, calls in paths.items():
        for c in calls:
            if isinstance(c.module, _DropoutNd) and c.training and c.module.p > 0:
                groups.setdefault(c.name, []).append((path, c))
    findings = []
    for name, items in groups.items():
        used = sorted({p for p, _ in items})
        m = items[0][1].module
        findings.append(Finding(
            "train_mode_without_training", "error", variant, name, items[0][1].type,
            f"{name} (dropout, p={m.p:g}) runs in train mode on the {', '.join(used)} path"
            f"{'s' if len(used) > 1 else ''}, where nothing trains: it zeroes a random {m.p:.0%} of each example's "
            "features, so the same input gives a different output on every call. This is per-example randomness, "
            "not a dependence on the other examples of the batch",
            {"paths": used, "calls": len(items), "p": m.p, "called_from": sorted({c.where for _, c in items})[:3]},
            "Put the network in eval mode on this path (net.eval() before, net.train() after), which turns dropout "
            "off; or call the layer with training=False (F.dropout(x, p, training=self.training))."))
    return findings


@register("train_mode_without_training")
def check(rec: Recordings) -> list[Finding]:
    """Train mode where nothing trains: BatchNorm or dropout in train mode on evaluation, prediction, acting paths."""
    return train_mode_without_training(rec.paths, rec.variant)
