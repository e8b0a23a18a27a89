"""Where two recordings of the same network part ways: join each module's calls, match rows, find the first
module, in forward order, whose outputs differ, and say why.

Implementations may call a module several times per step and split or reorder the batch (per domain, per class,
real and fake), so each module's calls are concatenated and rows are matched by their inputs, not by position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from normreg.auditing.record import Call

RTOL = 1e-4  # float32 arithmetic reordered by batch size differs by ~1e-7 relative; real divergence by far more


@dataclass(frozen=True)
class Joined:
    """Every call of one module in one step, rows concatenated in call order."""

    name: str
    type: str
    module: nn.Module
    training: bool
    order: int  # completion clock of its first call: forward order, inner modules before their containers
    x: Tensor | None
    y: Tensor | None
    sizes: tuple[int, ...]  # rows per call


def _cat(parts: Sequence[Tensor | None]) -> Tensor | None:
    if not parts or any(p is None or p.dim() == 0 for p in parts):
        return None if len(parts) != 1 or parts[0] is None else parts[0]
    if len({tuple(p.shape[1:]) for p in parts}) != 1:  # type: ignore[union-attr]
        return None
    return torch.cat([p.float() for p in parts])  # type: ignore[union-attr]


def join(calls: Sequence[Call]) -> dict[str, Joined]:
    """name -> Joined, in forward order (completion of the first call)."""
    groups: dict[str, list[Call]] = {}
    for c in calls:
        if not c.failed:
            groups.setdefault(c.name, []).append(c)
    out = {}
    for name, cs in sorted(groups.items(), key=lambda kv: min(c.end for c in kv[1])):
        xs, ys = [c.x for c in cs], [c.y for c in cs]
        out[name] = Joined(name, cs[0].type, cs[0].module, cs[0].training, min(c.end for c in cs), _cat(xs),
                           _cat(ys), tuple(c.rows or 0 for c in cs))
    return out


def rel_diff(a: Tensor, b: Tensor) -> float:
    """Largest absolute difference relative to the largest magnitude in `a` (0 when both are zero)."""
    a, b = a.double(), b.double()
    scale = float(a.abs().max()) if a.numel() else 0.0
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    if scale == 0.0:
        return diff
    return diff / scale


def match_rows(a: Tensor, b: Tensor, rtol: float = RTOL) -> Tensor | None:
    """perm with b[perm] == a row for row (within `rtol`), or None when the rows are not the same set."""
    if a.shape != b.shape or a.dim() == 0:
        return None
    n = a.shape[0]
    ident = torch.arange(n)
    if rel_diff(a, b) <= rtol:
        return ident
    fa, fb = a.reshape(n, -1).double(), b.reshape(n, -1).double()
    scale = float(fa.abs().max()) or 1.0
    if fa.shape[1] > 256:  # compare projections for the search; the chosen rows are checked in full below
        g = torch.Generator().manual_seed(0)
        proj = torch.randn(fa.shape[1], 64, generator=g, dtype=torch.float64)
        da, db = fa @ proj, fb @ proj
    else:
        da, db = fa, fb
    order = torch.cdist(da, db).argsort(dim=1)
    used = torch.zeros(n, dtype=torch.bool)
    perm = torch.empty(n, dtype=torch.long)
    for i in range(n):
        for j in order[i, : min(n, 8)].tolist():
            if not used[j] and float((fa[i] - fb[j]).abs().max()) <= rtol * scale:
                perm[i] = j
                used[j] = True
                break
        else:
            return None
    return perm


def _same_grouping(sizes_a: Sequence[int], sizes_b: Sequence[int], perm: Tensor) -> bool:
    """Do the calls hold the same sets of rows (matched through `perm`)?"""
    ga = torch.repeat_interleave(torch.arange(len(sizes_a)), torch.tensor(sizes_a))
    gb = torch.repeat_interleave(torch.arange(len(sizes_b)), torch.tensor(sizes_b))
    if len(ga) != len(perm) or len(gb) != len(perm):
        return False
    pairs = set(zip(ga.tolist(), gb[perm].tolist(), strict=True))
    return len({p[0] for p in pairs}) == len(pairs) == len({p[1] for p in pairs})


def own_state(state: Mapping[str, Tensor], name: str) -> dict[str, Tensor]:
    """The tensors a module holds itself (not its children's), from a whole model's state dict."""
    prefix = "" if name == "(model)" else name + "."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and "." not in k[len(prefix):]}


def batch_dependent(m: nn.Module) -> bool:
    """A module whose output for one row depends on the other rows of the same call."""
    return isinstance(m, _BatchNorm) and (m.training or not m.track_running_stats)


@dataclass(frozen=True)
class ModuleDiff:
    name: str
    type: str
    diff: float  # relative output difference
    inputs_match: bool
    cause: str
    batch_composition: bool


@dataclass(frozen=True)
class Divergence:
    first: ModuleDiff | None
    compared: int  # modules whose outputs could be compared


def _cause(r: Joined, v: Joined, perm: Tensor, state_r: dict[str, Tensor] | None,
           state_v: dict[str, Tensor] | None, names: tuple[str, str]) -> tuple[str, bool]:
    a, b = names
    if r.type != v.type:
        return f"different modules ({a}: {r.type}, {b}: {v.type})", False
    if r.training != v.training:
        mode = lambda t: "train" if t else "eval"  # noqa: E731
        return (f"mode: {a} runs it in {mode(r.training)} mode, {b} in {mode(v.training)} mode "
                f"(BatchNorm normalises with batch statistics in train mode, running statistics in eval mode)"
                if isinstance(r.module, _BatchNorm) else
                f"mode: {a} runs it in {mode(r.training)} mode, {b} in {mode(v.training)} mode"), False
    if state_r is not None and state_v is not None:
        for k in sorted(set(state_r) | set(state_v)):
            if k not in state_r or k not in state_v or state_r[k].shape != state_v[k].shape or \
                    rel_diff(state_r[k], state_v[k]) > RTOL:
                return f"its {k} differs at the start of the step", False
    if r.module.extra_repr() != v.module.extra_repr():
        return f"configuration: {a} has ({r.module.extra_repr()}), {b} has ({v.module.extra_repr()})", False
    if not _same_grouping(r.sizes, v.sizes, perm):
        shape = lambda s: f"{len(s)} call{'s' if len(s) > 1 else ''} of {', '.join(map(str, s))} rows"  # noqa: E731
        if batch_dependent(r.module):
            return (f"batch composition: {a} normalises {shape(r.sizes)}, {b} {shape(v.sizes)}; in train mode each "
                    "call is normalised with its own batch statistics"), True
        return f"batch composition: the same rows reach it as {shape(r.sizes)} vs {shape(v.sizes)}", True
    return "it computes differently on the same inputs", False


def first_divergence(ref: Sequence[Call], var: Sequence[Call], *, state_ref: Mapping[str, Tensor] | None = None,
                     state_var: Mapping[str, Tensor] | None = None, names: tuple[str, str] = ("reference", "variant"),
                     rtol: float = RTOL) -> Divergence:
    """The first module, in the reference's forward order, whose outputs differ between the two recordings.

    `state_ref`/`state_var`: the models' state dicts at the start of the step; a diverging module's own weights
    and buffers are compared to explain the divergence.
    """
    jr, jv = join(ref), join(var)
    perms: dict[int, Tensor] = {}  # rows -> last row matching found: row identity flows through the network
    compared = 0
    for name, r in jr.items():
        v = jv.get(name)
        if v is None or r.y is None or v.y is None or r.y.shape != v.y.shape:
            continue
        perm = match_rows(r.x, v.x, rtol) if r.x is not None and v.x is not None else None
        inputs_match = perm is not None
        if perm is not None:
            perms[len(perm)] = perm
        rows_follow = r.x is not None and r.y.dim() > 0 and r.x.shape[0] == r.y.shape[0]
        if perm is None or not rows_follow:
            perm = perms.get(r.y.shape[0]) if r.y.dim() > 0 else None
        if perm is not None and r.y.dim() > 0 and len(perm) == r.y.shape[0]:
            yv = v.y[perm]
        else:
            yv = v.y
        compared += 1
        d = rel_diff(r.y, yv)
        if d > rtol:
            if inputs_match:
                own_r = own_state(state_ref, name) if state_ref is not None else None
                own_v = own_state(state_var, name) if state_var is not None else None
                cause, composition = _cause(r, v, perm, own_r, own_v, names)
            else:
                unmatched = _without_counterpart(jr, jv, r, v, names)
                if unmatched is not None:
                    first, kind, why = unmatched
                    return Divergence(ModuleDiff(first, kind, d, False, f"{why}; outputs differ from {name} "
                                                 f"({r.type}) on", False), compared)
                cause, composition = "its inputs already differ (computed outside any module, or by the data)", False
            return Divergence(ModuleDiff(name, r.type, d, inputs_match, cause, composition), compared)
    return Divergence(None, compared)


def _without_counterpart(jr: Mapping[str, Joined], jv: Mapping[str, Joined], r: Joined, v: Joined,
                         names: tuple[str, str]) -> tuple[str, str, str] | None:
    """The modules that ran before `r` (`v`) in one model and have no module of that name in the other, e.g. a
    `pos_norm` in one and a `state_norm` in the other: (the first one's name, its type, a cause naming them all)."""
    only_r = [j for n, j in jr.items() if n not in jv and j.order < r.order]
    only_v = [j for n, j in jv.items() if n not in jr and j.order < v.order]
    if not only_r and not only_v:
        return None
    listed = lambda js: ", ".join(f"{j.name} ({j.type})" for j in js[:4]) + (" ..." if len(js) > 4 else "")  # noqa: E731
    a, b = names
    parts = ([f"{a} runs {listed(only_r)}"] if only_r else []) + ([f"{b} runs {listed(only_v)}"] if only_v else [])
    first = (only_r or only_v)[0]
    return first.name, first.type, f"no counterpart: {' and '.join(parts)}, with no module of that name in the other"
