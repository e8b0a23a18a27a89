"""The up-front check of `normreg run`: every mistake that would otherwise surface only after training, caught
before the first run starts, as one SuiteError (exit 2) with a did-you-mean.

For each distinct variant: the model and data targets are built (`suite.targets.build`), the `trainer` options
are checked against the `Trainer.__init__` of the Lightning flavour the model subclasses (names and annotated
types), and one `test_step` (or `validation_step`) on one batch, as the audit calls it, shows which metric names
the model logs. A model whose step cannot be called this way is not judged on its metric names.
"""

from __future__ import annotations

import importlib.util
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from normreg.errors import did_you_mean
from normreg.suite.loading import suite_error
from normreg.suite.model import Suite, Variant


@dataclass(frozen=True)
class Logged:
    """The metric names one evaluation step logged, and the step that logged them."""

    step: str
    names: frozenset[str]


# ------------------------------------------------------------------------------------------- trainer options


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(dict.fromkeys(_type_name(a) for a in typing.get_args(annotation)))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def matches(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits a parameter's annotation; True where the annotation says nothing checkable."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(matches(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is not None:
        annotation = origin
    if not isinstance(annotation, type):
        return True  # a TypeVar, a Callable, a string annotation: nothing to check
    if annotation in (list, tuple, Sequence, Iterable) or (isinstance(annotation, type)
                                                          and issubclass(annotation, Iterable)
                                                          and annotation not in (str, bytes, dict, Mapping)):
        if isinstance(value, (list, tuple)):
            return True
    if annotation in (dict, Mapping):
        return isinstance(value, dict)
    return isinstance(value, annotation)


def check_trainer(suite: Suite, variant: Variant, pl: Any) -> None:
    """Each `trainer` option of the variant against the Trainer's signature and annotations."""
    try:
        sig = inspect.signature(pl.Trainer.__init__, eval_str=True)
    except Exception:  # noqa: BLE001 - annotations that cannot be evaluated: check names only
        sig = inspect.signature(pl.Trainer.__init__)
    params = {n: p for n, p in sig.parameters.items() if n != "self"}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    for key, value in variant.trainer.items():
        places = [("variants", variant.name, "trainer", key), ("trainer", key)]
        if all(key in v.trainer for v in suite.variants):
            places.reverse()  # most likely the suite's own trainer section
        if key not in params:
            hint = did_you_mean(key, params)
            raise suite_error(suite, places, f"'{key}' is not an option of {pl.__name__}.Trainer.{hint}")
        if not matches(value, params[key].annotation):
            raise suite_error(suite, places, f"trainer option '{key}' expects {_type_name(params[key].annotation)}, "
                                             f"but found {type(value).__name__} {value!r}")


# --------------------------------------------------------------------------------------------- logged metrics


def logged_metrics(model: Any, dm: Any) -> Logged | None:
    """The names one `test_step` (else `validation_step`) on the first batch logs with `self.log`/`log_dict`;
    None when the step cannot be called outside a Trainer (the run will tell)."""
    import torch

    from normreg.auditing.steps import eval_batches, overridden, quiet, restore, run_eval_step, snapshot

    step = "test_step" if overridden(model, "test_step") else "validation_step"
    names: set[str] = set()

    def log(name: str, *args: Any, **kwargs: Any) -> None:
        names.add(name)

    def log_dict(values: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        names.update(values)

    snap = snapshot(model)
    rng = torch.get_rng_state()
    model.__dict__.update(log=log, log_dict=log_dict)
    try:
        with quiet():
            batches = dict(eval_batches(model, dm))
            if step not in batches:
                return None
            run_eval_step(model, step, batches[step])
            hook = "on_test_epoch_end" if step == "test_step" else "on_validation_epoch_end"
            if overridden(model, hook):
                with torch.inference_mode():
                    getattr(model, hook)()
    except Exception:  # noqa: BLE001 - a step that needs a Trainer: the run itself will say what is missing
        if not names:
            return None
    finally:
        model.__dict__.pop("log", None)
        model.__dict__.pop("log_dict", None)
        restore(model, snap)
        torch.set_rng_state(rng)
    return Logged(step, frozenset(names)) if names else None


def check_metrics(suite: Suite, variant: Variant, logged: Logged) -> None:
    for m in suite.metrics:
        if m.name in logged.names or any(n.startswith(m.name + "/") or m.name.startswith(n + "/")
                                         for n in logged.names):
            continue
        hint = did_you_mean(m.name, sorted(logged.names))
        raise suite_error(suite, [("metrics", m.name)],
                          f"variant '{variant.name}' does not log '{m.name}': one {logged.step} on one batch logged "
                          f"{', '.join(sorted(logged.names))}.{hint} Log it with self.log('{m.name}', value) or "
                          "rename the metric")


# --------------------------------------------------------------------------------------------- accelerators

# What `trainer.accelerator` may name, and how to tell whether this machine has it (None: always there).
_ACCELERATORS: dict[str, Callable[[], bool] | None] = {
    "auto": None,
    "cpu": None,
    "gpu": lambda: _torch().cuda.is_available(),
    "cuda": lambda: _torch().cuda.is_available(),
    "mps": lambda: _torch().backends.mps.is_available(),
    "tpu": lambda: importlib.util.find_spec("torch_xla") is not None,
    "hpu": lambda: importlib.util.find_spec("habana_frameworks") is not None,
}


def _torch() -> Any:
    import torch

    return torch


def check_accelerator(suite: Suite, variant: Variant, device: Callable[[], str]) -> None:
    """The variant's `trainer.accelerator` against the devices the runs will have: a name Lightning does not know,
    or a device this machine lacks (`tpu` without torch_xla, `gpu` without CUDA), would fail every run. `device`
    is the executor's (`cpu`, `cuda (...)`; `unknown` for a cluster not yet joined: then only the name is
    checked), asked only for a device that may be missing."""
    value = variant.trainer.get("accelerator")
    if not isinstance(value, str):
        return  # not a name: the Trainer's signature check speaks for it
    places = [("variants", variant.name, "trainer", "accelerator"), ("trainer", "accelerator")]
    if all(v.trainer.get("accelerator") == value for v in suite.variants):
        places.reverse()
    name = str(value).lower()
    if name not in _ACCELERATORS:
        raise suite_error(suite, places, f"unknown accelerator {value!r}.{did_you_mean(name, list(_ACCELERATORS))} "
                                         f"Expected one of {', '.join(_ACCELERATORS)}")
    available = _ACCELERATORS[name]
    if available is None or device() == "unknown":
        return
    if not available():
        what = "no GPU that torch can use (torch.cuda.is_available() is False)" if name in ("gpu", "cuda") else \
            f"no {name.upper()} (its support for torch is not installed or finds no device)"
        raise suite_error(suite, places, f"accelerator {value!r}: this machine has {what}; use cpu or auto")


# ------------------------------------------------------------------------------------------------ the check


def check_options(suite: Suite, device: Callable[[], str]) -> None:
    """What can be checked before any user code runs: every variant's accelerator against the machine
    (`device()`: where the executor trains, asked only for a device that may be missing). Imports Lightning, which
    the models need next: a mistake in them is then found as soon as this process has imported it."""
    try:
        import pytorch_lightning  # noqa: F401
    except ImportError:  # the other flavour
        import lightning.pytorch  # noqa: F401
    for v in suite.variants:
        check_accelerator(suite, v, device)


def preflight(suite: Suite) -> None:
    """Build each distinct model once (with its data), check every variant's trainer options and the metric names
    its model logs; raises SuiteError naming the suite line."""
    from normreg.auditing.steps import seed_all
    from normreg.execution.worker import flavour_of
    from normreg.suite.targets import build, importable

    importable([suite.directory])
    built: dict[tuple[str, ...], tuple[Any, Logged | None]] = {}
    for v in suite.variants:
        key = (v.model.spec, repr(sorted(v.model.args.items())), v.data.spec if v.data else "",
               repr(sorted(v.data.args.items())) if v.data else "")
        if key not in built:
            seed_all(suite.seeds[0])
            dm = build(suite, v.data, "data") if v.data is not None else None
            model = build(suite, v.model, "model")
            built[key] = (model, None if suite.expects_failure(v.name) else logged_metrics(model, dm))
        model, logged = built[key]
        pl = flavour_of(model)
        if pl is not None:
            check_trainer(suite, v, pl)
        if logged is not None and not suite.expects_failure(v.name):
            check_metrics(suite, v, logged)
