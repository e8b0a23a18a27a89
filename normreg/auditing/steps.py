"""Driving a user's LightningModule without a Trainer: its batches, its steps, its optimizers, its state.

Everything here works through the public hooks a LightningModule already has (`train_dataloader`,
`training_step`, `test_step`, `configure_optimizers`, ...), so the audit runs on models it has never seen. A
Trainer is not built: it costs more than the whole audit of a small model, and a step called directly is the
same computation. Manual optimisation gets small stand-ins for `optimizers()` and `manual_backward()`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence what calling steps outside a Trainer prints (`self.log` without a Trainer, loader hints)."""
    levels = {}
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def seed_all(seed: int) -> None:
    """Seed as the runner does (Lightning's seed_everything when it is installed)."""
    try:
        from pytorch_lightning import seed_everything
    except ImportError:  # pragma: no cover - Lightning is a dependency
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        return
    seed_everything(seed, workers=True, verbose=False)


def overridden(obj: Any, name: str) -> bool:
    """True when `obj`'s class (not Lightning's base class) defines the method `name`."""
    for cls in type(obj).__mro__:
        if name in cls.__dict__:
            mod = cls.__module__ or ""
            return not (mod.startswith("pytorch_lightning") or mod.startswith("lightning."))
    return False


def first_batch(loaders: Any) -> Any:
    """The first batch of a loader, or of each loader in a dict or list of them (as Lightning combines them)."""
    if isinstance(loaders, Mapping):
        return {k: first_batch(v) for k, v in loaders.items()}
    if isinstance(loaders, (list, tuple)):
        return [first_batch(v) for v in loaders]
    out = next(iter(loaders))
    if type(loaders).__name__ == "CombinedLoader" and isinstance(out, tuple) and len(out) == 3:
        return out[0]  # (batch, batch_idx, dataloader_idx)
    return out


def _setup(model: Any, dm: Any, stage: str) -> None:
    for obj in (dm, model):
        if obj is None:
            continue
        if overridden(obj, "prepare_data"):
            obj.prepare_data()
        if overridden(obj, "setup"):
            obj.setup(stage)


def _source(model: Any, dm: Any, loader: str) -> Any:
    if dm is not None and overridden(dm, loader):
        return dm
    return model if overridden(model, loader) else None


def batch_difference(a: Any, b: Any) -> str | None:
    """How two batches differ (shapes, or the largest difference of their tensors), or None when they are equal."""
    ta, tb = _tensors(a), _tensors(b)
    if len(ta) != len(tb):
        return f"{len(ta)} vs {len(tb)} tensors"
    worst = 0.0
    for x, y in zip(ta, tb):
        if x.shape != y.shape:
            return f"shapes {tuple(x.shape)} vs {tuple(y.shape)}"
        if x.numel():
            worst = max(worst, float((x.double() - y.double()).abs().max()))
    return None if worst == 0.0 else f"largest difference {worst:.3g}"


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _transfer(model: Any, batch: Any) -> Any:
    if overridden(model, "on_before_batch_transfer"):
        batch = model.on_before_batch_transfer(batch, 0)
    if overridden(model, "on_after_batch_transfer"):
        batch = model.on_after_batch_transfer(batch, 0)
    return batch


def train_batch(model: Any, dm: Any, reshard: Callable[[Any], Any] | None = None) -> Any:
    """The first training batch, from the datamodule or the model's own `train_dataloader` (which may act);
    `reshard` replaces the loaders first, as a Trainer does (normreg.auditing.shards gives each process's)."""
    source = _source(model, dm, "train_dataloader")
    if source is None:
        raise LookupError("neither the datamodule nor the model defines train_dataloader")
    _setup(model, dm, "fit")
    loaders = source.train_dataloader()
    return _transfer(model, first_batch(loaders if reshard is None else reshard(loaders)))


EVAL_PATHS = (("validation_step", "val_dataloader", "validate"), ("test_step", "test_dataloader", "test"),
              ("predict_step", "predict_dataloader", "predict"))


def eval_batches(model: Any, dm: Any) -> list[tuple[str, Any]]:
    """(step name, first batch) for each evaluation step the model defines and has data for."""
    out = []
    for step, loader, stage in EVAL_PATHS:
        source = _source(model, dm, loader)
        if not overridden(model, step) or source is None:
            continue
        _setup(model, dm, stage)
        out.append((step, _transfer(model, first_batch(getattr(source, loader)()))))
    return out


def run_eval_step(model: Any, step: str, batch: Any) -> None:
    """As Lightning's evaluation loops do: the whole model in eval mode, under inference mode."""
    model.eval()
    with torch.inference_mode():
        getattr(model, step)(batch, 0)


# ---------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Snapshot:
    state: dict[str, Tensor]
    flags: dict[int, bool]


def snapshot(model: nn.Module) -> Snapshot:
    return Snapshot({k: v.detach().clone() for k, v in model.state_dict().items()},
                    {id(m): m.training for m in model.modules()})


def restore(model: nn.Module, snap: Snapshot) -> None:
    """Put weights, buffers and every module's mode back; drop gradients."""
    with torch.no_grad():
        model.load_state_dict(snap.state)
    for m in model.modules():
        if id(m) in snap.flags:
            m.training = snap.flags[id(m)]
    for p in model.parameters():
        p.grad = None


def copy_matching_state(source: nn.Module, target: nn.Module) -> tuple[int, int]:
    """Copy `source`'s tensors into `target` where names and shapes match; (copied, target tensors not matched)."""
    src = source.state_dict()
    dst = target.state_dict()
    copied = 0
    for k, v in dst.items():
        if k in src and src[k].shape == v.shape and src[k].dtype == v.dtype:
            dst[k] = src[k].clone()
            copied += 1
    with torch.no_grad():
        target.load_state_dict(dst)
    return copied, len(dst) - copied


# ---------------------------------------------------------------------------------------------- training steps


def optimizers_of(model: Any) -> list[torch.optim.Optimizer]:
    """Every optimizer `configure_optimizers` returns, in any of the forms Lightning accepts."""
    found: list[torch.optim.Optimizer] = []

    def collect(o: Any) -> None:
        if isinstance(o, torch.optim.Optimizer):
            found.append(o)
        elif isinstance(o, Mapping):
            collect(o.get("optimizer"))
        elif isinstance(o, (list, tuple)):
            for e in o:
                collect(e)

    collect(model.configure_optimizers())
    return found


@contextlib.contextmanager
def _stand_ins(model: Any, optimizers: Sequence[torch.optim.Optimizer], grads: dict[str, Tensor]) -> Iterator[None]:
    """Instance-level stand-ins for the Trainer-backed methods a training step may call."""
    named = list(model.named_parameters())
    saved: dict[int, bool] = {}

    def backward(loss: Tensor, *args: Any, **kwargs: Any) -> None:
        before = {n: p.grad.detach().clone() for n, p in named if p.grad is not None}
        loss.backward(*args, **kwargs)
        for n, p in named:
            if p.grad is not None:
                delta = p.grad.detach() - before[n] if n in before else p.grad.detach().clone()
                grads[n] = grads[n] + delta if n in grads else delta

    def toggle(opt: Any) -> None:
        mine = {id(p) for g in getattr(opt, "param_groups", []) for p in g["params"]}
        for o in optimizers:
            for g in o.param_groups:
                for p in g["params"]:
                    saved.setdefault(id(p), p.requires_grad)
                    if id(p) not in mine:
                        p.requires_grad = False

    def untoggle(opt: Any) -> None:
        for o in optimizers:
            for g in o.param_groups:
                for p in g["params"]:
                    if id(p) in saved:
                        p.requires_grad = saved[id(p)]
        saved.clear()

    @contextlib.contextmanager
    def toggled(opt: Any) -> Iterator[None]:
        toggle(opt)
        try:
            yield
        finally:
            untoggle(opt)

    patches: dict[str, Callable[..., Any]] = {
        "optimizers": lambda use_pl_optimizer=True: optimizers[0] if len(optimizers) == 1 else list(optimizers),
        "lr_schedulers": lambda: None,
    }
    if not getattr(model, "automatic_optimization", True):
        patches.update(manual_backward=backward, toggle_optimizer=toggle, untoggle_optimizer=untoggle,
                       toggled_optimizer=toggled)
    for k, f in patches.items():
        model.__dict__[k] = f
    try:
        yield
    finally:
        for k in patches:
            model.__dict__.pop(k, None)


def loss_of(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping) and isinstance(output.get("loss"), Tensor):
        return output["loss"]
    return None


@dataclass(frozen=True)
class StepResult:
    loss: float | None
    grads: dict[str, Tensor]


def training_step(model: Any, batch: Any, batch_idx: int = 0, *,
                  optimizers: Sequence[torch.optim.Optimizer] = (), update: bool = False) -> StepResult:
    """One `training_step` with its backward pass; with `update`, also the optimizer step (automatic optimisation).

    Gradients are those of this step alone: for manual optimisation, the sum of every `manual_backward`.
    """
    grads: dict[str, Tensor] = {}
    automatic = getattr(model, "automatic_optimization", True)
    if update and automatic:
        for opt in optimizers:
            opt.zero_grad()
    with _stand_ins(model, optimizers, grads):
        loss = loss_of(model.training_step(batch, batch_idx))
    if automatic and loss is not None and loss.requires_grad:
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        if update:
            for opt in optimizers:
                opt.step()
    value = float(loss.detach()) if loss is not None and loss.numel() == 1 else None
    return StepResult(value, grads)
