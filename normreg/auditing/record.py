"""Recording every module call with global forward hooks: which module, in which mode, with or without gradients,
on which rows, called from where.

Global hooks (not per-module ones) also see modules the user's code builds on the fly, e.g. a network rebuilt
inside `test_step` to serve single examples; those are named `[Type].sub.path` after the outermost such module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules import module as _module
from torch.nn.modules.batchnorm import _BatchNorm

_HERE = os.path.dirname(os.path.abspath(__file__))
_NORMREG = os.path.dirname(_HERE) + os.sep  # the package: its frames drive the user's code, they are not the caller
_EXAMPLES = os.path.join(_NORMREG, "examples") + os.sep  # the story models are user code


def _library_dirs() -> tuple[str, ...]:
    import contextlib

    dirs = [_HERE, os.path.dirname(torch.__file__), os.path.dirname(contextlib.__file__)]
    for name in ("pytorch_lightning", "lightning", "lightning_fabric"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__file__", None):
            dirs.append(os.path.dirname(mod.__file__))
    return tuple(dirs)


def user_frames(skip: tuple[str, ...], depth: int = 3) -> str:
    """`file.py:line in f < file.py:line in g`: the innermost frames of the user's code (outside torch, Lightning,
    the stdlib and normreg), innermost first; `forward` methods are passed over when a caller follows, to show who
    acts. The walk ends at the first normreg frame past the user's: what called the user's code from there (the
    audit, the command line, pytest) is not the user's."""
    frames = []
    frame = sys._getframe(1)
    while frame is not None and len(frames) < depth + 4:
        name = frame.f_code.co_filename
        if name.startswith(_NORMREG) and not name.startswith(_EXAMPLES):
            if frames:
                break
        elif not name.startswith(skip) and not name.startswith("<"):
            frames.append(f"{os.path.basename(name)}:{frame.f_lineno} in {frame.f_code.co_name}")
        frame = frame.f_back
    shown = [f for f in frames if not f.endswith(" in forward")] or frames
    return " < ".join(shown[:depth]) if shown else "?"


def first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for v in value:
            t = first_tensor(v)
            if t is not None:
                return t
    if isinstance(value, Mapping):
        for v in value.values():
            t = first_tensor(v)
            if t is not None:
                return t
    return None


def has_own_parameters(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False))


# A call record is filled in by two hooks (before and after the forward), so it is mutable while recording.
@dataclass
class Call:
    start: int  # clock at the pre-hook; one clock for starts and ends
    module: nn.Module
    name: str
    type: str
    root: int  # `start` of the outermost call this one runs inside (its own when it is outermost)
    depth: int
    training: bool
    grad: bool  # gradients were being recorded (not under no_grad / inference_mode)
    shape: tuple[int, ...] | None  # of the first tensor argument
    x: Tensor | None = None  # first tensor argument (a copy), when capturing
    y: Tensor | None = None  # first tensor of the output (a copy), when capturing
    args: tuple[Any, ...] | None = None  # every positional argument, kept for outermost calls
    flags: dict[int, bool] | None = None  # training flag of each submodule of an outermost call, by id
    end: int = -1  # clock at the post-hook
    failed: bool = False  # the forward raised
    where: str = ""  # user code that made the call (BatchNorm calls in train mode only)

    @property
    def rows(self) -> int | None:
        return self.shape[0] if self.shape else None

    @property
    def values_per_channel(self) -> int | None:
        """What a BatchNorm in train mode averages over per channel: rows times spatial positions."""
        if not self.shape:
            return None
        if len(self.shape) == 1:
            return self.shape[0]
        n = 1
        for s in self.shape:
            n *= s
        return n // self.shape[1] if self.shape[1] else None


class Recorder:
    """Context manager: while active, every nn.Module forward anywhere is recorded as a `Call`.

    `capture=True` keeps copies of each call's first input and output tensors (for comparing implementations);
    otherwise only metadata is kept, plus the arguments of the first few outermost calls per module.
    """

    def __init__(self, names: Mapping[int, str], *, capture: bool = False, keep_roots: int = 4) -> None:
        self.names = dict(names)
        self.capture = capture
        self.keep_roots = keep_roots
        self.calls: list[Call] = []
        self.marks: list[int] = []
        self._stack: list[Call] = []
        self._clock = 0
        self._relative: dict[int, dict[int, str]] = {}
        self._roots_kept: dict[int, int] = {}
        self._skip = _library_dirs()
        self._handles: list[Any] = []

    def __enter__(self) -> Recorder:
        self._handles = [_module.register_module_forward_pre_hook(self._pre),
                         _module.register_module_forward_hook(self._post, always_call=True)]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._stack.clear()

    def _name(self, module: nn.Module) -> str:
        known = self.names.get(id(module))
        if known is not None:
            return known
        # Built outside the model: name it after the outermost unknown module on the stack.
        for outer in self._stack:
            if id(outer.module) not in self.names:
                rel = self._relative.get(id(outer.module))
                if rel is None:
                    rel = {id(m): n for n, m in outer.module.named_modules()}
                    self._relative[id(outer.module)] = rel
                sub = rel.get(id(module), "?")
                return f"[{type(outer.module).__name__}]" + (f".{sub}" if sub else "")
        return f"[{type(module).__name__}]"

    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._clock += 1
        x = first_tensor(args)
        root = self._stack[0].start if self._stack else self._clock
        call = Call(start=self._clock, module=module, name=self._name(module), type=type(module).__name__,
                    root=root, depth=len(self._stack), training=module.training, grad=torch.is_grad_enabled(),
                    shape=tuple(x.shape) if x is not None else None)
        if self.capture and x is not None:
            call.x = x.detach().clone()
        if not self._stack and x is not None and self._roots_kept.get(id(module), 0) < self.keep_roots:
            self._roots_kept[id(module)] = self._roots_kept.get(id(module), 0) + 1
            call.args = tuple(a.detach().clone() if isinstance(a, Tensor) else a for a in args)
            call.flags = {id(m): m.training for m in module.modules()}
        if isinstance(module, _BatchNorm) and module.training:
            call.where = user_frames(self._skip)
        self.calls.append(call)
        self._stack.append(call)

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._clock += 1
        # Unwind to this module's call (a hook of an inner module may have been skipped by an exception).
        while self._stack:
            call = self._stack.pop()
            if call.module is module:
                call.end = self._clock
                if output is None:  # the forward raised (hooks registered with always_call=True still run)
                    call.failed = True
                elif self.capture:
                    y = first_tensor(output)
                    call.y = y.detach().clone() if y is not None else None
                break

    def mark(self) -> int:
        """Note a moment (e.g. an optimizer step) on the recording's clock; returns it."""
        self._clock += 1
        self.marks.append(self._clock)
        return self._clock

    def before_first_mark(self) -> list[Call]:
        """The calls that started before the first mark (all of them when nothing was marked)."""
        if not self.marks:
            return list(self.calls)
        return [c for c in self.calls if c.start < self.marks[0]]


def module_names(model: nn.Module) -> dict[int, str]:
    """id(module) -> qualified name; the model itself is "(model)"."""
    return {id(m): (n or "(model)") for n, m in model.named_modules()}
