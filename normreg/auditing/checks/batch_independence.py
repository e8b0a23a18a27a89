"""Batch independence: is one example's output affected by the other examples of its batch?

Dropout is per-example randomness, not batch dependence: it is turned off while probing (a dropout left on where
nothing trains is the `train_mode_without_training` check's finding).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from normreg.auditing.checks import FIX_EVAL, Recordings, register
from normreg.auditing.divergence import RTOL, first_divergence, rel_diff
from normreg.auditing.findings import Finding
from normreg.auditing.record import Recorder, first_tensor
from normreg.auditing.steps import restore, snapshot

MAX_PROBES = 8  # outermost calls probed per variant


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
    """The modes the modules had when called; dropout off, since its randomness is not batch dependence."""
    for m in module.modules():
        if id(m) in flags:
            m.training = flags[id(m)]
        if isinstance(m, _DropoutNd):
            m.training = False


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
    layers = ", ".join(responsible) or f"{where} ({kind})"
    fix_other = (f"Find where {where} ({kind}) combines the rows of its batch (a mean, a softmax or a sort over "
                 "dimension 0) and compute it per example.")
    if inference:
        return [Finding("batch_independence", "error", variant, where, kind,
                        f"on the {path} path an example's output depends on the other examples in its batch: running "
                        f"{n} rows as two halves instead of one batch changes the outputs by {diff:.3g} (relative); "
                        f"first module to differ: {where} ({kind}); responsible: {layers}", evidence,
                        FIX_EVAL if responsible else fix_other)]
    if responsible:
        return [Finding("batch_independence", "info", variant, where, kind,
                        f"in train mode an example's output depends on the rest of its batch through {layers}: "
                        f"running {n} rows as two halves changes the outputs by {diff:.3g} (relative). Expected of "
                        "BatchNorm; it matters when implementations batch differently or a batch mixes sources",
                        evidence, "Nothing to fix if every implementation feeds the same batches; otherwise "
                                  "LayerNorm/GroupNorm.")]
    return [Finding("batch_independence", "warning", variant, where, kind,
                    f"in train mode an example's output depends on the rest of its batch, and no BatchNorm is "
                    f"responsible: running {n} rows as two halves changes the outputs by {diff:.3g} (relative); the "
                    f"first module to differ is {where} ({kind})", evidence, fix_other)]


@register("batch_independence")
def check(rec: Recordings) -> list[Finding]:
    """Batch independence: an example's output must not depend on the rest of its batch where nothing trains."""
    probed: set[tuple[int, frozenset[tuple[int, bool]]]] = set()
    roots = [(p, c, True) for p, calls in rec.paths.items() for c in calls if c.args is not None]
    if rec.training is not None:
        roots += [("training_step", c, False) for c in rec.training.calls if c.args is not None]
    found: set[tuple[str, str]] = set()
    findings: list[Finding] = []
    for path, call, inference in roots:
        key = (id(call.module), frozenset((call.flags or {}).items()))
        if key in probed or len(probed) >= MAX_PROBES:
            continue
        probed.add(key)
        for f in batch_independence(call.module, call.args, call.flags or {}, variant=rec.variant, path=path,
                                    names=rec.names, inference=inference):
            if (f.module, f.severity) not in found:
                found.add((f.module, f.severity))
                findings.append(f)
        rec.restore()
    return findings
